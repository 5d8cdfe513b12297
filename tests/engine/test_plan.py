"""The plan contract: validation errors name the field and frame; hashes follow what changes pixels."""

import copy
import json
import os

import pytest
from common import make_plan, write_plan

from engine import plan as plan_mod


def test_valid_plan_gets_defaults():
    plan = plan_mod.validate(make_plan("/tmp/x"))
    assert plan["settings"]["scheduler"] == "default"
    assert plan["settings"]["latent_source"] == "PROMPT_SEEDS"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.update(version=99), "unknown plan version 99"),
        (lambda p: p.update(schema="other"), "not a Keyframe Diffusion plan"),
        (lambda p: p["settings"].pop("model"), "settings: missing field 'model'"),
        (lambda p: p["settings"].update(width=60), "'width' must be a multiple of 8"),
        (lambda p: p["settings"].update(mode="DANCE"), "unknown mode 'DANCE'"),
        (lambda p: p["frames"][1].update(guidance="high"), "frames[1] (frame 2): field 'guidance' must be a number"),
        (lambda p: p["frames"][2].pop("steps"), "frames[2] (frame 3): missing field 'steps'"),
        (lambda p: p["frames"][0].update(steps=True), "field 'steps' must be an integer"),
        (lambda p: p["frames"][1].update(prompts=[]), "frames[1] (frame 2): no prompt has weight above zero"),
        (lambda p: p["frames"][1]["prompts"][0].update(weight=-1), "prompts[0]: 'weight' -1 is out of range 0..1e+06"),
        (lambda p: p["frames"][1].update(frame=1), "frame 1 appears twice"),
        (lambda p: p.update(frames=[]), "no 'frames'"),
        (lambda p: p["frames"][0].update(motion={"zoom": "x"}), "frames[0] (frame 1): 'motion.zoom' must be a finite"),
        (lambda p: p["frames"][0].update(image={"noise": float("nan")}), "'image.noise' must be a finite number"),
        (lambda p: p["frames"][0].update(guidance_rescale=None), "field 'guidance_rescale' must be a number"),
    ],
)
def test_bad_plans_say_what_and_where(mutate, message):
    plan = make_plan("/tmp/x")
    mutate(plan)
    with pytest.raises(plan_mod.PlanError) as err:
        plan_mod.validate(plan)
    assert message in str(err.value)


def test_load_reports_json_position(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text('{"schema": "keyframe_diffusion.plan",\n "version": 1,,}')
    with pytest.raises(plan_mod.PlanError, match=r"line 2, column 15"):
        plan_mod.load(path)


def test_load_resolves_relative_output(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(make_plan("frames")))
    assert plan_mod.load(path)["settings"]["output_dir"] == str(tmp_path / "frames")


def test_frame_hash_follows_pixels_not_paths():
    plan = plan_mod.validate(make_plan("/tmp/a"))
    other = copy.deepcopy(plan)
    other["settings"]["output_dir"] = "/tmp/b"
    other["settings"]["batch_size"] = 7
    other["frames"][0]["camera"] = {"lens": 35}
    h = [plan_mod.frame_hash(plan["settings"], r) for r in plan["frames"]]
    assert h == [plan_mod.frame_hash(other["settings"], r) for r in other["frames"]]
    assert len(set(h)) == 3
    other["frames"][1]["guidance"] = 6.0
    assert plan_mod.frame_hash(other["settings"], other["frames"][1]) != h[1]
    other["settings"]["model"] = "some/model"
    assert plan_mod.frame_hash(other["settings"], other["frames"][0]) != h[0]


def test_frame_hash_of_interpolate_ignores_motion_but_not_cfg_rescale():
    plan = plan_mod.validate(make_plan("/tmp/a"))
    record = plan["frames"][0]
    base = plan_mod.frame_hash(plan["settings"], record)
    # Interpolate frames don't use motion or image settings: keying them must not re-render anything.
    moved = {**record, "motion": {"zoom": 1.5}, "image": {"noise": 0.3}, "strength": 0.9}
    assert plan_mod.frame_hash(plan["settings"], moved) == base
    assert plan_mod.frame_hash(plan["settings"], {**record, "guidance_rescale": 0.0}) == base
    assert plan_mod.frame_hash(plan["settings"], {**record, "guidance_rescale": 0.7}) != base


def test_batches_split_where_steps_guidance_or_cfg_rescale_change():
    from engine.modes.interpolate import batches

    records = [{"frame": i, "steps": 2, "guidance": 5.0, "guidance_rescale": 0.0} for i in range(6)]
    records[3]["guidance_rescale"] = 0.5
    records[4]["guidance_rescale"] = 0.5
    assert [[r["frame"] for r in b] for b in batches(records, 4)] == [[0, 1, 2], [3, 4], [5]]


@pytest.mark.parametrize("text, expected", [("1-24", (1, 24)), ("7", (7, 7)), ("-5--1", (-5, -1)), ("3..4", (3, 4))])
def test_frame_ranges(text, expected):
    assert plan_mod.parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["a-b", "5-1", "", "1-2-3"])
