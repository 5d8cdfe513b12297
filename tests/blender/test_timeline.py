"""The timeline as the schedule language, in real Blender (bpy 5.0): every per-frame setting baked as Blender
evaluates it, prompt transition shapes, text strips, seeds, the camera, Deforum/Giffusion import and export, presets
and inspiration."""

import json
import os

import numpy as np
import pytest

from blender_helpers import new_effect, strip_collection
from engine import deforum, schedule, seeds

bpy = pytest.importorskip("bpy")


def keyed(settings, name, keys, interpolation="LINEAR"):
    for frame, value in keys:
        setattr(settings, name, value)
        settings.keyframe_insert(name, frame=frame)
    return settings


def test_every_frame_param_is_animatable_and_baked_as_fcurve_evaluate(scene, extension):
    props = extension.settings.properties
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    rng = np.random.default_rng(3)
    for name in props.FRAME_PARAMS:
        rna = settings.bl_rna.properties[name]
        assert rna.is_animatable, name
        low = max(rna.soft_min, -50) if rna.type == "FLOAT" else max(rna.hard_min, 1)
        high = min(rna.soft_max, 50) if rna.type == "FLOAT" else min(rna.hard_max, 30)
        values = rng.uniform(low, high, 3)
        values = [int(v) for v in values] if rna.type == "INT" else [float(v) for v in values]
        keyed(settings, name, [(1, values[0]), (3, values[1]), (6, values[2])])
    find = extension.settings.compat.find_fcurve
    # A curve with a modifier still bakes as Blender evaluates it.
    find(scene, "keyframe_diffusion.zoom").modifiers.new("NOISE")
    plan = extension.bake.scene.bake_scene(scene)
    for record in plan["frames"]:
        f = record["frame"]
        for name, (group, key) in props.FRAME_PARAMS.items():
            baked = record[key] if group is None else record[group][key]
            expected = find(scene, f"keyframe_diffusion.{name}").evaluate(f)
            rna = settings.bl_rna.properties[name]
            if rna.type == "INT":
                assert baked == round(expected), (name, f)
            else:
                expected = min(max(expected, rna.hard_min), rna.hard_max)
                assert baked == pytest.approx(expected, abs=1e-4), (name, f)
    assert len({r["motion"]["zoom"] for r in plan["frames"]}) == 6


def test_bake_of_1000_frames_is_fast_enough_to_be_invisible(scene, extension):
    # Not a timing assertion (that lives in bench/): the bake must cover every frame and keep the playhead.
    scene.frame_end = 300
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    keyed(scene.keyframe_diffusion, "guidance", [(1, 1.0), (300, 10.0)])
    scene.frame_set(7)
    plan = extension.bake.scene.bake_scene(scene)
    assert [r["frame"] for r in plan["frames"]] == list(range(1, 301)) and scene.frame_current == 7


@pytest.mark.parametrize("transition, mid", [("LINEAR", 0.5), ("CONSTANT", 0.0), ("SINE", 0.5), ("EASE_IN", None),
                                             ("EASE_OUT", None), ("EASE_IN_OUT", 0.5), ("BEZIER", 0.5)])
def test_transition_shapes(scene, transition, mid):
    scene.frame_end = 11
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1, transition=transition)
    bpy.ops.keyframe_diffusion.prompt_add(text="b", frame=11, transition=transition)
    curve = []
    for f in range(1, 12):
        scene.frame_set(f)
        a, b = (p.weight for p in settings.prompts)
        assert a + b == pytest.approx(1.0, abs=1e-5)
        curve.append(b)
    assert curve[0] == pytest.approx(0) and curve[-1] == pytest.approx(1)
    assert all(x <= y + 1e-6 for x, y in zip(curve, curve[1:]))  # every shape moves one way
    if mid is not None:
        assert curve[5] == pytest.approx(mid, abs=1e-4)
    if transition == "EASE_IN":
        assert curve[2] < 0.2 * 0.99  # slower than linear at the start
    if transition == "EASE_OUT":
        assert curve[2] > 0.2 * 1.01
    if transition == "CONSTANT":
        assert curve[:-1] == [0.0] * 10


