"""Deforum settings files: both producers' key names, every mapping row, value tables, bad files, round trip."""

import json
import os
import subprocess
import sys

import pytest

from engine import deforum
from engine.deforum import SCHEDULES, DeforumError, parse_settings, read_settings, write_settings
from engine.seeds import SEED_MAX


def a1111_settings() -> dict:
    """Shaped like a settings file saved by a run of the A1111 extension (abridged, with its usual noise keys)."""
    return {
        "W": 768, "H": 432, "show_info_on_ui": True, "tiling": False, "restore_faces": False,
        "seed": 4242, "sampler": "DPM++ 2M Karras", "steps": 30, "batch_name": "Deforum_{timestring}",
        "seed_behavior": "ladder", "seed_iter_N": 2, "use_init": False, "strength": 0.8,
        "strength_0_no_init": True, "init_image": None, "use_mask": False,
        "prompts": {
            "0": " a red fox in snow --neg cartoon  blurry, lowres",
            "30": " a fox den at dusk --neg blurry, lowres",
            "max_f/2+5": " aurora over the forest --neg blurry, lowres",
        },
        "positive_prompts": "", "negative_prompts": "blurry, lowres",
        "animation_mode": "2D", "max_frames": 90, "border": "wrap",
        "angle": "0: (0), 45: (2)", "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
        "translation_x": "0: (0)", "translation_y": "0: (-1)", "translation_z": "0: (1.75)",
        "transform_center_x": "0: (0.5)", "transform_center_y": "0: (0.4)",
        "rotation_3d_x": "0: (0.1)", "rotation_3d_y": "0: (0.2)", "rotation_3d_z": "0: (0.3)",
        "enable_perspective_flip": True, "perspective_flip_theta": "0: (0)",
        "noise_schedule": "0: (0.065)", "strength_schedule": "0: (0.65), 60: (0.5)",
        "contrast_schedule": "0: (1.0)", "cfg_scale_schedule": "0: (7), 30: (9)",
        "enable_steps_scheduling": True, "steps_schedule": "0: (25), 45: (35)",
        "fov_schedule": "0: (70)", "near_schedule": "0: (200)", "far_schedule": "0: (10000)",
        "seed_schedule": "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)",
        "color_coherence": "LAB", "diffusion_cadence": 2, "fps": 24,
        "hybrid_composite": "None", "parseq_manifest": "", "cn_1_enabled": False,
        "sd_model_name": "v1-5-pruned-emaonly.safetensors", "deforum_git_commit_id": "eb16c856",
    }


def colab_settings() -> dict:
    """Shaped like the Colab notebook's settings file ({**args, **anim_args}, newer cond/uncond prompts)."""
    return {
        "W": 512, "H": 512, "bit_depth_output": 8, "seed": 77, "sampler": "euler_ancestral", "steps": 50,
        "scale": 7.5, "ddim_eta": 0.0, "save_samples": True, "n_batch": 1, "batch_name": "StableFun",
        "seed_behavior": "iter", "seed_iter_N": 3, "outdir": "/content/drive/out", "use_init": False,
        "strength": 0.65, "seed_internal": 0, "timestring": "20230101000000",
        "cond_prompts": {"0": "a lake at dawn", "10": "a portrait --neg ugly"},
        "uncond_prompts": {"0": "mountain", "10": "hat"},
        "animation_mode": "3D", "max_frames": 20, "border": "replicate",
        "angle": "0:(0)", "zoom": "0:(1.04)", "translation_x": "0:(10*sin(2*3.14*t/10))",
        "translation_y": "0:(0)", "translation_z": "0:(10)",
        "rotation_3d_x": "0:(0)", "rotation_3d_y": "0:(0)", "rotation_3d_z": "0:(0)",
        "flip_2d_perspective": False, "noise_schedule": "0: (0.02)", "strength_schedule": "0: (0.65)",
        "contrast_schedule": "0: (1.0)", "color_coherence": "Match Frame 0 HSV", "diffusion_cadence": "3",
        "use_depth_warping": True, "midas_weight": 0.3, "near_plane": 200, "far_plane": 10000, "fov": 40,
        "padding_mode": "border", "sampling_mode": "bicubic",
    }