def test_bad_frame_ranges(text):
    with pytest.raises(ValueError):
        plan_mod.parse_frame_range(text)


# --- ranges: every number of a plan has bounds, named with its field and frame ------------------------------------

def _control(p):
    p["settings"]["controlnets"] = [{"model": "some/controlnet"}]
    for r in p["frames"]:
        r["control"] = [{"scale": 1.0}]


@pytest.mark.parametrize(
    "mutate, message",
    [
        # The adversarial run's reproducers: each used to run for minutes, allocate gigabytes or render black frames.
        (lambda p: p["settings"].update(width=100000), "settings: 'width' 100000 is out of range 8..8192 (set the "
                                                       "environment variable KD_MAX_SIDE"),
        (lambda p: p["frames"][0].update(steps=10**12), "frames[0] (frame 1): 'steps' 1000000000000 is out of range "
                                                        "1..1000"),
        (lambda p: p["frames"][2].update(seed=2**70), "frames[2] (frame 3): 'seed' 1180591620717411303424 is out of "
                                                      "range 0..18446744073709551615"),
        (lambda p: p["frames"][1].update(guidance=1e308), "frames[1] (frame 2): 'guidance' 1e+308 is out of range "
                                                          "0..100"),
        (lambda p: p["frames"][1].update(frame=10**30), "frames[1] (frame 1000000000000000000000000000000): 'frame' "
                                                        "1000000000000000000000000000000 is out of range "
                                                        "-1048574..1048574"),
        # And every other number.
        (lambda p: p["frames"][0].update(guidance=-1.0), "'guidance' -1 is out of range 0..100"),
        (lambda p: p["frames"][0].update(steps=0), "'steps' 0 is out of range 1..1000"),
        (lambda p: p["frames"][0].update(seed=-1), "'seed' -1 is out of range"),
        (lambda p: p["frames"][0].update(strength=1.5), "frames[0] (frame 1): 'strength' 1.5 is out of range 0..1"),
        (lambda p: p["frames"][0].update(guidance_rescale=2.0), "'guidance_rescale' 2 is out of range 0..1"),
        (lambda p: p["frames"][0]["prompts"][0].update(seed=2**64), "frames[0] (frame 1) prompts[0]: 'seed'"),
        (lambda p: p["frames"][0]["prompts"][0].update(weight=1e300), "prompts[0]: 'weight' 1e+300 is out of range"),
        (lambda p: p["settings"].update(batch_size=10**6), "settings: 'batch_size' 1000000 is out of range 1..256"),
        (lambda p: p["settings"].update(batch_size=0), "'batch_size' 0 is out of range 1..256"),
        (lambda p: p["settings"].update(fps=0), "settings: 'fps' 0 is out of range above 0 and at most 4e+09"),
        (lambda p: p["settings"].update(frame_end=2**40), "'frame_end' 1099511627776 is out of range"),
        (lambda p: p["settings"].update(cadence=0), "settings: 'cadence' 0 is out of range 1..1000"),
        (lambda p: p["settings"].update(coherence_every=5000), "'coherence_every' 5000 is out of range 1..1000"),
        (lambda p: p["settings"].update(plane_distance=0.0), "'plane_distance' 0 is out of range above 0"),
        (lambda p: p["settings"].update(context_length=1), "'context_length' 1 is out of range 2..256"),
        (lambda p: p["settings"].update(mask_blur=-1), "'mask_blur' -1 is out of range 0..1024"),
        (lambda p: p["settings"].update(loras=[{"path": "x.safetensors", "scale": 1e9}]),
         "settings.loras[0]: 'scale' 1e+09 is out of range -100..100"),
        (lambda p: p["settings"].update(upscale={"model": "up", "output_dir": "up", "steps": 10**9}),
         "settings.upscale: 'steps' 1000000000 is out of range 1..1000"),
        (lambda p: p["settings"].update(upscale={"model": "up", "output_dir": "up", "guidance": 1e308}),
         "settings.upscale: 'guidance' 1e+308 is out of range 0..100"),
        (lambda p: p["settings"].update(upscale={"model": "up", "output_dir": "up", "noise_level": 351}),
         "settings.upscale: 'noise_level' 351 is out of range 0..350"),
        (lambda p: (_control(p), p["frames"][1]["control"][0].update(scale=1e30)),
         "frames[1] (frame 2) control[0]: 'scale' 1e+30 is out of range -100..100"),
        (lambda p: (_control(p), p["frames"][1]["control"][0].update(index=-3)),
         "frames[1] (frame 2) control[0]: 'index' -3 is out of range 0..2147483647"),
        (lambda p: p["frames"][0].update(motion={"zoom": 0.0}), "frames[0] (frame 1): 'motion.zoom' 0 is out of range "
                                                               "above 0 and at most 100"),
        (lambda p: p["frames"][0].update(motion={"fov": 180.0}), "'motion.fov' 180 is out of range above 0 and below "
                                                                "180"),
        (lambda p: p["frames"][0].update(motion={"angle": 1e20}), "'motion.angle' 1e+20 is out of range"),
        (lambda p: p["frames"][0].update(motion={"new_key": -1e9}), "'motion.new_key' -1e+09 is out of range"),
        (lambda p: p["frames"][0].update(image={"contrast": -0.5}), "'image.contrast' -0.5 is out of range 0..100"),
        (lambda p: p["frames"][0].update(image={"coherence_alpha": 3}), "'image.coherence_alpha' 3 is out of range"),
        (lambda p: p["frames"][0].update(camera={"name": "Cam", "lens": 0.0}),
         "frames[0] (frame 1) camera: 'lens' 0 is out of range above 0"),
        (lambda p: p["frames"][0].update(camera={"name": "Cam", "shift_x": "left"}),
         "camera: field 'shift_x' must be a number"),
        # Anywhere in the plan, the free-form options too: finite, 64-bit, no NUL, not nested without end.
        (lambda p: p["settings"].update(scheduler_kwargs={"beta_end": float("nan")}),
         "settings: 'scheduler_kwargs.beta_end' must be a finite number, got nan"),
        (lambda p: p["settings"].update(pipeline_kwargs={"eta": [1, 2, float("inf")]}),
         "settings: 'pipeline_kwargs.eta[2]' must be a finite number, got inf"),
        (lambda p: p["settings"].update(scheduler_kwargs={"n": 10**5000}),
         "settings: 'scheduler_kwargs.n' is an integer of about 5001 digits"),
        (lambda p: p["settings"].update(model="embedded:tiny\0"), "settings: 'model' contains a NUL character"),
        (lambda p: p["frames"][2].update(depth="/tmp/d\0.exr"), "frames[2] (frame 3): 'depth' contains a NUL"),
        (lambda p: p["settings"].update(pipeline_kwargs=_nested(100)),
         "settings: 'pipeline_kwargs.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a....' nests objects and lists more "
         "than 64 levels deep"),
    ],
)
def test_numbers_out_of_range_name_the_field_and_frame(mutate, message):
    plan = make_plan("/tmp/x")
    mutate(plan)
    with pytest.raises(plan_mod.PlanError) as err:
        plan_mod.validate(plan)
    assert message in str(err.value)


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_the_limits_admit_everything_blender_lets_a_user_set():
    """The Blender side's hard limits (settings/properties.py, Scene frame range) at their extremes: all accepted."""
    plan = make_plan("/tmp/x", frames=2, mode="FEEDBACK", width=4096, height=4096, batch_size=64, cadence=50,
                     coherence_every=100, context_length=128, context_overlap=127, mask_blur=256,
                     plane_distance=0.001, fps=32767 / 1e-5, frame_start=-1048574, frame_end=1048574,
                     upscale={"model": "up", "output_dir": "up", "steps": 200, "guidance": 20.0, "noise_level": 350})
    plan["frames"][0].update(frame=-1048574, steps=200, seed=2**31 - 1, guidance=20.0, guidance_rescale=1.0,
                             strength=1.0, motion={"zoom": 2.0, "fov": 179.0, "angle": -720.0},
                             image={"noise": 1.0, "contrast": 2.0, "coherence_scale": 1000.0, "coherence_alpha": 1.0,
                                    "color_coherence_amount": 1.0},
                             camera={"name": "Cam", "type": "PERSP", "lens": 5000.0, "sensor_width": 100.0,
                                     "shift_x": -2.0, "clip_start": 1e-6, "clip_end": 3.4e38,
                                     "matrix_world": [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]},
                             mask={"path": "m.png", "select": [0, 32767], "index": 0})
    plan["frames"][1].update(frame=1048574, steps=1, seed=0, guidance=0.0)
    plan_mod.validate(plan)