def test_giffusion_sine_and_curve_write_their_schedule_as_keys(scene):
    scene.frame_end = 21
    settings = scene.keyframe_diffusion
    for frame, text in ((1, "a"), (11, "b"), (21, "c")):
        bpy.ops.keyframe_diffusion.prompt_add(text=text, frame=frame)
    bpy.ops.keyframe_diffusion.prompt_transitions(transition="GIFFUSION_SINE", frequencies="1.0, 2.0")
    expected = schedule.giffusion_sine(11, [1.0, 2.0])
    for i in range(10):
        scene.frame_set(1 + i)
        weights = [p.weight for p in settings.prompts]
        assert weights[1] == pytest.approx(expected[i], abs=1e-5)
        assert weights[0] == pytest.approx(1 - expected[i], abs=1e-5) and weights[2] == pytest.approx(0)
    scene.frame_set(21)
    assert [p.weight for p in settings.prompts] == pytest.approx([0, 0, 1])

    bpy.ops.keyframe_diffusion.prompt_transitions(transition="GIFFUSION_CURVE", curve="0:(0), 5:(1), 20:(0.5)")
    scene.frame_set(1 + 15)  # Giffusion frame 15, in the second segment
    expected = schedule.giffusion_curve("0:(0), 5:(1), 20:(0.5)", 15, 15, 21)[0]
    assert settings.prompts[2].weight == pytest.approx(expected, abs=1e-5)
    assert settings.prompts[1].weight == pytest.approx(1 - expected, abs=1e-5)
    with pytest.raises(RuntimeError, match="curve|0..1|\\[0, 1\\]|range"):
        bpy.ops.keyframe_diffusion.prompt_transitions(transition="GIFFUSION_CURVE", curve="0:(0), 5:(3)")


def add_text_strip(scene, text, start, end, channel=3):
    strip = new_effect(strip_collection(scene), text[:20], "TEXT", channel, start, end)
    strip.text = text
    return strip


def test_text_strips_are_the_prompt_schedule_and_crossfade_in_overlaps(scene, extension):
    scene.frame_end = 20
    settings = scene.keyframe_diffusion
    settings.prompt_source = "TEXT_STRIPS"
    settings.prompt_channel = 3
    add_text_strip(scene, "a corgi --neg blurry", 1, 11)  # frames 1-10
    add_text_strip(scene, "a lion", 7, 21, channel=4)  # frames 7-20: overlap 7-10 (4 frames)
    muted = add_text_strip(scene, "a muted strip", 1, 21)
    muted.mute = True
    add_text_strip(scene, "outside the band", 1, 21, channel=5)
    plan = extension.bake.scene.bake_scene(scene)
    by_frame = {r["frame"]: {p["text"]: p["weight"] for p in r["prompts"]} for r in plan["frames"]}
    assert by_frame[1] == {"a corgi": 1.0} and by_frame[11] == {"a lion": 1.0}
    for i, f in enumerate(range(7, 11)):
        lion = (i + 0.5) / 4
        assert by_frame[f] == pytest.approx({"a corgi": 1 - lion, "a lion": lion})
    corgi = plan["frames"][0]["prompts"][0]
    assert corgi["negative"] == "blurry" and corgi["seed"] == 0 and plan["frames"][-1]["prompts"][0]["seed"] == 1
    # Moving a strip moves the schedule.
    editor = scene.sequence_editor
    lion = (editor.strips if hasattr(editor, "strips") else editor.sequences)["a lion"]
    lion.frame_start += 2  # now frames 9-22: a 2-frame overlap
    by_frame = {r["frame"]: {p["text"]: p["weight"] for p in r["prompts"]}
                for r in extension.bake.scene.bake_scene(scene)["frames"]}
    assert by_frame[8] == {"a corgi": 1.0}
    assert by_frame[9] == pytest.approx({"a corgi": 0.75, "a lion": 0.25})
    assert by_frame[10] == pytest.approx({"a corgi": 0.25, "a lion": 0.75})
    lion.frame_start += 3  # now frames 12-25: frame 11 has no prompt
    with pytest.raises(extension.bake.scene.BakeError, match="frame 11: no text strip on channels 3-4"):
        extension.bake.scene.bake_scene(scene)


@pytest.mark.parametrize("behavior, iter_n", [("FIXED", 1), ("ITER", 1), ("ITER", 2), ("LADDER", 1),
                                              ("ALTERNATE", 1), ("RANDOM", 1)])
