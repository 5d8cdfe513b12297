"""Clip mode: all frames of a clip (the plan's frames from a start or restart to the next) denoised together by a
video model, an AnimateDiff motion UNet or a text-to-video UNet3D (see engine.clip_pipeline).

The engine runs its own denoising loop, in the stages of a diffusers pipeline (check inputs, encode prompts, prepare
latents, denoise, decode), because diffusers' video pipelines take one prompt per video (AnimateDiff: or prompts at
a few frames, blended linearly) and have no context windows for UNet3D. Here:

- Prompt travel: every frame's conditioning is PromptEncoder.frame of its baked prompts, exactly as interpolate mode
  makes it (weighted prompts slerp-blended, negatives, Compel syntax, composable parts). The motion UNet takes one
  text conditioning per frame. A UNet3D takes one per video, so each context window gets the mean of its frames'
  embeddings (prompts travel from window to window, not within one).
- Composable prompts (``a | b``): the UNet runs once per part, with every frame's part k in the same batch entry
  (frames with fewer parts repeat their first part at weight 0), and a frame's text prediction is the weighted sum
  of its parts' predictions (Composable Diffusion, as engine.composable does for single images).
- Guidance and CFG rescale are per frame; steps are shared by a clip (one scheduler runs the whole clip).
- Noise: each frame's seed (latents.seeded_noise). With FreeNoise (Qiu et al., "FreeNoise: Tuning-Free Longer Video
  Diffusion via Noise Rescheduling") only the first context window's frames use their seeds; each later block of
  context_length - context_overlap frames reuses a seeded shuffle of the block one window earlier, so every window
  starts from (nearly) the same set of noises as the first, which keeps long shots coherent. The shuffles are seeded
  by the clip's first frame's seed: deterministic.
- Context windows: shots longer than context_length frames are denoised in overlapping windows (context_windows).
  Each step runs the UNet on every window and averages the predictions where windows overlap, weighted by a pyramid
  that falls towards each window's edges (never to zero), then takes one scheduler step on the whole clip's latents.
  (diffusers' FreeNoise fuses windows inside the motion modules; windows over the whole UNet work for UNet3D too.)
- Decoding goes a few frames at a time (one with VAE slicing on), with the pipeline's VAE or the plan's decoder.
"""

from __future__ import annotations

import inspect
from typing import Iterator

import numpy as np
import torch

from ..frames import FrameStore
from ..latents import seeded_noise
from ..plan import PlanError, frames_of
from ..prompts import PromptEncoder, pipeline_inputs
from . import Context, Frames, Mode, StepCallback, WorkUnit, register, touched
DECODE_CHUNK = 4  # frames per VAE call without slicing: memory stays bounded for long shots


def context_windows(count: int, length: int, overlap: int) -> list[list[int]]:
    """Frame indices (0..count-1) of each context window: `length` frames stepping by length - overlap, the last
    one aligned to the end; a clip no longer than `length` is one window."""
    if count <= length:
        return [list(range(count))]
    stride = max(1, length - overlap)
    starts = list(range(0, count - length + 1, stride))
    if starts[-1] + length < count:
        starts.append(count - length)
    return [list(range(s, s + length)) for s in starts]


def window_weights(size: int) -> torch.Tensor:
    """Pyramid weights of a window's frames: 1 at both edges rising to the middle, so an overlapped frame leans on the
    window that sees it with more context around it; all above zero, so every frame counts."""
    return torch.tensor([float(min(i + 1, size - i)) for i in range(size)])


def initial_noise(records: list[dict], shape: tuple[int, ...], length: int, overlap: int,
                  free_noise: bool) -> torch.Tensor:
    """(frames, *shape) starting noise: every frame's seed, or FreeNoise's rescheduled noise (see the module doc)."""
    count = len(records)
    if not free_noise or count <= length:
        return torch.stack([seeded_noise(r["seed"], shape) for r in records])
    noise = [seeded_noise(r["seed"], shape) for r in records[:length]]
    stride = max(1, length - overlap)
    generator = torch.Generator("cpu").manual_seed(int(records[0]["seed"]) & 0xFFFF_FFFF_FFFF_FFFF)
    for start in range(length, count, stride):
        block = min(stride, length)
        order = torch.randperm(block, generator=generator).tolist()
        noise += [noise[start - length + order[j]] for j in range(min(block, count - start))]
    return torch.stack(noise)


