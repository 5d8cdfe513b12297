"""Ray benchmark: a local 2-worker Ray run against the single-process renderer, same plan, same machine.

    .venv/bin/python bench/ray_render.py [--frames 48] [--size 128] [--steps 10] [--workers 2]

The random-weight tiny model (embedded:tiny) at SIZE x SIZE: interpolate mode (batches of 4) and feedback mode in 4
chains (a restart every FRAMES/4 frames). "cold" includes starting the workers and loading the model, "warm" renders
the same plan into a fresh folder with the model already loaded. The single process uses every core through torch's
threads; each Ray worker gets cores/workers threads. Prints one JSON line; record it in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine import plan as plan_mod  # noqa: E402


def make_plan(mode: str, folder: str, frames: int, size: int, steps: int) -> dict:
    chain = max(1, frames // 4)
    records = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        record = {"frame": i + 1, "seed": 3, "steps": steps, "guidance": 5.0, "strength": 0.55,
                  "prompts": [{"text": "a red circle", "weight": 1 - t, "seed": 1},
                              {"text": "a blue square", "weight": t, "seed": 2}],
                  "motion": {"zoom": 1.02, "translation_x": 1.0}}
        if mode == "FEEDBACK" and i and i % chain == 0:
            record["restart"] = True
        records.append(record)
    return plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
                              "settings": {"mode": mode, "model": plan_mod.TINY_RANDOM_MODEL, "width": size,
                                           "height": size, "output_dir": folder, "batch_size": 4},
                              "frames": records})


def timed(renderer, plan: dict) -> float:
    started = time.perf_counter()
    summary = renderer.render(plan, None, lambda e: None)
    assert summary["rendered"] == len(plan["frames"]), summary
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("KEYFRAME_DIFFUSION_CACHE", tempfile.mkdtemp(prefix="kd-bench-cache-"))
    from engine.distributed import RayRenderer, connect
    from engine.renderer import Renderer

    tmp = tempfile.mkdtemp(prefix="kd-bench-ray-")
    results: dict = {"frames": args.frames, "size": args.size, "steps": args.steps, "workers": args.workers,
                     "cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    modes = ("INTERPOLATE", "FEEDBACK")
    local = Renderer()
    for mode in modes:
        plan = lambda name: make_plan(mode, os.path.join(tmp, name), args.frames, args.size, args.steps)  # noqa
        cold = timed(local, plan(f"local-cold-{mode}"))
        warm = timed(local, plan(f"local-warm-{mode}"))
        results[f"{mode.lower()}_local"] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2),
                                            "fps": round(args.frames / warm, 2)}
    connect(None, num_cpus=os.cpu_count())
    distributed = RayRenderer(workers=args.workers)
    for mode in modes:
        plan = lambda name: make_plan(mode, os.path.join(tmp, name), args.frames, args.size, args.steps)  # noqa
        cold = timed(distributed, plan(f"ray-cold-{mode}"))
        warm = timed(distributed, plan(f"ray-warm-{mode}"))
        key = mode.lower()
        results[f"{key}_ray"] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2),
                                 "fps": round(args.frames / warm, 2)}
        results[f"{key}_speedup_warm"] = round(results[f"{key}_local"]["warm_s"] / warm, 2)
        results[f"{key}_speedup_cold"] = round(results[f"{key}_local"]["cold_s"] / cold, 2)
    distributed.release()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
