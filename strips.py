"""The image strip that shows generated frames in the Sequencer, one element per frame at its frame."""

from __future__ import annotations

import os

import bpy

from . import compat
from .engine.frames import frame_filename


def find_strip(scene: bpy.types.Scene, name: str | None = None):
    name = name or scene.keyframe_diffusion.strip_name
    for strip in compat.all_strips(scene):
        if strip.name == name:
            return strip
    return None


def update_strip(scene: bpy.types.Scene, folder: str, frames: list[int]):
    """Create or rebuild the strip so its elements are the frame files of `frames` (contiguous), in order.

    Frames not rendered yet are elements whose files appear as they finish, so the strip has its final length at
    once and fills in while the rest render.
    """
    if not frames:
        raise ValueError("no frames for the strip")
    settings = scene.keyframe_diffusion
    strips = compat.top_strips(scene)
    channel = settings.strip_channel
    first = frames[0]
    frames = list(range(first, frames[-1] + 1))
    names = [frame_filename(f) for f in frames]
    old = find_strip(scene)
    if old is not None:
        same_folder = os.path.normpath(bpy.path.abspath(old.directory)) == os.path.normpath(folder)
        if same_folder and old.frame_start == first and [e.filename for e in old.elements] == names:
            return old  # already right: keep the user's trims, effects and placement
        channel = old.channel
        strips.remove(old)
    strip = strips.new_image(
        name=settings.strip_name,
        filepath=os.path.join(folder, frame_filename(first)),
        channel=channel,
        frame_start=first,
        fit_method="FIT",
    )
    for name in names[1:]:
        strip.elements.append(name)
    return strip


def refresh_strip(scene: bpy.types.Scene) -> None:
    """Drop cached images so a frame that just finished shows up."""
    strip = find_strip(scene)
    if strip is not None:
        strip.invalidate_cache("RAW")
