"""The plan's speed switches on a loaded pipeline (memory layout, VAE slicing and tiling, torch.compile), each undone
by the next plan that turns it off; the model's own UNet is kept beside a compiled one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelError
from .derive import base_pipeline

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def uncompiled(pipe: DiffusionPipeline) -> None:
    """Put the model's own UNet back where apply_speed put a compiled one."""
    base = base_pipeline(pipe)
    base.unet = base.__dict__.get("_kd_own_unet", base.unet)


def apply_speed(pipe: DiffusionPipeline, settings: dict) -> None:
    """The plan's speed switches on the loaded pipeline; each can be turned back off by the next plan.

    channels_last: the UNet's and VAE's weights in NHWC layout (faster convolutions on recent GPUs and oneDNN CPUs).
    vae_slicing: decode a batch one frame at a time (memory); vae_tiling: decode and encode in overlapping tiles
    (memory at large sizes, faint seams possible). compile: torch.compile of the UNet, compiled once per shape and
    reused across frames and renders (CUDA graphs on CUDA); the first frames of a new shape pay the compile time.
    """
    import torch

    base = base_pipeline(pipe)
    layout = torch.channels_last if settings.get("channels_last") else torch.contiguous_format
    own_unet = base.__dict__.setdefault("_kd_own_unet", base.unet)
    if base.__dict__.get("_kd_layout") != (layout, id(own_unet), id(base.vae)):  # a walk over every weight
        own_unet.to(memory_format=layout)
        base.vae.to(memory_format=layout)
        base.__dict__["_kd_layout"] = (layout, id(own_unet), id(base.vae))
    base.vae.enable_slicing() if settings.get("vae_slicing") else base.vae.disable_slicing()
    base.vae.enable_tiling() if settings.get("vae_tiling") else base.vae.disable_tiling()
    if settings.get("compile"):
        compiled = base.__dict__.get("_kd_compiled_unet")
        if compiled is None:
            cuda = str(base.device).startswith("cuda")
            try:
                compiled = torch.compile(own_unet, mode="reduce-overhead" if cuda else None, fullgraph=False)
            except Exception as e:  # no compiler toolchain, unsupported platform
                raise ModelError(f"torch.compile is not available here ({e}); turn Compile off") from e
            base.__dict__["_kd_compiled_unet"] = compiled
        base.unet = compiled
    else:
        base.unet = own_unet
