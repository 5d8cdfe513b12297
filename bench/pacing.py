"""Even Pace's cost and effect: the demo's first two prompts crossfaded over 12 frames (embedded:shapes, 64x64, 20
steps, guidance 6, linear weights, the prompt seeds prompt_add gives: 0 and 1), rendered un-paced and paced, each into
a fresh folder after a warm-up. Prints one JSON line: seconds of the un-paced render, of the paced render and of the search
inside it (candidates drawn, bisection rounds), of a paced re-render of every frame from the cached curve, and the
consecutive frames' mean absolute colour difference (0-255) before and after with each list's max/median.

    .venv/bin/python bench/pacing.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from engine import pacing, plan as plan_mod  # noqa: E402
from engine.frames import FrameStore  # noqa: E402
from engine.renderer import Renderer  # noqa: E402
from scripts.demo import PROMPTS  # noqa: E402

FRAMES, STEPS, GUIDANCE = 12, 20, 6.0


def crossfade(out: str, pace: bool) -> dict:
    records = []
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        prompts = [{"text": PROMPTS[0], "negative": "", "weight": 1 - t, "seed": 0},
                   {"text": PROMPTS[1], "negative": "", "weight": t, "seed": 1}]
        records.append({"frame": i + 1, "prompts": [p for p in prompts if p["weight"] > 0], "seed": 0,
                        "steps": STEPS, "guidance": GUIDANCE})
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "INTERPOLATE", "model": "embedded:shapes", "width": 64, "height": 64,
                     "output_dir": out, "batch_size": 4, "pace": pace},
        "frames": records})


def differences(folder: str) -> list[float]:
    store = FrameStore(folder)
    images = [np.asarray(store.read(f))[..., :3].astype(float) for f in range(1, FRAMES + 1)]
    return [round(float(np.abs(a - b).mean()), 1) for a, b in zip(images, images[1:])]


def ratio(values: list[float]) -> float:
    return round(max(values) / statistics.median(values), 2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    renderer = Renderer()
    scratch = tempfile.mkdtemp(prefix="kd-bench-pacing-")
    spent = {"search": 0.0, "candidates": 0, "rounds": 0}
    search = pacing.search

    def timed(draw, share=pacing.SHARE):
        def counted(ts):
            spent["candidates"] += len(ts)
            spent["rounds"] += 1
            return draw(ts)

        start = time.perf_counter()
        try:
            return search(counted, share)
        finally:
            spent["search"] += time.perf_counter() - start

    pacing.search = timed

    def render(name: str, pace: bool) -> tuple[float, str]:
        out = os.path.join(scratch, name)
        start = time.perf_counter()
        renderer.render(crossfade(out, pace), None, lambda e: None)
        return time.perf_counter() - start, out

    render("warm-up", False)
    runs = []
    for n in range(args.repeat):
        spent.update(search=0.0, candidates=0, rounds=0)
        plain, plain_dir = render(f"{n}-plain", False)
        paced, paced_dir = render(f"{n}-paced", True)
        found = dict(spent)
        for f in range(1, FRAMES + 1):  # every frame again, the curve from pacing.json
            os.remove(FrameStore(paced_dir).path(f))
        spent.update(search=0.0, candidates=0)
        cached, _ = render(f"{n}-paced", True)
        runs.append({"plain_s": round(plain, 2), "paced_s": round(paced, 2), "search_s": round(found["search"], 2),
                     "candidates": found["candidates"], "rounds": found["rounds"],
                     "paced_from_cache_s": round(cached, 2), "cache_candidates": spent["candidates"],
                     "before": differences(plain_dir), "after": differences(paced_dir)})
    shutil.rmtree(scratch, ignore_errors=True)
    first = runs[0]
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "plain_s": [r["plain_s"] for r in runs], "paced_s": [r["paced_s"] for r in runs],
        "search_s": [r["search_s"] for r in runs], "paced_from_cache_s": [r["paced_from_cache_s"] for r in runs],
        "candidates": first["candidates"], "rounds": first["rounds"], "cache_candidates": first["cache_candidates"],
        "before": first["before"], "before_max_over_median": ratio(first["before"]),
        "after": first["after"], "after_max_over_median": ratio(first["after"]),
        "same_frames_every_run": all(r["after"] == first["after"] and r["before"] == first["before"] for r in runs),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
