"""Each generation mode end to end in real Blender (bpy 5.0 wheel): scene -> bake -> generate -> strip.

Feedback 2D and 3D (the scene camera moving over real geometry, depth from Blender's own Z pass), video input from
an image strip and from Blender's render of the scene, and a ControlNet unit fed by the depth pass."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy")


def _prompts(scene):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=4)
    return scene.keyframe_diffusion


def _generate_and_check(scene, frames=range(1, 7)):
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    settings = scene.keyframe_diffusion
    strip = next(s for s in scene.sequence_editor.strips_all if s.name == settings.strip_name)
    files = [os.path.join(bpy.path.abspath(strip.directory), e.filename) for e in strip.elements]
    assert len(files) == len(frames) and all(os.path.isfile(f) for f in files)
    assert strip.frame_final_start == frames[0] and strip.frame_final_end == frames[-1] + 1
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    assert all(i.shape == (settings.height, settings.width, 3) for i in images)
    with open(os.path.join(bpy.path.abspath(settings.output_dir), "plan.json")) as f:
        plan = json.load(f)
    return plan, images


def _geometry_scene(scene, last_frame: int = 6, samples: int = 4):
    """A camera dollying past a cube in front of a floor from frame 1 to `last_frame`: depth with real parallax."""
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.rotation_euler = (1.1, 0.0, 0.0)
    for frame, x in ((1, -1.0), (last_frame, 1.0)):
        camera.location = (x, -8.0, 4.0)
        camera.keyframe_insert("location", frame=frame)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 4.0
    sun.rotation_euler = (0.6, 0.3, 0.0)
    scene.collection.objects.link(sun)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = samples
    return camera


def test_feedback_2d_end_to_end(scene):
    settings = _prompts(scene)
    settings.mode = "FEEDBACK"
    settings.zoom = 1.04
    settings.angle = 2.0
    settings.keyframe_insert("translation_x", frame=1)
    settings.translation_x = 4.0
    settings.keyframe_insert("translation_x", frame=6)
    settings.cadence = 2
    settings.color_coherence = "LAB"
    plan, images = _generate_and_check(scene)
    assert plan["settings"]["mode"] == "FEEDBACK" and plan["settings"]["cadence"] == 2
    assert [r["motion"]["translation_x"] for r in plan["frames"]][::5] == [0.0, 4.0]
    assert not np.array_equal(images[0], images[1])


def test_feedback_3d_follows_the_scene_camera_with_blenders_depth(scene):
    settings = _prompts(scene)
    _geometry_scene(scene)
    settings.mode = "FEEDBACK"
    settings.motion_mode = "3D"
    settings.camera_source = "SCENE"
    settings.depth_source = "SCENE"
    # The depth renders fire Blender's render handlers too: they must not start a generate inside the generate.
    settings.generate_before_render = True
    plan, images = _generate_and_check(scene)
    depth_files = [r["depth"] for r in plan["frames"]]
    assert all(os.path.isfile(p) and p.endswith(".exr") for p in depth_files)
    from engine.image_ops import read_depth

    depth = read_depth(depth_files[0])
    assert depth.shape == (settings.height, settings.width)
    # The cube (about 8 units away) is nearer than the floor behind it, and the sky above the horizon is empty.
    centre, bottom = depth[settings.height // 2, settings.width // 2], depth[-1, settings.width // 2]
    assert 4.0 < centre < 12.0 and 4.0 < bottom < 12.0
    assert depth[0, 0] > 1e9
    # Camera matrices moved with the keyframes.
    xs = [r["camera"]["matrix_world"][0][3] for r in plan["frames"]]
    assert xs[0] == pytest.approx(-1.0) and xs[-1] == pytest.approx(1.0)
    # A second generate re-renders the depth identically: nothing is out of date.
    folder = bpy.path.abspath(settings.output_dir)
    frames = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.startswith("frame_")]
    mtimes = [os.path.getmtime(p) for p in depth_files + frames]
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    assert [os.path.getmtime(p) for p in depth_files + frames] == mtimes


def test_video_mode_from_an_image_strip_respects_offsets(scene, tmp_path):
    settings = _prompts(scene)
    folder = tmp_path / "input"
    folder.mkdir()
    colours = []
    for i in range(8):
        image = np.zeros((64, 64, 3), np.uint8)
        image[..., i % 3] = 60 + 20 * i
        colours.append(image)
        Image.fromarray(image).save(folder / f"in_{i:03d}.png")
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("Input", str(folder / "in_000.png"), 5, -1)
    for i in range(1, 8):
        strip.elements.append(f"in_{i:03d}.png")
    strip.frame_start = -1  # content frame 0 at scene frame -1: scene frame 1 shows in_002
    settings.mode = "VIDEO"
    settings.init_source = "STRIP"
    settings.init_strip = "Input"
    settings.strength = 0.0  # keep the input: the output shows which input frame each frame got
    plan, images = _generate_and_check(scene)
    assert [os.path.basename(r["init"]["path"]) for r in plan["frames"]] == [f"in_{i:03d}.png" for i in range(2, 8)]
    for image, source in zip(images, colours[2:]):
        assert np.abs(image.astype(int) - source.astype(int)).max() <= 1


def test_video_mode_stream_batch_with_keyed_strength(scene, tmp_path):
    """Stream Batch from the Speed panel through the worker: a strength keyed across the shot (plain batches of
    one) gives the frames the plain path gives."""
    settings = _prompts(scene)
    folder = tmp_path / "input"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(folder / f"in_{i:03d}.png")
    strip = scene.sequence_editor_create().strips.new_image("Input", str(folder / "in_000.png"), 5, 1)
    for i in range(1, 6):
        strip.elements.append(f"in_{i:03d}.png")
    settings.mode, settings.init_source, settings.init_strip = "VIDEO", "STRIP", "Input"
    settings.steps = 4
    for frame, strength in ((1, 0.3), (6, 0.9)):
        settings.strength = strength
        settings.keyframe_insert("strength", frame=frame)
    settings.stream_batch = True
    plan, streamed = _generate_and_check(scene)
    assert plan["settings"]["stream_batch"] and len({r["strength"] for r in plan["frames"]}) == 6
    settings.stream_batch = False
    settings.output_dir = str(tmp_path / "plain")
    _, plain = _generate_and_check(scene)
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(streamed, plain)) <= 2


def test_video_mode_from_the_scene_render_with_a_depth_controlnet(scene, tmp_path):
    from engine.tiny_model import make_tiny_controlnet

    controlnet = make_tiny_controlnet(str(tmp_path / "controlnet"))
    settings = _prompts(scene)
    _geometry_scene(scene)
    settings.mode = "VIDEO"
    settings.init_source = "SCENE"
    settings.strength = 0.5
    bpy.ops.keyframe_diffusion.item_add(kind="CONTROLNET")
    unit = settings.controlnets[0]
    unit.model = controlnet
    unit.source = "DEPTH"
    unit.keyframe_insert("scale", frame=1)
    unit.scale = 0.2
    unit.keyframe_insert("scale", frame=6)
    plan, images = _generate_and_check(scene)
    assert plan["settings"]["controlnets"] == [{"model": controlnet, "preprocessor": "DEPTH", "name": "Unit 1"}]
    scales = [r["control"][0]["scale"] for r in plan["frames"]]
    assert scales[0] == pytest.approx(1.0) and scales[-1] == pytest.approx(0.2)
    for record in plan["frames"]:
        assert record["init"]["path"].endswith(".png") and os.path.isfile(record["init"]["path"])
        assert record["control"][0]["image"].endswith(".exr")
    scene_image = np.asarray(Image.open(plan["frames"][0]["init"]["path"]).convert("RGB"))
    assert scene_image.shape == (64, 64, 3) and scene_image.std() > 10.0  # the render shows the cube and floor


def test_removing_a_controlnet_unit_moves_the_keys_of_later_units(scene):
    settings = scene.keyframe_diffusion
    for _ in range(3):
        bpy.ops.keyframe_diffusion.item_add(kind="CONTROLNET")
    for i, unit in enumerate(settings.controlnets):
        unit.scale = 0.1 * (i + 1)
        unit.keyframe_insert("scale", frame=1)
    settings.active_controlnet = 0
    bpy.ops.keyframe_diffusion.item_remove(kind="CONTROLNET")
    scene.frame_set(1)
    assert [round(u.scale, 3) for u in settings.controlnets] == [0.2, 0.3]
    assert [u.name for u in settings.controlnets] == ["Unit 2", "Unit 3"]


def test_bad_options_json_is_a_clear_bake_error(scene):
    settings = _prompts(scene)
    settings.pipeline_kwargs = '{"eta": 0.3,}'
    with pytest.raises(RuntimeError, match="Pipeline Options: not valid JSON at line 1, column"):
        bpy.ops.keyframe_diffusion.bake()


def test_video_input_errors_name_the_strip_and_frame(scene, tmp_path):
    settings = _prompts(scene)
    settings.mode = "VIDEO"
    with pytest.raises(RuntimeError, match="no input strip chosen"):
        bpy.ops.keyframe_diffusion.bake()
    settings.init_strip = "Nope"
    with pytest.raises(RuntimeError, match="no strip named 'Nope'"):
        bpy.ops.keyframe_diffusion.bake()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "still.png")
    editor = scene.sequence_editor_create()
    editor.strips.new_image("Still", str(tmp_path / "still.png"), 5, 3)  # covers frame 3 only
    settings.init_strip = "Still"
    with pytest.raises(RuntimeError, match="frame 1: strip 'Still' covers frames 3-3 only"):
        bpy.ops.keyframe_diffusion.bake()


def test_missing_controlnet_model_is_named_and_frames_stay(scene):
    settings = _prompts(scene)
    settings.mode = "VIDEO"
    settings.init_source = "SCENE"
    _geometry_scene(scene)
    bpy.ops.keyframe_diffusion.item_add(kind="CONTROLNET")
    settings.controlnets[0].model = "nobody/no-such-controlnet"
    with pytest.raises(RuntimeError, match="no-such-controlnet"):
        bpy.ops.keyframe_diffusion.generate()
    settings.controlnets[0].enabled = False  # Blender is still fine: without the unit it generates
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
