"""Even crossfades (settings["pace"], engine/pacing.py): the search on made-up pictures, the plan's side, and the
demo's first two prompts on the embedded model, where one step of an un-paced crossfade carries most of the change."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from engine import pacing, plan as plan_mod
from engine.frames import FrameStore
from engine.modes import get
from engine.renderer import Renderer

# The demo's first two prompts (scripts/demo.py PROMPTS), with the seeds prompt_add gives them (0, 1).
FIRST, SECOND = "a red circle on a blue background", "a yellow square on a black background"
FRAMES = 12


def crossfade_plan(out, frames: int = FRAMES, second: str = SECOND, steps: int = 20, ease=lambda t: t,
                   **settings) -> dict:
    records = []
    for i in range(frames):
        t = ease(i / (frames - 1))
        prompts = [{"text": FIRST, "negative": "", "weight": 1 - t, "seed": 0},
                   {"text": second, "negative": "", "weight": t, "seed": 1}]
        records.append({"frame": i + 1, "prompts": [p for p in prompts if p["weight"] > 0], "seed": 0,
                        "steps": steps, "guidance": 6.0})
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "INTERPOLATE", "model": "embedded:shapes", "width": 64, "height": 64,
                     "output_dir": str(out), "batch_size": 4, **settings},
        "frames": records,
    })


def differences(folder, frames: int = FRAMES) -> list[float]:
    store = FrameStore(str(folder))
    images = [np.asarray(store.read(f))[..., :3].astype(float) for f in range(1, frames + 1)]
    return [float(np.abs(a - b).mean()) for a, b in zip(images, images[1:])]


# -- the search on made-up pictures ---------------------------------------------------------------------------------

def flip(t: float) -> np.ndarray:
    """A grey level that holds, then flips within 0.002 around t = 0.45: a crossfade's worst case."""
    level = 127.5 * (1 + np.tanh((t - 0.45) / 0.001))
    return np.full((8, 8, 3), level, dtype=np.uint8)


def test_search_evens_out_a_sudden_flip():
    curve = pacing.search(lambda ts: [flip(t) for t in ts])
    positions = [curve.position(i / 11) for i in range(12)]
    steps = [pacing.distance(pacing.small(flip(a)), pacing.small(flip(b))) for a, b in zip(positions, positions[1:])]
    assert positions[0] == 0.0 and positions[-1] == 1.0
    assert all(a < b for a, b in zip(positions, positions[1:]))
    assert max(steps) < 2 * min(steps)  # un-paced, 10 of the 11 steps are ~0 and one is 255
    assert len(curve.ts) <= pacing.MAX_CANDIDATES
    # An eased weight curve: the change per frame follows the ease (in proportion to each step of keyed progress).
    keyed = [3 * x * x - 2 * x ** 3 for x in (i / 11 for i in range(12))]
    positions = [curve.position(p) for p in keyed]
    steps = [pacing.distance(pacing.small(flip(a)), pacing.small(flip(b))) for a, b in zip(positions, positions[1:])]
    per_progress = [s / (b - a) for s, a, b in zip(steps, keyed, keyed[1:])]
    assert max(per_progress) < 1.5 * min(per_progress)


def test_position_follows_the_keyed_progress():
    curve = pacing.Curve([0.0, 0.5, 1.0], [30.0, 10.0])  # three quarters of the change in the first half
    assert curve.position(0.0) == 0.0 and curve.position(1.0) == 1.0
    assert curve.position(0.75) == pytest.approx(0.5)
    assert curve.position(0.375) == pytest.approx(0.25)
    assert pacing.Curve([0.0, 1.0], [0.0]).position(0.3) == 0.3  # nothing changes: keyed as is