def test_seed_behaviours_bake_the_documented_sequences(scene, extension, behavior, iter_n):
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    settings.seed, settings.seed_behavior, settings.seed_iter_n = 7, behavior, iter_n
    baked = [r["seed"] for r in extension.bake.scene.bake_scene(scene)["frames"]]
    assert baked == seeds.seed_sequence(behavior, 7, 6, iter_n)
    if behavior == "RANDOM":
        assert len(set(baked)) == 6 and baked == [r["seed"] for r in extension.bake.scene.bake_scene(scene)["frames"]]


def test_seed_schedule_is_the_animated_seed(scene, extension):
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    keyed(settings, "seed", [(1, 10), (6, 20)])
    baked = [r["seed"] for r in extension.bake.scene.bake_scene(scene)["frames"]]
    fc = extension.settings.compat.find_fcurve(scene, "keyframe_diffusion.seed")
    assert baked == [round(fc.evaluate(f)) for f in range(1, 7)] and baked[0] == 10 and baked[-1] == 20


def test_camera_bake_equals_matrix_world_of_a_parented_constrained_driven_camera(scene, extension):
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    rig = bpy.data.objects.new("Rig", None)
    target = bpy.data.objects.new("Target", None)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    for obj in (rig, target, cam):
        scene.collection.objects.link(obj)
    cam.parent = rig
    cam.location = (0, -5, 1)
    for frame, z_rot, x in ((1, 0.0, 0.0), (6, 1.2, 3.0)):
        rig.rotation_euler.z = z_rot
        rig.keyframe_insert("rotation_euler", index=2, frame=frame)
        target.location.x = x
        target.keyframe_insert("location", index=0, frame=frame)
    track = cam.constraints.new("TRACK_TO")
    track.target = target
    driver = cam.data.driver_add("lens").driver
    driver.type = "SUM"
    var = driver.variables.new()
    var.targets[0].id = target
    var.targets[0].data_path = "location.x"
    cam.data.driver_add("shift_x").driver.expression = "frame / 100"  # a simple expression: no Python needed
    scene.camera = cam
    plan = extension.bake.scene.bake_scene(scene)
    for record in plan["frames"]:
        scene.frame_set(record["frame"])
        baked = np.array(record["camera"]["matrix_world"])
        assert np.allclose(baked, np.array(cam.matrix_world), atol=1e-5)
        assert record["camera"]["lens"] == pytest.approx(max(1.0, target.location.x), abs=1e-5)
        assert record["camera"]["shift_x"] == pytest.approx(record["frame"] / 100, abs=1e-5)
    # The rig turns and the constraint aims: the matrices really change.
    assert not np.allclose(plan["frames"][0]["camera"]["matrix_world"], plan["frames"][-1]["camera"]["matrix_world"])


DEFORUM_CASES = {
    "zoom": "0:(1.04)",
    "angle": "0:(0), 2:(10), 4:(-5)",
    "translation_x": "0:(10*sin(2*3.14*t/6))",
    "translation_z": "0:(0), 3:(0.5+t*max_f/10)",
    "strength": "0:(0.65), 5:(0.4)",
    "guidance": "1:(7), 4:(t+s/10)",
    "steps": "0:(10), 5:(15)",
    "noise": "0:(0.02), 2:(where(t%2 == 1, 0.1, 0.0))",
}


@pytest.mark.parametrize("frame_start", [1, 10])
def test_deforum_strings_import_into_fcurves_that_evaluate_like_deforum(scene, extension, frame_start):
    scene.frame_start, scene.frame_end = frame_start, frame_start + 5  # Deforum frames 0-5
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=frame_start)
    for prop, text in DEFORUM_CASES.items():
        assert bpy.ops.keyframe_diffusion.schedule_import(prop=prop, text=text, seed=30) == {"FINISHED"}
    plan = extension.bake.scene.bake_scene(scene)
    params = extension.settings.properties.FRAME_PARAMS
    for prop, text in DEFORUM_CASES.items():
        expected, _ = schedule.evaluate(text, 6, 30)
        if prop == "steps":
            expected = np.trunc(expected)
        if prop == "strength":  # Deforum's strength keeps the init frame; ours is how far we move from it
            expected = 1 - expected
        group, key = params[prop]
        baked = [r[key] if group is None else r[group][key] for r in plan["frames"]]
        assert baked == pytest.approx(list(expected), abs=1e-5), prop