def test_frame_size_limits_can_be_raised(monkeypatch):
    big = make_plan("/tmp/x", width=16384, height=8192)
    with pytest.raises(plan_mod.PlanError, match=r"'width' 16384 is out of range 8..8192 .*KD_MAX_SIDE"):
        plan_mod.validate(big)
    monkeypatch.setenv("KD_MAX_SIDE", "16384")
    with pytest.raises(plan_mod.PlanError, match=r"16384x8192 is 134217728 pixels, above the limit of 67108864 "
                                                 r"\(set the environment variable KD_MAX_PIXELS"):
        plan_mod.validate(big)
    monkeypatch.setenv("KD_MAX_PIXELS", str(16384 * 8192))
    assert plan_mod.validate(big)["settings"]["width"] == 16384
    monkeypatch.setenv("KD_MAX_PIXELS", str(64 * 32))
    with pytest.raises(plan_mod.PlanError, match="64x64 is 4096 pixels, above the limit of 2048"):
        plan_mod.validate(make_plan("/tmp/x"))
    monkeypatch.setenv("KD_MAX_PIXELS", "lots")
    with pytest.raises(plan_mod.PlanError, match="KD_MAX_PIXELS must be a whole number above 0, got 'lots'"):
        plan_mod.validate(make_plan("/tmp/x"))


