"""Seeded noise and spherical interpolation, the two tools of prompt interpolation."""

from __future__ import annotations

from typing import Sequence

import torch


def seeded_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """Gaussian noise from a CPU generator, so a seed gives the same latent on every device."""
    generator = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical interpolation of whole tensors; falls back to lerp when they are nearly parallel."""
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    fa, fb = a.flatten().double(), b.flatten().double()
    dot = torch.dot(fa / fa.norm(), fb / fb.norm()).clamp(-1.0, 1.0)
    if dot.abs() > dot_threshold:
        return torch.lerp(a.float(), b.float(), t).to(a.dtype)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    wa = torch.sin((1.0 - t) * theta) / sin_theta
    wb = torch.sin(t * theta) / sin_theta
    return (wa * a.double() + wb * b.double()).to(a.dtype)


def blend(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Blend any number of tensors by weights with successive slerps.

    For two tensors this is slerp(a, b, wb / (wa + wb)); each further tensor is slerped in by its share of the
    running total, so the result doesn't depend on prompts being exactly two.
    """
    if len(tensors) != len(weights) or not tensors:
        raise ValueError("blend needs as many weights as tensors, and at least one")
    result, total = tensors[0], float(weights[0])
    for tensor, weight in zip(tensors[1:], weights[1:]):
        total += float(weight)
        if total > 0:
            result = slerp(result, tensor, float(weight) / total)
    return result
