"""Video model cache hooks (engine/video_cache.py) on the CPU: time per denoising step of a Wan transformer with and
without each cache, in alternating rounds (bench/interleave.py), and each cache's cost in the output.

Two transformers, both random weights in a WanPipeline with engine/tiny_video_models' text encoder, VAE and UniPC
scheduler (flow shift 3, as Wan 2.1 at 480p): "tiny" (the tiny pipelines' layout, width 32, 4 blocks) and
"1.3B-like" (Wan2.1 T2V 1.3B's block: width 1536 in 12 heads, feed-forward 8960, 4 of its 30 blocks). STEPS steps with
guidance 5 (Wan's two transformer calls a step), FRAMES frames at SIZE x SIZE, the prompt encoded once beforehand.
Each side is one pipeline call (latents out) after apply_cache switched to its cache; the first, untimed run of each
side gives its latents, decoded by the tiny VAE for the pixel figures.

Per cache: ms per step (median over rounds), speed-up over no cache (no-cache seconds / cache seconds in the same round:
median [quartiles] (rounds)), the share of block feed-forwards and self-attentions that really ran (counted on the
blocks' inner layers), and the difference from the no-cache output of the same seed: mean absolute difference and
PSNR of the latents (peak = the no-cache latents' range) and of the decoded frames (0-255; peak 255).

    .venv/bin/python bench/video_cache.py [--steps 20] [--frames 5] [--size 32] [--rounds 5] [--max-rounds 7]
                                          [--only tiny,1.3B-like]

Prints a table and one JSON object; record them in bench/RESULTS.md. Random weights say how much work each cache
skips and what that costs a model whose features change as these do; a real model's features change differently
between steps, so First Block Cache (which decides from the change) skips a different share there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.interleave import interleave  # noqa: E402
from engine import tiny_video_models, video_cache  # noqa: E402

CONFIGS = {
    "tiny": dict(num_layers=4),
    "1.3B-like": dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, freq_dim=256, num_layers=4),
}
GUIDANCE = 5.0


def build(name: str):
    import torch

    pipe = tiny_video_models.build_tiny_wan_t2v(0)
    torch.manual_seed(1)
    config = {**pipe.transformer.config, **CONFIGS[name]}
    pipe.register_modules(transformer=type(pipe.transformer).from_config(config).eval())
    return pipe


def counters(transformer) -> dict:
    calls = {"ffn": 0, "attn": 0}

    def counter(key):
        def hook(*_):
            calls[key] += 1
        return hook

    for block in transformer.blocks:
        block.ffn.register_forward_hook(counter("ffn"))
        block.attn1.to_q.register_forward_hook(counter("attn"))
    return calls


def difference(output, reference, peak: float | None = None) -> tuple[float, float]:
    """Mean absolute difference and PSNR (dB; peak = the reference's range unless given)."""
    diff = (output.double() - reference.double())
    mse = float((diff ** 2).mean())
    peak = float(reference.max() - reference.min()) if peak is None else peak
    return float(diff.abs().mean()), (math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse))


def measure(name: str, args, log) -> list[dict]:
    import torch

    pipe = build(name)
    calls = counters(pipe.transformer)
    with torch.no_grad():
        embeds, negative = pipe.encode_prompt("a red ball rolls across a wooden table", negative_prompt="",
                                              do_classifier_free_guidance=True, max_sequence_length=64,
                                              device="cpu")
    outputs: dict[str, torch.Tensor] = {}
    counts: dict[str, dict] = {}

    def render() -> torch.Tensor:
        return pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=args.steps,
                    guidance_scale=GUIDANCE, height=args.size, width=args.size, num_frames=args.frames,
                    output_type="latent", generator=torch.Generator().manual_seed(0)).frames

    def side(cache: str):
        def run(round_index: int) -> float:
            video_cache.apply_cache(pipe, cache)
            calls.update(ffn=0, attn=0)
            started = time.perf_counter()
            latents = render()
            seconds = time.perf_counter() - started
            if cache not in outputs:
                outputs[cache], counts[cache] = latents, dict(calls)
            return seconds
        return run

    sides = {cache: side(cache) for cache in video_cache.CACHES}
    log(f"{name}: {args.steps} steps, {args.frames} frames at {args.size}x{args.size}")
    done = interleave(sides, baseline="NONE", rounds=args.rounds, max_rounds=args.max_rounds, log=log)
    video_cache.apply_cache(pipe, "NONE")

    def decode(latents):
        latents = latents / (1.0 / torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)) \
            + torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
        with torch.no_grad():
            frames = pipe.vae.decode(latents, return_dict=False)[0]
        return ((frames.clamp(-1, 1) + 1) * 127.5).round()

    reference, reference_pixels = outputs["NONE"], decode(outputs["NONE"])
    rows = []
    for cache in video_cache.CACHES:
        latent_mad, latent_psnr = difference(outputs[cache], reference)
        pixel_mad, pixel_psnr = difference(decode(outputs[cache]), reference_pixels, 255.0)
        ratio = done["ratios"].get(f"{cache} over NONE")
        rows.append({
            "config": name, "cache": cache,
            "ms_per_step": round(1000 * statistics.median(done["seconds"][cache]) / args.steps, 1),
            "speedup": ratio,
            "ffn_share": round(counts[cache]["ffn"] / counts["NONE"]["ffn"], 3),
            "self_attention_share": round(counts[cache]["attn"] / counts["NONE"]["attn"], 3),
            "latent_mad": round(latent_mad, 5), "latent_psnr_db": round(latent_psnr, 1),
            "pixel_mad": round(pixel_mad, 2), "pixel_psnr_db": round(pixel_psnr, 1),
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| transformer | cache | ms/step | speed-up over none, median [q1-q3] (rounds) | feed-forwards run | "
             "self-attentions run | latent MAD / PSNR | pixel MAD (0-255) / PSNR |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = row["speedup"]
        speed = "-" if ratio is None else (f"{ratio['median']:.2f}x [{ratio['q1']:.2f}-{ratio['q3']:.2f}] "
                                           f"({ratio['rounds']}{', wide' if ratio['wide'] else ''})")
        psnr = "-" if math.isinf(row["latent_psnr_db"]) else f"{row['latent_psnr_db']} dB"
        pixel_psnr = "-" if math.isinf(row["pixel_psnr_db"]) else f"{row['pixel_psnr_db']} dB"
        lines.append(f"| {row['config']} | {row['cache']} | {row['ms_per_step']} | {speed} | "
                     f"{row['ffn_share']:.0%} | {row['self_attention_share']:.0%} | "
                     f"{row['latent_mad']} / {psnr} | {row['pixel_mad']} / {pixel_psnr} |")
    return "\n".join(lines)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-rounds", type=int, default=7)
    parser.add_argument("--only", default=",".join(CONFIGS))
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    rows = []
    for name in args.only.split(","):
        rows += measure(name, args, log)
    print(table(rows))
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                                 f"torch {torch.__version__}", "seconds": round(time.perf_counter() - started),
                      "args": vars(args), "rows": rows}, default=str))


if __name__ == "__main__":
    main()