@pytest.mark.parametrize("fields, ranges", [
    (plan_mod.SETTINGS_FIELDS, plan_mod.SETTINGS_RANGES), (plan_mod.FRAME_FIELDS, plan_mod.FRAME_RANGES),
    (plan_mod.PROMPT_FIELDS, plan_mod.PROMPT_RANGES), (plan_mod._UPSCALE_FIELDS, plan_mod.UPSCALE_RANGES),
    (plan_mod._CONTROL_FIELDS, plan_mod.CONTROL_RANGES),
])
def test_every_number_of_the_plan_has_a_range(fields, ranges):
    """A numeric field added without bounds is the next 'steps 10^12'; width and height have their own check."""
    numeric = {name for name, (types, _) in fields.items() if int in types or float in types} - {"width", "height"}
    assert numeric == set(ranges)


# --- the loader: every malformed file is a PlanError naming it --------------------------------------------------

def _write(tmp_path, data: bytes, name: str = "plan.json") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _plan_bytes(**settings) -> bytes:
    return json.dumps(make_plan("frames", **settings)).encode()


def test_load_refuses_a_folder(tmp_path):
    with pytest.raises(plan_mod.PlanError, match=rf"{tmp_path} is a folder, not a plan file: give the plan.json"):
        plan_mod.load(tmp_path)


def test_load_names_the_line_and_column_of_bytes_that_are_not_utf8(tmp_path):
    data = _plan_bytes().replace(b'"a red circle"', b'"a red \xff circle"', 1)
    data = data.replace(b', "settings"', b',\n "settings"', 1)
    with pytest.raises(plan_mod.PlanError, match=r"plan.json is not UTF-8 text: line 2, column \d+ \(byte \d+\)"):
        plan_mod.load(_write(tmp_path, data))
    # A byte order mark is not an error.
    assert plan_mod.load(_write(tmp_path, b"\xef\xbb\xbf" + _plan_bytes()))["settings"]["width"] == 64


