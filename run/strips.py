"""The image strips that show generated frames in the Sequencer, one element per frame at its frame: the frames, and
the upscaled frames (named "<strip> Upscaled", one channel above) when the upscale pass is on."""

from __future__ import annotations

import os

import bpy

from ..engine.frames import frame_filename
from ..settings import compat


def find_strip(scene: bpy.types.Scene, name: str | None = None):
    name = name or scene.keyframe_diffusion.strip_name
    for strip in compat.all_strips(scene):
        if strip.name == name:
            return strip
    return None


def upscaled_name(scene: bpy.types.Scene) -> str:
    return f"{scene.keyframe_diffusion.strip_name} Upscaled"


def update_strip(scene: bpy.types.Scene, folder: str, frames: list[int], upscaled: bool = False,
                 size: tuple[int, int] | None = None):
    """Create the strip (or the upscaled strip), or fit the existing one in place, so its elements are the frame files
    of `frames` (contiguous), in order, each at its frame. With `size` (the frames' width and height) the strip is
    scaled so a frame fills the scene's picture (fit_strip), whether or not its files exist yet.

    Frames not rendered yet are elements whose files appear as they finish, so the strip has its final length at
    once and fills in while the rest render. An existing strip is changed, never replaced, so what the user set on it
    stays: channel, blend, opacity, modifiers, colour settings, effect strips that use it as input (see _refit for
    trims).
    """
    if not frames:
        raise ValueError("no frames for the strip")
    settings = scene.keyframe_diffusion
    name = upscaled_name(scene) if upscaled else settings.strip_name
    first = frames[0]
    names = [frame_filename(f) for f in range(first, frames[-1] + 1)]
    strip = find_strip(scene, name)
    if strip is not None:
        _refit(strip, folder, first, names)
        if size is not None:
            fit_strip(scene, strip, *size)
        return strip
    # (fit_method fits only to a first file that exists; fit_strip does it from the frames' size instead.)
    strip = compat.top_strips(scene).new_image(
        name=name,
        filepath=os.path.join(folder, names[0]),
        channel=settings.strip_channel + (1 if upscaled else 0),
        frame_start=first,
        fit_method="FIT",
    )
    for filename in names[1:]:
        strip.elements.append(filename)
    # Generated frames are sRGB PNGs: said outright so a changed default colour space for 8-bit files can't shift them.
    strip.colorspace_settings.name = "sRGB"
    if size is not None:
        fit_strip(scene, strip, *size, ours=True)
    return strip


# Strip ID property: the transform fit_strip set last (compat.TRANSFORM order). A strip whose transform differs from it
# was changed by the user and keeps that transform.
FIT_MARK = "keyframe_diffusion_fit"
_UNTOUCHED = (0.0, 0.0, 0.0, 0.5, 0.5)  # offset x, y, rotation, origin x, y: centred, as Blender makes a strip


def fit_strip(scene: bpy.types.Scene, strip, width: int, height: int, ours: bool = False) -> bool:
    """Scale the strip, centred, so a width x height frame fits the scene's render size (letterboxed where the shapes
    differ, as Blender's own Fit does). Computed from the frames' size, not from a file, so it holds before the first
    frame exists. A transform the user changed is left alone: ours is the one recorded in FIT_MARK, or, on a strip
    made before the mark existed, a centred uniform scale (what Blender's fit_method gives). Returns whether it set
    the transform."""
    current = compat.strip_transform(strip)
    recorded = strip.get(FIT_MARK)
    if not ours:
        if recorded is not None:
            ours = _close(current, tuple(recorded))
        else:
            ours = _close(current[:1], current[1:2]) and _close(current[2:], _UNTOUCHED)
    if not ours:
        return False
    render = scene.render
    scale = min(render.resolution_x / width, render.resolution_y / height)
    fitted = (scale, scale, *_UNTOUCHED)
    if not _close(current, fitted):
        compat.set_strip_transform(strip, fitted)
    strip[FIT_MARK] = compat.strip_transform(strip)  # as stored (single precision), so the next compare is exact
    return True


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-4 * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


