"""A running generation in the sidebar: the progress bar, elapsed time and estimate, Cancel, and the live preview.

Drawn by KD_PT_main (panels/sequencer.py) while a generation runs, from the window manager's status
(settings/properties.py KD_Status), which the Generate operator fills on each timer tick (operators/generate.py).
"""

from __future__ import annotations

import bpy

from ..engine.events import timing
from ..run.live_preview import IMAGE_NAME

PREVIEW_SCALE = 9.0  # the preview's size in the sidebar, in icon units (about the sidebar's default width)


def draw_running(layout: bpy.types.UILayout, context) -> None:
    status = context.window_manager.keyframe_diffusion_status
    col = layout.column(align=True)
    col.progress(factor=status.progress, type="BAR", text=status.detail or status.message or "Generating")
    said = timing(status.elapsed, status.eta)  # '0:42 elapsed, about 2:10 left' (status.eta -1: no estimate yet)
    if said:
        col.label(text=said, icon="TIME")
    layout.operator("keyframe_diffusion.cancel", icon="CANCEL")
    draw_preview(layout, context)


def draw_preview(layout: bpy.types.UILayout, context) -> None:
    """The frame being denoised, once this generation sent a preview (with Live Preview on)."""
    status = context.window_manager.keyframe_diffusion_status
    if not context.scene.keyframe_diffusion.live_preview or not status.preview:
        return
    image = bpy.data.images.get(IMAGE_NAME)
    if image is None or image.preview is None:
        return
    box = layout.box()
    box.label(text=status.preview, icon="IMAGE_DATA")
    box.template_icon(icon_value=image.preview.icon_id, scale=PREVIEW_SCALE)