def test_load_names_the_field_of_a_5000_digit_integer(tmp_path):
    data = _plan_bytes().replace(b'"seed": 0', b'"seed": ' + b"9" * 5000, 1)
    with pytest.raises(plan_mod.PlanError, match=r"frames\[0\] \(frame 1\): 'seed' is an integer of 5000 digits"):
        plan_mod.load(_write(tmp_path, data))
    data = _plan_bytes().replace(b'"version": 1', b'"version": ' + b"1" * 5000, 1)
    with pytest.raises(plan_mod.PlanError, match="unknown plan version an integer of 5000 digits"):
        plan_mod.load(_write(tmp_path, data))


def test_load_refuses_deep_nesting_without_a_traceback(tmp_path):
    deep = b'{"schema": "keyframe_diffusion.plan", "version": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(plan_mod.PlanError, match=r"plan.json nests objects and lists too deeply to read"):
        plan_mod.load(_write(tmp_path, deep))
    nested = make_plan("frames", scheduler_kwargs=_nested(500))
    with pytest.raises(plan_mod.PlanError, match=r"settings: 'scheduler_kwargs\.a\.a.* more than 64 levels deep"):
        plan_mod.load(_write(tmp_path, json.dumps(nested).encode()))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_load_refuses_numbers_json_reads_as_not_finite(tmp_path, literal):
    data = _plan_bytes().replace(b'"guidance": 5.0', b'"guidance": ' + literal, 1)
    with pytest.raises(plan_mod.PlanError, match=r"frames\[0\] \(frame 1\): 'guidance' must be a finite number"):
        plan_mod.load(_write(tmp_path, data))


def test_load_names_an_unreadable_file(tmp_path):
    path = _write(tmp_path, _plan_bytes())
    os.chmod(path, 0)
    try:
        # Root reads any file whatever its mode; a file whose reading fails for everyone stands in there.
        unreadable = path if not os.access(path, os.R_OK) else "/proc/self/mem"
        with pytest.raises(plan_mod.PlanError, match=r"can't read the plan file .*(plan.json: Permission denied|"
                                                     r"mem: Input/output error)"):
            plan_mod.load(unreadable)
    finally:
        os.chmod(path, 0o600)


# --- trust: a plan writes only into the folder it was baked for -------------------------------------------------

UPSCALE = {"model": "up", "output_dir": "upscaled"}


def test_a_plan_baked_into_its_output_folder_loads_as_before(tmp_path):
    """What the bake writes: output_dir/plan.json with output_dir absolute and the upscale folder inside it."""
    out = tmp_path / "frames"
    out.mkdir()
    path = write_plan(out / "plan.json", make_plan(str(out), upscale={**UPSCALE, "output_dir": str(out / "up")}))
    plan = plan_mod.load(path)
    assert plan["settings"]["output_dir"] == str(out)
    assert plan["settings"]["upscale"]["output_dir"] == str(out / "up")


@pytest.mark.parametrize("output, upscale", [
    ("/tmp/elsewhere", "upscaled"), ("../escape", "upscaled"), ("frames", "/tmp/elsewhere/up"),
    ("frames", "../../up"),
])
def test_a_plan_may_not_write_outside_its_folder(tmp_path, output, upscale):
    folder = tmp_path / "downloads"
    folder.mkdir()
    path = write_plan(folder / "plan.json", make_plan(output, upscale={**UPSCALE, "output_dir": upscale}))
    with pytest.raises(plan_mod.PlanError) as err:
        plan_mod.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: settings.")
    assert f"lies outside the folder holding the plan ({folder})" in message
    assert "--output DIR" in message and "--trust-output" in message
    # The user's explicit choices: a folder of theirs, or trusting the plan.
    chosen = plan_mod.load(path, output=str(tmp_path / "mine"))
    assert chosen["settings"]["output_dir"] == str(tmp_path / "mine")
    assert chosen["settings"]["upscale"]["output_dir"].startswith(str(tmp_path / "mine") + os.sep)
    trusted = plan_mod.load(path, trust_output=True)
    assert trusted["settings"]["output_dir"] == os.path.normpath(os.path.join(folder, output))


def test_a_link_inside_the_plan_folder_that_points_out_is_outside(tmp_path):
    folder, target = tmp_path / "plan", tmp_path / "target"
    folder.mkdir()
    target.mkdir()
    os.symlink(target, folder / "frames")
    path = write_plan(folder / "plan.json", make_plan("frames"))
    with pytest.raises(plan_mod.PlanError, match="lies outside the folder holding the plan"):
        plan_mod.load(path)