# Scene ID property: the render size (x, y) before the first Generate in the scene matched it to the frames. Set once
# per scene, so a size the user chooses afterwards stays.
SIZE_MARK = "keyframe_diffusion_replaced_size"


def match_render_size(scene: bpy.types.Scene, width: int, height: int) -> str:
    """Called when Generate first makes our strip in a scene: a render whose shape differs from the frames' (the
    factory 1920x1080 for 64x64 or 512x512 frames) would show them small or letterboxed, so the render size becomes
    the frames' own size (one output pixel per generated pixel; resolution_percentage stays). Once per scene: the
    mark is set even when the shapes match, and a size the user picks afterwards stays. A Sequencer holding strips of
    the user's is their edit, sized as they chose: there the text only says what to do. Returns the text for the user
    ('' when nothing changed)."""
    if SIZE_MARK in scene:
        return ""
    render = scene.render
    was = (render.resolution_x, render.resolution_y)
    if was[0] * height == was[1] * width:
        scene[SIZE_MARK] = was
        return ""  # the same shape: the fitted strip fills the picture at the user's size
    if not sequencer_is_ours(scene):
        return (f"The frames ({width}x{height}) are another shape than the render ({was[0]}x{was[1]}), so they show "
                f"with bars; to fill the picture set Output Properties > Format > Resolution to {width}x{height}")
    scene[SIZE_MARK] = was
    render.resolution_x, render.resolution_y = width, height
    return (f"Render size set to {width}x{height} (the frames' size; was {was[0]}x{was[1]}); change it in "
            "Output Properties > Format")


def grow_render_size(scene: bpy.types.Scene, width: int, height: int, factor: int) -> str:
    """The upscale pass's frames are `factor` times the size: a render size match_render_size set to the frames' size
    (and the user left) becomes the upscaled size, so the upscaled frames render at their own resolution. Returns the
    text for the user ('' when nothing changed)."""
    render = scene.render
    was = scene.get(SIZE_MARK)
    if was is None or factor <= 1 or (render.resolution_x, render.resolution_y) != (width, height):
        return ""
    render.resolution_x, render.resolution_y = width * factor, height * factor
    return (f"Render size set to {width * factor}x{height * factor} (the upscaled frames' size; was "
            f"{was[0]}x{was[1]}); change it in Output Properties > Format")


def undo_render_size(scene: bpy.types.Scene, sizes: tuple[tuple[int, int], ...]) -> None:
    """Put back the render size match_render_size replaced (if it is still one of `sizes`, which that job set) and
    forget that it was done, so the next Generate counts as the first."""
    was = scene.get(SIZE_MARK)
    if was is None:
        return
    was = (int(was[0]), int(was[1]))  # copied out first: the ID property's array is freed with it (read after
    del scene[SIZE_MARK]              # that, it gave 65536x65536 on one run)
    render = scene.render
    if (render.resolution_x, render.resolution_y) in sizes:
        render.resolution_x, render.resolution_y = was


def undo_view(scene: bpy.types.Scene) -> None:
    """Put back the view transform show_as_generated replaced (if it is still Standard) and forget the switch."""
    was = scene.get(VIEW_MARK)
    if was is None:
        return
    del scene[VIEW_MARK]
    if scene.view_settings.view_transform == "Standard":
        scene.view_settings.view_transform = was


def frame_files_exist(strip) -> bool:
    """Whether any of the strip's frame files is on disk."""
    folder = bpy.path.abspath(strip.directory)
    return any(os.path.isfile(os.path.join(folder, e.filename)) for e in strip.elements)


def remove_strip(scene: bpy.types.Scene, strip) -> None:
    compat.top_strips(scene).remove(strip)


def image_size(path: str) -> tuple[int, int] | None:
    """A frame file's pixel size, read by Blender (None where it can't be read)."""
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError:
        return None
    try:
        width, height = image.size
    finally:
        bpy.data.images.remove(image)
    return (width, height) if width and height else None


