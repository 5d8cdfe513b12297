"""What a render pays outside the model: the fixed cost per render and the overhead per frame, and where they go.

    .venv/bin/python bench/overhead.py [--size 128] [--steps 10] [--batch 4] [--lengths 1,4,8,16,48] [--repeats 5]

The speed bench's model (bench/speed_cpu.py: the random-weight tiny model shaped like Stable Diffusion) in interpolate
mode, loaded and warmed up first. For each shot length, `repeats` renders into fresh folders; each render's time is
split into the time inside the diffusers pipeline calls (the denoising loop and decode: the model's work) and the
rest (prompt encoding, scheduler and speed setup, hashing, the frame store's PNGs, text chunks and journal, events,
the flicker figure). Per render the median over the repeats; the outside time against the shot length is fitted by
least squares: the intercept is the fixed cost per render, the slope the overhead per frame. The named parts are
timed by wrapping the functions that do them (their medians per render, at the shortest and longest length). Last, a
warm re-run of one changed frame of the longest shot, split the same way, and the frame store's write of a 512x512
frame (PNG, text chunks, journal) at PIL's default zlib level 6 against the level it uses.

Prints one JSON object; record it in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
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
sys.path.insert(0, os.path.join(ROOT, "bench"))

import speed_cpu  # noqa: E402

# (part, module, attribute path): the outside-the-model work a render does, timed where it happens.
PARTS = [
    ("prepare (scheduler, LoRAs, speed switches)", "engine.renderer", "Renderer.prepare"),
    ("plan hashes and work", "engine.renderer", "plan_work"),
    ("prompt encoding and blending", "engine.prompts", "PromptEncoder.frame"),
    ("frame store writes (PNG, text, journal)", "engine.frames", "FrameStore.write"),
    ("journal compaction", "engine.frames", "FrameStore.compact"),
    ("flicker figure", "engine.renderer", "_add_flicker"),
]


@contextlib.contextmanager
def timers(totals: dict[str, float]):
    """Add the seconds spent in each of PARTS, and inside the pipeline calls ("inside"), to `totals`."""
    import importlib

    from diffusers import StableDiffusionPipeline

    targets = [(name, importlib.import_module(module), path) for name, module, path in PARTS]
    targets.append(("inside", importlib.import_module("diffusers"), "StableDiffusionPipeline.__call__"))
    saved = []
    for name, module, path in targets:
        owner_name, _, attribute = path.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
        saved.append((owner, attribute, original))

        def timed(*args, _original=original, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_name] = totals.get(_name, 0.0) + time.perf_counter() - started

        setattr(owner, attribute, timed)
    del StableDiffusionPipeline
    try:
        yield
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares line through (x, y) points: (intercept, slope)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lengths", default="1,4,8,16,48")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lengths = sorted({int(n) for n in args.lengths.split(",")})
    if len(lengths) < 2:
        parser.error("--lengths needs two lengths or more to fit a line")

    from engine.models.embedded import cache_dir

    os.environ["KEYFRAME_DIFFUSION_CACHE"] = cache_dir()
    import torch

    from engine.renderer import Renderer

    torch.set_num_threads(os.cpu_count() or 1)
    speed_cpu.MODEL[0] = speed_cpu.bench_model(os.path.join(os.environ["KEYFRAME_DIFFUSION_CACHE"],
                                                            "bench-sd-shaped"))
    tmp = tempfile.mkdtemp(prefix="kd-bench-overhead-")
    renderer = Renderer()
    size, steps, batch = args.size, args.steps, args.batch
    try:
        for warm in range(2):
            speed_cpu.engine_seconds(renderer, speed_cpu.make_plan("INTERPOLATE", os.path.join(tmp, f"warm{warm}"),
                                                                   4, size, steps, batch))
        per_length: dict[int, dict[str, float]] = {}
        for n in lengths:
            runs = []
            for repeat in range(args.repeats):
                totals: dict[str, float] = {}
                plan = speed_cpu.make_plan("INTERPOLATE", os.path.join(tmp, f"n{n}-{repeat}"), n, size, steps, batch)
                with timers(totals):
                    totals["total"] = speed_cpu.engine_seconds(renderer, plan)
                totals["outside"] = totals["total"] - totals["inside"]
                runs.append(totals)
                shutil.rmtree(plan["settings"]["output_dir"], ignore_errors=True)
            per_length[n] = {key: statistics.median(r.get(key, 0.0) for r in runs) for key in runs[0]}
        fixed, per_frame = fit([(n, per_length[n]["outside"]) for n in lengths])
        # A warm re-run of one changed frame of the longest shot.
        n = lengths[-1]
        plan = speed_cpu.make_plan("INTERPOLATE", os.path.join(tmp, "rerun"), n, size, steps, batch)
        speed_cpu.engine_seconds(renderer, plan)
        reruns = []
        for repeat in range(args.repeats):
            plan["frames"][(n // 2 + repeat) % n]["seed"] += 1
            totals = {}
            with timers(totals):
                totals["total"] = speed_cpu.engine_seconds_changed(renderer, plan)
            totals["outside"] = totals["total"] - totals["inside"]
            reruns.append(totals)
        rerun = {key: statistics.median(r.get(key, 0.0) for r in reruns) for key in reruns[0]}
        # The frame store's PNG level (engine/frames.PNG_COMPRESSION) at 512x512, PIL's default 6 against the 1 used.
        from engine import frames

        png = {}
        for level in (6, frames.PNG_COMPRESSION):
            kept, frames.PNG_COMPRESSION = frames.PNG_COMPRESSION, level
            try:
                folder = os.path.join(tmp, f"png{level}")
                written = speed_cpu.store_write_ms(folder, frames=20)
                sizes = [os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".png")]
                png[f"level_{level}"] = {"write_ms": written["first_20_ms"], "kb": round(sum(sizes) / len(sizes) / 1024)}
            finally:
                frames.PNG_COMPRESSION = kept
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ms = lambda seconds: round(1000 * seconds, 1)  # noqa: E731
    shortest, longest = lengths[0], lengths[-1]
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "torch": torch.__version__,
        "size": size, "steps": steps, "batch": batch, "repeats": args.repeats,
        "fixed_ms": ms(fixed), "per_frame_ms": ms(per_frame),
        "per_length": {n: {"total_s": round(v["total"], 3), "inside_s": round(v["inside"], 3),
                           "outside_ms": ms(v["outside"]),
                           "outside_share": round(v["outside"] / v["total"], 3)} for n, v in per_length.items()},
        "parts_ms": {name: {shortest: ms(per_length[shortest].get(name, 0.0)),
                            longest: ms(per_length[longest].get(name, 0.0))} for name, _, _ in PARTS},
        "rerun_one_frame": {"total_ms": ms(rerun["total"]), "inside_ms": ms(rerun["inside"]),
                            "outside_ms": ms(rerun["outside"]),
                            "parts_ms": {name: ms(rerun.get(name, 0.0)) for name, _, _ in PARTS}},
        "frame_write_512": png,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