def check_inputs(pipe, settings: dict, records: list[dict]) -> int:
    """The clip's shared step count. A clip whose frames differ in steps, or windows longer than the motion adapter
    can see, are plan errors (before any denoising) that say what to change."""
    steps = records[0]["steps"]
    other = [r["frame"] for r in records if r["steps"] != steps]
    if other:
        shown = ", ".join(map(str, other[:8])) + (" ..." if len(other) > 8 else "")
        raise PlanError(f"clip of frames {records[0]['frame']}-{records[-1]['frame']}: a clip is denoised in one "
                         f"go, so its frames must share one step count, but frame {records[0]['frame']} has {steps} "
                         f"steps and frames {shown} differ (keep Steps constant within a clip, or start a new clip "
                         f"with a restart)")
    window = min(len(records), settings["context_length"])
    limit = getattr(pipe, "_kd_motion_max", None)
    if limit is not None and window > limit:
        raise PlanError(f"context_length {settings['context_length']}: the motion adapter sees at most {limit} "
                         f"frames at once (motion_max_seq_length); set Context Length to {limit} or less")
    return steps


class Conditioning:
    """The clip's text conditioning: per frame a negative, K positive parts and the parts' weights."""

    def __init__(self, pipe, prompts: PromptEncoder, records: list[dict], dtype):
        device = prompts.device
        conds = [prompts.frame(r["prompts"]) for r in records]
        kwargs, weights = pipeline_inputs(conds, device, dtype)
        positive = kwargs["prompt_embeds"]  # (F, K*seq, dim): parts side by side
        count = positive.shape[0]
        self.parts = 1 if weights is None else weights.shape[1]
        seq = positive.shape[1] // self.parts
        self.positive = positive.view(count, self.parts, seq, -1).transpose(0, 1)  # (K, F, seq, dim)
        self.negative = kwargs["negative_prompt_embeds"][:, :seq]  # (F, seq, dim): repeated K times in the input
        self.weights = (torch.ones(count, 1) if weights is None else weights).to(device)  # (F, K)
        self.video_level = type(pipe.unet).__name__ == "UNet3DConditionModel"

    def hidden_states(self, window: list[int], guided: bool) -> torch.Tensor:
        """The UNet's encoder_hidden_states for one window: batch entries [negative,] part 0 ... part K-1; per frame
        for the motion UNet (entry-major, frames inside), per entry the window's mean for UNet3D."""
        entries = ([self.negative] if guided else []) + list(self.positive)
        picked = [e[window] for e in entries]
        if self.video_level:
            return torch.stack([e.float().mean(0) for e in picked]).to(self.negative.dtype)
        return torch.cat(picked)


def prepare_latents(pipe, settings: dict, records: list[dict]) -> torch.Tensor:
    """(F, C, h, w) float32 starting latents on the execution device, scaled for the scheduler."""
    factor = pipe.vae_scale_factor
    shape = (pipe.unet.config.in_channels, settings["height"] // factor, settings["width"] // factor)
    noise = initial_noise(records, shape, settings["context_length"], settings["context_overlap"],
                          settings.get("free_noise", True))
    return noise.to(pipe._execution_device) * pipe.scheduler.init_noise_sigma


def _predict(pipe, cond: Conditioning, latents: torch.Tensor, t, window: list[int], guidance: torch.Tensor,
             rescale: torch.Tensor) -> torch.Tensor:
    """The guided noise prediction (n, C, h, w) of one window's frames."""
    guided = bool((guidance[window] > 1.0).any())
    entries = cond.parts + (1 if guided else 0)
    clip = latents[window].permute(1, 0, 2, 3)[None]  # (1, C, n, h, w): the video UNets' layout
    sample = clip.expand(entries, *clip.shape[1:]).to(pipe.unet.dtype)
    out = pipe.unet(sample, t, encoder_hidden_states=cond.hidden_states(window, guided), return_dict=False)[0]
    out = out.float().permute(0, 2, 1, 3, 4)  # (entries, n, C, h, w)
    parts = out[1:] if guided else out
    weights = cond.weights[window].T.float()  # (K, n)
    text = torch.einsum("kn,kn...->n...", weights, parts)
    if not guided:
        return text
    uncond = out[0]
    scale = guidance[window].clamp(min=1.0).view(-1, 1, 1, 1)  # frames at 1 or below: no guidance, as diffusers
    noise = uncond + scale * (text - uncond)
    factor = rescale[window].view(-1, 1, 1, 1)
    if bool((factor > 0).any()):
        # CFG rescale (Lin et al.), per frame: pull the guided prediction's spread back to the text prediction's.
        dims = (1, 2, 3)
        rescaled = noise * (text.std(dim=dims, keepdim=True) / noise.std(dim=dims, keepdim=True))
        noise = factor * rescaled + (1.0 - factor) * noise
    return noise


def denoise(pipe, settings: dict, records: list[dict], cond: Conditioning, latents: torch.Tensor, steps: int,
            on_step: StepCallback) -> torch.Tensor:
    """The denoising loop over the whole clip; every step visits every context window once."""
    device = latents.device
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps, device=device)
    frames = [r["frame"] for r in records]
    windows = context_windows(len(records), settings["context_length"], settings["context_overlap"])
    guidance = torch.tensor([float(r["guidance"]) for r in records], device=device)
    rescale = torch.tensor([float(r.get("guidance_rescale", 0.0)) for r in records], device=device)
    extra = {}
    if "generator" in inspect.signature(scheduler.step).parameters:
        # Stochastic samplers (euler_a, dpm++_sde) draw noise each step: seeded, so a clip renders the same twice.
        extra["generator"] = torch.Generator("cpu").manual_seed(int(records[0]["seed"]) & 0xFFFF_FFFF_FFFF_FFFF)
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        model_input = scheduler.scale_model_input(latents, t)
        total = torch.zeros_like(latents)
        weight = torch.zeros(len(records), 1, 1, 1, device=device)
        for window in windows:
            w = window_weights(len(window)).to(device).view(-1, 1, 1, 1)
            total[window] += w * _predict(pipe, cond, model_input, t, window, guidance, rescale)
            weight[window] += w
        latents = scheduler.step(total / weight, t, latents, **extra, return_dict=False)[0]
        on_step(frames, i + 1, len(timesteps), latents)  # may raise Cancelled: nothing runs after this step
    return latents