def _refit(strip, folder: str, first: int, names: list[str]) -> None:
    """Point an existing strip at new frames: folder, elements, start and length change in place.

    Trims: a trim stays at the scene frame where the user put it while that end of the range didn't move (and it still
    leaves something to show); an end of the range that moved takes its handle with it, since the user asked for
    those frames. A strip the user slid away from its frames goes back onto them."""
    same_folder = os.path.normpath(bpy.path.abspath(strip.directory)) == os.path.normpath(folder)
    old_first = round(compat.content_start(strip))
    old_end = old_first + len(strip.elements)
    if same_folder and old_first == first and [e.filename for e in strip.elements] == names:
        return  # already right: nothing to change
    left, right = compat.strip_start(strip), compat.strip_end(strip)
    end = first + len(names)
    compat.clear_trims(strip)  # no trim while the content changes length
    if not same_folder:
        strip.directory = os.path.join(folder, "")
    elements = strip.elements
    while len(elements) > len(names):
        elements.pop(len(elements) - 1)
    for element, filename in zip(elements, names):
        element.filename = filename
    for filename in names[len(elements):]:
        elements.append(filename)
    if old_first != first:
        compat.set_content_start(strip, first)
    left = left if old_first == first and first < left < end else first
    right = right if old_end == end and left < right < end else end
    compat.set_handles(strip, left, right)
    strip.invalidate_cache("RAW")  # cached images belong to the old elements


def refresh_strip(scene: bpy.types.Scene, upscaled: bool = False) -> None:
    """Drop cached images so a frame that just finished shows up."""
    strip = find_strip(scene, upscaled_name(scene) if upscaled else None)
    if strip is not None:
        strip.invalidate_cache("RAW")


# Blender's factory view transforms (AgX from 4.0, Filmic before): they tone-map the Sequencer's output, so
# (220, 30, 30) in a frame renders as about (201, 49, 26). Standard shows an sRGB frame as it is.
FACTORY_VIEWS = ("AgX", "Filmic")
# Scene ID property: the view transform show_as_generated replaced, so it never switches that scene again.
VIEW_MARK = "keyframe_diffusion_replaced_view"


def show_as_generated(scene: bpy.types.Scene) -> str:
    """Called when Generate first makes our strip in a scene: have the Sequencer render the frames as generated.

    The factory AgX/Filmic view, untouched, in a scene whose Sequencer holds only our strips and whose own render
    isn't an engine input, becomes Standard (once per scene: a user who sets it back keeps their choice). Anywhere
    else the scene's look is the user's and stays; the text says what differs. Returns the text for the user
    ('' when there is nothing to say)."""
    view = scene.view_settings
    if view.view_transform == "Standard":
        return ""
    if VIEW_MARK in scene:
        return ""  # switched once already; the user changed it back
    was = view.view_transform
    where = "Render Properties > Color Management > View Transform"
    if _factory_look(view) and sequencer_is_ours(scene) and not _renders_scene_as_input(scene.keyframe_diffusion):
        scene[VIEW_MARK] = was
        view.view_transform = "Standard"
        return (f"View transform set to Standard (was {was}) so the Sequencer renders the frames with their generated "
                f"colours; set it back in {where}")
    return (f"The scene's view transform ({was}) changes the strip's colours in renders; for the frames as "
            f"generated set {where} to Standard")


def _factory_look(view) -> bool:
    return (view.view_transform in FACTORY_VIEWS and view.look == "None" and view.exposure == 0
            and view.gamma == 1 and not view.use_curve_mapping)


def sequencer_is_ours(scene: bpy.types.Scene) -> bool:
    ours = {scene.keyframe_diffusion.strip_name, upscaled_name(scene)}
    return all(strip.name in ours for strip in compat.all_strips(scene))


def _renders_scene_as_input(settings) -> bool:
    """Whether the engine reads Blender's render of the scene, which is saved through the view transform: switching
    it would change those inputs and so every frame."""
    return (settings.mode == "VIDEO" and settings.init_source == "SCENE") or any(
        unit.enabled and unit.source == "RENDER" for unit in settings.controlnets)
