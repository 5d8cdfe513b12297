"""Input frames from Sequencer strips: which file (and which movie frame) a movie or image strip shows at a scene frame.

Blender places a strip's content from `frame_start`; trims (`frame_offset_start/end`) only hide part of it, so the
content frame at scene frame f is f - frame_start, shown only inside the trimmed span. Image sequences hold one file
per element; a single still image holds for the whole strip. Movie frames are given by index into the file, read by
the engine (OpenCV), so nothing is decoded in Blender.
"""

from __future__ import annotations

import os

import bpy

from ..settings import compat


class InputError(ValueError):
    """A strip that can't give an input frame; the message names the strip and the frame."""


def find_input_strip(scene: bpy.types.Scene, name: str):
    if not name:
        raise InputError("no input strip chosen: pick a movie or image strip (Input Strip)")
    for strip in compat.all_strips(scene):
        if strip.name == name:
            if strip.type not in ("MOVIE", "IMAGE"):
                raise InputError(f"strip '{name}' is a {strip.type.lower()} strip: inputs come from movie or image "
                                 "strips")
            return strip
    raise InputError(f"no strip named '{name}' in scene '{scene.name}'")


def strip_frame(strip, frame: int) -> dict:
    """The plan's {"path", "index"?} for what `strip` shows at scene `frame`."""
    if not compat.strip_start(strip) <= frame < compat.strip_end(strip):
        raise InputError(f"frame {frame}: strip '{strip.name}' covers frames {compat.strip_start(strip)}-"
                         f"{compat.strip_end(strip) - 1} only; extend it or change the scene range")
    offset = frame - int(compat.content_start(strip))
    if strip.type == "MOVIE":
        path = bpy.path.abspath(strip.filepath, library=strip.id_data.library)
        if not os.path.isfile(path):
            raise InputError(f"strip '{strip.name}': movie file not found: {path}")
        return {"path": os.path.normpath(path), "index": offset}
    elements = strip.elements
    element = elements[0] if len(elements) == 1 else elements[min(max(offset, 0), len(elements) - 1)]
    path = os.path.normpath(os.path.join(bpy.path.abspath(strip.directory), element.filename))
    if not os.path.isfile(path):
        raise InputError(f"frame {frame}: strip '{strip.name}': image file not found: {path}")
    return {"path": path}
