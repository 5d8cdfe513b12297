"""The live preview: the frame being denoised, roughly, as a small PNG written every so often during a render.

How a step's latents become a picture:

- A tiny autoencoder (AutoencoderTiny: the embedded shapes model's own, or a TAESD decoder the plan sets) decodes
  them: that is what tiny decoders are for, and the picture is the frame as it stands. A linear map fitted to the
  shapes model's decoder is visibly off (mean error 0.14 of full scale against the decoded frame; the best linear
  map possible, fitted to those very frames, still 0.12): its decoder is not close to linear.
- Stable Diffusion 1.x/2.x and SDXL autoencoders: the published latent-to-RGB factor matrices (as ComfyUI's
  latent_formats.py lists them; SDXL's with its bias): one matrix product per latent pixel, microseconds, where a
  full VAE decode costs as much as a denoising step.
- Any other autoencoder: a linear map fitted once per model by least squares from latents of known pictures
  (encoding is the VAE's cheaper half and needs no denoising), when the render prepares (before any step, so nothing
  else is using the VAE then), kept on the autoencoder.

Previews are throttled twice: at most one per `interval` seconds (0.5 by default), and their own measured cost kept
under BUDGET of the render's time (a tiny decoder on a CPU costs a tenth of a step: it previews every few steps).
bench/preview_overhead.py measures what is left. A preview that can't be made (an odd latent shape, a full disk) is
skipped: it must never stop a render.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Callable

import numpy as np
import torch

from . import events
from .models.derive import base_pipeline

# Where the preview goes in the output folder; the frame store treats the name as its own (frames.py).
FILENAME = "manifest.preview.png"
INTERVAL = 0.5  # seconds between previews, at most
BUDGET = 0.03  # the share of the render's time previews may take
LONG_SIDE = 256  # the preview's size: the frame's aspect, at most this many pixels along its longer side

# Latent channel -> (R, G, B) in -1..1, for latents as the denoising loop holds them (scaled by the VAE's factor).
SD_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721),
              (-0.2120, -0.2616, -0.7177))
SD_BIAS = (0.0, 0.0, 0.0)
SDXL_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                (-0.3165, -0.2492, -0.2188))
SDXL_BIAS = (0.1084, -0.0175, -0.0011)

_MAP_KEY = "_kd_preview_map"


def own_vae(pipe):
    """The model's own autoencoder (not a tiny decoder put in its place: that shares its latent space)."""
    base = base_pipeline(pipe)
    return base.__dict__.get("_kd_own_vae", base.vae)


def known_factors(vae) -> tuple[tuple, tuple] | None:
    """The published map for Stable Diffusion's and SDXL's autoencoders (by their architecture and scaling factor),
    or None."""
    config = vae.config
    if type(vae).__name__ != "AutoencoderKL" or config.latent_channels != 4 or \
            list(config.block_out_channels) != [128, 256, 512, 512]:
        return None
    if abs(config.scaling_factor - 0.18215) < 1e-4:
        return SD_FACTORS, SD_BIAS
    if abs(config.scaling_factor - 0.13025) < 1e-4:
        return SDXL_FACTORS, SDXL_BIAS
    return None


def fit_pictures(count: int = 24, size: int = 64, seed: int = 0) -> np.ndarray:
    """Pictures to fit a map from: flat colours, two-colour splits, gradients and coloured boxes and discs on a
    coloured ground (the embedded model's world and the broad colour areas any picture has). (count, size, size, 3)
    floats in 0..1."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    out = np.empty((count, size, size, 3), np.float32)
    for i in range(count):
        a, b = rng.random(3), rng.random(3)
        kind = i % 4
        if kind == 0:
            t = np.zeros_like(x)
        elif kind == 1:
            t = (x > rng.uniform(0.3, 0.7)).astype(np.float32)
        elif kind == 2:
            t = x if rng.random() < 0.5 else y
        else:
            cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
            t = (((x - cx) ** 2 + (y - cy) ** 2) < r * r) if rng.random() < 0.5 else \
                ((abs(x - cx) < r) & (abs(y - cy) < r))
            t = t.astype(np.float32)
        out[i] = a * (1 - t[..., None]) + b * t[..., None]
    return out


@torch.no_grad()
def scaled_latents(vae, pictures: np.ndarray) -> torch.Tensor:
    """Pictures (N, H, W, 3, 0..1) -> latents as the denoising loop holds them (the distribution's mean, scaled and,
    for VAEs that normalise, shifted like diffusers does)."""
    tensor = torch.from_numpy(pictures).permute(0, 3, 1, 2).to(vae.device, vae.dtype) * 2.0 - 1.0
    encoded = vae.encode(tensor)
    latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
        return (latents - mean) * config.scaling_factor / std
    shift = getattr(config, "shift_factor", None) or 0.0
    return (latents - shift) * config.scaling_factor


def fit_factors(vae, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares map (channels x 3, bias 3) from `vae`'s latent pixels to the mean colour (-1..1) of the
    `factor` x `factor` patch each stands for, over fit_pictures."""
    pictures = fit_pictures()
    latents = scaled_latents(vae, pictures).float().cpu().numpy()  # (N, C, h, w)
    n, channels, h, w = latents.shape
    patches = pictures[:, :h * factor, :w * factor].reshape(n, h, factor, w, factor, 3).mean(axis=(2, 4))
    a = np.concatenate([latents.transpose(0, 2, 3, 1).reshape(-1, channels), np.ones((n * h * w, 1))], axis=1)
    solution = np.linalg.lstsq(a, patches.reshape(-1, 3) * 2.0 - 1.0, rcond=None)[0]
    if not np.all(np.isfinite(solution)):
        raise ValueError("the autoencoder's latents of the fit pictures are not finite")
    return solution[:channels], solution[channels]