def write_json(tmp_path, data, name="settings.txt"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return str(path)


def test_a1111_file_maps_every_row(tmp_path):
    s = read_settings(write_json(tmp_path, a1111_settings()))
    assert s.schedules == {
        "steps": "0: (25), 45: (35)",
        "guidance": "0: (7), 30: (9)",
        "strength": "0: (0.65), 60: (0.5)",  # raw: the spec inverts it
        "seed": "0: (4242)",  # ladder: the seed_schedule is not what Deforum runs
        "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
        "angle": "0: (0), 45: (2)",
        "translation_x": "0: (0)", "translation_y": "0: (-1)", "translation_z": "0: (1.75)",
        "transform_center_x": "0: (0.5)", "transform_center_y": "0: (0.4)",
        "rotation_3d_x": "0: (0.1)", "rotation_3d_y": "0: (0.2)", "rotation_3d_z": "0: (0.3)",
        "fov": "0: (70)", "noise": "0: (0.065)", "contrast": "0: (1.0)",
    }
    assert set(s.schedules) == {spec.prop for spec in SCHEDULES}
    assert s.values == {
        "width": 768, "height": 432, "seed_behavior": "LADDER", "seed_iter_n": 2, "scheduler": "dpm++",
        "mode": "FEEDBACK", "motion_mode": "2D", "border": "WRAP", "color_coherence": "LAB", "cadence": 2,
        "negative_prompt": "blurry, lowres",
    }
    assert s.scene == {"frame_count": 90, "fps": 24.0}
    assert s.animation_mode == "2D"
    # A run's file already holds combined prompts: the global negative is not appended twice.
    assert s.prompts == [
        (0, "a red fox in snow", "cartoon  blurry, lowres"),
        (30, "a fox den at dusk", "blurry, lowres"),
        (50, "aurora over the forest", "blurry, lowres"),  # max_f/2+5 with max_f = max_frames = 90
    ]
    assert s.raw_prompts["max_f/2+5"] == " aurora over the forest --neg blurry, lowres"
    assert any("Karras sigmas are not applied" in w for w in s.warnings)
    assert any("perspective flip (enable_perspective_flip)" in w for w in s.warnings)
    assert not any("hybrid" in w or "Parseq" in w for w in s.warnings)  # switched off in the file


def test_ignored_keys_are_reported_sorted_and_unique():
    s = parse_settings(a1111_settings())
    assert s.ignored == sorted(set(s.ignored))
    for key in ("batch_name", "show_info_on_ui", "near_schedule", "far_schedule", "sd_model_name", "strength",
                "enable_perspective_flip", "cn_1_enabled", "use_init"):
        assert key in s.ignored
    for key in ("W", "zoom", "seed_schedule", "prompts", "negative_prompts", "steps", "fps", "sampler"):
        assert key not in s.ignored


def test_colab_file(tmp_path):
    s = read_settings(write_json(tmp_path, colab_settings(), "colab.json"))
    assert s.schedules["guidance"] == "0: (7.5)"  # the Colab's constant scale
    assert s.schedules["steps"] == "0: (50)"
    assert s.schedules["fov"] == "0: (40)"  # the Colab's constant fov
    assert s.schedules["seed"] == "0: (77)"
    assert s.schedules["translation_x"] == "0:(10*sin(2*3.14*t/10))"
    assert "transform_center_x" not in s.schedules  # the Colab has no such key
    assert s.values == {
        "width": 512, "height": 512, "seed_behavior": "ITER", "seed_iter_n": 3, "scheduler": "euler_a",
        "mode": "FEEDBACK", "motion_mode": "3D", "border": "REPLICATE", "color_coherence": "HSV", "cadence": 3,
    }
    assert s.scene == {"frame_count": 20}
    assert s.prompts == [(0, "a lake at dawn", "mountain"), (10, "a portrait", "ugly hat")]
    for key in ("outdir", "seed_internal", "near_plane", "far_plane", "timestring", "bit_depth_output"):
        assert key in s.ignored
    assert "scale" not in s.ignored and "fov" not in s.ignored


def test_colab_older_prompts_and_one_negative_for_all():
    s = parse_settings({"prompts": {"0": "apple", "20": "banana"}, "max_frames": 40})
    assert s.prompts == [(0, "apple", ""), (20, "banana", "")]
    s = parse_settings({"cond_prompts": {"0": "apple", "5": "pear"}, "uncond_prompts": "rotten"})
    assert s.prompts == [(0, "apple", "rotten"), (5, "pear", "rotten")]


def test_global_prompts_combine_like_deforum():
    s = parse_settings({
        "prompts": {"0": "a cat --neg dog", "12": "a fox"},
        "animation_prompts_positive": "oil painting,", "animation_prompts_negative": "--neg blurry",
    })
    # Deforum: f"{positive} {prompt} --neg {negative}", split at the first --neg.
    assert s.prompts == [(0, "oil painting, a cat", "dog blurry"), (12, "oil painting, a fox", "blurry")]
    assert s.values["negative_prompt"] == "blurry"


def test_animation_prompts_alias_as_json_text():
    s = parse_settings({"animation_prompts": json.dumps({"0": "x", "4": "y --neg z"})})
    assert s.prompts == [(0, "x", ""), (4, "y", "z")]


def test_strength_spec_inverts_and_integer_specs_truncate():
    spec = {s.prop: s for s in SCHEDULES}
    assert spec["strength"].invert and not spec["zoom"].invert
    assert spec["strength"].to_ours(0.65) == pytest.approx(0.35)
    assert spec["strength"].to_deforum(0.35) == pytest.approx(0.65)
    assert spec["steps"].integer and spec["seed"].integer and not spec["guidance"].integer
    assert spec["steps"].to_ours(25.9) == 25
    assert spec["zoom"].to_ours(1.5) == 1.5
    assert [s.deforum_key for s in SCHEDULES if s.prop in ("guidance", "fov", "noise", "contrast")] == [
        "cfg_scale_schedule", "fov_schedule", "noise_schedule", "contrast_schedule"]


@pytest.mark.parametrize(
    "sampler, scheduler, note",
    [
        ("Euler a", "euler_a", None),
        ("euler_ancestral", "euler_a", None),
        ("k_euler_a", "euler_a", None),
        ("Euler", "euler", None),
        ("euler", "euler", None),
        ("DDIM", "ddim", None),
        ("ddim", "ddim", None),
        ("plms", "pndm", None),
        ("PLMS", "pndm", None),
        ("DPM++ 2M", "dpm++", None),
        ("dpmpp_2m", "dpm++", None),
        ("DPM++ 2M Karras", "dpm++", "Karras sigmas are not applied"),
        ("DPM++ 2M SDE Karras", "dpm++", "approximated by DPM++ 2M"),
        ("dpmpp_2s_a", "dpm++", "approximated by DPM++ 2M"),
        ("LCM", "lcm", None),
        ("klms", None, "has no counterpart here"),
        ("Heun", None, "has no counterpart here"),
        ("UniPC", None, "has no counterpart here"),
    ],
)
def test_sampler_mapping(sampler, scheduler, note):
    s = parse_settings({"sampler": sampler})
    assert s.values.get("scheduler") == scheduler
    if note is None:
        assert s.warnings == []
    else:
        assert any(note in w for w in s.warnings)


@pytest.mark.parametrize(
    "given, expected",
    [("None", "NONE"), ("LAB", "LAB"), ("HSV", "HSV"), ("RGB", "RGB"), ("Match Frame 0 LAB", "LAB"),
     ("Match Frame 0 RGB", "RGB"), ("Video Input", None), ("Image", None)],
)
def test_color_coherence_mapping(given, expected):
    s = parse_settings({"color_coherence": given})
    assert s.values.get("color_coherence") == expected
    assert bool(s.warnings) == (expected is None)


@pytest.mark.parametrize(
    "given, expected",
    [("replicate", "REPLICATE"), ("wrap", "WRAP"), ("reflect", "REFLECT"), ("reflection", "REFLECT"),
     ("mirror", None)],
)
def test_border_mapping(given, expected):
    assert parse_settings({"border": given}).values.get("border") == expected


@pytest.mark.parametrize(
    "given, mode, motion, note",
    [("2D", "FEEDBACK", "2D", None), ("3D", "FEEDBACK", "3D", None), (" 3d ", "FEEDBACK", "3D", None),
     ("None", "INTERPOLATE", None, "independent stills: imported as the Interpolate mode"),
     ("Interpolation", "INTERPOLATE", None, None),
     ("Video Input", "VIDEO", None, "without a video_init_path: choose the input strip"),
     ("Warp", None, None, "animation_mode 'Warp' is unknown")],
)
def test_animation_mode_picks_the_generation_mode(given, mode, motion, note):
    # A "2D" file used to leave the scene on Interpolate, where its motion does nothing.
    s = parse_settings({"animation_mode": given})
    assert s.values.get("mode") == mode and s.values.get("motion_mode") == motion
    assert s.animation_mode == given
    assert (note is None and not s.warnings) or any(note in w for w in s.warnings)


def test_video_input_takes_the_video_path():
    s = parse_settings({"animation_mode": "Video Input", "video_init_path": " /videos/walk.mp4 "})
    assert s.values["mode"] == "VIDEO" and s.video_path == "/videos/walk.mp4" and not s.warnings
    assert "video_init_path" not in s.ignored
    s = parse_settings({"animation_mode": "2D", "video_init_path": "/videos/walk.mp4"})
    assert s.video_path is None and "video_init_path" in s.ignored  # not a video input run: nothing reads it


@pytest.mark.parametrize("mode, expected", [("FEEDBACK", "3D"), ("INTERPOLATE", "Interpolation"),
                                            ("VIDEO", "Video Input")])
def test_each_mode_exports_as_its_animation_mode_and_back(mode, expected):
    # An Interpolate scene used to export as "2D", which Deforum animates.
    values = {"mode": mode, "motion_mode": "3D", "video_init_path": "/videos/walk.mp4"}
    notes: list[str] = []
    data = write_settings(values, {}, {}, {}, notes)
    assert data["animation_mode"] == expected and notes == []
    assert data.get("video_init_path") == ("/videos/walk.mp4" if mode == "VIDEO" else None)
    back = parse_settings(data)
    assert back.values["mode"] == mode and not back.warnings
    assert back.video_path == ("/videos/walk.mp4" if mode == "VIDEO" else None)


def test_modes_deforum_lacks_are_noted_not_exported():
    notes: list[str] = []
    data = write_settings({"mode": "CLIP", "motion_mode": "2D"}, {}, {}, {}, notes)
    assert "animation_mode" not in data
    assert notes == ["the Clip mode has no Deforum animation_mode: animation_mode not exported (Deforum then animates "
                     "in 2D)"]
    notes.clear()
    data = write_settings({"mode": "VIDEO", "video_init_path": ""}, {}, {}, {}, notes)
    assert data["animation_mode"] == "Video Input" and "video_init_path" not in data
    assert len(notes) == 1 and "video_init_path not exported" in notes[0]
    with pytest.raises(DeforumError, match="mode must be one of"):
        write_settings({"mode": "SLIDESHOW"}, {}, {}, {})


def test_size_rounds_to_multiple_of_8_with_a_warning():
    s = parse_settings({"W": 500, "H": 516})
    assert (s.values["width"], s.values["height"]) == (504, 520)
    assert "width 500 rounded to 504 (a multiple of 8)" in s.warnings
    assert "height 516 rounded to 520 (a multiple of 8)" in s.warnings
    assert parse_settings({"W": 512}).warnings == []


def test_steps_schedule_only_when_switched_on():
    s = parse_settings({"steps": 20, "steps_schedule": "0: (40)", "enable_steps_scheduling": False})
    assert s.schedules["steps"] == "0: (20)"
    assert "steps_schedule" not in s.ignored


def test_seed_schedule_behaviour_substitutes_s_and_warns_about_random():
    data = a1111_settings() | {"seed_behavior": "schedule"}
    s = parse_settings(data)
    assert s.values["seed_behavior"] == "SCHEDULE"
    assert s.schedules["seed"] == "0:(4242), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(4242)"
    assert any("-1, which Deforum renders with a new random seed" in w for w in s.warnings)


def test_random_seed_minus_one_is_resolved_and_big_seeds_wrap():
    s = parse_settings({"seed": -1})
    seed = int(s.schedules["seed"][4:-1])
    assert 0 <= seed <= SEED_MAX
    assert any(f"seed -1 (random in Deforum) set to {seed}" in w for w in s.warnings)
    s = parse_settings({"seed": 2**32 - 1})
    assert s.schedules["seed"] == f"0: ({SEED_MAX})"
    assert any("wrapped" in w for w in s.warnings)


def test_unknown_seed_behavior_and_bad_prompt_key_warn():
    s = parse_settings({"seed_behavior": "spiral", "prompts": {"0": "a", "one": "b"}})
    assert "seed_behavior" not in s.values
    assert any("seed_behavior 'spiral' is unknown" in w for w in s.warnings)
    assert any("prompt key 'one' is not a frame number" in w for w in s.warnings)
    assert s.prompts == [(0, "a", "")]


def test_prompt_keys_never_run_code():
    s = parse_settings({"prompts": {"__import__('os').getcwd()": "x", "2**3": "y"}, "max_frames": 10})
    assert s.prompts == [(8, "y", "")]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DeforumError) as err:
        read_settings(str(path))
    assert str(path) in str(err.value) and "cannot read" in str(err.value)


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(DeforumError, match="cannot read the Deforum settings file"):
        read_settings(str(tmp_path))


