"""Feature reuse (DeepCache's idea, engine/feature_reuse.py): what it saves and what it costs.

Part 1, embedded:shapes at 64x64 through the engine's Renderer: a batch of held-out captions
(engine/shapes/evaluate.py) rendered as one interpolate plan at 10, 20 and 30 steps, exactly and with the plan's
`feature_reuse` at each interval, the sides interleaved (bench/interleave.py). Per step count: the median speed-up
over the exact render with its spread, the shapes scorer's agreement with each caption (colour, shape, both) for the
exact and the reused frames, and the mean absolute difference (0-255) of the reused frames from the exact ones.

Part 2, the speed-up on a real-architecture-sized UNet: Stable Diffusion 1.5's UNet2DConditionModel layout (860M
parameters, random weights, built here: nothing is downloaded) for one denoising loop (DDIM, classifier-free
guidance batch of 2) at --sd-size pixels, the sides interleaved. Random weights make no pictures, so only time.

    .venv/bin/python bench/feature_reuse.py [--captions 16] [--steps 10 20 30] [--intervals 2 3] [--rounds 5]
                                            [--sd-size 256] [--sd-steps 6] [--sd-rounds 3] [--no-sd]

Prints one JSON object; record it in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.interleave import interleave  # noqa: E402
from engine import plan as plan_mod  # noqa: E402
from engine.frames import FrameStore  # noqa: E402
from engine.renderer import Renderer  # noqa: E402
from engine.shapes import scorer  # noqa: E402
from engine.shapes.evaluate import held_out_prompts  # noqa: E402

MODEL = "embedded:shapes"
GUIDANCE = 6.0


def make_plan(folder: str, captions: list[str], steps: int, interval: int) -> dict:
    records = [{"frame": i + 1, "seed": 100 + i, "steps": steps, "guidance": GUIDANCE,
                "prompts": [{"text": caption, "negative": "", "weight": 1.0}]} for i, caption in enumerate(captions)]
    settings = {"mode": "INTERPOLATE", "model": MODEL, "width": 64, "height": 64, "output_dir": folder,
                "batch_size": len(captions)}
    if interval:
        settings["feature_reuse"] = interval
    return plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION, "settings": settings,
                              "frames": records})


def agreement(images: list[np.ndarray], pictures) -> dict:
    scores = [scorer.score(image) for image in images]
    n = len(images)
    return {"color": round(sum(s.color == p.color for s, p in zip(scores, pictures)) / n, 3),
            "shape": round(sum(s.shape == p.shape for s, p in zip(scores, pictures)) / n, 3),
            "color_and_shape": round(sum((s.color, s.shape) == (p.color, p.shape)
                                         for s, p in zip(scores, pictures)) / n, 3)}


def shapes_part(args, log) -> list[dict]:
    renderer = Renderer()
    prompts = held_out_prompts(args.captions)
    captions, pictures = [c for c, _ in prompts], [p for _, p in prompts]
    root = tempfile.mkdtemp(prefix="kd-feature-reuse-")
    rows = []
    try:
        for steps in args.steps:
            kept: dict[int, list[np.ndarray]] = {}

            def side(interval: int):
                def run(round_index: int) -> float:
                    folder = os.path.join(root, f"{steps}-{interval}-{round_index}")
                    plan = make_plan(folder, captions, steps, interval)
                    start = time.perf_counter()
                    summary = renderer.render(plan, None, lambda e: None)
                    took = time.perf_counter() - start
                    assert summary["rendered"] == len(captions), summary
                    if interval not in kept:
                        store = FrameStore(folder)
                        kept[interval] = [store.read(r["frame"]) for r in plan["frames"]]
                    shutil.rmtree(folder)
                    return took
                return run

            sides = {"exact": side(0), **{f"reuse {i}": side(i) for i in args.intervals}}
            result = interleave(sides, baseline="exact", rounds=args.rounds, max_rounds=args.rounds + 2, log=log)
            exact = kept[0]
            row = {"steps": steps, "exact_s": round(float(np.median(result["seconds"]["exact"])), 3),
                   "exact_agreement": agreement(exact, pictures), "reuse": []}
            for interval in args.intervals:
                images = kept[interval]
                diffs = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(exact, images)]
                row["reuse"].append({
                    "interval": interval, "speedup": result["ratios"][f"reuse {interval} over exact"],
                    "agreement": agreement(images, pictures),
                    "mean_abs_diff": round(float(np.mean(diffs)), 2),
                    "max_frame_mean_abs_diff": round(max(diffs), 2)})
            rows.append(row)
            log(json.dumps(row))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def sd_part(args, log) -> dict:
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel

    from engine.feature_reuse import reused_features

    torch.manual_seed(0)
    start = time.perf_counter()
    # diffusers' UNet2DConditionModel defaults are SD 1.x's layout but for the text width (768 in SD 1.5).
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
    built = time.perf_counter() - start
    side = args.sd_size // 8
    latents0 = torch.randn(1, 4, side, side)
    embeds = torch.randn(2, 77, 768)  # negative and positive prompt: the classifier-free guidance batch
    scheduler = DDIMScheduler()

    def loop(interval: int):
        def run(_round: int) -> float:
            scheduler.set_timesteps(args.sd_steps)
            latents = latents0.clone()
            begin = time.perf_counter()
            with torch.no_grad(), reused_features(unet, interval):
                for t in scheduler.timesteps:
                    noise = unet(torch.cat([latents, latents]), t, encoder_hidden_states=embeds).sample
                    uncond, text = noise.chunk(2)
                    latents = scheduler.step(uncond + 7.5 * (text - uncond), t, latents).prev_sample
            return time.perf_counter() - begin
        return run

    with torch.no_grad():  # one untimed call: the allocator and kernels warm (interleave's warm-up would be a loop)
        unet(torch.cat([latents0, latents0]), 999, encoder_hidden_states=embeds)
    sides = {"exact": loop(0), **{f"reuse {i}": loop(i) for i in args.intervals}}
    result = interleave(sides, baseline="exact", rounds=args.sd_rounds, max_rounds=args.sd_rounds, warmup=False,
                        log=log)
    return {"unet": "SD 1.5 UNet2DConditionModel layout, random weights",
            "parameters_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1), "build_s": round(built, 1),
            "size": args.sd_size, "steps": args.sd_steps, "batch": 2,
            "exact_s": round(float(np.median(result["seconds"]["exact"])), 2),
            "speedup": {k.split(" over ")[0]: v for k, v in result["ratios"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=16)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--intervals", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sd-size", type=int, default=256)
    parser.add_argument("--sd-steps", type=int, default=6)
    parser.add_argument("--sd-rounds", type=int, default=3)
    parser.add_argument("--no-sd", action="store_true")
    args = parser.parse_args()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    began = time.perf_counter()
    out = {"bench": "feature_reuse", "model": MODEL, "size": 64, "captions": args.captions, "guidance": GUIDANCE,
           "shapes": shapes_part(args, log)}
    if not args.no_sd:
        out["sd15_unet"] = sd_part(args, log)
    out["seconds"] = round(time.perf_counter() - began, 1)
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
