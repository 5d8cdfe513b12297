"""Deforum's animation_mode through the import and export operators (bpy 5.0 wheel): a 2D or 3D file is the feedback
mode, Video Input the video mode with its video as the input strip, and an Interpolate scene exports as Interpolation
(it used to stay on Interpolate after importing "2D", and to export "2D")."""

from __future__ import annotations

import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _import(tmp_path, data: dict) -> None:
    path = tmp_path / "deforum_settings.txt"
    path.write_text(json.dumps({"max_frames": 4, "prompts": {"0": "a red circle"}, **data}))
    assert bpy.ops.keyframe_diffusion.deforum_import(filepath=str(path)) == {"FINISHED"}


@pytest.mark.parametrize("animation_mode, motion", [("2D", "2D"), ("3D", "3D")])
def test_a_2d_or_3d_file_switches_to_feedback(scene, tmp_path, animation_mode, motion):
    settings = scene.keyframe_diffusion
    settings.motion_mode = "3D" if motion == "2D" else "2D"
    _import(tmp_path, {"animation_mode": animation_mode, "zoom": "0:(1.05)"})
    assert (settings.mode, settings.motion_mode) == ("FEEDBACK", motion)


def test_video_input_makes_the_video_the_input_strip(scene, extension, tmp_path):
    import cv2

    movie = tmp_path / "walk.avi"  # beside the settings file, named relative to it
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"MJPG"), 24, (64, 64))
    for i in range(6):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    _import(tmp_path, {"animation_mode": "Video Input", "video_init_path": "walk.avi"})
    settings = scene.keyframe_diffusion
    assert (settings.mode, settings.init_source) == ("VIDEO", "STRIP")
    strip = next(s for s in extension.settings.compat.all_strips(scene) if s.name == settings.init_strip)
    assert strip.type == "MOVIE" and bpy.path.abspath(strip.filepath) == str(movie)
    plan = extension.bake.scene.bake_scene(scene, passes=False)
    assert [r["init"] for r in plan["frames"]] == [{"path": str(movie), "index": i} for i in range(4)]
    # Importing it again finds the same strip instead of stacking another.
    _import(tmp_path, {"animation_mode": "Video Input", "video_init_path": str(movie)})
    assert sum(s.type == "MOVIE" for s in extension.settings.compat.all_strips(scene)) == 1
    out = tmp_path / "exported.json"
    assert bpy.ops.keyframe_diffusion.deforum_export(filepath=str(out)) == {"FINISHED"}
    exported = json.loads(out.read_text())
    assert exported["animation_mode"] == "Video Input" and exported["video_init_path"] == str(movie)


def test_a_missing_video_leaves_a_warning_and_the_video_mode(scene, extension, tmp_path):
    path = tmp_path / "settings.txt"
    path.write_text(json.dumps({"max_frames": 4, "animation_mode": "Video Input", "video_init_path": "gone.mp4"}))
    _ignored, warnings = extension.timeline.schedules.apply_settings_file(scene, str(path))
    assert scene.keyframe_diffusion.mode == "VIDEO"
    assert any("video_init_path gone.mp4: no such file" in w for w in warnings)


@pytest.mark.parametrize("mode, animation_mode", [("INTERPOLATE", "Interpolation"), ("FEEDBACK", "2D"),
                                                  ("CLIP", None)])
def test_export_writes_the_scenes_mode(scene, extension, tmp_path, mode, animation_mode):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    settings = scene.keyframe_diffusion
    settings.mode, settings.motion_mode = mode, "2D"
    path = tmp_path / "out.json"
    notes = extension.timeline.schedules.write_settings_file(scene, str(path))
    data = json.loads(path.read_text())
    assert data.get("animation_mode") == animation_mode
    assert (notes == []) == (animation_mode is not None)
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.keyframe_diffusion.deforum_import(filepath=str(path)) == {"FINISHED"}
    if animation_mode is not None:  # and back
        assert bpy.context.scene.keyframe_diffusion.mode == mode


def test_hybrid_video_is_follow_motion_on_the_video_and_round_trips(scene, extension, tmp_path):
    import cv2

    movie = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"MJPG"), 24, (64, 64))
    for i in range(6):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    # A Deforum hybrid video: a 2D animation following walk.avi's flow, the video composited in by a keyed alpha.
    _import(tmp_path, {"animation_mode": "2D", "video_init_path": "walk.avi", "hybrid_motion": "Optical Flow",
                       "hybrid_composite": "Normal", "hybrid_comp_alpha_schedule": "0:(0.2), 3:(0.6)"})
    settings = scene.keyframe_diffusion
    assert (settings.mode, settings.init_source, settings.flow_guide) == ("VIDEO", "STRIP", True)
    guides = []
    for frame in (scene.frame_start, scene.frame_start + 3):
        scene.frame_set(frame)
        guides.append(round(settings.guide, 4))
    assert guides == [0.8, 0.4]  # Motion Guidance is the previous output's share: 1 - alpha
    out = tmp_path / "exported.json"
    assert bpy.ops.keyframe_diffusion.deforum_export(filepath=str(out)) == {"FINISHED"}
    exported = json.loads(out.read_text())
    assert (exported["animation_mode"], exported["hybrid_motion"], exported["hybrid_composite"]) == \
        ("2D", "Optical Flow", "Normal")
    assert exported["video_init_path"] == str(movie)
    assert exported["hybrid_comp_alpha_schedule"].replace(" ", "").startswith("0:(0.2)")
