"""True-flow cadence: the frames between two diffused keys, made by moving both keys along the motion.

Between keys a and b (a < b), frame j is the earlier key brought forward and the later key brought back, each along
the flow composed over the frames between (engine/flow.py's convention: a backward flow points from a frame to the
one before it, a forward flow to the one after), blended by distance (the later key weighs (j - a) / (b - a)), each
only where it is visible; a pixel neither key sees (revealed by both, or come in from outside) is the frame's input.

Flows are composed, not the pictures warped frame after frame: one bilinear resampling of each key instead of one
per frame keeps the in-betweens as sharp as the keys. Visibility is forward-backward consistency of the composed
flows (from j to the key and from the key back to j), so a pixel hidden on the way is caught as well as one hidden
at the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .flow import visible_mask, warp_previous
from .image_ops import round_clip

Flow = np.ndarray  # (H, W, 2) float32, pixels, engine/flow.py's convention


def _then(first: Flow, second: Flow) -> Flow:
    """Follow `first`, then `second` from where it landed: (first + second sampled at x + first)."""
    return first + warp_previous(second, first)


def compose(flows: list[Flow]) -> list[Flow]:
    """Running compositions of a path of flows: out[k] follows flows[0], then flows[1], ..., then flows[k]. Each
    flows[i] is sampled where the ones before it led, so for backward flows of frames j, j-1, ... (in that order) out[k]
    is frame j's flow to frame j-k-1."""
    out: list[Flow] = []
    for flow in flows:
        flow = flow.astype(np.float32)
        # Extending a path at its far end: the new step is sampled where the path so far arrived.
        out.append(flow if not out else _then(out[-1], flow))
    return out


@dataclass
class Reach:
    """How a frame sees one key: its flow to the key (sample the key at x + flow) and where that is visible."""

    flow: Flow
    visible: np.ndarray  # (H, W) bool

    def bring(self, key: np.ndarray) -> np.ndarray:
        """The key moved to this frame (float32)."""
        return warp_previous(key.astype(np.float32), self.flow)


@dataclass
class Span:
    """The flows between keys a and b (a < b): backward[i] is frame a+1+i's backward flow (to the frame before),
    forward[i] frame a+i's forward flow (to the frame after); both have b - a entries."""

    backward: list[Flow]
    forward: list[Flow]

    def __post_init__(self) -> None:
        if len(self.backward) != len(self.forward) or not self.backward:
            raise ValueError(f"a span needs as many backward as forward flows (at least one): got "
                             f"{len(self.backward)} and {len(self.forward)}")

    @property
    def length(self) -> int:
        return len(self.backward)

    def to_earlier(self) -> dict[int, Reach]:
        """Every frame's Reach to key a, by offset 1..b-a (the last is key b's: its guided init). Frame a+k's path
        down to a is its own backward flow, then frame a+k-1's path, sampled where that first step lands (_then), so
        each frame costs a few warps; it is checked against key a's forward path up to a+k (compose extends)."""
        out, down = {}, None
        up = compose(self.forward)  # up[k-1]: key a's flow to frame a+k
        for k in range(1, self.length + 1):
            step = self.backward[k - 1].astype(np.float32)
            down = step if down is None else _then(step, down)
            out[k] = Reach(down, visible_mask(down, up[k - 1]))
        return out

    def to_later(self) -> dict[int, Reach]:
        """Every in-between's Reach to key b, by offset 1..b-a-1: as to_earlier, the other way (forward flows up to
        b, checked against key b's backward path down)."""
        n, out, up = self.length, {}, None
        down = compose(self.backward[::-1])  # down[m-1]: key b's flow to frame b-m
        for k in range(n - 1, 0, -1):
            step = self.forward[k].astype(np.float32)
            up = step if up is None else _then(step, up)
            out[k] = Reach(up, visible_mask(up, down[n - k - 1]))
        return out


def inbetween(current_input: np.ndarray, early_key: np.ndarray, early: Reach, late_key: np.ndarray, late: Reach,
              weight: float) -> np.ndarray:
    """A frame between two keys: both keys moved to it, blended with the later one weighing `weight` ((j - a) /
    (b - a)) where both are visible, the one that is where only one is, and `current_input` (the frame's own input)
    where neither is. RGB uint8."""
    a, b = early.bring(early_key), late.bring(late_key)
    both = (1.0 - weight) * a + weight * b
    seen_a, seen_b = early.visible[..., None], late.visible[..., None]
    picture = np.where(seen_a & seen_b, both, np.where(seen_a, a, np.where(seen_b, b, current_input)))
    return round_clip(picture)
