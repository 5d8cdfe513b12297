"""The range Generate renders (Frame Range) and the word before a long render, in real Blender (bpy 5.0).

The factory scene runs 1-250; prompts keyed at 1 and 24 must render 24 frames, not 250, and say so before they start.
"""

from __future__ import annotations

import os

import pytest

from blender_helpers import new_effect, strip_collection
from engine.frames import frame_filename

bpy = pytest.importorskip("bpy")


@pytest.fixture
def keyed(scene):
    """The README's recipe on a factory-length scene: prompts at 1 and 24 in 1-250, the default Frame Range."""
    scene.frame_start, scene.frame_end = 1, 250
    settings = scene.keyframe_diffusion
    settings.property_unset("frame_range")  # the fixture pins Scene for the plumbing tests; this is the default
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=24)
    return scene


@pytest.fixture
def timings(extension):
    """The measured-timing file, empty before and after (it lives in the session's extension user folder)."""
    path = extension.run.estimate._timings_path()
    if os.path.exists(path):
        os.remove(path)
    yield extension.run.estimate
    if os.path.exists(path):
        os.remove(path)


def _files(scene) -> list[str]:
    folder = bpy.path.abspath(scene.keyframe_diffusion.output_dir)
    return sorted(name for name in os.listdir(folder) if name.startswith("frame_") and name.endswith(".png"))


def test_the_default_range_is_the_prompt_keys(keyed, extension):
    settings = keyed.keyframe_diffusion
    assert settings.frame_range == "PROMPTS"
    assert settings.bl_rna.properties["frame_range"].description  # every choice says what the user gets
    assert all(item.description for item in settings.bl_rna.properties["frame_range"].enum_items)
    frame_range = extension.timeline.frame_range
    assert frame_range.render_range(keyed) == (1, 24)
    assert frame_range.describe_range(keyed) == "Frames 1-24 (24 frames, from the prompt keys)"
    plan = extension.bake.scene.bake_scene(keyed, passes=False)
    assert [r["frame"] for r in plan["frames"]] == list(range(1, 25))
    assert (plan["settings"]["frame_start"], plan["settings"]["frame_end"]) == (1, 24)
    # The last frame is all the last prompt, the first all the first: the range ends at the keys, not beyond.
    assert [p["text"] for p in plan["frames"][-1]["prompts"]] == ["a blue square"]
    assert [p["text"] for p in plan["frames"][0]["prompts"]] == ["a red circle"]


def test_generate_renders_exactly_the_keyed_frames(keyed, timings):
    settings = keyed.keyframe_diffusion
    settings.steps, settings.batch_size = 1, 8
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    assert _files(keyed) == [frame_filename(f) for f in range(1, 25)]
    strip = strip_collection(keyed)["Keyframe Diffusion"]
    assert len(strip.elements) == 24


def test_one_prompt_frame_means_that_prompt_over_the_scene_range(scene, extension):
    scene.keyframe_diffusion.frame_range = "PROMPTS"
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=3)
    frame_range = extension.timeline.frame_range
    assert frame_range.render_range(scene) == (1, 6)
    assert frame_range.describe_range(scene) == "Frames 1-6 (6 frames, the scene range: one prompt frame)"
    # The same frame twice is still one prompt frame.
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=3)
    assert frame_range.render_range(scene) == (1, 6)


def test_text_strip_prompts_give_their_span(scene, extension):
    scene.frame_end = 100
    settings = scene.keyframe_diffusion
    settings.frame_range = "PROMPTS"
    settings.prompt_source, settings.prompt_channel = "TEXT_STRIPS", 3
    for text, channel, start, end in (("a corgi", 3, 5, 15), ("a lion", 4, 12, 21)):
        strip = new_effect(strip_collection(scene), text, "TEXT", channel, start, end)
        strip.text = text
    frame_range = extension.timeline.frame_range
    assert frame_range.render_range(scene) == (5, 20)
    assert frame_range.describe_range(scene) == "Frames 5-20 (16 frames, from the prompt strips)"
    plan = extension.bake.scene.bake_scene(scene, passes=False)
    assert [r["frame"] for r in plan["frames"]] == list(range(5, 21))


def test_scene_preview_and_custom_ranges(keyed, extension):
    settings = keyed.keyframe_diffusion
    frame_range = extension.timeline.frame_range
    settings.frame_range = "SCENE"
    assert frame_range.render_range(keyed) == (1, 250)
    settings.frame_range = "PREVIEW"
    assert frame_range.describe_range(keyed) == "Frames 1-250 (250 frames, the scene range: the preview range is off)"
    keyed.use_preview_range = True
    keyed.frame_preview_start, keyed.frame_preview_end = 10, 12
    assert frame_range.describe_range(keyed) == "Frames 10-12 (3 frames, the preview range)"
    plan = extension.bake.scene.bake_scene(keyed, passes=False)
    assert [r["frame"] for r in plan["frames"]] == [10, 11, 12]
    settings.frame_range = "CUSTOM"
    settings.frame_custom_start, settings.frame_custom_end = 7, 3  # typed the wrong way round: still 3-7
    assert frame_range.render_range(keyed) == (3, 7)
    settings.frame_custom_end = 7
    assert frame_range.describe_range(keyed) == "Frame 7 (1 frame, custom range)"