def test_broken_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.txt"
    path.write_text('{\n    "W": 512,\n    "H": 512\n    "seed": 1\n}\n', encoding="utf-8")
    with pytest.raises(DeforumError) as err:
        read_settings(str(path))
    message = str(err.value)
    assert message.startswith(str(path)) and "not valid JSON at line 4, column 5" in message


def test_list_instead_of_object(tmp_path):
    with pytest.raises(DeforumError) as err:
        read_settings(write_json(tmp_path, [{"W": 512}]))
    assert "expected a JSON object of Deforum settings, got a list" in str(err.value)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"W": "abc"}, "'W' must be a whole number, got 'abc'"),
        ({"W": 512.5}, "'W' must be a whole number, got 512.5"),
        ({"H": True}, "'H' must be a whole number, got True"),
        ({"max_frames": 0}, "'max_frames' must be at least 1, got 0"),
        ({"fps": "fast"}, "'fps' must be a number, got 'fast'"),
        ({"fps": 0}, "'fps' must be above 0"),
        ({"zoom": ["1.0"]}, "'zoom' must be a keyframe string"),
        ({"sampler": ["Euler"]}, "'sampler' must be text"),
        ({"prompts": {"0": 5}}, "'prompts' entry '0' must be prompt text"),
        ({"prompts": 12}, "'prompts' must be a dict of frame -> prompt text"),
    ],
)
def test_wrong_types_name_file_and_key(tmp_path, data, message):
    path = write_json(tmp_path, data)
    with pytest.raises(DeforumError) as err:
        read_settings(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_numbers_as_text_are_accepted():
    s = parse_settings({"W": "640", "diffusion_cadence": "4", "zoom": 1.02})
    assert s.values == {"width": 640, "cadence": 4}
    assert s.schedules == {"zoom": "0: (1.02)"}


def round_trip_inputs():
    values = {
        "width": 640, "height": 384, "seed_behavior": "ITER", "seed_iter_n": 2, "scheduler": "euler_a",
        "mode": "FEEDBACK", "motion_mode": "3D", "border": "REFLECT", "color_coherence": "NONE", "cadence": 3,
        "negative_prompt": "blurry",
    }
    schedules = {spec.prop: f"0: ({i}), 10: ({i}.5)" for i, spec in enumerate(SCHEDULES)}
    schedules["seed"] = "0: (42)"
    scene = {"fps": 12.5, "frame_count": 48}
    prompts = {"0": "a cat --neg dog", "24": "a fox"}
    return values, schedules, scene, prompts


def test_write_then_parse_round_trips(tmp_path):
    values, schedules, scene, prompts = round_trip_inputs()
    data = write_settings(values, schedules, scene, prompts)
    assert data["W"] == 640 and data["sampler"] == "Euler a" and data["seed"] == 42 and data["max_frames"] == 48
    assert data["animation_mode"] == "3D" and data["seed_behavior"] == "iter" and data["seed_iter_N"] == 2
    s = read_settings(write_json(tmp_path, data))  # through real JSON
    assert s.values == values
    assert s.schedules == schedules
    assert s.scene == scene
    assert s.prompts == [(0, "a cat", "dog blurry"), (24, "a fox", "blurry")]
    assert s.ignored == []
    assert s.warnings == []


def test_round_trip_seed_schedule_and_default_scheduler():
    values = {"seed_behavior": "SCHEDULE", "scheduler": "default", "color_coherence": "LAB"}
    schedules = {"seed": "0: (3), 5: (9)"}
    data = write_settings(values, schedules, {}, {})
    assert "sampler" not in data  # "default" has no Deforum name
    s = parse_settings(data)
    assert s.schedules == schedules
    assert s.values == {"seed_behavior": "SCHEDULE", "color_coherence": "LAB"}


@pytest.mark.parametrize(
    "args, message",
    [
        (({"colour": "LAB"}, {}, {}, {}), "unknown setting 'colour'"),
        (({"border": "MIRROR"}, {}, {}, {}), "border must be one of REPLICATE, WRAP, REFLECT"),
        (({"width": 0}, {}, {}, {}), "width must be a whole number of at least 1"),
        (({}, {"wobble": "0: (1)"}, {}, {}), "'wobble' is not an animatable setting"),
        (({}, {}, {"speed": 2}, {}), "unknown scene setting 'speed'"),
        (({"seed_behavior": "ITER"}, {"seed": "0: (1), 5: (2)"}, {}, {}), "needs a constant seed"),
    ],
)
def test_write_errors(args, message):
    with pytest.raises(DeforumError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_settings(*args)


def test_never_imports_bpy():
    code = "import sys, engine.deforum, engine.seeds; print('bpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(deforum.__file__)))
    assert result.stdout.strip() == "False"


def test_hybrid_video_maps_to_follow_motion():
    s = parse_settings({"animation_mode": "3D", "video_init_path": "walk.mp4", "hybrid_motion": "Perspective",
                        "diffusion_cadence": 3, "optical_flow_cadence": "DIS Medium",
                        "hybrid_flow_method": "RAFT", "hybrid_composite": "Normal",
                        "hybrid_comp_alpha_schedule": "0:(0.3), 10:(0.6)"})
    assert (s.values["mode"], s.values["flow_guide"], s.video_path) == ("VIDEO", True, "walk.mp4")
    assert s.schedules["guide"] == "0:(0.3), 10:(0.6)" and deforum.GUIDE_SPEC.to_ours(0.3) == pytest.approx(0.7)
    said = " | ".join(s.warnings)
    assert "Perspective" in said and "RAFT" in said and "2D/3D motion schedules" in said
    assert "not supported here" not in said and "video_init_path" not in s.ignored
    assert s.values["cadence"] == 3  # optical flow cadence: Follow Motion's in-betweens move along the flow
    # Hybrid motion alone starts each frame from the moved previous image only.
    alone = parse_settings({"animation_mode": "2D", "video_init_path": "walk.mp4", "hybrid_motion": "Optical Flow",
                            "hybrid_composite": "None"})
    assert alone.values["guide"] == 1.0 and "guide" not in alone.schedules
    # Without a video there is nothing to follow: said, and nothing switched.
    lost = parse_settings({"animation_mode": "2D", "hybrid_motion": "Optical Flow", "optical_flow_cadence": "RAFT"})
    assert "flow_guide" not in lost.values and lost.values["mode"] == "FEEDBACK"
    assert any("no video_init_path" in w for w in lost.warnings)
    assert any("optical flow cadence (optical_flow_cadence)" in w for w in lost.warnings)
