"""The benchmarks' comparison protocol: sides run alternately, ratios taken within a round, medians with their spread.

On a shared machine a block of runs of one side and then a block of the other measures the machine's mood as much as
the code (a held-out run read "engine over sdv" as 0.56x and then 6.71x). Here every round runs each side once, in an
order that rotates from round to round (A B, B A, B A, A B ... for two sides: each goes first as often as the other),
all in the same process state after one untimed warm-up run of each side. Each round gives one ratio per comparison
of a side with a reference (reference seconds / side seconds: above 1, the side is faster), and a slow spell hits
both sides of a round alike.

The figure is the median of the per-round ratios; the spread is their interquartile range (and min and max). A
comparison is *wide* when the interquartile range exceeds `WIDE` of the median: then more rounds are run, up to
`max_rounds`, and if it stays wide it is reported as such. Against a goal the verdict is "meets" when even the lower
quartile reaches the goal, "short" when even the upper quartile falls below it, and "inconclusive" otherwise.

    from bench.interleave import interleave
    result = interleave({"engine": run_engine, "plain": run_plain}, baseline="plain",
                        goals={"engine over plain": 2.0})
    result["ratios"]["engine over plain"]["median"]  # plain's seconds / the engine's, the median over the rounds

Each side is a callable taking the round number and returning the seconds it measured (so a side can exclude its own
setup, such as a fresh output folder).
"""

from __future__ import annotations

import statistics
from typing import Callable

# Interquartile range over median above which a comparison is too noisy to read.
WIDE = 0.25


def quartiles(values: list[float]) -> tuple[float, float]:
    """Lower and upper quartile (linear interpolation between closest ranks, the inclusive method)."""
    if len(values) == 1:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def summarise(ratios: list[float], goal: float | None = None, wide: float = WIDE) -> dict:
    """The median of per-round ratios with its spread, whether the spread is too wide, and the verdict on `goal`."""
    if not ratios:
        raise ValueError("no ratios to summarise")
    median = statistics.median(ratios)
    q1, q3 = quartiles(ratios)
    summary = {"median": round(median, 3), "q1": round(q1, 3), "q3": round(q3, 3), "min": round(min(ratios), 3),
               "max": round(max(ratios), 3), "rounds": len(ratios),
               "spread": round((q3 - q1) / median, 3) if median else float("inf")}
    summary["wide"] = summary["spread"] > wide
    if goal is not None:
        summary["goal"] = goal
        summary["verdict"] = "meets" if q1 >= goal else "short" if q3 < goal else "inconclusive"
    return summary


def order(names: list[str], round_index: int) -> list[str]:
    """The running order of a round: the sides rotated by the round number, and every other round reversed, so each
    side goes first, last and in between equally often (A B, B A for two sides)."""
    shift = round_index // 2 % len(names)
    rotated = names[shift:] + names[:shift]
    return rotated[::-1] if round_index % 2 else rotated


def interleave(sides: dict[str, Callable[[int], float]], baseline: str | None = None,
               comparisons: list[tuple[str, str]] | None = None, rounds: int = 5, max_rounds: int = 11,
               goals: dict[str, float] | None = None, warmup: bool = True, wide: float = WIDE,
               log: Callable[[str], None] | None = None) -> dict:
    """Run `sides` in alternating rounds; return each side's seconds per round and, for each comparison (side,
    reference), the summary of the per-round ratios reference seconds / side seconds under the key "SIDE over
    REFERENCE" (above 1: the side is faster). `baseline` compares every other side with it. At least `rounds` rounds;
    more, up to `max_rounds`, while any comparison's spread is wide. `goals`: the ratio each comparison must reach,
    by its key."""
    if comparisons is None:
        if baseline not in sides:
            raise ValueError(f"baseline {baseline!r} is not one of the sides {sorted(sides)}")
        comparisons = [(name, baseline) for name in sides if name != baseline]
    unknown = {name for pair in comparisons for name in pair} - set(sides)
    if unknown:
        raise ValueError(f"comparisons name {sorted(unknown)}, not among the sides {sorted(sides)}")
    if len(sides) < 2 or not comparisons or rounds < 1 or max_rounds < rounds:
        raise ValueError("interleave needs two sides or more, a comparison, rounds >= 1 and max_rounds >= rounds")
    goals = goals or {}
    names = list(sides)
    if warmup:
        for name in names:
            sides[name](-1)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    result: dict = {}
    index = 0
    while True:
        for name in order(names, index):
            seconds[name].append(float(sides[name](index)))
        index += 1
        result = {f"{side} over {reference}": summarise([r / s for r, s in zip(seconds[reference], seconds[side])],
                                                        goals.get(f"{side} over {reference}"), wide)
                  for side, reference in comparisons}
        if log:
            log(f"round {index}: " + ", ".join(f"{n} {seconds[n][-1]:.3f} s" for n in names))
        if index >= max_rounds or (index >= rounds and not any(r["wide"] for r in result.values())):
            break
    return {"seconds": {n: [round(s, 4) for s in v] for n, v in seconds.items()}, "ratios": result}
