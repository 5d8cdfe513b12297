"""Even crossfades (settings["pace"]): re-time interpolate frames so the change from frame to frame follows the keyed
weight curve.

A crossfade between two prompts does not change the picture in proportion to the weights: the model holds one picture
over most of the range and flips to the other within a sliver of it (on the embedded model, between the demo's first two
prompts, one of eleven steps carried half the change). So for each run of frames between two prompt keys we measure
the picture along the interpolation position t (0: the first prompt, 1: the second), as a curve of cumulative change
(the arc length of the frames' path, in mean absolute colour difference), and give each frame the position where that
curve reaches the frame's keyed progress: with a linear weight curve every step changes the picture by the same
amount, with an ease the change eases. The keys themselves are never touched.

The curve is found by bisection: a coarse grid of positions, then every interval that carries more than a small share
of the total change is split, until none does (or the interval is too narrow to split: a true jump). Candidates are
rendered like the frames themselves (same steps, size and decoder), because fewer steps move the flip: on the embedded
model 8 steps put it at t = 0.49 where 20 steps put it at 0.45. Distances are taken on images at most SIDE pixels a
side, which is cheap next to the denoising.

Curves are cached in the output folder (CACHE_FILE), keyed by a hash of everything that shapes them (the model and
settings that decide pixels, the two prompts with their seeds, the frame seed, steps, guidance), so a re-render finds
the same positions without searching and a changed prompt, seed or model searches again.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import plan as plan_mod

VERSION = 1  # of the search below: part of every cache key, so a changed search is not served old curves
CACHE_FILE = "pacing.json"
GRID = 8  # first pass: this many equal intervals of t
# Split an interval while it carries more than this share of the run's total change, or one step's share in a run of
# more steps (within an interval the change is taken as uniform). Measured on the demo's first two prompts: 1/16 (47
# candidates) evens the steps as well as 1/32 (102).
SHARE = 1 / 16
MIN_WIDTH = 2.0 ** -16  # an interval this narrow that still jumps is a jump: splitting it further finds nothing
MAX_CANDIDATES = 256  # a bound on the renders one curve may cost
SIDE = 64  # distances are measured on images scaled down to at most this many pixels a side

# Renders the pictures at these positions of one run's crossfade; returns RGB uint8 arrays.
Draw = Callable[[Sequence[float]], Sequence[np.ndarray]]


@dataclass
class Curve:
    """Sampled positions t (increasing, from 0 to 1) and the change between each neighbouring pair."""

    ts: list[float]
    steps: list[float]

    def position(self, progress: float) -> float:
        """The t where the cumulative change reaches `progress` of the total (0 -> 0, 1 -> 1; monotonic)."""
        if progress <= 0.0:
            return 0.0
        if progress >= 1.0:
            return 1.0
        cumulative = np.concatenate([[0.0], np.cumsum(self.steps)])
        total = float(cumulative[-1])
        if total <= 0.0:  # the picture never changes: nothing to even out
            return progress
        target = progress * total
        i = min(bisect.bisect_right(cumulative.tolist(), target) - 1, len(self.steps) - 1)
        # Within one interval the change is taken as uniform (the search made every interval small).
        inside = (target - cumulative[i]) / self.steps[i] if self.steps[i] > 0 else 0.0
        return float(self.ts[i] + inside * (self.ts[i + 1] - self.ts[i]))

    def to_json(self) -> dict:
        return {"t": self.ts, "d": self.steps}

    @classmethod
    def from_json(cls, data: dict) -> Curve:
        return cls([float(t) for t in data["t"]], [float(d) for d in data["d"]])


def small(image: np.ndarray) -> np.ndarray:
    """The image as float RGB at most SIDE pixels a side (box-averaged: a mean difference barely changes)."""
    image = np.asarray(image, dtype=np.float32)[..., :3]
    factor = max(1, -(-max(image.shape[:2]) // SIDE))
    if factor > 1:
        h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        image = image[:h, :w].reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
    return image


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute colour difference (0-255) of two scaled-down images."""
    return float(np.abs(a - b).mean())


def search(draw: Draw, share: float = SHARE) -> Curve:
    """The change curve of one crossfade, by bisection (see the module doc): no interval wider than MIN_WIDTH
    carries more than `share` of the total change."""
    ts = [i / GRID for i in range(GRID + 1)]
    images = [small(image) for image in draw(ts)]
    steps = [distance(a, b) for a, b in zip(images, images[1:])]
    while len(ts) < MAX_CANDIDATES:
        limit = share * sum(steps)
        split = [i for i, d in enumerate(steps) if d > limit and ts[i + 1] - ts[i] > MIN_WIDTH]
        split = split[:MAX_CANDIDATES - len(ts)]
        if not split:
            break
        middles = [(ts[i] + ts[i + 1]) / 2 for i in split]
        drawn = [small(image) for image in draw(middles)]
        for i, t, image in sorted(zip(split, middles, drawn), reverse=True):  # from the end: indices stay valid
            ts.insert(i + 1, t)
            images.insert(i + 1, image)
            steps[i:i + 1] = [distance(images[i], image), distance(image, images[i + 2])]
    return Curve(ts, steps)