def test_output_keeps_the_upscale_folder_below_the_frames(tmp_path):
    path = write_plan(tmp_path / "plan.json", make_plan("frames", upscale={**UPSCALE, "output_dir": "frames/big"}))
    plan = plan_mod.load(path, output=str(tmp_path / "mine"))
    assert plan["settings"]["upscale"]["output_dir"] == str(tmp_path / "mine" / "big")


# --- the command line: the plan's errors, and every error of the engine, as one line and exit 2 ------------------

def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("command", ["render", "upscale"])
def test_cli_refuses_a_plan_writing_elsewhere_and_honours_the_flags(tmp_path, capsys, monkeypatch, command):
    from engine import renderer
    from engine.__main__ import main

    path = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path.parent / "elsewhere")))
    assert main([command, path]) == 2
    assert "lies outside the folder holding the plan" in _one_error_line(capsys)
    seen = []

    def work(self, plan, frame_range, emit, cancel):
        seen.append(plan["settings"]["output_dir"])
        return {"cancelled": False}

    monkeypatch.setattr(renderer.Renderer, command, work)
    assert main([command, path, "--output", str(tmp_path / "mine")]) == 0
    assert main([command, path, "--trust-output"]) == 0
    assert seen == [str(tmp_path / "mine"), str(tmp_path.parent / "elsewhere")]


@pytest.mark.parametrize("data, message", [
    (None, "is a folder, not a plan file"),
    (b"\xff\xfe{}", "is not UTF-8 text: line 1, column 1"),
    (b'{"a": ' + b"[" * 100_000, "nests objects and lists too deeply"),
    (b'{"version": ' + b"7" * 5000 + b', "schema": "keyframe_diffusion.plan"}', "an integer of 5000 digits"),
])
def test_cli_says_what_is_wrong_with_a_plan_file_in_one_line(tmp_path, capsys, data, message):
    from engine.__main__ import main

    path = str(tmp_path) if data is None else _write(tmp_path, data)
    assert main(["render", path]) == 2
    assert message in _one_error_line(capsys)


def _failures():
    import errno

    import torch

    from engine.errors import DiskFullError

    return [
        (MemoryError(), "error: out of memory: MemoryError. Render smaller frames or a smaller batch_size"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
                                "79 GiB\nof which 1 GiB is free."),
         "error: out of memory: CUDA out of memory. Tried to allocate 20.00 GiB."),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory: you tried "
                      "to allocate 7696581394432 bytes."), "error: out of memory: [enforce fail"),
        (OSError(errno.ENOSPC, "No space left on device", "/out/frame_000001.png"),
         "error: No space left on device: /out/frame_000001.png"),
        (FileNotFoundError("image file not found: /in/init_0001.png"),
         "error: image file not found: /in/init_0001.png"),
        (DiskFullError("the disk holding /out is full: 12 MB more are needed"), "error: the disk holding /out is full"),
    ]


@pytest.mark.parametrize("index", range(6))
def test_cli_reports_a_failing_render_in_one_line(tmp_path, capsys, monkeypatch, index):
    from engine import renderer
    from engine.__main__ import main

    error, line = _failures()[index]

    def fail(self, plan, frame_range, emit, cancel):
        raise error

    monkeypatch.setattr(renderer.Renderer, "render", fail)
    path = write_plan(tmp_path / "plan.json", make_plan("frames"))
    assert main(["render", path]) == 2
    assert _one_error_line(capsys).startswith(line)


def test_cli_keeps_the_traceback_of_a_bug(tmp_path, monkeypatch):
    """A bug (not the user's to fix) is reported with its traceback: that is what a bug report needs."""
    from engine import renderer
    from engine.__main__ import error_line, main

    def fail(self, plan, frame_range, emit, cancel):
        raise KeyError("settings")

    monkeypatch.setattr(renderer.Renderer, "render", fail)
    with pytest.raises(KeyError):
        main(["render", write_plan(tmp_path / "plan.json", make_plan("frames"))])
    assert error_line(TypeError("x")) is None and error_line(RuntimeError("CUDA error: device-side assert")) is None
