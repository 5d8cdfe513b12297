"""Blender's own render of the scene as engine input: the combined image (scene input), the depth pass (3D feedback,
depth ControlNet, depth-to-image), the normal pass (normal ControlNet) and the object and material index passes
(inpainting masks), one file per frame.

Depth and normals go through a compositor File Output node as float EXR (Blender 5.0 writes only Combined to
multilayer EXR). A pass file is replaced only when its bytes change, so its size and date stay put when the scene
didn't change, and frames made from it stay current.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile

import bpy

from ..engine.frames import frame_filename
from ..settings import compat

PASS_SOCKETS = {"depth": ("Depth", "FLOAT", "use_pass_z"), "normal": ("Normal", "VECTOR", "use_pass_normal"),
                "object_index": ("IndexOB", "FLOAT", "use_pass_object_index"),
                "material_index": ("IndexMA", "FLOAT", "use_pass_material_index"),
                # Blender's motion vectors (engine/flow.py reads them into the engine's flow convention)
                "vector": ("Vector", "RGBA", "use_pass_vector"),
                "mask": ("Mask", "FLOAT", None)}  # a Mask datablock (a mask strip's), rasterised by the compositor


_active = False  # True while render_passes renders: Blender's render handlers see those renders too


def rendering() -> bool:
    """Whether the render in progress is one of ours (a pass), not the user's."""
    return _active


class PassError(RuntimeError):
    """The scene could not be rendered for a pass; the message says why."""


def pass_path(folder: str, name: str, frame: int) -> str:
    ext = ".png" if name == "image" else ".exr"
    return os.path.join(folder, "passes", name, frame_filename(frame).replace(".png", ext))


def place_file(tmp: str, final: str) -> None:
    """Move a new pass (or mask) file into place unless one with the same content is already there."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    if os.path.isfile(final) and same_content(tmp, final):
        os.remove(tmp)
    else:
        os.replace(tmp, final)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_picture(path: str) -> list[bytes] | None:
    """A PNG's critical chunks (header, palette, pixels): what makes its picture. Its ancillary chunks (text, EXIF,
    resolution) are left out: Cycles writes its render time into every render's text chunks."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_PNG_SIGNATURE):
        return None
    chunks, pos = [], len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 5].isupper():
            chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    return chunks


def same_content(a: str, b: str) -> bool:
    """Whether two pass files hold the same picture (for PNGs, whatever their metadata)."""
    if a.lower().endswith(".png") and b.lower().endswith(".png"):
        pictures = _png_picture(a), _png_picture(b)
        if None not in pictures:
            return pictures[0] == pictures[1]
    return filecmp.cmp(a, b, shallow=False)


class _RenderState:
    """Everything render_passes changes on the scene, put back afterwards."""

    def __init__(self, scene, fast: bool):
        render = scene.render
        self.scene = scene
        self.saved = [(render, k, getattr(render, k)) for k in
                      ("resolution_x", "resolution_y", "resolution_percentage", "filepath", "use_compositing",
                       "use_sequencer", "use_motion_blur")]
        # Metadata stamps (render time, date, memory) differ between renders of the same pixels: off for passes.
        self.saved += [(render, k, getattr(render, k)) for k in dir(render) if k.startswith("use_stamp")]
        self.layers = [(vl, a, getattr(vl, a)) for vl in scene.view_layers for _s, _t, a in PASS_SOCKETS.values()
                       if a]
        if fast:
            self.saved.append((render, "engine", render.engine))
            self.saved.append((render, "filter_size", render.filter_size))
            self.saved.append((scene.cycles, "samples", scene.cycles.samples))
            self.saved.append((scene.cycles, "use_denoising", scene.cycles.use_denoising))
        self.frame = (scene.frame_current, scene.frame_subframe)

    def restore(self) -> None:
        for owner, key, value in reversed(self.saved + self.layers):
            setattr(owner, key, value)
        self.scene.frame_set(self.frame[0], subframe=self.frame[1])


