"""Interpolate mode: each frame blends seeded latents and prompt embeddings by the baked prompt weights.

Frames are independent, so runs of frames that share steps and guidance go through the pipeline as one batch, and
each distinct (prompt, negative) pair is encoded once per run.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from ..latents import blend, seeded_noise

StepCallback = Callable[[list[int], int, int], None]


class PromptCache:
    """Encodes each distinct (prompt, negative) pair once."""

    def __init__(self, pipe):
        self.pipe = pipe
        self._cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, text: str, negative: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = (text, negative)
        if key not in self._cache:
            with torch.no_grad():
                positive, negative_embeds = self.pipe.encode_prompt(
                    text, self.pipe.device, 1, True, negative_prompt=negative
                )
            self._cache[key] = (positive[0], negative_embeds[0])
        return self._cache[key]


def latent_shape(pipe, width: int, height: int) -> tuple[int, int, int]:
    factor = pipe.vae_scale_factor
    return (pipe.unet.config.in_channels, height // factor, width // factor)


def frame_inputs(record: dict, settings: dict, prompts: PromptCache, shape) -> tuple[torch.Tensor, ...]:
    """The blended (prompt embedding, negative embedding, initial latent) of one frame."""
    items = record["prompts"]
    weights = [p["weight"] for p in items]
    encoded = [prompts.get(p["text"], p.get("negative", "")) for p in items]
    positive = blend([e[0] for e in encoded], weights)
    negative = blend([e[1] for e in encoded], weights)
    if settings["latent_source"] == "FIXED":
        latent = seeded_noise(record["seed"], shape)
    else:
        noises = [seeded_noise(p.get("seed", record["seed"]), shape) for p in items]
        latent = blend(noises, weights)
    return positive, negative, latent


def batches(records: list[dict], batch_size: int) -> Iterator[list[dict]]:
    """Consecutive records that can share one pipeline call (same steps, guidance and CFG rescale)."""
    batch: list[dict] = []
    for record in records:
        if batch and (
            len(batch) >= batch_size
            or record["steps"] != batch[0]["steps"]
            or record["guidance"] != batch[0]["guidance"]
            or record.get("guidance_rescale", 0.0) != batch[0].get("guidance_rescale", 0.0)
        ):
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


def render(pipe, settings: dict, records: list[dict], on_step: StepCallback) -> Iterator[tuple[int, object]]:
    """Yield (frame number, PIL image) for each record, in order."""
    prompts = PromptCache(pipe)
    shape = latent_shape(pipe, settings["width"], settings["height"])
    dtype = pipe.unet.dtype
    for batch in batches(records, settings["batch_size"]):
        frames = [r["frame"] for r in batch]
        inputs = [frame_inputs(r, settings, prompts, shape) for r in batch]
        positive = torch.stack([i[0] for i in inputs]).to(pipe.device, dtype)
        negative = torch.stack([i[1] for i in inputs]).to(pipe.device, dtype)
        latents = torch.stack([i[2] for i in inputs]).to(pipe.device, dtype)
        steps = batch[0]["steps"]

        def step_end(_pipe, step, _timestep, kwargs, frames=frames, steps=steps):
            on_step(frames, step + 1, steps)  # may raise Cancelled: the loop stops within this step
            return kwargs

        with torch.no_grad():
            result = pipe(
                prompt_embeds=positive,
                negative_prompt_embeds=negative,
                latents=latents,
                num_inference_steps=steps,
                guidance_scale=float(batch[0]["guidance"]),
                guidance_rescale=float(batch[0].get("guidance_rescale", 0.0)),
                width=settings["width"],
                height=settings["height"],
                generator=[torch.Generator("cpu").manual_seed(r["seed"]) for r in batch],
                callback_on_step_end=step_end,
                output_type="pil",
            )
        yield from zip(frames, result.images)