def test_schedule_import_errors_name_the_position_and_keep_the_curve(scene, extension):
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    bpy.ops.keyframe_diffusion.schedule_import(prop="zoom", text="0:(1), 5:(2)")
    for text, match in (("0:(1), 5:(2", "position"), ("0:(1), x:(2)", "position 7"), ("0:(foo*2)", "foo"),
                        ("", "empty")):
        with pytest.raises(RuntimeError, match=match):
            bpy.ops.keyframe_diffusion.schedule_import(prop="zoom", text=text)
    with pytest.raises(RuntimeError, match="steps: value 0 at Deforum frame 0 is outside"):
        bpy.ops.keyframe_diffusion.schedule_import(prop="steps", text="0:(0), 3:(10)")
    fc = extension.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom")
    assert [tuple(p.co) for p in fc.keyframe_points] == [(1.0, 1.0), (6.0, 2.0)]


def test_export_then_import_round_trips(scene, extension):
    scene.frame_end = 30
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    originals = {"zoom": "0:(1), 10:(1.05), 29:(0.98)", "angle": "0:(3*sin(t/4))", "steps": "0:(4), 12:(9)",
                 "strength": "0:(0.3), 20:(0.7)"}
    for prop, text in originals.items():
        bpy.ops.keyframe_diffusion.schedule_import(prop=prop, text=text)
    keyed(settings, "guidance", [(1, 3.0), (30, 9.0)])  # Bezier keys made in Blender: exported per frame
    before = extension.timeline.schedules.sample(scene, list(originals) + ["guidance"])
    exported = extension.timeline.schedules.export_schedules(scene, list(originals) + ["guidance"])
    assert exported["zoom"] == "0:(1), 10:(1.05), 29:(0.98)"
    for prop, text in exported.items():
        extension.timeline.schedules.import_schedule(scene, prop, text)
    after = extension.timeline.schedules.sample(scene, list(exported))
    for prop in exported:
        assert after[prop] == pytest.approx(before[prop], abs=1e-5), prop
    assert extension.timeline.schedules.export_schedules(scene, list(exported)) == exported


A1111_SETTINGS = {
    "W": 512, "H": 512, "seed": 42, "seed_behavior": "iter", "sampler": "euler_ancestral", "steps": 25,
    "scale": 7, "animation_mode": "2D", "max_frames": 12, "border": "wrap", "fps": 12,
    "angle": "0:(0), 6:(2)", "zoom": "0:(1.02+0.02*sin(2*3.14*t/6))", "translation_x": "0:(0)",
    "strength_schedule": "0:(0.65)", "noise_schedule": "0:(0.02)", "contrast_schedule": "0:(1.0)",
    "cfg_scale_schedule": "0:(7), 10:(9)", "color_coherence": "LAB", "diffusion_cadence": 2,
    "prompts": {"0": "a corgi --neg blurry", "6": "a lion"}, "batch_name": "Deforum", "use_depth_warping": True,
}


def test_deforum_settings_file_imports_and_exports_round_trip(scene, extension, tmp_path):
    path = tmp_path / "deforum_settings.txt"
    path.write_text(json.dumps(A1111_SETTINGS))
    settings = scene.keyframe_diffusion
    assert bpy.ops.keyframe_diffusion.deforum_import(filepath=str(path)) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, 12, 12)
    assert (settings.width, settings.seed_behavior, settings.border, settings.color_coherence) == \
        (512, "ITER", "WRAP", "LAB")
    assert settings.cadence == 2 and settings.scheduler == "euler_a" and settings.motion_mode == "2D"
    assert [(p.frame, p.text, p.negative) for p in settings.prompts] == [(1, "a corgi", "blurry"), (7, "a lion", "")]
    scene.frame_set(4)  # hard cut by default: Deforum switches prompts at their frame
    assert [p.weight for p in settings.prompts] == [1.0, 0.0]
    scene.frame_set(7)
    assert [p.weight for p in settings.prompts] == [0.0, 1.0]
    plan = extension.bake.scene.bake_scene(scene)
    zoom, _ = schedule.evaluate(A1111_SETTINGS["zoom"], 12, 42)
    assert [r["motion"]["zoom"] for r in plan["frames"]] == pytest.approx(list(zoom), abs=1e-5)
    assert [r["strength"] for r in plan["frames"]] == pytest.approx([0.35] * 12)
    assert [r["seed"] for r in plan["frames"]] == seeds.seed_sequence("ITER", 42, 12)

    out = tmp_path / "exported.json"
    assert bpy.ops.keyframe_diffusion.deforum_export(filepath=str(out)) == {"FINISHED"}
    exported = json.loads(out.read_text())
    before = extension.timeline.schedules.sample(scene, [s.prop for s in deforum.SCHEDULES])
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    assert bpy.ops.keyframe_diffusion.deforum_import(filepath=str(out)) == {"FINISHED"}
    after = extension.timeline.schedules.sample(scene, [s.prop for s in deforum.SCHEDULES])
    for prop in before:
        assert after[prop] == pytest.approx(before[prop], abs=1e-5), prop
    assert json.loads(out.read_text()) == exported


