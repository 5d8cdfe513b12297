"""What the live preview costs a render: the same plan rendered with previews off (A) and on (B), alternating
A B A B, each run into a fresh folder with the model loaded and warmed up once before; the ratio B/A per pair, its
median and spread.

    .venv/bin/python bench/preview_overhead.py [--model embedded:shapes] [--pairs 5] [--frames 3] [--steps 10]
                                               [--size 64]

embedded:shapes (the default) previews through its tiny autoencoder (a decode per preview, the costlier way);
embedded:tiny through a fitted linear map (the way of every AutoencoderKL that is not SD's or SDXL's; SD's and SDXL's
published factors cost the same). Previews at the default rate (engine/preview.py: at most 2 a second and 3% of the
time). Prints one JSON object; record it in bench/RESULTS.md.
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import plan as plan_mod  # noqa: E402
from engine.renderer import Renderer  # noqa: E402

PROMPTS = ["a red circle on a blue background", "a yellow square on a green background"]


def make_plan(folder: str, model: str, frames: int, steps: int, size: int) -> dict:
    records = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        prompts = [{"text": PROMPTS[0], "negative": "", "weight": 1 - t, "seed": 1},
                   {"text": PROMPTS[1], "negative": "", "weight": t, "seed": 2}]
        records.append({"frame": i + 1, "prompts": [p for p in prompts if p["weight"] > 0], "seed": 0,
                        "steps": steps, "guidance": 6.0, "strength": 0.5, "camera": None})
    return plan_mod.validate({
        "schema": "keyframe_diffusion.plan", "version": 1,
        "settings": {"mode": "INTERPOLATE", "model": model, "width": size, "height": size, "output_dir": folder,
                     "batch_size": 1},
        "frames": records})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:shapes")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    renderer = Renderer()
    root = tempfile.mkdtemp(prefix="kd-preview-bench-")
    previews: list[int] = []

    def run(name: str, preview: bool) -> float:
        folder = os.path.join(root, name)
        plan = make_plan(folder, args.model, args.frames, args.steps, args.size)
        seen = []
        start = time.perf_counter()
        renderer.render(plan, None, seen.append, preview=preview)
        took = time.perf_counter() - start
        if preview:
            previews.append(sum(e["event"] == "preview" for e in seen))
        shutil.rmtree(folder)
        return took

    run("warmup-off", False)
    run("warmup-on", True)  # the preview's map or decoder ready, as in every render after a model's first
    previews.clear()
    off, on = [], []
    for i in range(args.pairs):
        off.append(run(f"off-{i}", False))
        on.append(run(f"on-{i}", True))
    ratios = [b / a for a, b in zip(off, on)]
    print(json.dumps({
        "model": args.model, "frames": args.frames, "steps": args.steps, "size": args.size, "pairs": args.pairs,
        "off_s": [round(t, 2) for t in off], "on_s": [round(t, 2) for t in on],
        "previews_per_run": previews,
        "ratio_median": round(statistics.median(ratios), 4), "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "ratio_iqr": round(statistics.quantiles(ratios, n=4)[2] - statistics.quantiles(ratios, n=4)[0], 4)
        if len(ratios) >= 2 else 0.0,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
