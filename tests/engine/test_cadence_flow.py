"""True-flow cadence in flow-guided video mode (engine/modes/guided.py): only every Nth frame and the last are
diffused; an in-between is both keys moved to it along the flow (the earlier forwards, the later back) and blended
by distance, its input where neither key sees it; no tail frame is dropped; a resumed render gives the same frames."""

from __future__ import annotations

import numpy as np
import pytest
from test_flicker import H, W, panned, texture
from test_guided import video_plan

from engine import plan as plan_mod
from engine.inbetween import Reach, Span, inbetween
from engine.renderer import Renderer

FRAMES = 7  # not a multiple of 2, 3 or 4: every cadence has a tail


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    import cv2

    folder = tmp_path_factory.mktemp("inputs")
    picture, paths = texture(5), []
    for t in range(FRAMES):
        paths.append(str(folder / f"in_{t}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(panned(picture, 2 * t), cv2.COLOR_RGB2BGR))
    return paths


def _plan(out, inputs, cadence: int) -> dict:
    plan = video_plan(out, inputs)
    plan["settings"]["cadence"] = cadence
    return plan_mod.validate(plan)


def _square(x: int) -> np.ndarray:
    image = np.zeros((H, W, 3), np.float32)
    image[20:40, x:x + 10] = 255
    return image


def _left_edge(image: np.ndarray) -> int:
    return int(np.argmax(image[30, :, 0] > 127))


def test_an_inbetween_lands_where_the_motion_puts_it():
    backward, forward = np.zeros((H, W, 2), np.float32), np.zeros((H, W, 2), np.float32)
    backward[..., 0], forward[..., 0] = -3.0, 3.0  # content moves 3 pixels right a frame
    span = Span([backward] * 4, [forward] * 4)  # keys at frames 0 and 4
    early, late = span.to_earlier()[2], span.to_later()[2]
    assert _left_edge(early.bring(_square(20))) == 26 and _left_edge(late.bring(_square(32))) == 26
    middle = inbetween(np.zeros((H, W, 3), np.uint8), _square(20), early, _square(32), late, 0.5)
    assert _left_edge(middle) == 26 and middle[30, 26:36, 0].min() == 255
    # Read the wrong way round, the flows put the square 12 pixels off.
    wrong = Span([forward] * 4, [backward] * 4)
    assert _left_edge(wrong.to_earlier()[2].bring(_square(20))) == 14
    # What came in from outside is not visible: the earlier key's left edge, the later key's right edge.
    assert not early.visible[:, :6].any() and early.visible[:, 6:].all()
    assert not late.visible[:, -6:].any() and late.visible[:, :-6].all()


def test_what_neither_key_sees_comes_from_the_input():
    still = np.zeros((H, W, 2), np.float32)
    seen_a, seen_b = np.ones((H, W), bool), np.ones((H, W), bool)
    seen_a[:, :10] = False
    seen_b[:, 5:15] = False
    frame = inbetween(np.full((H, W, 3), 7, np.uint8), np.full((H, W, 3), 100, np.uint8), Reach(still, seen_a),
                      np.full((H, W, 3), 200, np.uint8), Reach(still, seen_b), 0.25)
    assert (frame[:, :5] == 200).all()  # only the later key sees it
    assert (frame[:, 5:10] == 7).all()  # neither: the input
    assert (frame[:, 10:15] == 100).all()  # only the earlier key
    assert (frame[:, 15:] == 125).all()  # both, by distance


@pytest.mark.parametrize("cadence", [2, 4])
def test_only_keys_are_diffused_and_every_frame_is_written(inputs, tmp_path, cadence):
    events = []
    summary = Renderer().render(_plan(tmp_path, inputs, cadence), None, events.append)
    assert summary["rendered"] == FRAMES
    diffused = sorted({f for e in events if e["event"] == "progress" for f in e["frames"]})
    keys = [1 + k for k in plan_mod.cadence_keys(FRAMES, cadence)]
    assert diffused == keys and keys[-1] == FRAMES  # the tail's last frame is a key
    assert all(f is not None for f in frames_in_all(tmp_path))


def frames_in_all(folder) -> list:
    import cv2

    return [cv2.imread(str(folder / f"frame_{n:06d}.png")) for n in range(1, FRAMES + 1)]


def test_a_resumed_cadence_chain_gives_the_same_frames(inputs, tmp_path):
    renderer = Renderer()
    renderer.render(_plan(tmp_path / "whole", inputs, 3), None, lambda e: None)
    parts = _plan(tmp_path / "parts", inputs, 3)
    first = renderer.render(parts, (1, 2), lambda e: None)  # killed after frame 2: an in-between
    assert first["rendered"] == 3  # frames 1-2 and the key after them (frame 4); frame 3 is left for later
    rest = renderer.render(parts, None, lambda e: None)
    assert rest["rendered"] == 4
    for a, b in zip(frames_in_all(tmp_path / "whole"), frames_in_all(tmp_path / "parts")):
        assert np.array_equal(a, b)


class _Killed(Exception):
    """Stands for the process dying: raised from the event callback, it leaves the folder as a kill would."""


def _kill_after_frame_2(event: dict) -> None:
    if event["event"] == "frame" and event["frame"] == 2:
        raise _Killed()


def test_an_inbetween_written_before_a_kill_is_made_again_with_its_key(inputs, tmp_path):
    renderer = Renderer()
    renderer.render(_plan(tmp_path / "whole", inputs, 3), None, lambda e: None)
    parts = _plan(tmp_path / "parts", inputs, 3)
    # Keys are frames 1, 4 and 7; frame 2 is written after key 4 is diffused and before it is written.
    with pytest.raises(_Killed):
        renderer.render(parts, None, _kill_after_frame_2)
    events = []
    rest = renderer.render(parts, None, events.append)
    assert [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]] == [2, 3, 4, 5, 6, 7]
    assert rest["rendered"] == 6
    for a, b in zip(frames_in_all(tmp_path / "whole"), frames_in_all(tmp_path / "parts")):
        assert np.array_equal(a, b)
    # A range after it takes the missing frames before it on (3 and key 4), and the in-between left with the key.
    ranged = _plan(tmp_path / "range", inputs, 3)
    with pytest.raises(_Killed):
        renderer.render(ranged, None, _kill_after_frame_2)
    events = []
    renderer.render(ranged, (5, 6), events.append)
    assert [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]] == [2, 3, 4, 5, 6, 7]


def test_the_cadence_is_hashed_and_in_betweens_follow_the_next_key(inputs, tmp_path):
    every = plan_mod.frame_hashes(_plan(tmp_path, inputs, 1)["settings"], _plan(tmp_path, inputs, 1)["frames"])
    guided = video_plan(tmp_path, inputs)
    assert every == plan_mod.frame_hashes(guided["settings"], guided["frames"])  # cadence 1: hashes as before
    plan = _plan(tmp_path, inputs, 3)
    hashes = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    assert all(hashes[f] != every[f] for f in every)
    plan["frames"][3]["guide"] = 0.3  # the key at frame 4: frames 2-3 (its in-betweens) change, frame 1 does not
    changed = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    assert [hashes[f] == changed[f] for f in range(1, FRAMES + 1)] == [True, False, False, False, False, False,
                                                                        False]
