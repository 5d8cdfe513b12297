"""Interpolate mode: each frame blends seeded latents and prompt conditioning by the baked prompt weights.

Frames are independent, so runs of frames that share steps and guidance go through the pipeline as one batch, and
each distinct prompt text (or composable part) is encoded once per run. Prompts may be composable
(``a :1.5 | b``) and use Compel weighting; see engine.prompts and engine.composable. Works with SD and SDXL pipelines.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from .. import pacing
from ..composable import composed
from ..feature_reuse import interval_of, reused_features
from ..latents import blend, seeded_noise
from ..prompts import FrameCondition, PromptEncoder, pipeline_inputs
from . import Context, Frames, Mode, StepCallback, WorkUnit, overlap, register


def latent_shape(pipe, width: int, height: int) -> tuple[int, int, int]:
    factor = pipe.vae_scale_factor
    return (pipe.unet.config.in_channels, height // factor, width // factor)


def frame_latent(record: dict, settings: dict, shape) -> torch.Tensor:
    """The initial latent of one frame: the frame seed's noise (FIXED) or the prompts' seeded noises blended."""
    items = record["prompts"]
    if settings["latent_source"] == "FIXED":
        return seeded_noise(record["seed"], shape)
    noises = [seeded_noise(p.get("seed", record["seed"]), shape) for p in items]
    return blend(noises, [p["weight"] for p in items])


def frame_inputs(record: dict, settings: dict, prompts: PromptEncoder, shape) -> tuple[FrameCondition, torch.Tensor]:
    """The (text conditioning, initial latent) of one frame."""
    return prompts.frame(record["prompts"]), frame_latent(record, settings, shape)


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
    """Yield (frame number, image) for each record, in order. With `overlap_decode`, a batch decodes on a thread
    while the next one denoises."""
    later = settings.get("overlap_decode") and not overlap.needs_upcast(pipe)
    denoised = _denoised(pipe, settings, records, on_step, later)
    if later:
        yield from overlap.pipelined(denoised)
    else:
        for frames, finish in denoised:
            yield from zip(frames, finish())


def _denoised(pipe, settings: dict, records: list[dict], on_step: StepCallback, later: bool):
    """(frames, finish) per batch: finish() gives the batch's images (decoding them first when `later`)."""
    prompts = PromptEncoder(pipe)
    shape = latent_shape(pipe, settings["width"], settings["height"])
    dtype = pipe.unet.dtype
    device = prompts.device
    for batch in batches(records, settings["batch_size"]):
        frames = [r["frame"] for r in batch]
        inputs = [frame_inputs(r, settings, prompts, shape) for r in batch]
        conditioning, weights = pipeline_inputs([i[0] for i in inputs], device, dtype)
        latents = torch.stack([i[1] for i in inputs]).to(device, dtype)
        steps = batch[0]["steps"]

        def step_end(_pipe, step, _timestep, kwargs, frames=frames, steps=steps):
            on_step(frames, step + 1, steps, kwargs.get("latents"))  # may raise Cancelled: the loop stops here
            return kwargs

        parts = 1 if weights is None else weights.shape[1]
        with torch.no_grad(), composed(pipe.unet, weights, parts), \
                reused_features(pipe.unet, interval_of(settings)):
            result = pipe(
                **conditioning,
                latents=latents,
                num_inference_steps=steps,
                guidance_scale=float(batch[0]["guidance"]),
                guidance_rescale=float(batch[0].get("guidance_rescale", 0.0)),
                width=settings["width"],
                height=settings["height"],
                generator=[torch.Generator("cpu").manual_seed(r["seed"]) for r in batch],
                callback_on_step_end=step_end,
                output_type="latent" if later else "pil",
                **settings.get("pipeline_kwargs", {}),
            )
        images = result.images
        yield frames, (lambda images=images: overlap.decode(pipe, images)) if later else (lambda images=images: images)


def candidates(pipe, settings: dict, on_step: StepCallback):
    """pacing's draw: candidate records rendered as frames are (decoded in this thread), reported as step 0 of the
    frames they are searched for (a cancel stops the search too)."""
    plain = {**settings, "overlap_decode": False}

    def draw(records: list[dict], frames: list[int]) -> Sequence[np.ndarray]:
        def report(_frames, _step, steps, _latents=None):
            on_step(frames, 0, steps)

        return [np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
                for _, image in render(pipe, plain, records, report)]

    return draw


@register
class Interpolate(Mode):
    """Independent frames, batched; a distributed unit is one batch."""

    name = "INTERPOLATE"

    def render(self, ctx: Context) -> Frames:
        todo = ctx.todo
        if ctx.settings.get("pace"):  # even crossfades: the in-between frames move to their searched positions
            todo = pacing.paced(ctx.settings, ctx.chain, todo, ctx.store.folder,
                                candidates(ctx.pipe, ctx.settings, ctx.on_step))
        return render(ctx.pipe, ctx.settings, todo, ctx.on_step)

    def batches(self, records: list[dict], batch_size: int) -> Iterator[list[dict]]:
        return batches(records, batch_size)

    def units(self, plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
        units = super().units(plan, todo, records)
        if not plan["settings"].get("pace"):
            return units
        # A paced frame's position comes from its whole run: each worker gets the runs of its frames, and renders
        # only its own (the range of its batch).
        return [(pacing.run_frames(plan["frames"], frames), (frames[0], frames[-1])) for frames, _ in units]
