"""Token merging (ToMe for Stable Diffusion, the tomesd package): does it work with this diffusers, and where it pays.

One UNet call (a classifier-free guidance batch of 2) with and without tomesd's patch at --ratio, the sides
interleaved (bench/interleave.py), on Stable Diffusion 1.5's UNet2DConditionModel layout (860M parameters, random
weights, built here: nothing is downloaded) at each --sizes pixels, and on embedded:shapes' UNet at 64. Also the
relative change of the UNet's output the patch makes (random weights: only whether it changes anything, not quality).

tomesd is not one of the engine's dependencies; the bench needs it importable:

    pip install tomesd==0.1.3   (or PYTHONPATH=folder-holding-tomesd)
    .venv/bin/python bench/token_merging.py [--sizes 256 512 768] [--ratio 0.5] [--rounds 5]

Prints one JSON object; record it in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.interleave import interleave  # noqa: E402


def measure(unet, size: int, cross: int, ratio: float, rounds: int, log, max_downsample: int = 1) -> dict:
    import torch
    import tomesd

    side = size // 8
    torch.manual_seed(1)
    sample = torch.randn(2, unet.config.in_channels, side, side)
    embeds = torch.randn(2, 77, cross)

    def call() -> torch.Tensor:
        with torch.no_grad():
            return unet(sample, 500, encoder_hidden_states=embeds).sample

    plain = call()  # also the untimed warm-up
    tomesd.apply_patch(unet, ratio=ratio, max_downsample=max_downsample)
    merged = call()
    tomesd.remove_patch(unet)
    change = float((merged - plain).norm() / plain.norm())

    def side_fn(patched: bool):
        def run(_round: int) -> float:
            if patched:
                tomesd.apply_patch(unet, ratio=ratio, max_downsample=max_downsample)
            try:
                start = time.perf_counter()
                call()
                return time.perf_counter() - start
            finally:
                if patched:
                    tomesd.remove_patch(unet)
        return run

    result = interleave({"plain": side_fn(False), "tome": side_fn(True)}, baseline="plain", rounds=rounds,
                        max_rounds=rounds, warmup=False, log=log)
    seconds = result["seconds"]
    return {"size": size, "plain_s": round(sorted(seconds["plain"])[len(seconds["plain"]) // 2], 3),
            "tome_s": round(sorted(seconds["tome"])[len(seconds["tome"]) // 2], 3),
            "speedup": result["ratios"]["tome over plain"], "relative_output_change": round(change, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large-rounds", type=int, default=3, help="rounds at 512 px and above")
    args = parser.parse_args()

    import diffusers
    import torch
    import tomesd  # noqa: F401 - fail early when it is missing
    from diffusers import UNet2DConditionModel

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    began = time.perf_counter()
    out = {"bench": "token_merging", "ratio": args.ratio, "diffusers": diffusers.__version__,
           "torch": torch.__version__, "batch": 2}
    from engine.renderer import Renderer

    shapes = Renderer().pipeline("embedded:shapes", "cpu", lambda e: None).unet
    cross = shapes.config.cross_attention_dim
    out["shapes_64"] = {
        "max_downsample_1": measure(shapes, 64, cross, args.ratio, args.rounds, log),
        "max_downsample_2": measure(shapes, 64, cross, args.ratio, args.rounds, log, max_downsample=2)}
    log(json.dumps(out["shapes_64"]))
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
    out["sd15_unet"] = []
    for size in args.sizes:
        out["sd15_unet"].append(measure(unet, size, 768, args.ratio, args.rounds if size < 512 else args.large_rounds,
                                        log))
        log(json.dumps(out["sd15_unet"][-1]))
    out["seconds"] = round(time.perf_counter() - began, 1)
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