def render_passes(scene: bpy.types.Scene, folder: str, frames: list[int], passes: set[str], size: tuple[int, int],
                  progress=None, mask=None) -> dict[int, dict[str, str]]:
    """Render `passes` ('image', 'depth', 'normal') of the scene at each frame into folder/passes/<pass>/.

    Only depth and normals: a fast render (Cycles, one sample, a tiny pixel filter so each pixel's depth is the
    surface at its centre). With 'image', the scene's own engine and settings: the input looks as the user set it up.
    'mask' rasterises the Mask datablock `mask` at each frame. Returns {frame: {pass: path}}. Everything it changes
    on the scene is put back.
    """
    if scene.camera is None:
        raise PassError(f"scene '{scene.name}' has no camera: rendering the scene's passes needs one")
    unknown = passes - {"image", *PASS_SOCKETS}
    if unknown:
        raise ValueError(f"unknown passes: {', '.join(sorted(unknown))}")
    global _active
    fast = "image" not in passes
    state = _RenderState(scene, fast)
    os.makedirs(folder, exist_ok=True)
    # Beside the pass folders, so finished files are renamed into place (a temp dir may be another file system).
    tmp = tempfile.mkdtemp(prefix=".kd-passes-", dir=folder)
    restore_tree = None
    try:
        _set_up_render(scene, tmp, size, fast, "vector" in passes)
        data_passes = [p for p in passes if p in PASS_SOCKETS]
        if data_passes:
            restore_tree = _set_up_compositor(scene, tmp, data_passes, size, mask)
        result: dict[int, dict[str, str]] = {}
        _active = True
        for n, frame in enumerate(frames):
            result[frame] = _render_frame(scene, folder, tmp, frame, "image" in passes, data_passes)
            if progress is not None:
                progress(n + 1, len(frames))
        return result
    finally:
        _active = False
        if restore_tree is not None:
            restore_tree()
        state.restore()
        shutil.rmtree(tmp, ignore_errors=True)


def _set_up_render(scene, tmp: str, size: tuple[int, int], fast: bool, vector: bool = False) -> None:
    render = scene.render
    render.resolution_x, render.resolution_y = size
    render.resolution_percentage = 100
    render.filepath = os.path.join(tmp, "render_")
    # With strips in the Sequencer (ours among them) the render would be the edit, not the scene.
    render.use_sequencer = False
    if vector:
        render.use_motion_blur = False  # Blender writes no Vector pass with motion blur on
    for key in dir(render):
        if key.startswith("use_stamp"):
            setattr(render, key, False)
    if fast:
        render.engine = "CYCLES"
        scene.cycles.samples = 1
        scene.cycles.use_denoising = False  # nothing to denoise in depth; some builds have no denoiser at all
        render.filter_size = 0.01


def _set_up_compositor(scene, tmp: str, data_passes: list[str], size: tuple[int, int], mask):
    """A compositor tree writing each data pass to a float EXR in `tmp`; returns what puts the user's tree back."""
    scene.render.use_compositing = True
    layer = bpy.context.view_layer if bpy.context.scene == scene else scene.view_layers[0]
    for name in data_passes:
        if PASS_SOCKETS[name][2]:
            setattr(layer, PASS_SOCKETS[name][2], True)
    tree, restore_tree = compat.compositor_tree(scene)
    try:
        layers_node = tree.nodes.new("CompositorNodeRLayers")
        layers_node.scene = scene
        layers_node.layer = layer.name
        output = compat.file_output_node(tree, tmp, [(n, PASS_SOCKETS[n][1]) for n in data_passes])
        for i, name in enumerate(data_passes):
            if name == "mask":
                socket = _mask_node(tree, mask, size).outputs[0]
            else:
                socket = compat.render_layer_output(layers_node, PASS_SOCKETS[name][0])
            if socket is None:  # EEVEE has no index passes
                raise PassError(f"the {scene.render.engine} render engine has no {name.replace('_', ' ')} pass: "
                                "use Cycles, or another mask source")
            compat.link_to_file_output(tree, socket, output.inputs[i], PASS_SOCKETS[name][1])
    except BaseException:
        restore_tree()
        raise
    return restore_tree


def _render_frame(scene, folder: str, tmp: str, frame: int, image: bool, data_passes: list[str]) -> dict[str, str]:
    """Render one frame and move its pass files into place; returns {pass: path}."""
    scene.frame_set(frame)
    try:
        bpy.ops.render.render(write_still=False, scene=scene.name)
    except RuntimeError as e:
        raise PassError(f"Blender could not render frame {frame} of scene '{scene.name}' "
                        f"({scene.render.engine}): {e}") from e
    paths = {}
    if image:
        written = os.path.join(tmp, "image.png")
        _save_render(written)
        paths["image"] = pass_path(folder, "image", frame)
        place_file(written, paths["image"])
    for name in data_passes:
        written = compat.pass_file(tmp, name, frame)
        if not os.path.isfile(written):
            raise PassError(f"the {name} pass of frame {frame} was not written (is the compositor off?)")
        paths[name] = pass_path(folder, name, frame)
        place_file(written, paths[name])
    return paths


def _mask_node(tree, mask, size: tuple[int, int]):
    if mask is None:
        raise ValueError("the mask pass needs a Mask datablock")
    node = tree.nodes.new("CompositorNodeMask")
    node.mask = mask
    compat.mask_node_follows_scene(node)
    return node


def _save_render(path: str) -> None:
    """Save the render result as the user sees it (view transform applied) as an 8-bit PNG."""
    image = bpy.data.images["Render Result"]
    settings = bpy.context.scene.render.image_settings
    state = compat.image_output_state(bpy.context.scene.render)
    try:
        compat.set_image_output(settings, "PNG")
        settings.color_mode = "RGB"
        image.save_render(path)
    finally:
        compat.restore_image_output(bpy.context.scene.render, state)
