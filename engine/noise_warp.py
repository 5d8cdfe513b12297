"""Flow-warped noise: each frame's image-to-image noise is the previous frame's noise moved along the motion, so the
texture the denoiser grows from it moves with the surface instead of staying on the screen while the picture moves
under it (the "boiling" or "shower door" of a fixed seed), or changing every frame (a new seed per frame).

The noise lives in latent space (one value per vae_scale_factor pixels). It is moved by nearest-neighbour sampling at
each latent cell's centre: that keeps every value a draw of the same Gaussian (bilinear sampling would average
neighbours and shrink the variance, which the denoiser reads as a smoother, blurrier picture). Cells not visible in
the previous frame (revealed background, what came into the picture) take fresh noise from the frame's own seed.
The simplification against exact noise transport (Chang et al., "How I Warped Your Noise", 2024): a stretched area
repeats values instead of splitting them, and sub-cell motion rounds to whole cells.

The whole chain of noises is a function of the seeds and the flows only, so a resumed run recomputes it exactly.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch


def _cell_centres(size: int, factor: int) -> np.ndarray:
    """Pixel coordinate of each latent cell's centre along one axis."""
    return np.minimum(np.arange(size // factor) * factor + factor // 2, size - 1)


def warp_noise(previous: torch.Tensor, backward: np.ndarray, visible: np.ndarray, fresh: torch.Tensor) -> torch.Tensor:
    """Frame t's noise (C, h, w) from frame t-1's `previous` noise, moved along frame t's backward flow (H, W, 2 in
    pixels, engine/flow.py's convention); latent cells whose centre pixel is not `visible` (H, W bool) in frame t-1,
    or whose source falls outside the picture, take `fresh` (frame t's own seeded noise)."""
    channels, h, w = previous.shape
    height, width = backward.shape[:2]
    factor_y, factor_x = height // h, width // w
    if factor_y < 1 or factor_x < 1 or fresh.shape != previous.shape:
        raise ValueError(f"noise of shape {tuple(previous.shape)} does not match a {width}x{height} flow")
    ys, xs = _cell_centres(height, factor_y), _cell_centres(width, factor_x)
    flow = backward[np.ix_(ys, xs)]  # (h, w, 2) pixels
    source_x = np.rint((xs[None, :] + flow[..., 0] - factor_x // 2) / factor_x).astype(np.int64)
    source_y = np.rint((ys[:, None] + flow[..., 1] - factor_y // 2) / factor_y).astype(np.int64)
    keep = visible[np.ix_(ys, xs)] & (source_x >= 0) & (source_x < w) & (source_y >= 0) & (source_y < h)
    moved = previous[:, np.clip(source_y, 0, h - 1), np.clip(source_x, 0, w - 1)]
    return torch.where(torch.from_numpy(keep)[None], moved, fresh)


def _encode(pipe, image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The init images (the pipeline's preprocessed tensor) as latents: the distribution's mean, so the same picture
    always gives the same latents (diffusers samples it with the frame's generator)."""
    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:  # SDXL's fp16 VAE overflows: diffusers encodes in fp32 too
        vae.to(torch.float32)
    try:
        with torch.no_grad():
            encoded = vae.encode(image.to(vae.device, vae.dtype))
        latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
    finally:
        if upcast:
            vae.to(torch.float16)
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(mean).view(shape).to(latents)
        std = torch.tensor(std).view(shape).to(latents)
        return ((latents - mean) * config.scaling_factor / std).to(dtype)
    return (latents * config.scaling_factor).to(dtype)


@contextlib.contextmanager
def given_noise(pipe, noises: Sequence[torch.Tensor]) -> Iterator[None]:
    """Within the block, `pipe`'s image-to-image call noises its init latents with `noises` (one (C, h, w) tensor per
    frame of the batch) instead of drawing from the generator. diffusers' img2img, ControlNet img2img and
    depth-to-image pipelines all make their start latents in prepare_latents(image, timestep, batch_size, ...)."""

    def prepare_latents(image, timestep, batch_size, num_images_per_prompt, dtype, device, generator=None,
                        add_noise=True):
        image = image.to(device=device, dtype=dtype)
        latents = image if image.shape[1] == pipe.vae.config.latent_channels else _encode(pipe, image, dtype)
        if latents.shape[0] != batch_size:  # one init per prompt, several pictures per prompt
            latents = latents.repeat_interleave(batch_size // latents.shape[0], dim=0)
        noise = torch.stack(list(noises)).to(device=device, dtype=dtype)
        if noise.shape != latents.shape:
            raise ValueError(f"warped noise of shape {tuple(noise.shape)} for latents of shape {tuple(latents.shape)}")
        return pipe.scheduler.add_noise(latents, noise, timestep) if add_noise else latents

    had = "prepare_latents" in pipe.__dict__
    old = pipe.__dict__.get("prepare_latents")
    pipe.prepare_latents = prepare_latents
    try:
        yield
    finally:
        if had:
            pipe.prepare_latents = old
        else:
            del pipe.prepare_latents