def test_deforum_seed_schedule_with_random_seeds_and_s_in_expressions(scene, extension, tmp_path):
    # Deforum's default seed schedule holds -1 (random) and s (the base seed); `s` in other schedules is that seed.
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"max_frames": 6, "seed": 100, "seed_behavior": "schedule",
                                "seed_schedule": '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)',
                                "angle": "0:(s/100 + t)", "prompts": {"0": "a"}}))
    assert bpy.ops.keyframe_diffusion.deforum_import(filepath=str(path)) == {"FINISHED"}
    plan = extension.bake.scene.bake_scene(scene)
    # -1 wraps to 2**23 - 1: an F-curve (32-bit float, rounded into the int) reproduces seeds only below 2**23.
    assert [r["seed"] for r in plan["frames"]] == [100, 2**23 - 1, 2**23 - 1, 2**23 - 1, 100, 100]
    assert [r["motion"]["angle"] for r in plan["frames"]] == pytest.approx([1.0 + t for t in range(6)])


def test_bad_deforum_file_is_reported_and_changes_nothing(scene, tmp_path):
    path = tmp_path / "broken.txt"
    path.write_text('{"W": 512,\n "zoom": "0:(1.0"\n')
    settings = scene.keyframe_diffusion
    with pytest.raises(RuntimeError, match="broken.txt.*line 3|broken.txt"):
        bpy.ops.keyframe_diffusion.deforum_import(filepath=str(path))
    assert settings.width == 64


def test_giffusion_prompt_lines_import_with_a_transition(scene):
    scene.frame_end = 21
    text = bpy.data.texts.new("prompts")
    text.from_string("0: a corgi\n10: a lion\n\n20: a castle\n")
    assert bpy.ops.keyframe_diffusion.prompts_import(text_name="prompts", transition="LINEAR") == {"FINISHED"}
    settings = scene.keyframe_diffusion
    assert [(p.frame, p.text) for p in settings.prompts] == [(1, "a corgi"), (11, "a lion"), (21, "a castle")]
    scene.frame_set(6)
    assert [p.weight for p in settings.prompts] == pytest.approx([0.5, 0.5, 0.0])
    with pytest.raises(RuntimeError, match="line 2"):
        bpy.ops.keyframe_diffusion.prompts_import(text="0: a corgi\nten: a lion", source_format="GIFFUSION")
    with pytest.raises(RuntimeError, match="no prompts|empty"):
        bpy.ops.keyframe_diffusion.prompts_import(text="  ", source_format="AUTO")
    assert len(settings.prompts) == 3  # a failed import keeps the prompt keys


def test_presets_save_and_restore_the_generation_settings(scene):
    settings = scene.keyframe_diffusion
    settings.steps, settings.guidance, settings.scheduler, settings.zoom = 9, 3.5, "euler_a", 1.1
    settings.flow_guide, settings.warp_noise, settings.fusion = True, True, 0.6  # Follow Motion's options too
    assert bpy.ops.keyframe_diffusion.preset_add(name="My Look") == {"FINISHED"}
    path = os.path.join(bpy.utils.user_resource("SCRIPTS", path="presets/keyframe_diffusion"), "My_Look.py")
    assert os.path.isfile(path)
    settings.steps, settings.guidance, settings.scheduler, settings.zoom = 2, 7.5, "default", 1.0
    settings.flow_guide, settings.warp_noise, settings.fusion = False, False, 0.0
    assert bpy.ops.script.execute_preset(filepath=path, menu_idname="KD_MT_presets") == {"FINISHED"}
    assert (settings.steps, settings.guidance, settings.scheduler) == (9, 3.5, "euler_a")
    assert (settings.flow_guide, settings.warp_noise) == (True, True) and settings.fusion == pytest.approx(0.6)
    assert settings.zoom == pytest.approx(1.1)