def decode(pipe, settings: dict, latents: torch.Tensor, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB uint8 HxWx3) of the chosen frames, a few frames per VAE call (one with VAE slicing on)."""
    chunk = 1 if settings.get("vae_slicing") else DECODE_CHUNK
    for start in range(0, len(indices), chunk):
        part = indices[start:start + chunk]
        yield from zip(part, _decode(pipe.vae, latents[part]))


@torch.no_grad()
def _decode(vae, latents: torch.Tensor) -> np.ndarray:
    image = vae.decode((latents / vae.config.scaling_factor).to(vae.dtype), return_dict=False)[0].float()
    return ((image / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def render(pipe, settings: dict, records: list[dict], todo_frames: set[int], on_step: StepCallback,
           prompts: PromptEncoder) -> Iterator[tuple[int, np.ndarray]]:
    """Denoise one clip whole and yield (frame, RGB uint8 array) for its frames in `todo_frames`, in frame order.
    `prompts` is shared by a render's clips: each prompt text is encoded once."""
    records = sorted(records, key=lambda r: r["frame"])
    steps = check_inputs(pipe, settings, records)
    with torch.no_grad():
        cond = Conditioning(pipe, prompts, records, pipe.unet.dtype)
        latents = prepare_latents(pipe, settings, records)
        latents = denoise(pipe, settings, records, cond, latents, steps, on_step)
    wanted = [i for i, r in enumerate(records) if r["frame"] in todo_frames]
    for index, image in decode(pipe, settings, latents, wanted):
        yield records[index]["frame"], image
    if pipe.__dict__.get("_kd_offloaded"):
        pipe.maybe_free_model_hooks()  # every model back on the CPU until the next clip


@register
class Clip(Mode):
    """Clips denoised whole by a video model (its own pipeline, see engine.clip_pipeline): a render takes on every
    frame of the clips it touches, and a distributed unit is one clip."""

    name = "CLIP"
    linked = True

    def prepare(self, renderer, pipe, settings: dict, emit) -> tuple[object, list]:
        """The AnimateDiff or text-to-video pipeline, kept warm on the base; no ControlNet units."""
        from .. import clip_pipeline

        def decoder(name: str):
            return renderer.decoder(name, clip_pipeline.device_of(pipe), pipe.unet.dtype, emit)

        return clip_pipeline.prepare(pipe, settings, renderer.options, decoder, emit), []

    def render(self, ctx: Context) -> Frames:
        """Each clip that has frames to render is denoised whole; only its frames in `todo` are yielded."""
        todo = ctx.todo_frames
        prompts = PromptEncoder(ctx.pipe)  # shared by the clips: each prompt text is encoded once
        segments = ctx.segments()
        for segment in segments:  # a bad clip fails before any clip is denoised
            check_inputs(ctx.pipe, ctx.settings, segment)
        for segment in segments:
            yield from render(ctx.pipe, ctx.settings, segment, todo, ctx.on_step, prompts)

    def covered(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
                settings: dict) -> list[dict]:
        """A clip is made whole: every frame of the clips the range touches."""
        return [r for segment in touched(chain, set(frames_of(records))) for r in segment]

    def units(self, plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
        """A clip is denoised whole on one worker; its frames already current travel as seeds."""
        return [(frames_of(segment), None) for segment in touched(plan["frames"], set(frames_of(todo)))]
