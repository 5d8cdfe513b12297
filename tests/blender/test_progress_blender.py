"""Progress and the live preview on Blender's side (bpy wheel): a Generate with Live Preview fills the preview image
while it renders, before the frame lands; the terminal's lines (the CLI and the -a render hook) say each frame with
the time elapsed; the sidebar's running state and the status bar draw elapsed, left and the preview from the real
properties."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from test_panels import Layout

bpy = pytest.importorskip("bpy")

FRAME_LINE = re.compile(r"keyframe_diffusion: \[(\d+)/(\d+)\] frame (\d+) -> .+ \u00b7 \d+:\d\d elapsed")


def _prompts(scene, frames=3):
    scene.frame_end = frames
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=frames)
    settings.width = settings.height = 64
    return settings


def test_a_generate_with_live_preview_shows_the_frame_forming_before_it_lands(scene, extension):
    settings = _prompts(scene)
    settings.steps, settings.batch_size = 4, 1
    name = extension.run.live_preview.IMAGE_NAME
    job = extension.run.generate.GenerateJob(scene, preview=True)  # headless asks for none unless told
    seen = []

    def on_event(event):
        image = bpy.data.images.get(name)
        seen.append((event["event"], event.get("frame"), job.previews, image is not None and image.has_data))

    job.run_blocking(on_event=on_event)
    assert not job.error and len(job.rendered) == 3
    landed = [i for i, e in enumerate(seen) if e[0] == "frame"]
    # The first frame's preview came (and was loaded into the image) while it denoised, before its file landed.
    assert ("preview", 1) in [e[:2] for e in seen[:landed[0]]]
    assert seen[landed[0]][2] >= 1 and seen[landed[0]][3]
    image = bpy.data.images[name]
    out = bpy.path.abspath(settings.output_dir)
    assert bpy.path.abspath(image.filepath) == os.path.join(out, "manifest.preview.png")
    # The image holds the last preview written (Blender's pixels are bottom-up RGBA floats).
    on_disk = np.asarray(Image.open(os.path.join(out, "manifest.preview.png")).convert("RGB"), np.float32) / 255
    pixels = np.empty(64 * 64 * 4, np.float32)
    image.pixels.foreach_get(pixels)
    assert tuple(image.size) == (64, 64)
    assert np.abs(pixels.reshape(64, 64, 4)[::-1, :, :3] - on_disk).max() < 1 / 255 + 1e-6
    # The sidebar's big icon is filled from those pixels at once (not left to Blender's preview job). (Without a
    # window Blender makes no icons: icon_id is 0 here, the GUI screenshot shows it drawn.)
    icon = np.empty(64 * 64 * 4, np.float32)
    image.preview.image_pixels_float.foreach_get(icon)
    assert tuple(image.preview.image_size) == (64, 64) and np.array_equal(icon, pixels)
    assert re.fullmatch(r"Frame \d, step \d/4", job.preview)
    elapsed, eta = job.timing()
    assert elapsed > 0 and eta is not None


def test_headless_generates_ask_for_no_preview(scene, extension):
    settings = _prompts(scene, frames=2)
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking()
    assert job.previews == 0 and settings.live_preview  # on, but nobody would see it
    assert not os.path.exists(os.path.join(bpy.path.abspath(settings.output_dir), "manifest.preview.png"))


def test_the_command_line_prints_a_line_per_frame_with_elapsed_time(scene, extension, capsys):
    _prompts(scene)
    assert extension.run.cli.main(["generate"]) == 0
    lines = [m for line in capsys.readouterr().out.splitlines() if (m := FRAME_LINE.match(line))]
    assert [(int(m[1]), int(m[2]), int(m[3])) for m in lines] == [(1, 3, 1), (2, 3, 2), (3, 3, 3)]


def test_a_render_with_generate_before_render_prints_its_progress(scene, extension, tmp_path, capsys):
    settings = _prompts(scene)
    settings.generate_before_render = True
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 64, 100
    render.image_settings.file_format = "PNG"
    render.filepath = str(tmp_path / "render" / "####")
    bpy.ops.render.render(animation=True)
    lines = [m for line in capsys.readouterr().out.splitlines() if (m := FRAME_LINE.match(line))]
    assert [int(m[3]) for m in lines] == [1, 2, 3]


def _status(context, **values):
    status = context.window_manager.keyframe_diffusion_status
    for key, value in {"running": True, "progress": 0.3, "message": "", "error": "", "detail": "",
                       "elapsed": 0.0, "eta": -1.0, "preview": "", **values}.items():
        setattr(status, key, value)
    return status


def test_the_running_state_draws_elapsed_left_cancel_and_the_preview(scene, extension):
    from test_panels import draw_all

    name = extension.run.live_preview.IMAGE_NAME
    image = bpy.data.images.get(name) or bpy.data.images.new(name, 8, 8)
    image.preview_ensure()
    context = SimpleNamespace(scene=scene, window_manager=bpy.context.window_manager)
    draw = extension.panels.progress.draw_running
    try:
        _status(context, detail="12/48 done, frames 13-16: step 3/30", elapsed=42.0, eta=130.0,
                preview="Frame 13, step 3/30")
        calls = []
        draw(Layout(calls), context)
        assert ("label", "0:42 elapsed, about 2:10 left") in calls
        assert ("operator", "keyframe_diffusion.cancel") in calls
        assert ("label", "Frame 13, step 3/30") in calls and ("icon", image.preview.icon_id) in calls
        assert ("label", "0:42 elapsed, about 2:10 left") in draw_all(extension, context)  # KD_PT_main draws it
        # No estimate yet; Live Preview off: neither is drawn.
        scene.keyframe_diffusion.live_preview = False
        _status(context, elapsed=5.0, eta=-1.0, preview="Frame 13, step 3/30")
        calls = []
        draw(Layout(calls), context)
        assert ("label", "0:05 elapsed") in calls and not any(kind == "icon" for kind, _ in calls)
        # The status bar says the same.
        calls = []
        extension.operators.generate._draw_status_bar(SimpleNamespace(layout=Layout(calls)), context)
        assert ("label", "0:05 elapsed") in calls and ("label", "Esc to cancel") in calls
    finally:
        _status(context, running=False)
