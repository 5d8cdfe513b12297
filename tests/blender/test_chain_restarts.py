"""Feedback chain restarts baked from the timeline, in real Blender: a keyed Restart Chain (its rising edge), camera
cuts from markers bound to cameras, and markers named "cut..."/"restart..."; only in feedback mode."""

import json
from types import SimpleNamespace

import pytest

from engine import plan as plan_mod

bpy = pytest.importorskip("bpy")


@pytest.fixture
def feedback(scene):
    """The fixture scene over frames 1-10 in feedback mode, with one prompt."""
    scene.frame_end = 10
    scene.keyframe_diffusion.mode = "FEEDBACK"
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    return scene


def bake(extension, scene) -> dict:
    plan = extension.bake.scene.bake_scene(scene, passes=False)  # validates
    # What the engine reads: the plan written as JSON and read back still validates.
    plan_mod.validate(json.loads(json.dumps(plan)))
    return plan


def restarts(plan: dict) -> list[int]:
    for record in plan["frames"]:
        assert record.get("restart", True) is True  # written only as true
    return [r["frame"] for r in plan["frames"] if "restart" in r]


def segments(plan: dict) -> list[list[int]]:
    return [[r["frame"] for r in segment] for segment in plan_mod.chain_segments(plan["frames"])]


def key_restart(scene, keys):
    settings = scene.keyframe_diffusion
    for frame, value in keys:
        settings.restart_chain = value
        settings.keyframe_insert("restart_chain", frame=frame)


def add_camera(scene, name):
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(cam)
    return cam


def test_keyed_restart_chain_restarts_once_where_it_turns_on(feedback, extension):
    key_restart(feedback, [(1, False), (5, True), (6, False)])
    plan = bake(extension, feedback)
    assert restarts(plan) == [5]
    assert segments(plan) == [[1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]


def test_restart_chain_left_on_is_one_restart(feedback, extension):
    key_restart(feedback, [(1, False), (5, True)])
    assert restarts(bake(extension, feedback)) == [5]


def test_restart_chain_on_from_the_first_frame_adds_nothing(feedback, extension):
    feedback.keyframe_diffusion.restart_chain = True  # not animated: on everywhere, the first frame starts anyway
    plan = bake(extension, feedback)
    assert restarts(plan) == [] and segments(plan) == [list(range(1, 11))]


def test_markers_named_cut_or_restart_restart(feedback, extension):
    markers = feedback.timeline_markers
    markers.new("Cut", frame=4)
    markers.new("unrelated", frame=6)
    markers.new("  RESTART chain", frame=8)
    markers.new("cut", frame=1)  # the first frame: a chain starts there anyway
    markers.new("a cut", frame=9)  # must start with the word
    plan = bake(extension, feedback)
    assert restarts(plan) == [4, 8]
    assert segments(plan) == [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]


def test_camera_cuts_from_bound_markers_restart_only_when_the_camera_changes(feedback, extension):
    cam_a, cam_b = add_camera(feedback, "CamA"), add_camera(feedback, "CamB")
    for frame, cam in ((1, cam_a), (4, cam_a), (7, cam_b)):  # the marker at 4 keeps the same camera
        feedback.timeline_markers.new(f"shot {frame}", frame=frame).camera = cam
    plan = bake(extension, feedback)
    assert [r["camera"]["name"] for r in plan["frames"]] == ["CamA"] * 6 + ["CamB"] * 4
    assert restarts(plan) == [7]
    assert segments(plan) == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10]]


def test_every_source_together(feedback, extension):
    cam_a, cam_b = add_camera(feedback, "CamA"), add_camera(feedback, "CamB")
    feedback.timeline_markers.new("A", frame=1).camera = cam_a
    feedback.timeline_markers.new("B", frame=9).camera = cam_b
    feedback.timeline_markers.new("cut 2", frame=6)
    key_restart(feedback, [(1, False), (3, True), (4, False)])
    plan = bake(extension, feedback)
    assert restarts(plan) == [3, 6, 9]
    assert segments(plan) == [[1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]


def test_no_restart_in_interpolate_mode(feedback, extension):
    feedback.keyframe_diffusion.mode = "INTERPOLATE"
    cam_a, cam_b = add_camera(feedback, "CamA"), add_camera(feedback, "CamB")
    feedback.timeline_markers.new("A", frame=1).camera = cam_a
    feedback.timeline_markers.new("B", frame=7).camera = cam_b
    feedback.timeline_markers.new("Cut", frame=4)
    key_restart(feedback, [(1, False), (5, True), (6, False)])
    plan = bake(extension, feedback)
    assert restarts(plan) == [] and plan["frames"][6]["camera"]["name"] == "CamB"


def test_restart_chain_is_a_keyable_setting_in_the_motion_panel(scene, extension):
    rna = scene.keyframe_diffusion.bl_rna.properties["restart_chain"]
    assert rna.type == "BOOLEAN" and rna.is_animatable and rna.name == "Restart Chain"
    assert "restart_chain" not in extension.settings.properties.FRAME_PARAMS  # the plan field is "restart", edges only
    drawn = []

    class Layout:
        use_property_split = False

        def prop(self, data, name, **kwargs):
            assert name in data.bl_rna.properties
            drawn.append(name)

        def column(self, **kwargs):
            return self

    extension.panels.sequencer.KD_PT_motion.draw(SimpleNamespace(layout=Layout()), SimpleNamespace(scene=scene))
    assert drawn.index("restart_chain") == drawn.index("init_image") + 1
