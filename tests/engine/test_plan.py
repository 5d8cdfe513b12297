"""The plan contract: validation errors name the field and frame; hashes follow what changes pixels."""

import copy
import json

import pytest
from common import make_plan

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
        (lambda p: p["frames"][1]["prompts"][0].update(weight=-1), "prompts[0]: 'weight' must not be negative"),
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
