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


def update_strip(scene: bpy.types.Scene, folder: str, frames: list[int], upscaled: bool = False):
    """Create or rebuild the strip (or the upscaled strip) so its elements are the frame files of `frames`
    (contiguous), in order.

    Frames not rendered yet are elements whose files appear as they finish, so the strip has its final length at
    once and fills in while the rest render.
    """
    if not frames:
        raise ValueError("no frames for the strip")
    settings = scene.keyframe_diffusion
    strips = compat.top_strips(scene)
    name = upscaled_name(scene) if upscaled else settings.strip_name
    channel = settings.strip_channel + (1 if upscaled else 0)
    first = frames[0]
    frames = list(range(first, frames[-1] + 1))
    names = [frame_filename(f) for f in frames]
    old = find_strip(scene, name)
    if old is not None:
        same_folder = os.path.normpath(bpy.path.abspath(old.directory)) == os.path.normpath(folder)
        if same_folder and old.frame_start == first and [e.filename for e in old.elements] == names:
            return old  # already right: keep the user's trims, effects and placement
        channel = old.channel
        strips.remove(old)
    strip = strips.new_image(
        name=name,
        filepath=os.path.join(folder, frame_filename(first)),
        channel=channel,
        frame_start=first,
        fit_method="FIT",
    )
    for name in names[1:]:
        strip.elements.append(name)
    return strip


def refresh_strip(scene: bpy.types.Scene, upscaled: bool = False) -> None:
    """Drop cached images so a frame that just finished shows up."""
    strip = find_strip(scene, upscaled_name(scene) if upscaled else None)
    if strip is not None:
        strip.invalidate_cache("RAW")
