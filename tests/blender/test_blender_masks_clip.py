"""Issue 6 on the Blender side (bpy 5.0 wheel): masks from Blender (object/material index passes, a painted image, a
mask strip), Blender's depth for depth-to-image, clip-mode settings and cuts, the upscale settings and strip."""

from __future__ import annotations

import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _prompts(scene):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=4)
    return scene.keyframe_diffusion


def _cube_scene(scene):
    """A camera looking at a cube (pass index 1, its own material with pass index 7) on a floor."""
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
    cube = bpy.context.active_object
    cube.pass_index = 1
    material = bpy.data.materials.new("Cube")
    material.pass_index = 7
    cube.data.materials.append(material)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location = (0.0, -8.0, 4.0)
    camera.rotation_euler = (1.1, 0.0, 0.0)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    return cube


def _read_exr(path):
    from engine.image_ops import read_depth  # the engine's reader: first channel of a data EXR

    return read_depth(path)


@pytest.mark.parametrize("source, value", [("OBJECT_INDEX", 1), ("MATERIAL_INDEX", 7)])
def test_index_pass_masks_select_the_object(scene, extension, source, value):
    settings = _prompts(scene)
    _cube_scene(scene)
    settings.mode = "VIDEO"
    settings.init_source = "SCENE"
    settings.mask_source = source
    settings.mask_index = value
    settings.mask_invert = True
    plan = extension.bake.scene.bake_scene(scene)
    masks = [r["mask"] for r in plan["frames"]]
    assert len(masks) == 6 and all(m["select"] == [value] and m["invert"] for m in masks)
    index = _read_exr(masks[0]["path"])
    selected = np.isclose(index, value)
    # The cube sits in the middle of the picture and covers a good part of it, not all of it.
    h, w = selected.shape
    assert selected[h // 2, w // 2] and not selected[0, 0]
    assert 0.02 < selected.mean() < 0.6


def test_painted_mask_image_is_saved_beside_the_frames_and_the_image_is_left_alone(scene, extension, tmp_path):
    settings = _prompts(scene)
    settings.mode = "FEEDBACK"
    image = bpy.data.images.new("Paint Mask", 64, 64)
    pixels = np.zeros((64, 64, 4), np.float32)
    pixels[:, 32:] = 1.0  # right half white: repaint
    pixels[:8, :32] = 0.5  # the bottom rows of the left half grey: rows go bottom-up in Blender
    image.pixels.foreach_set(pixels.ravel())
    settings.mask_source = "IMAGE"
    settings.mask_image = image
    plan = extension.bake.scene.bake_scene(scene)
    paths = {r["mask"]["path"] for r in plan["frames"]}
    assert len(paths) == 1
    path = paths.pop()
    assert path.startswith(plan["settings"]["output_dir"]) and os.path.isfile(path)
    saved = np.load(path)
    assert saved.shape == (64, 64) and saved[:56, :32].max() == 0 and saved[:, 32:].min() == 1
    assert np.allclose(saved[56:, :32], 0.5, atol=0.01)
    assert image.filepath == "" and image.name in bpy.data.images
    stamp = os.stat(path).st_mtime_ns
    extension.bake.scene.bake_scene(scene)  # the same pixels again: the file (and so the frames' hashes) stay put
    assert os.stat(path).st_mtime_ns == stamp


def test_mask_strip_is_rasterised_by_blender(scene, extension):
    settings = _prompts(scene)
    _cube_scene(scene)
    mask = bpy.data.masks.new("Blob")
    layer = mask.layers.new()
    spline = layer.splines.new()
    spline.points.add(3)
    # A square in the middle of the frame, in the mask's normalised coordinates.
    for point, co in zip(spline.points, ((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7))):
        point.co = co
        point.handle_left = point.handle_right = co
    spline.use_cyclic = True
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_mask("Mask", mask, channel=5, frame_start=1)
    settings.mode = "FEEDBACK"
    settings.mask_source = "STRIP"
    settings.mask_strip = strip.name
    plan = extension.bake.scene.bake_scene(scene)
    entry = plan["frames"][0]["mask"]
    assert "select" not in entry
    values = _read_exr(entry["path"])
    h, w = values.shape
    assert values[h // 2, w // 2] > 0.9 and values[2, 2] < 0.1


def test_mask_errors_name_what_to_fix(scene, extension):
    settings = _prompts(scene)
    settings.mode = "FEEDBACK"
    settings.mask_source = "IMAGE"
    with pytest.raises(extension.bake.scene.BakeError, match="no Mask Image"):
        extension.bake.scene.bake_scene(scene, passes=False)
    settings.mask_source = "STRIP"
    settings.mask_strip = "nope"
    with pytest.raises(extension.bake.scene.BakeError, match="mask: no strip named 'nope'"):
        extension.bake.scene.bake_scene(scene, passes=False)
    settings.mode = "INTERPOLATE"  # masks are for the img2img modes: ignored elsewhere
    assert all("mask" not in r for r in extension.bake.scene.bake_scene(scene, passes=False)["frames"])


def test_scene_depth_reaches_video_frames_for_depth_to_image(scene, extension):
    settings = _prompts(scene)
    _cube_scene(scene)
    settings.mode = "VIDEO"
    settings.init_source = "SCENE"
    plan = extension.bake.scene.bake_scene(scene)
    assert all("depth" not in r for r in plan["frames"])
    settings.use_scene_depth = True
    plan = extension.bake.scene.bake_scene(scene)
    depths = [r["depth"] for r in plan["frames"]]
    assert all(os.path.isfile(p) for p in depths)
    depth = _read_exr(depths[0])
    h, w = depth.shape
    # The cube's front is nearer the camera than the floor at the bottom edge is far from it... both finite.
    assert 4.0 < depth[h // 2, w // 2] < 9.0


def test_clip_settings_and_cuts_are_baked(scene, extension):
    settings = _prompts(scene)
    settings.mode = "CLIP"
    settings.motion_adapter = "guoyww/animatediff-motion-adapter-v1-5-2"
    settings.context_length = 8
    settings.context_overlap = 10  # more than the context: clamped below it
    settings.free_noise = False
    bpy.ops.keyframe_diffusion.item_add(kind="MOTION_LORA")
    settings.motion_loras[0].path = "/loras/zoom-in.safetensors"
    settings.motion_loras[0].scale = 0.7
    bpy.ops.keyframe_diffusion.item_add(kind="MOTION_LORA")  # an empty one is left out
    scene.timeline_markers.new("cut to the sea", frame=4)
    baked = extension.bake.scene.bake_scene(scene, passes=False)
    s = baked["settings"]
    assert s["mode"] == "CLIP" and s["motion_adapter"] == "guoyww/animatediff-motion-adapter-v1-5-2"
    assert s["context_length"] == 8 and s["context_overlap"] == 7 and s["free_noise"] is False
    assert s["motion_loras"] == [{"path": os.path.normpath("/loras/zoom-in.safetensors"), "scale": pytest.approx(0.7)}]
    assert [r["frame"] for r in baked["frames"] if r.get("restart")] == [4]
    bpy.ops.keyframe_diffusion.item_remove(kind="MOTION_LORA")
    assert len(settings.motion_loras) == 1
    settings.mode = "INTERPOLATE"  # the adapter stays in the scene but only clip mode sends it
    s = extension.bake.scene.bake_scene(scene, passes=False)["settings"]
    assert "motion_adapter" not in s and "motion_loras" not in s


def test_upscale_settings_are_baked_into_their_own_folder(scene, extension):
    settings = _prompts(scene)
    assert "upscale" not in extension.bake.scene.bake_scene(scene, passes=False)["settings"]
    settings.use_upscale = True
    settings.upscale_model = "stabilityai/sd-x2-latent-upscaler"
    settings.upscale_steps = 5
    settings.upscale_guidance = 0.0
    s = extension.bake.scene.bake_scene(scene, passes=False)["settings"]
    assert s["upscale"] == {"model": "stabilityai/sd-x2-latent-upscaler", "steps": 5, "guidance": 0.0,
                            "noise_level": 20, "output_dir": os.path.join(s["output_dir"], "upscaled")}


def test_clip_mode_end_to_end_with_a_cut(scene, extension, tmp_path):
    """Clip mode through the worker: AnimateDiff with the tiny motion adapter, context windows shorter than the
    clips, a "cut" marker splitting the shot into two clips; every frame lands in the strip."""
    from engine.tiny_video import make_tiny_motion_adapter
    from test_blender_modes import _generate_and_check

    settings = _prompts(scene)
    settings.mode = "CLIP"
    settings.motion_adapter = make_tiny_motion_adapter(str(tmp_path / "adapter"))
    settings.context_length, settings.context_overlap = 3, 1
    scene.frame_end = 8
    scene.timeline_markers.new("cut", frame=6)
    plan, images = _generate_and_check(scene, frames=range(1, 9))
    assert plan["settings"]["mode"] == "CLIP" and [r["frame"] for r in plan["frames"] if r.get("restart")] == [6]
    assert all(not np.array_equal(images[i], images[i + 1]) for i in range(7))
    # A second press finds every frame current.
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking()
    assert job.rendered == []


def test_inpainting_end_to_end_repaints_only_the_masked_object(scene, extension):
    """Video mode on Blender's render of the scene with the cube's object index pass as the mask: the floor around
    it stays the render's pixels, the cube is repainted."""
    from test_blender_modes import _generate_and_check

    settings = _prompts(scene)
    _cube_scene(scene)
    settings.mode = "VIDEO"
    settings.init_source = "SCENE"
    settings.strength = 1.0
    settings.steps = 3
    settings.mask_source = "OBJECT_INDEX"
    settings.mask_index = 1
    settings.mask_blur = 2
    plan, images = _generate_and_check(scene)
    import cv2
    from PIL import Image

    for record, image in zip(plan["frames"], images):
        init = np.asarray(Image.open(record["init"]["path"]).convert("RGB")).astype(int)
        selected = np.isclose(_read_exr(record["mask"]["path"]), 1).astype(np.uint8)
        inside = cv2.erode(selected, np.ones((7, 7), np.uint8)).astype(bool)
        outside = ~cv2.dilate(selected, np.ones((7, 7), np.uint8)).astype(bool)
        difference = np.abs(image.astype(int) - init).mean(axis=2)
        assert inside.sum() > 20 and outside.sum() > 500
        assert difference[outside].mean() < 2.0
        assert difference[inside].mean() > 10.0


def test_upscaled_frames_fill_their_own_strip(scene, extension, tmp_path):
    from engine.tiny_model import make_tiny_upscaler
    from PIL import Image

    settings = _prompts(scene)
    settings.use_upscale = True
    settings.upscale_model = make_tiny_upscaler(str(tmp_path / "x2"), kind="x2")
    settings.upscale_steps = 2
    settings.upscale_guidance = 0.0
    job = extension.run.generate.GenerateJob(scene)
    job.run_blocking()
    assert sorted(job.upscaled) == list(range(1, 7)) and "6 upscaled" in job.message
    main = extension.run.strips.find_strip(scene)
    strip = extension.run.strips.find_strip(scene, extension.run.strips.upscaled_name(scene))
    assert strip.channel == main.channel + 1 and strip.frame_final_start == 1 and strip.frame_final_end == 7
    files = [os.path.join(bpy.path.abspath(strip.directory), e.filename) for e in strip.elements]
    assert all(Image.open(f).size == (settings.width * 2, settings.height * 2) for f in files)
    settings.use_upscale = False  # the strip stays; a new render leaves it alone
    extension.run.generate.GenerateJob(scene).run_blocking()
    assert extension.run.strips.find_strip(scene, extension.run.strips.upscaled_name(scene)) is not None
