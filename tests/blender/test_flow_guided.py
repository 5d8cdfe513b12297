"""Follow Motion (flow-guided video mode) from Blender, on the bpy 5.0 wheel: the scene render as input, Blender's
Vector pass baked beside it as each frame's flow, Motion Guidance keyed per frame, and Generate through the worker,
whose finished line reports the frames' flicker beside the input's. (The pass itself is tested on every Blender in
test_vector_pass.py, the guided chain in tests/engine/test_guided.py.)"""

from __future__ import annotations

import json
import os

import pytest

from engine.flow import read_vector_pass

bpy = pytest.importorskip("bpy")


def _sliding_cube(scene, last: int) -> None:
    """A floor and a cube sliding right by itself from frame 1 to `last`, under a still camera."""
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
    cube = bpy.context.active_object
    for frame, x in ((1, -2.0), (last, 1.0)):
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location, camera.rotation_euler = (0.0, -8.0, 4.0), (1.1, 0.0, 0.0)


def test_follow_motion_bakes_the_vector_pass_and_generates(scene, extension, capfd):
    _sliding_cube(scene, 4)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.frame_end = 4
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    settings = scene.keyframe_diffusion
    settings.mode, settings.init_source, settings.strength = "VIDEO", "SCENE", 0.5
    settings.flow_guide = True
    settings.cadence = 2  # true-flow cadence: frames 1, 3 and 4 diffused, frame 2 moved from them along the flow
    for frame, value in ((1, 0.2), (4, 0.8)):
        settings.guide = value
        settings.keyframe_insert("guide", frame=frame)

    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    folder = bpy.path.abspath(settings.output_dir)
    with open(os.path.join(folder, "plan.json")) as f:
        plan = json.load(f)
    assert plan["settings"]["flow_guide"] is True and plan["settings"]["cadence"] == 2
    guides = [round(r["guide"], 3) for r in plan["frames"]]
    assert guides[0] == 0.2 and guides[-1] == 0.8 and guides == sorted(set(guides))  # keyed, eased between
    for record in plan["frames"]:
        assert record["flow"].endswith(f"passes/vector/frame_{record['frame']:06d}.exr")
        backward, forward = read_vector_pass(record["flow"])
        assert backward.shape == (64, 64, 2)
    # The cube moves right: somewhere its pixels came from the left (backward x < 0).
    assert (read_vector_pass(plan["frames"][2]["flow"])[0][..., 0] < -0.5).any()
    assert all(os.path.isfile(os.path.join(folder, f"frame_{n:06d}.png")) for n in range(1, 5))
    said = capfd.readouterr().out  # the operator's report (Blender prints it headless)
    assert "Info: Done: 4 rendered, 0 up to date; flicker 0." in said and "(input 0." in said, said[-2000:]


def test_feedback_3d_follow_motion_bakes_the_vector_pass(scene, extension):
    _sliding_cube(scene, 3)
    scene.frame_end = 3
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    settings = scene.keyframe_diffusion
    settings.mode, settings.motion_mode, settings.camera_source = "FEEDBACK", "3D", "SCENE"
    settings.flow_guide = True
    plan = extension.bake.scene.bake_scene(scene)
    assert plan["settings"]["flow_guide"] is True
    flows = [read_vector_pass(r["flow"])[0] for r in plan["frames"]]
    assert (flows[1][..., 0] < -0.5).any()  # the cube's pixels came from the left: its own motion is in the flow
    # The camera from Deforum's motion has no scene to render a Vector pass of: Follow Motion does not apply.
    settings.camera_source = "MOTION"
    plan = extension.bake.scene.bake_scene(scene)
    assert plan["settings"]["flow_guide"] is False and not any(r.get("flow") for r in plan["frames"])
