"""The live preview on Blender's side: the engine's preview PNG (engine/preview.py) loaded into one Image datablock,
"Keyframe Diffusion Preview", reloaded on each preview event.

The sidebar shows it as a big icon (panels/progress.py): the image's ID preview is filled from its pixels here, at
once, rather than left to Blender's preview job (which renders thumbnails later, in the background, and not at all
without a window). An Image Editor showing the image is redrawn.
"""

from __future__ import annotations

import os

import bpy

IMAGE_NAME = "Keyframe Diffusion Preview"


def image() -> bpy.types.Image | None:
    return bpy.data.images.get(IMAGE_NAME)


def show(path: str) -> bpy.types.Image | None:
    """Load (or reload) the preview PNG at `path` into the preview image; None when the file is gone (a later
    preview replaced it and was itself removed: the next event brings a new one)."""
    if not os.path.isfile(path):
        return None
    img = image()
    if img is None:
        img = bpy.data.images.load(path, check_existing=False)
        img.name = IMAGE_NAME
    elif bpy.path.abspath(img.filepath) != path:
        img.filepath = path
    img.reload()
    if img.size[0] == 0:  # (reading the size loads the file) Blender could not read it
        return None
    _fill_icon(img)
    _redraw_editors(img)
    return img


def _fill_icon(img: bpy.types.Image) -> None:
    """The image's ID preview (what template_icon draws) set from its pixels, now."""
    import numpy as np

    width, height = img.size
    pixels = np.empty(width * height * 4, np.float32)
    img.pixels.foreach_get(pixels)
    preview = img.preview_ensure()
    preview.image_size = (width, height)
    preview.image_pixels_float.foreach_set(pixels)


def _redraw_editors(img: bpy.types.Image) -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR" and getattr(area.spaces.active, "image", None) == img:
                area.tag_redraw()
