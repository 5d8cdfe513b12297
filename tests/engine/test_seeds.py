"""Seed behaviours: Deforum's sequences (first frame = the base seed), reproducible RANDOM, wrapping, errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.seeds import BEHAVIORS, SEED_MAX, seed_sequence, wrap_seed


def deforum_next_seed_oracle(behavior: str, seed: int, count: int, iter_n: int = 1) -> list[int]:
    """Deforum's render loop, restated: render with the current seed, then step its counter-based state."""
    out, internal = [], 0
    for _ in range(count):
        out.append(seed)
        if behavior == "ITER":
            seed += 1 if internal % iter_n == 0 else 0
            internal += 1
        elif behavior in ("LADDER", "ALTERNATE"):
            up = 2 if behavior == "LADDER" else 1
            seed += up if internal == 0 else -1
            internal = 1 - internal
    return out


@pytest.mark.parametrize(
    "behavior, iter_n, expected",
    [
        ("FIXED", 1, [5, 5, 5, 5, 5, 5, 5, 5]),
        ("ITER", 1, [5, 6, 7, 8, 9, 10, 11, 12]),
        ("ITER", 3, [5, 6, 6, 6, 7, 7, 7, 8]),  # Deforum's phase: first step right after frame 0
        ("ITER", 2, [5, 6, 6, 7, 7, 8, 8, 9]),
        ("LADDER", 1, [5, 7, 6, 8, 7, 9, 8, 10]),
        ("ALTERNATE", 1, [5, 6, 5, 6, 5, 6, 5, 6]),
    ],
)
def test_documented_sequences(behavior, iter_n, expected):
    assert seed_sequence(behavior, 5, 8, iter_n=iter_n) == expected


@given(st.sampled_from(["FIXED", "ITER", "LADDER", "ALTERNATE"]), st.integers(0, 10**6), st.integers(0, 60),
       st.integers(1, 7))
def test_matches_deforums_stateful_loop(behavior, base, count, iter_n):
    assert seed_sequence(behavior, base, count, iter_n=iter_n) == deforum_next_seed_oracle(behavior, base, count,
                                                                                          iter_n)


def test_behaviour_names_are_case_insensitive():
    assert seed_sequence("iter", 1, 3) == [1, 2, 3]


def test_empty_run():
    assert seed_sequence("ITER", 5, 0) == []


def test_random_is_reproducible_prefix_stable_and_starts_at_base():
    a = seed_sequence("RANDOM", 1234, 20)
    assert a == seed_sequence("RANDOM", 1234, 20)
    assert seed_sequence("RANDOM", 1234, 10) == a[:10]
    assert a[0] == 1234  # Deforum renders frame 0 with the user's seed before drawing random ones
    assert len(set(a)) == 20
    assert all(0 <= s <= SEED_MAX for s in a)
    assert seed_sequence("RANDOM", 1235, 20)[1:] != a[1:]


def test_random_rule_is_the_documented_hash():
    import hashlib

    digest = hashlib.blake2b(b"7:3", digest_size=8).digest()
    assert seed_sequence("RANDOM", 7, 4)[3] == int.from_bytes(digest, "big") & SEED_MAX


def test_wrap_at_seed_max():
    assert seed_sequence("ITER", SEED_MAX - 1, 4) == [SEED_MAX - 1, SEED_MAX, 0, 1]
    assert seed_sequence("LADDER", SEED_MAX, 3) == [SEED_MAX, 1, 0]
    assert seed_sequence("FIXED", -1, 2) == [SEED_MAX, SEED_MAX]
    assert seed_sequence("FIXED", 2**32 - 1, 1) == [SEED_MAX]  # Deforum's random seeds reach 2**32-1
    assert wrap_seed(SEED_MAX + 1) == 0


def test_schedule_passes_through_wrapped_and_truncated():
    assert seed_sequence("SCHEDULE", 99, 4, schedule=[3, 3, 7.9, SEED_MAX + 2]) == [3, 3, 7, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(behavior="ITER", base=1, count=3, iter_n=0), "iter_n (frames per seed step) must be at least 1"),
        (dict(behavior="SPIRAL", base=1, count=3), "unknown seed behaviour 'SPIRAL' (known: " + ", ".join(BEHAVIORS)),
        (dict(behavior="SCHEDULE", base=1, count=3), "SCHEDULE needs the per-frame seed schedule"),
        (dict(behavior="SCHEDULE", base=1, count=3, schedule=[1, 2]), "seed schedule has 2 values for 3 frames"),
        (dict(behavior="SCHEDULE", base=1, count=1, schedule=["x"]), "seed schedule[0] must be a whole number"),
        (dict(behavior="FIXED", base=1, count=-1), "count must not be negative"),
        (dict(behavior="FIXED", base="7", count=1), "base seed must be a whole number"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        seed_sequence(**kwargs)
    assert message in str(err.value)
