"""The bare diffusers pipeline call in this interpreter: what one batch costs with nothing around it, to set the
engine's diffusers (0.42) beside stable-diffusion-videos' (0.39, in .venv-sdv) on the same model and work.

    .venv/bin/python bench/bare_call.py --model FOLDER [--size 64] [--steps 10] [--batch 4] [--repeats 7]
    .venv-sdv/bin/python bench/bare_call.py --model FOLDER ...

The speed bench's model folder (bench/speed_cpu.py builds it in the engine's cache, bench-sd-shaped). Embeddings and
latents are made once; each timed call denoises BATCH latents for STEPS steps with classifier-free guidance and
decodes them to PIL images. Prints one JSON line: the median seconds per call and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import diffusers
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # sdv's interpreter has transformers 4, which needs the same help as bench/peer_sdv.py gives it to read the model.
    from peer_sdv import load_unprefixed_text_encoder

    tokenizer_dir = os.path.join(args.model, "tokenizer")
    fast = not os.path.isfile(os.path.join(tokenizer_dir, "vocab.json"))
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(args.model, safety_checker=None, feature_extractor=None,
                                                             **({"tokenizer": None} if fast else {}))
    if fast:
        pipe.register_modules(tokenizer=transformers.CLIPTokenizerFast.from_pretrained(tokenizer_dir))
    load_unprefixed_text_encoder(pipe.text_encoder, os.path.join(args.model, "text_encoder"))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        embeds, negative = pipe.encode_prompt("a red circle", "cpu", args.batch, True, negative_prompt="")
    side = args.size // pipe.vae_scale_factor
    latents = torch.randn((args.batch, pipe.unet.config.in_channels, side, side),
                          generator=torch.Generator().manual_seed(1))
    times = []
    for repeat in range(args.repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        with torch.no_grad():
            pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, latents=latents,
                 num_inference_steps=args.steps, guidance_scale=5.0, height=args.size, width=args.size)
        if repeat:
            times.append(time.perf_counter() - started)
    print(json.dumps({"seconds": round(statistics.median(times), 4), "runs": [round(t, 4) for t in times],
                      "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                      "torch": torch.__version__, "size": args.size, "steps": args.steps, "batch": args.batch}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
