"""Latent fusion: after every denoising step, the latents of the pixels visible in the previous frame are pulled
towards the previous output moved along the flow, noised to the level the step reached; so the denoiser can't wander
off what the frame before it made, and only what is new (revealed, come into the picture) is invented freely.

It is the latent blending of diffusers' inpainting loop (the known part re-noised to the next timestep and pasted
back after each step) with a soft weight, as Rerender-A-Video's pixel-aware fusion uses it for video (Yang et al.,
2023). The target is re-noised with the frame's own noise (the flow-warped noise, or its seeded noise), the same
noise its start latents have, so target and latents share one trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Fusion:
    """One frame's fusion target: the previous output warped along the flow (RGB uint8), where it is valid (H x W
    bool: visible in both frames), and the weight of the pull per step (0: none, 1: the target where valid)."""

    target: np.ndarray
    visible: np.ndarray
    weight: float


def latent_mask(visible: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """(h, w) float mask of latent cells whose pixels are all visible: a cell half on revealed background is new."""
    import cv2

    area = cv2.resize(visible.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((area > 0.999).astype(np.float32))


def _next_timestep(scheduler, timestep) -> torch.Tensor | None:
    """The timestep the latents are at after the step that used `timestep` (None after the last one: clean)."""
    timesteps = scheduler.timesteps
    where = (timesteps == timestep).nonzero()
    if len(where) == 0:
        return None
    after = int(where[-1]) + 1
    return timesteps[after:after + 1] if after < len(timesteps) else None


def fusion_pull(pipe, targets: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor, noises: torch.Tensor):
    """A step-end function (latents, timestep) -> latents for a batch: targets are the warped previous outputs'
    latents (B, C, h, w), masks (B, 1, h, w), weights (B,), noises the frames' noises (B, C, h, w)."""
    pull = (masks * weights.view(-1, 1, 1, 1)).to(targets)

    def fuse(latents: torch.Tensor, timestep) -> torch.Tensor:
        after = _next_timestep(pipe.scheduler, timestep)
        goal = targets if after is None else pipe.scheduler.add_noise(targets, noises.to(targets), after)
        return latents + pull.to(latents) * (goal.to(latents) - latents)

    return fuse
