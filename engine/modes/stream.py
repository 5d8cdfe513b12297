"""Stream-batched image-to-image for video mode: frames at different denoising steps share one UNet call.

Plain batching needs frames that agree on steps, strength, guidance and CFG rescale; keying any of them per frame
(a strength ramp, an audio-driven guidance) leaves batches of one. Here a pool of `batch_size` frames is denoised
together, each frame with its own copy of the scheduler (any diffusers scheduler, multistep ones included), its own
timestep, guidance, rescale and prompts: every UNet call advances each frame in the pool by one step, a frame that
finishes leaves and the next one takes its place, so the UNet runs full batches whatever is keyed (the idea of
StreamDiffusion's stream batch, for any mix of frames). Each frame is what diffusers' img2img makes of it alone: its
seed's generator encodes the init and draws the noise the same way (but for CFG rescale, which this loop applies to SD
1.x/2.x frames too, where diffusers' SD img2img has none).

Stages follow diffusers' img2img: the frame's timesteps (get_timesteps), its latents (VAE encode + add_noise), the
denoising loop (scale input, UNet, guidance, scheduler step), decoding. Stable Diffusion 1.x/2.x and SDXL models
(SD-Turbo, SDXL-Turbo included); inpainting, depth, ControlNet and LCM-embedding models go through the plain batches
(see `supported`).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .. import image_ops
from ..composable import composed
from ..prompts import pipeline_inputs
from . import overlap
from ..errors import Cancelled
from ..models.derive import derive, model_kind, pipeline_kind
from .diffuse import Job, steps_run


@dataclass
class _Slot:
    """One frame in the pool: where it is in its own schedule."""

    record: dict
    scheduler: object
    timesteps: torch.Tensor
    latents: torch.Tensor  # (1, C, h, w)
    generator: torch.Generator
    cond: object  # the frame's FrameCondition, assembled once
    step_kwargs: dict  # the generator, for schedulers that draw noise in their step
    index: int = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.timesteps)


def supported(job: Job) -> str | None:
    """Why this job can't be stream-batched, or None when it can."""
    pipe = job.pipe
    if job.controlnets:
        return "ControlNet units"
    if model_kind(pipe) not in ("sd", "sdxl"):
        return f"{model_kind(pipe)} models (stream batching takes Stable Diffusion 1.x/2.x and SDXL models)"
    if pipe.unet.config.time_cond_proj_dim is not None:
        return "models with a guidance embedding (LCM)"
    if job.settings.get("pipeline_kwargs"):
        return "extra pipeline arguments"
    if job.settings.get("feature_reuse", 0) >= 2:
        return "feature reuse (each frame in the pool is at its own step; the deep features can't be shared)"
    return None


def eligible(record: dict) -> bool:
    """Frames with an inpainting mask go through the plain path (their init is pasted back per frame)."""
    return not record.get("mask")


