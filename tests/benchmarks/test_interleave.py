"""bench/interleave.py: the comparison protocol every speed comparison runs on (alternating rounds, per-round ratios,
median and spread, more rounds while the spread is wide, verdicts against a goal)."""

import itertools

import pytest

from bench.interleave import interleave, order, summarise


def test_rounds_alternate_so_no_side_always_goes_first():
    assert [order(["a", "b"], r) for r in range(4)] == [["a", "b"], ["b", "a"], ["b", "a"], ["a", "b"]]
    three = [tuple(order(["a", "b", "c"], r)) for r in range(6)]
    assert sorted(three) == sorted(itertools.permutations("abc"))  # every running order once in six rounds


def test_ratios_are_taken_within_a_round_so_a_slow_spell_cancels():
    """The machine slows 10x in round 3 for both sides alike: the per-round ratios stay 2, where a block of A runs
    and then a block of B runs would read anything."""
    ran = []
    spell = {2: 10.0}

    def side(seconds):
        def run(index):
            ran.append((index, seconds))
            return seconds * spell.get(index, 1.0)
        return run

    result = interleave({"engine": side(1.0), "plain": side(2.0)}, baseline="plain", rounds=5)
    engine = result["ratios"]["engine over plain"]
    assert engine["median"] == engine["min"] == engine["max"] == 2.0 and engine["rounds"] == 5
    assert not engine["wide"] and engine["spread"] == 0.0
    assert [i for i, _ in ran[:2]] == [-1, -1]  # one untimed warm-up of each side first
    assert result["seconds"]["plain"][2] == 20.0  # the spell is in the figures, not in the ratio


def test_a_wide_spread_runs_more_rounds_and_then_says_so():
    noisy = iter([1.0, 3.0] * 20)  # the engine's times swing 3x from round to round
    calls = {"engine": 0}

    def engine(index):
        if index < 0:
            return 1.0
        calls["engine"] += 1
        return next(noisy)

    result = interleave({"engine": engine, "plain": lambda i: 2.0}, baseline="plain", rounds=5, max_rounds=9,
                        goals={"engine over plain": 1.5})
    summary = result["ratios"]["engine over plain"]
    assert calls["engine"] == 9 and summary["rounds"] == 9  # kept going to max_rounds
    assert summary["wide"] and summary["verdict"] == "inconclusive"


def test_verdicts_against_a_goal():
    assert summarise([2.1, 2.2, 2.3, 2.2, 2.4], goal=2.0)["verdict"] == "meets"
    assert summarise([1.6, 1.7, 1.8, 1.7, 1.75], goal=2.0)["verdict"] == "short"
    straddling = summarise([1.8, 1.9, 2.0, 2.1, 2.2], goal=2.0)
    assert straddling["verdict"] == "inconclusive" and straddling["median"] == 2.0
    assert straddling["q1"] == pytest.approx(1.9) and straddling["q3"] == pytest.approx(2.1)
    assert "verdict" not in summarise([1.0, 1.1])


def test_bad_calls_say_what_is_wrong():
    with pytest.raises(ValueError, match="baseline 'sdv' is not one of the sides"):
        interleave({"a": lambda i: 1.0, "b": lambda i: 1.0}, baseline="sdv")
    with pytest.raises(ValueError, match="two sides or more"):
        interleave({"a": lambda i: 1.0}, baseline="a")
    with pytest.raises(ValueError, match=r"comparisons name \['sdv'\], not among the sides"):
        interleave({"a": lambda i: 1.0, "b": lambda i: 1.0}, comparisons=[("a", "sdv")])


def test_any_two_sides_compare_from_the_same_rounds():
    times = {"engine": 1.0, "plain": 2.0, "sdv": 1.5}
    result = interleave({n: (lambda i, t=t: t) for n, t in times.items()},
                        comparisons=[("engine", "plain"), ("engine", "sdv")], goals={"engine over sdv": 1.5})
    assert result["ratios"]["engine over plain"]["median"] == 2.0
    sdv = result["ratios"]["engine over sdv"]
    assert sdv["median"] == 1.5 and sdv["verdict"] == "meets" and set(result["ratios"]) == {"engine over plain",
                                                                                           "engine over sdv"}
    with pytest.raises(ValueError, match="no ratios"):
        summarise([])
