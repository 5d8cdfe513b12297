"""engine.inbetween (true-flow cadence's in-betweens) on motion whose answer is known: composed flows of a pure
translation bring each key to where the frame has it (the wrong direction lands far off), what neither key sees is the
frame's input, a pixel hidden on the way is not visible, and one resampling keeps in-betweens sharper than warping the
key frame after frame."""

from __future__ import annotations

import cv2
import numpy as np
from test_flicker import H, W, interior, panned, texture

from engine.flow import warp_previous
from engine.inbetween import Span, compose, inbetween


def _uniform(dx: float, dy: float = 0.0) -> np.ndarray:
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def _translation(steps: list[tuple[int, int]]) -> Span:
    """The flows of content moving by steps[i] = (dx, dy) from frame i to frame i+1."""
    return Span([_uniform(-dx, -dy) for dx, dy in steps], [_uniform(dx, dy) for dx, dy in steps])


def _error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(interior(a.astype(np.float32)) - interior(b.astype(np.float32))).mean())


def test_composed_flows_add_up_a_translation():
    down = compose([_uniform(-2, 1), _uniform(-3, 0), _uniform(-1, -2)])
    assert [tuple(f[30, 40]) for f in down] == [(-2, 1), (-5, 1), (-6, -1)]


def test_an_inbetween_of_a_translation_lands_where_the_input_has_it():
    picture = texture(3)
    steps = [(2, 1), (3, 0), (1, 1), (2, 0)]  # uneven, diagonal at times
    positions = np.cumsum([(0, 0), *steps], axis=0)
    frames = [panned(picture, int(x), int(y)) for x, y in positions]
    # Keys tinted apart, so each in-between shows which key it came from, and from where.
    early_key = np.clip(frames[0].astype(np.int16) + 20, 0, 255).astype(np.uint8)
    late_key = np.clip(frames[4].astype(np.int16) - 20, 0, 255).astype(np.uint8)
    span = _translation(steps)
    earlier, later = span.to_earlier(), span.to_later()
    backwards = Span(span.forward, span.backward)  # the flows read the wrong way round
    wrong_earlier, wrong_later = backwards.to_earlier(), backwards.to_later()
    for j in (1, 2, 3):
        weight = j / 4
        made = inbetween(frames[j], early_key, earlier[j], late_key, later[j], weight)
        expected = np.clip(frames[j].astype(np.float32) + 20 * (1 - 2 * weight), 0, 255)
        wrong = inbetween(frames[j], early_key, wrong_earlier[j], late_key, wrong_later[j], weight)
        assert _error(made, expected) < 1.0, j
        assert _error(wrong, expected) > 10 * max(_error(made, expected), 0.5), j
    # The key's init (offset 4 from key a) is key a brought all the way.
    assert _error(earlier[4].bring(frames[0]), frames[4]) < 0.5


def test_what_came_in_from_outside_is_taken_from_the_other_key_or_the_input():
    span = _translation([(3, 0)] * 4)  # content moves right: key a has nothing for the left edge at frame 2
    earlier, later = span.to_earlier(), span.to_later()
    assert not earlier[2].visible[:, :6].any() and earlier[2].visible[:, 6:].all()
    assert not later[2].visible[:, -6:].any() and later[2].visible[:, :-6].all()
    frame = inbetween(np.full((H, W, 3), 7, np.uint8), np.full((H, W, 3), 100, np.uint8), earlier[2],
                      np.full((H, W, 3), 200, np.uint8), later[2], 0.5)
    assert (frame[:, :6] == 200).all() and (frame[:, -6:] == 100).all() and (frame[:, 6:-6] == 150).all()


def _square_flows(positions: list[int], width: int = 10) -> Span:
    """A square (rows 20-40) moving along x through `positions` over a still background."""
    backward, forward = [], []
    for t in range(1, len(positions)):
        b, f = np.zeros((H, W, 2), np.float32), np.zeros((H, W, 2), np.float32)
        b[20:40, positions[t]:positions[t] + width, 0] = positions[t - 1] - positions[t]
        f[20:40, positions[t - 1]:positions[t - 1] + width, 0] = positions[t] - positions[t - 1]
        backward.append(b)
        forward.append(f)
    return Span(backward, forward)


def test_background_hidden_at_both_keys_comes_from_the_input():
    # The square goes right and comes back: at frame 2 the background at x 20-26 is behind it in both keys.
    span = _square_flows([20, 23, 26, 23, 20])
    earlier, later = span.to_earlier(), span.to_later()
    hidden = np.zeros((H, W), bool)
    hidden[20:40, 20:26] = True
    assert not earlier[2].visible[hidden].any() and not later[2].visible[hidden].any()
    both = earlier[2].visible & later[2].visible
    assert both[:, :18].all() and both[:, 38:].all()
    current = np.full((H, W, 3), 7, np.uint8)
    frame = inbetween(current, np.full((H, W, 3), 100, np.uint8), earlier[2], np.full((H, W, 3), 200, np.uint8),
                      later[2], 0.5)
    assert (frame[hidden] == 7).all() and (frame[:, :18] == 150).all()


def test_a_pixel_hidden_on_the_way_is_not_visible():
    # The square moves 30 -> 40 -> 50: at frame 2, x 40-50 is background that the square covered at frame 1, so the
    # path back to key a runs through the square and lands on it (x 30-40 at frame 0): the composed flows disagree
    # there and the pixel is not taken from key a. The square itself (x 50-60) is seen in key a, and so is the rest.
    earlier = _square_flows([30, 40, 50]).to_earlier()
    assert not earlier[2].visible[30, 42:48].any()
    assert earlier[2].visible[30, 52:58].all() and earlier[2].visible[30, 62:].all()
    assert np.allclose(earlier[2].flow[30, 52:58, 0], -20)


def test_one_resampling_is_sharper_than_warping_frame_after_frame():
    picture = cv2.resize(texture(4, W // 2 + 20, H // 2 + 20), (W + 40, H + 40), interpolation=cv2.INTER_CUBIC)
    step = 1.5  # half-pixel steps: every bilinear resampling smooths
    matrix = np.float32([[1, 0, 3 * step], [0, 1, 0]])
    truth = panned(cv2.warpAffine(picture, matrix, picture.shape[1::-1], flags=cv2.INTER_CUBIC), 0)
    key = panned(picture, 0)
    span = _translation([(step, 0)] * 4)
    composed = span.to_earlier()[3].bring(key)
    chained = key.astype(np.float32)
    for flow in span.backward[:3]:
        chained = warp_previous(chained, flow)
    assert _error(composed, truth) < 0.8 * _error(chained, truth)