def latent_map(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's map (weights channels x 3, bias 3, float32 on the latents' device), kept on its autoencoder."""
    vae = own_vae(pipe)
    cached = vae.__dict__.get(_MAP_KEY)
    if cached is None:
        known = known_factors(vae)
        weights, bias = (np.array(known[0]), np.array(known[1])) if known else \
            fit_factors(vae, base_pipeline(pipe).vae_scale_factor)
        cached = (torch.tensor(weights, dtype=torch.float32, device=vae.device),
                  torch.tensor(bias, dtype=torch.float32, device=vae.device))
        vae.__dict__[_MAP_KEY] = cached
    return cached


def uses_decoder(pipe) -> bool:
    """Whether previews decode with the pipeline's autoencoder: a tiny one (see the module doc)."""
    return type(pipe.vae).__name__ == "AutoencoderTiny"


@torch.no_grad()
def to_rgb(latents: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
    """One frame's latents (C, h, w) -> an RGB uint8 (h, w, 3) picture."""
    rgb = torch.einsum("chw,cr->hwr", latents.float().to(weights.device), weights) + bias
    return ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).cpu().numpy()


def preview_size(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """The preview's (width, height): the frame's aspect, its longer side at most `long_side` (never upscaled)."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class Previewer:
    """Writes the preview of the frame being denoised and sends a preview event when one is due: `interval` seconds
    after the last one, and late enough that previews take at most `budget` of the time (each one's cost measured)."""

    def __init__(self, pipe, settings: dict, folder: str, emit: events.Emit, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.perf_counter, budget: float = BUDGET):
        self.pipe = pipe
        self.decode = uses_decoder(pipe)
        self.channels = pipe.vae.config.latent_channels
        if not self.decode:
            self.weights, self.bias = latent_map(pipe)  # fitted here, before denoising starts
        self.size = preview_size(settings["width"], settings["height"])
        self.path = os.path.join(folder, FILENAME)
        self.emit = emit
        self.interval = interval
        self.budget = budget
        self.clock = clock
        self._due = -float("inf")
        self.written = 0
        self.cost = 0.0  # seconds spent on previews

    def offer(self, frames: list[int], step: int, steps: int, latents: torch.Tensor | None) -> None:
        """A step's latents (batch first; the batch's first frame is shown): previewed when one is due."""
        start = self.clock()
        if latents is None or start < self._due:
            return
        try:
            self._write(latents[0] if latents.dim() == 4 else latents)
        except Exception as e:  # a preview never stops a render
            self._due = float("inf")  # nor is tried again in it
            print(f"warning: live preview stopped: {type(e).__name__}: {e}", file=sys.stderr)
            return
        spent = self.clock() - start
        self.cost += spent
        self._due = start + max(self.interval, spent / self.budget if self.budget > 0 else 0.0)
        self.written += 1
        self.emit(events.preview(frames[0], step, steps, self.path))

    def picture(self, latents: torch.Tensor) -> np.ndarray:
        """One frame's latents (C, h, w) -> RGB uint8."""
        if latents.dim() != 3 or latents.shape[0] != self.channels:
            raise ValueError(f"latents of shape {tuple(latents.shape)} have no preview")
        if self.decode:
            from .modes.overlap import decode

            return decode(self.pipe, latents[None])[0]
        return to_rgb(latents, self.weights, self.bias)

    def _write(self, latents: torch.Tensor) -> None:
        from PIL import Image

        picture = Image.fromarray(self.picture(latents)).resize(self.size, Image.BILINEAR)
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"  # the name frames.sweep_temporary knows
        try:
            picture.save(tmp, format="PNG", compress_level=1)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