def test_a_frame_outside_the_range_is_refused_with_the_range(keyed):
    keyed.frame_set(100)
    with pytest.raises(RuntimeError, match=r"Frame 100 lies outside the Frame Range \(Frames 1-24"):
        bpy.ops.keyframe_diffusion.generate(current_frame=True)


def test_the_cli_says_the_count_and_the_time_before_the_first_frame(keyed, extension, timings, capsys):
    settings = keyed.keyframe_diffusion
    keyed.keyframe_diffusion.prompts[1].frame = 6  # a short range, keyed at 1 and 6 (the weight keys stay put)
    settings.steps, settings.batch_size = 2, 3
    assert extension.run.cli.main(["generate"]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = [i for i, line in enumerate(lines) if "frames to generate" in line]
    frames = [i for i, line in enumerate(lines) if any(frame_filename(f) in line for f in range(1, 7))]
    assert len(said) == 1 and len(frames) == 6 and said[0] < frames[0]
    assert lines[said[0]] == ("keyframe_diffusion: 6 frames to generate (1-6, from the prompt keys), 2 steps each, "
                              "time not known until the first frames finish")
    # The render measured its pace: the next estimate has a time, and says it the same way.
    key = timings.timing_key("embedded:tiny", 64, 64, settings.device, settings.mode)
    rate = timings.recorded_rate(key)
    assert rate is not None and rate > 0
    est = timings.estimate(keyed)
    assert est.seconds == pytest.approx(rate * 6 * 2)
    # A frame already on disk is not counted again.
    os.remove(os.path.join(bpy.path.abspath(settings.output_dir), frame_filename(4)))
    assert extension.run.cli.main(["generate"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "frames to generate" in line]
    assert said[0].startswith("keyframe_diffusion: 1 of 6 frames to generate (1-6, from the prompt keys; 5 up to "
                              "date), 2 steps each, about ")


def test_the_estimate_uses_the_recorded_timing(keyed, timings, extension):
    settings = keyed.keyframe_diffusion
    settings.steps = 30
    est = timings.estimate(keyed)
    assert (est.frames, est.first, est.last, est.steps, est.seconds) == (24, 1, 24, (30, 30), None)
    assert timings.summary(est) == "24 frames, 30 steps each, time not known until the first frames finish"
    key = timings.timing_key(settings.model, settings.width, settings.height, settings.device, settings.mode)
    timings.record_rate(key, 0.1)
    est = timings.estimate(keyed)
    assert est.seconds == pytest.approx(24 * 30 * 0.1)
    assert timings.summary(est) == "24 frames, 30 steps each, about 1 min 12 s"
    # Another size has no figure yet.
    settings.width = 128
    assert timings.estimate(keyed).seconds is None
    # Keyed steps count frame by frame, and img2img modes run Strength's share of them.
    settings.width = 64
    settings.steps = 10
    settings.keyframe_insert("steps", frame=1)
    settings.steps = 30
    settings.keyframe_insert("steps", frame=24)
    curve = extension.settings.compat.find_fcurve(keyed, "keyframe_diffusion.steps")
    est = timings.estimate(keyed)
    assert est.steps == (10, 30) and est.frame_steps == sum(round(curve.evaluate(f)) for f in range(1, 25))
    assert 24 * 10 < est.frame_steps < 24 * 30


def test_generate_asks_before_a_long_render(keyed, timings):
    settings = keyed.keyframe_diffusion
    est = timings.estimate(keyed)
    assert not timings.is_long(est)  # 24 frames, no time known: starts at once
    settings.frame_range = "SCENE"
    est = timings.estimate(keyed)
    assert timings.is_long(est)  # 250 frames
    title, message = timings.confirm_text(est)
    assert title == "Generate 250 frames?"
    assert message == (f"Frames 1-250 (the scene range), {settings.steps} steps each, time not known until the first "
                       "frames finish. Frame Range in the sidebar chooses the frames")
    # Few frames but a long estimate asks too.
    settings.frame_range = "PROMPTS"
    key = timings.timing_key(settings.model, settings.width, settings.height, settings.device, settings.mode)
    timings.record_rate(key, 200.0 / (24 * settings.steps))
    est = timings.estimate(keyed)
    assert timings.is_long(est) and "about 3 min 20 s" in timings.confirm_text(est)[1]
    timings.record_rate(key, 100.0 / (24 * settings.steps))
    assert not timings.is_long(timings.estimate(keyed))


def test_a_render_over_a_wider_scene_says_what_it_leaves_out(keyed, extension):
    note = extension.run.render_hook._outside_note
    assert note(keyed) == ("; the scene renders 1-250: frames outside 1-24 have no generated frame (Frame Range: "
                           "Scene generates them all)")
    keyed.keyframe_diffusion.frame_range = "SCENE"
    assert note(keyed) == ""