def test_inspiration_fills_prompt_keys_from_the_vocabulary(scene):
    scene.frame_end = 40
    assert bpy.ops.keyframe_diffusion.inspire(subjects="a corgi, a lion", count=4, seed=3, model="") == {"FINISHED"}
    settings = scene.keyframe_diffusion
    assert [p.frame for p in settings.prompts] == [1, 11, 21, 31]
    assert [p.text.split(",")[0] for p in settings.prompts] == ["a corgi", "a lion", "a corgi", "a lion"]
    assert bpy.data.texts["Keyframe Diffusion Inspiration"].as_string().startswith("0: a corgi")
    with pytest.raises(RuntimeError, match="subject"):
        bpy.ops.keyframe_diffusion.inspire(subjects=" ", model="")


def test_cli_imports_and_exports_deforum_settings(scene, extension, tmp_path, capsys):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(A1111_SETTINGS))
    scene.keyframe_diffusion.frame_range = "PROMPTS"
    assert extension.run.cli.main(["import-deforum", str(path)]) == 0
    assert scene.frame_end == 12 and scene.keyframe_diffusion.prompts[1].text == "a lion"
    assert scene.keyframe_diffusion.frame_range == "SCENE"  # Deforum renders max_frames, past its last prompt
    assert "not imported (no counterpart)" in capsys.readouterr().out
    out = tmp_path / "back.json"
    assert extension.run.cli.main(["export-deforum", str(out)]) == 0
    assert json.loads(out.read_text())["angle"] == "0:(0), 6:(2)"
    capsys.readouterr()
    scene.keyframe_diffusion.mode = "CLIP"  # Deforum has no clip mode: the command says what it left out
    assert extension.run.cli.main(["export-deforum", str(out)]) == 0
    assert "warning: not exported: " in capsys.readouterr().out
    path.write_text('{"max_frames": 50, "W": 256, "zoom": "0:(1), 5:(sin(q))"}')
    assert extension.run.cli.main(["import-deforum", str(path)]) == 1
    assert "zoom: position 14: unknown name 'q'" in capsys.readouterr().err
    assert (scene.frame_end, scene.keyframe_diffusion.width) == (12, 512)  # nothing of the bad file was applied
    assert extension.run.cli.main(["import-deforum", str(tmp_path / "missing.txt")]) == 1


def test_expressions_fall_back_to_the_engine_python_when_blender_lacks_numexpr(scene, extension, monkeypatch):
    # Blender's own Python may have no numexpr (no bundled wheels): the engine's Python evaluates the expression.
    monkeypatch.setitem(__import__("sys").modules, "numexpr", None)
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    text = "0:(1), 2:(1+0.1*sin(t))"
    assert bpy.ops.keyframe_diffusion.schedule_import(prop="zoom", text=text) == {"FINISHED"}
    monkeypatch.undo()
    expected, _ = schedule.evaluate(text, 6)
    baked = [r["motion"]["zoom"] for r in extension.bake.scene.bake_scene(scene)["frames"]]
    assert baked == pytest.approx(list(expected), abs=1e-5)


def test_many_prompt_keys_each_peak_at_their_frame(scene):
    """Adding keys grows the prompt collection, which can move its items in memory: twelve keys (the sixth failed
    once, on a stale reference) each reach weight 1 at their frame and 0 at their neighbours', with distinct seeds."""
    for frame in range(1, 13):
        assert bpy.ops.keyframe_diffusion.prompt_add(text=f"prompt {frame}", frame=frame) == {"FINISHED"}
    prompts = scene.keyframe_diffusion.prompts
    assert len({p.seed for p in prompts}) == 12
    for frame in range(1, 13):
        scene.frame_set(frame)
        weights = [round(p.weight, 4) for p in prompts]
        assert weights == [1.0 if p.frame == frame else 0.0 for p in prompts]
