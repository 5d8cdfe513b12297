"""Grade a text-to-image pipeline on the shapes world: generate captions of held-out combinations and compare what the
scorer reads with what the caption says."""

from __future__ import annotations

import numpy as np

from . import GUIDANCE, STEPS, dataset, scorer


def held_out_prompts(count: int, seed: int = 0) -> list[tuple[str, dataset.Picture]]:
    """(caption, picture) pairs over the held-out (colour, shape, background) combinations, full and short captions
    alike. Never seen in training (see dataset.split_triples)."""
    _, held = dataset.split_triples()
    rng = np.random.default_rng(seed + 4)
    items = []
    for _ in range(count):
        picture = dataset.random_picture(rng, held)
        items.append((dataset.random_caption(picture, rng), picture))
    return items


def evaluate(pipe, prompts: list[tuple[str, dataset.Picture]], steps: int = STEPS, guidance: float = GUIDANCE,
             seed: int = 0, batch: int = 16, guidance_rescale: float = 0.0) -> dict:
    """Generate each caption at the native size and return the share of images whose scored colour, shape, both,
    background (captions naming it) and position (captions naming it) agree with the caption."""
    import torch

    hits = {"color": 0, "shape": 0, "color_and_shape": 0}
    named = {"background": [0, 0], "position": [0, 0]}
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        with torch.no_grad():
            images = pipe([c for c, _ in chunk], num_inference_steps=steps, guidance_scale=guidance,
                          guidance_rescale=guidance_rescale,
                          height=dataset.SIZE, width=dataset.SIZE, output_type="np",
                          generator=[torch.Generator().manual_seed(seed + start + k) for k in range(len(chunk))]).images
        for (caption, picture), image in zip(chunk, images):
            s = scorer.score((image * 255).round().astype(np.uint8))
            hits["color"] += s.color == picture.color
            hits["shape"] += s.shape == picture.shape
            hits["color_and_shape"] += (s.color, s.shape) == (picture.color, picture.shape)
            if " background" in caption:
                named["background"][0] += s.background == picture.background
                named["background"][1] += 1
            if "," in caption:
                named["position"][0] += s.position == picture.position
                named["position"][1] += 1
    n = len(prompts)
    return {"prompts": n, "steps": steps, "guidance": guidance, "size": dataset.SIZE,
            **{k: v / n for k, v in hits.items()},
            **{k: ok / max(total, 1) for k, (ok, total) in named.items()}}