# -- runs of frames between two prompt keys -------------------------------------------------------------------------

def _identity(prompt: dict) -> tuple:
    return (prompt["text"], prompt.get("negative", ""), prompt.get("seed"))


def pair(record: dict) -> tuple | None:
    """The two prompts a frame crossfades (in the record's order), or None for a key (one prompt) or a blend of
    three or more (left as keyed)."""
    active = [p for p in record["prompts"] if p["weight"] > 0]
    if len(active) != 2:
        return None
    return _identity(active[0]), _identity(active[1])


def progress(record: dict) -> float:
    """How far the frame is from the first prompt of its pair towards the second, by the keyed weights (0-1)."""
    first, second = (p["weight"] for p in record["prompts"] if p["weight"] > 0)
    return second / (first + second)


def runs(chain: list[dict]) -> list[list[dict]]:
    """Consecutive frames (in frame order) that crossfade the same two prompts: the frames between two keys."""
    out: list[list[dict]] = []
    last = None
    for record in sorted(chain, key=lambda r: r["frame"]):
        current = pair(record)
        if current is not None and current == last:
            out[-1].append(record)
        elif current is not None:
            out.append([record])
        last = current
    return out


def representative(run: list[dict]) -> dict:
    """The frame whose steps, guidance and seed the run's candidates are drawn with: the one nearest the middle of
    the crossfade (frames whose guidance is keyed differ; one curve per run keeps the search affordable)."""
    return min(run, key=lambda r: (abs(progress(r) - 0.5), r["frame"]))


def at(record: dict, t: float) -> dict:
    """The record at position t of its crossfade: the first prompt weighs 1 - t, the second t (the weights' sum kept);
    a prompt whose weight comes out 0 is left out, so t = 0 and t = 1 draw exactly the keys."""
    active = [p for p in record["prompts"] if p["weight"] > 0]
    total = sum(p["weight"] for p in active)
    weighted = [{**active[0], "weight": total * (1.0 - t)}, {**active[1], "weight": total * t}]
    return {**record, "prompts": [p for p in weighted if p["weight"] > 0]}


def run_share(run: list[dict]) -> float:
    """The finest share of the change one interval of the run's curve may carry (see SHARE)."""
    return min(SHARE, 1 / (len(run) + 1))


def curve_key(settings: dict, record: dict, share: float = SHARE) -> str:
    """A hash of everything that shapes a run's curve: the settings that decide pixels, the two prompts with their
    seeds, and the representative frame's seed, steps and guidance (not its weights); and the search's resolution."""
    base = {**record, "prompts": [{**p, "weight": 0} for p in record["prompts"] if p["weight"] > 0]}
    return plan_mod.frame_hash({**settings, "pace": True}, base) + f"-v{VERSION}-1/{round(1 / share)}"


# -- the cache ------------------------------------------------------------------------------------------------------

def _read_cache(folder: str) -> dict:
    try:
        with open(os.path.join(folder, CACHE_FILE), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # missing or damaged: searched again
        return {}


def _write_cache(folder: str, key: str, curve: Curve, frames: list[int]) -> None:
    """Adds one curve, written atomically; re-read first so curves another process added meanwhile stay."""
    data = _read_cache(folder)
    data[key] = {**curve.to_json(), "frames": frames}
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CACHE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def cached_curve(folder: str, key: str) -> Curve | None:
    entry = _read_cache(folder).get(key)
    try:
        return Curve.from_json(entry) if entry else None
    except (KeyError, TypeError, ValueError):
        return None


# -- the mode's entry point -----------------------------------------------------------------------------------------

def paced(settings: dict, chain: list[dict], todo: list[dict], folder: str,
          draw: Callable[[list[dict], list[int]], Sequence[np.ndarray]]) -> list[dict]:
    """`todo` with each in-between frame moved to its even position. `chain`: every frame of the plan (a run's
    curve needs its representative even when only some of its frames are rendered). `draw(records, frames)`
    renders candidate records, reporting progress as `frames`."""
    wanted = {r["frame"] for r in todo}
    positions: dict[int, float] = {}
    for run in runs(chain):
        frames = [r["frame"] for r in run]
        if not wanted.intersection(frames):
            continue
        middle, share = representative(run), run_share(run)
        key = curve_key(settings, middle, share)
        curve = cached_curve(folder, key)
        if curve is None:
            report = [f for f in frames if f in wanted]
            curve = search(lambda ts: draw([{**at(middle, t), "frame": i} for i, t in enumerate(ts)], report), share)
            _write_cache(folder, key, curve, frames)
        positions.update({r["frame"]: curve.position(progress(r)) for r in run})
    return [at(r, positions[r["frame"]]) if r["frame"] in positions else r for r in todo]


def run_frames(chain: list[dict], frames: Sequence[int]) -> list[int]:
    """The frames of every run that holds one of `frames`, with `frames` (a distributed unit's sub-plan needs whole
    runs to find the same positions)."""
    wanted = set(frames)
    out = set(wanted)
    for run in runs(chain):
        members = {r["frame"] for r in run}
        if members & wanted:
            out |= members
    return sorted(out)