def render(job: Job, records: list[dict], read_init: Callable[[dict], np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, RGB uint8 image) for `records` in frame order. A frame's init is read when it joins the pool."""
    pipe = derive(job.pipe, "img2img")
    width = max(1, int(job.settings["batch_size"]))
    time_ids = _time_ids(pipe, job.settings["width"], job.settings["height"])
    waiting = iter(records)
    pool: list[_Slot] = []
    finished: dict[int, np.ndarray] = {}  # frames done ahead of an earlier frame still in the pool
    order = [r["frame"] for r in records]
    out = 0
    while out < len(order):
        while len(pool) < width:
            record = next(waiting, None)
            if record is None:
                break
            if steps_run(record["steps"], float(record.get("strength", 0.6))) < 1:
                job.on_step([record["frame"]], record["steps"], record["steps"])
                finished[record["frame"]] = read_init(record)  # less than one step to run: the frame is its init
            else:
                pool.append(_admit(pipe, record, read_init(record), job.prompts.frame(record["prompts"])))
        if pool:
            try:
                _step(job, pipe, pool, time_ids)
            except Cancelled:  # frames that finished ahead of an earlier one are made: they are kept
                yield from sorted(finished.items())
                raise
            done = [s for s in pool if s.done]
            for slot, image in zip(done, _decode(pipe, [s.latents for s in done]) if done else []):
                finished[slot.record["frame"]] = image
            pool = [s for s in pool if not s.done]
        while out < len(order) and order[out] in finished:
            yield order[out], finished.pop(order[out])
            out += 1


def _admit(pipe, record: dict, init: np.ndarray, cond) -> _Slot:
    """The frame's own scheduler at the start of its share of the schedule, and its noised init latents, drawn from
    its seed's generator in the order diffusers' img2img draws them (encoder sample, then noise)."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents
    from diffusers.utils.torch_utils import randn_tensor

    steps, strength = record["steps"], float(record.get("strength", 0.6))
    scheduler = copy.deepcopy(pipe.scheduler)
    device, dtype = pipe.device, pipe.unet.dtype
    scheduler.set_timesteps(steps, device=device)
    start = max(steps - steps_run(steps, strength), 0) * scheduler.order
    timesteps = scheduler.timesteps[start:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    generator = torch.Generator("cpu").manual_seed(record["seed"])
    image = pipe.image_processor.preprocess(image_ops.to_pil(init)).to(device, dtype)
    with torch.no_grad(), _vae_in_fp32(pipe):
        latents = retrieve_latents(pipe.vae.encode(image.to(pipe.vae.dtype)), generator=generator).to(dtype)
    config = pipe.vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:  # SDXL-family VAEs that normalise their latents
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(device, dtype)
        std = torch.tensor(std).view(1, -1, 1, 1).to(device, dtype)
        latents = (latents - mean) * config.scaling_factor / std
    else:
        latents = latents * config.scaling_factor
    noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=dtype)
    latents = scheduler.add_noise(latents, noise, timesteps[:1])
    return _Slot(record, scheduler, timesteps, latents, generator, cond, _step_kwargs(scheduler, generator))


@contextlib.contextmanager
def _vae_in_fp32(pipe) -> Iterator[None]:
    """SDXL's fp16 VAE overflows: diffusers encodes and decodes with it in fp32 (here in the rendering thread, so no
    other batch is using it meanwhile)."""
    if not overlap.needs_upcast(pipe):
        yield
        return
    pipe.vae.to(dtype=torch.float32)
    try:
        yield
    finally:
        pipe.vae.to(dtype=torch.float16)


def _time_ids(pipe, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """SDXL's micro-conditioning (size, crop, aesthetic score) for the frames, as diffusers' img2img defaults make it:
    (positive, negative) rows; None for SD 1.x/2.x."""
    if pipeline_kind(pipe) != "sdxl":
        return None
    size = (height, width)
    projection = pipe.text_encoder_2.config.projection_dim if pipe.text_encoder_2 is not None else None
    ids, negative = pipe._get_add_time_ids(size, (0, 0), size, 6.0, 2.5, size, (0, 0), size, dtype=pipe.unet.dtype,
                                           text_encoder_projection_dim=projection)
    return ids.to(pipe.device), negative.to(pipe.device)


def _step(job: Job, pipe, pool: list[_Slot], time_ids) -> None:
    """One UNet call for the whole pool, each frame at its own timestep, then each frame's scheduler step."""
    kwargs, weights = pipeline_inputs([s.cond for s in pool], pipe.device, pipe.unet.dtype)
    guidance = [float(s.record["guidance"]) for s in pool]
    cfg = any(g > 1.0 for g in guidance)  # diffusers' rule: no unconditional half at guidance <= 1
    latents = torch.cat([s.scheduler.scale_model_input(s.latents, s.timesteps[s.index]) for s in pool])
    timesteps = torch.stack([s.timesteps[s.index] for s in pool]).to(pipe.device)
    embeds = kwargs["prompt_embeds"]
    added = None
    if time_ids is not None:  # SDXL: each frame's pooled text embedding and the size conditioning
        added = {"text_embeds": kwargs["pooled_prompt_embeds"], "time_ids": time_ids[0].repeat(len(pool), 1)}
    if cfg:
        latents, timesteps = torch.cat([latents, latents]), torch.cat([timesteps, timesteps])
        embeds = torch.cat([kwargs["negative_prompt_embeds"], embeds])
        if added is not None:
            added = {"text_embeds": torch.cat([kwargs["negative_pooled_prompt_embeds"], added["text_embeds"]]),
                     "time_ids": torch.cat([time_ids[1].repeat(len(pool), 1), added["time_ids"]])}
    parts = 1 if weights is None else weights.shape[1]
    with torch.no_grad(), composed(pipe.unet, weights, parts):
        noise = pipe.unet(latents, timesteps, encoder_hidden_states=embeds, added_cond_kwargs=added,
                          return_dict=False)[0]
    if cfg:
        uncond, text = noise.chunk(2)
    else:
        uncond = text = noise
    for i, slot in enumerate(pool):
        pred = text[i:i + 1]
        if guidance[i] > 1.0:
            pred = uncond[i:i + 1] + guidance[i] * (text[i:i + 1] - uncond[i:i + 1])
            rescale = float(slot.record.get("guidance_rescale", 0.0))
            if rescale:
                from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

                pred = rescale_noise_cfg(pred, text[i:i + 1], guidance_rescale=rescale)
        t = slot.timesteps[slot.index]
        slot.latents = slot.scheduler.step(pred, t, slot.latents, **slot.step_kwargs, return_dict=False)[0].to(
            pred.dtype)
        slot.index += 1
    # Progress per group of frames at the same step (may raise Cancelled: the pool stops within this step).
    groups: dict[tuple[int, int], list[int]] = {}
    first: dict[tuple[int, int], torch.Tensor] = {}  # each group's first frame's latents, for the live preview
    for slot in pool:
        total = len(slot.timesteps) // slot.scheduler.order
        step = min(-(-slot.index // slot.scheduler.order), total)
        groups.setdefault((step, total), []).append(slot.record["frame"])
        first.setdefault((step, total), slot.latents)
    for (step, total), frames in groups.items():
        job.on_step(frames, step, total, first[(step, total)])


def _step_kwargs(scheduler, generator: torch.Generator) -> dict:
    accepted = inspect.signature(scheduler.step).parameters
    return {"generator": generator} if "generator" in accepted else {}


def _decode(pipe, latents: list[torch.Tensor]) -> list[np.ndarray]:
    """The finished frames' latents -> RGB uint8, decoded as one batch (by the plan's decoder when it has one)."""
    with _vae_in_fp32(pipe):
        return overlap.decode(pipe, torch.cat(latents))
