"""Tiny autoencoders (diffusers' AutoencoderTiny, TAESD-type) standing in for a pipeline's VAE: much faster decoding
and encoding at a small cost in detail. The model's own VAE is kept, to be put back."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .derive import base_pipeline
from .device import default_dtype
from .options import LoadOptions

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderTiny, DiffusionPipeline


def load_decoder(name: str, options: LoadOptions, device: str, dtype: torch.dtype | None = None) -> AutoencoderTiny:
    """A tiny autoencoder (diffusers' AutoencoderTiny, TAESD-type) from a folder or a Hugging Face id, to stand in for
    a pipeline's VAE (see use_decoder)."""
    import torch  # noqa: F401
    from diffusers import AutoencoderTiny

    path = os.path.expanduser(name.strip())
    local = os.path.isdir(path)
    kwargs: dict[str, Any] = dict(torch_dtype=dtype or default_dtype(device),
                                  local_files_only=not options.allow_download)
    if not options.allow_unsafe:
        kwargs["use_safetensors"] = True
    try:
        decoder = AutoencoderTiny.from_pretrained(path if local else name.strip(), **kwargs)
    except (OSError, EnvironmentError, ValueError, KeyError, RuntimeError, TypeError) as e:
        fetch = "" if local or options.allow_download else (
            f" If it is a Hugging Face model, download it first (hf download {name.strip()}) or allow downloads.")
        raise ModelError(f"could not load decoder '{name}' (an AutoencoderTiny folder or id, e.g. madebyollin/taesd "
                         f"for SD 1.x/2.x, madebyollin/taesdxl for SDXL): {e}.{fetch}") from e
    return decoder.to(device)


def use_decoder(pipe: DiffusionPipeline, decoder: AutoencoderTiny | None) -> None:
    """Put `decoder` (None: the model's own VAE back) in place of the pipeline's VAE, for encoding and decoding.
    The pipelines derived from it follow (see derive)."""
    base = base_pipeline(pipe)
    own = base.__dict__.setdefault("_kd_own_vae", base.vae)
    vae = own if decoder is None else decoder
    if decoder is not None:
        channels = base.unet.config.out_channels  # in_channels also counts an inpainting mask or a depth map
        if decoder.config.latent_channels != own.config.latent_channels or channels != own.config.latent_channels:
            raise ModelError(f"the decoder has {decoder.config.latent_channels} latent channels but the model's "
                             f"autoencoder has {own.config.latent_channels}: it is not a decoder for this model")
        factor = 2 ** (len(decoder.config.block_out_channels) - 1)
        if factor != base.vae_scale_factor:
            raise ModelError(f"the decoder scales pictures by {factor} but the model's autoencoder by "
                             f"{base.vae_scale_factor}: it is not a decoder for this model")
    base.vae = vae