def test_runs_are_the_frames_between_two_keys():
    plan = crossfade_plan("/tmp/unused", frames=5)
    extra = {"frame": 6, "prompts": [{"text": SECOND, "weight": 0.5, "seed": 1},
                                     {"text": "a green triangle on a white background", "weight": 0.5, "seed": 2}],
             "seed": 0, "steps": 20, "guidance": 6.0}
    runs = pacing.runs([*plan["frames"], extra])
    assert [[r["frame"] for r in run] for run in runs] == [[2, 3, 4], [6]]
    assert pacing.run_frames([*plan["frames"], extra], [3]) == [2, 3, 4]
    moved = pacing.at(plan["frames"][1], 0.9)
    assert [p["weight"] for p in moved["prompts"]] == pytest.approx([0.1, 0.9])
    assert [p["text"] for p in pacing.at(plan["frames"][1], 1.0)["prompts"]] == [SECOND]


# -- the plan -------------------------------------------------------------------------------------------------------

def test_pace_is_a_checked_setting_in_the_hashes_of_interpolate_frames():
    plain = crossfade_plan("/tmp/x")
    paced = crossfade_plan("/tmp/x", pace=True)
    with pytest.raises(plan_mod.PlanError, match="'pace' must be true or false"):
        crossfade_plan("/tmp/x", pace=1)
    assert plan_mod.frame_hashes(plain["settings"], plain["frames"]) != \
        plan_mod.frame_hashes(paced["settings"], paced["frames"])
    off = crossfade_plan("/tmp/x", pace=False)
    assert plan_mod.frame_hashes(plain["settings"], plain["frames"]) == \
        plan_mod.frame_hashes(off["settings"], off["frames"])  # frames rendered before the option stay current


def test_distributed_units_carry_whole_runs():
    plan = crossfade_plan("/tmp/x", pace=True)
    mode = get("INTERPOLATE")
    units = mode.units(plan, plan["frames"][4:8], plan["frames"])
    assert units == [(list(range(2, 12)), (5, 8))]


# -- the demo's first two prompts on the embedded model --------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The crossfade rendered un-paced and paced (20 steps, guidance 6), with the paced render's candidate count."""
    renderer = Renderer()
    plain = tmp_path_factory.mktemp("plain")
    paced = tmp_path_factory.mktemp("paced")
    renderer.render(crossfade_plan(plain), None, lambda e: None)
    drawn = []
    search = pacing.search

    def counted(draw, share=pacing.SHARE):
        return search(lambda ts: drawn.append(len(ts)) or draw(ts), share)

    pacing.search = counted
    try:
        renderer.render(crossfade_plan(paced, pace=True), None, lambda e: None)
    finally:
        pacing.search = search
    return renderer, plain, paced, sum(drawn)


def test_paced_crossfade_changes_evenly(rendered):
    _, plain, paced, drawn = rendered
    before, after = differences(plain), differences(paced)
    assert max(before) > 10 * np.median(before)  # the figure: one step 13x the median
    assert max(after) <= 3 * np.median(after), [round(d, 1) for d in after]
    assert drawn > 0


def test_keys_are_the_unpaced_keys(rendered):
    _, plain, paced, _ = rendered
    a, b = FrameStore(str(plain)), FrameStore(str(paced))
    for frame in (1, FRAMES):
        assert np.array_equal(np.asarray(a.read(frame)), np.asarray(b.read(frame)))


def test_positions_are_cached_and_a_changed_prompt_searches_again(rendered, monkeypatch):
    renderer, _, paced, _ = rendered
    store = FrameStore(str(paced))
    before = {f: np.asarray(store.read(f)) for f in range(1, FRAMES + 1)}
    searched = []
    monkeypatch.setattr(pacing, "search", lambda draw, share: searched.append(1) or pacing.Curve([0.0, 1.0], [1.0]))
    # Frames 5-8 again, from the cached curve: no search, the same pixels.
    for f in range(5, 9):
        os.remove(store.path(f))
    renderer.render(crossfade_plan(paced, pace=True), None, lambda e: None, threading.Event())
    assert searched == []
    store = FrameStore(str(paced))
    for f in range(5, 9):
        assert np.array_equal(np.asarray(store.read(f)), before[f])
    # Another second prompt: another curve (and frames 2-12 re-render).
    renderer.render(crossfade_plan(paced, pace=True, second="a green triangle on a white background"), (1, 3),
                    lambda e: None)
    assert searched == [1]
    assert len(pacing._read_cache(str(paced))) == 2
