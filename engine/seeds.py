"""Per-frame seeds from a seed behaviour (Deforum's ``seed_behavior``).

``seed_sequence(behavior, base, count)`` gives the seed of each of ``count`` frames, index 0 being the first frame
of the scene. Like Deforum, the FIRST frame always renders with ``base`` itself and the seed advances after each
frame (Deforum calls ``next_seed`` at the end of its render loop), so with base 5:

=========  ==========================================  ===========================================
behaviour  rule for frame i                            base 5, frames 0..7
=========  ==========================================  ===========================================
FIXED      base                                        5 5 5 5 5 5 5 5
ITER       base + ceil(i / N)   (N = ``iter_n``)       N=1: 5 6 7 8 9 10 11 12;  N=3: 5 6 6 6 7 7 7 8
LADDER     +2, -1, +2, -1 ...                          5 7 6 8 7 9 8 10
ALTERNATE  +1, -1, +1, -1 ...                          5 6 5 6 5 6 5 6
RANDOM     i = 0: base; else a hash of (base, i)       5, then values that depend only on (base, i)
SCHEDULE   ``schedule[i]`` (the keyed seed property)   whatever was keyed
=========  ==========================================  ===========================================

ITER with N > 1 follows Deforum's phase exactly: its counter starts at 0 and the seed steps when ``counter % N == 0``
*after* a frame, so the first step comes right after frame 0 and later ones every N frames (5 6 6 6 7 7 7 8, not
5 5 5 6 6 6).

RANDOM: Deforum draws ``random.randint`` after every frame, which is not reproducible. Here frame i >= 1 gets
``int.from_bytes(blake2b(f"{base}:{i}".encode(), digest_size=8).digest(), "big") & SEED_MAX`` with ``base``
already wrapped into range: reproducible from ``base`` alone, the same whatever ``count`` is (a longer run
extends a shorter one), and different for every frame.

Every result is wrapped into Blender's IntProperty range ``[0, SEED_MAX]`` by ``value mod 2**31`` (so one past
``SEED_MAX`` is 0 and Deforum's "-1 = random" wraps to ``SEED_MAX``; resolve -1 before calling if that matters).
Schedule values are truncated to ints first, as Deforum's ``int(seed_schedule_series[i])`` does.

Deforum with ``diffusion_cadence`` > 1 advances the seed once per *diffused* frame, not per output frame: a caller
that mimics that passes the diffused frames' count and maps the k-th diffused frame to index k.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from . import vocabulary as vocab

BEHAVIORS = vocab.names(vocab.SEED_BEHAVIORS)
SEED_MAX = 2**31 - 1  # Blender IntProperty range; results wrap into [0, SEED_MAX]


def wrap_seed(value: int) -> int:
    """``value`` wrapped into ``[0, SEED_MAX]`` (modulo 2**31, so negative values wrap from the top)."""
    return int(value) % (SEED_MAX + 1)


def random_seed(base: int, index: int) -> int:
    """RANDOM's seed for frame ``index`` >= 1: a hash of the wrapped base and the index (see the module notes)."""
    digest = hashlib.blake2b(f"{wrap_seed(base)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & SEED_MAX


def _offset(behavior: str, index: int, iter_n: int) -> int:
    """How far frame ``index``'s seed is from the base, in closed form (Deforum's counter unrolled)."""
    if behavior == "FIXED":
        return 0
    if behavior == "ITER":
        return math.ceil(index / iter_n) if index else 0
    if behavior == "LADDER":
        # Even frames climb by 1 per pair; odd frames sit 2 above the previous even one.
        return index // 2 if index % 2 == 0 else (index + 3) // 2
    if behavior == "ALTERNATE":
        return index % 2
    raise AssertionError(behavior)


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def seed_sequence(
    behavior: str,
    base: int,
    count: int,
    iter_n: int = 1,
    schedule: Sequence[int] | None = None,
) -> list[int]:
    """The seeds of frames 0..count-1 under ``behavior`` (case-insensitive, one of ``BEHAVIORS``).

    ``base`` is the seed of the first frame; ``iter_n`` is ITER's frames per step (>= 1); ``schedule`` is required
    for SCHEDULE and must hold exactly ``count`` numbers (ignored otherwise). Raises ValueError on anything else.
    """
    name = str(behavior).upper()
    if name not in BEHAVIORS:
        raise ValueError(f"unknown seed behaviour {behavior!r} (known: {', '.join(BEHAVIORS)})")
    count = _check_int("count", count)
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    iter_n = _check_int("iter_n", iter_n)
    if iter_n < 1:
        raise ValueError(f"iter_n (frames per seed step) must be at least 1, got {iter_n}")
    base = _check_int("base seed", base)

    if name == "SCHEDULE":
        if schedule is None:
            raise ValueError("seed behaviour SCHEDULE needs the per-frame seed schedule")
        values = list(schedule)
        if len(values) != count:
            raise ValueError(f"seed schedule has {len(values)} values for {count} frames")
        return [wrap_seed(_check_int(f"seed schedule[{i}]", v)) for i, v in enumerate(values)]
    if name == "RANDOM":
        return [wrap_seed(base) if i == 0 else random_seed(base, i) for i in range(count)]
    return [wrap_seed(base + _offset(name, i, iter_n)) for i in range(count)]
