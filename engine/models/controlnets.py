"""ControlNet models: found like other diffusers components, loaded onto the base pipeline's device and dtype,
cached so units that stay in a plan load once, and checked against the model they are to steer."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .device import default_dtype, pick_device
from .locate import locate_component
from .options import LoadOptions

if TYPE_CHECKING:
    import torch
    from diffusers import ControlNetModel, DiffusionPipeline

_CONTROLNETS: OrderedDict = OrderedDict()
_MAX_CONTROLNETS = 4


def load_controlnet(model: str, options: LoadOptions, device: str | None = None,
                    dtype: torch.dtype | None = None) -> ControlNetModel:
    """Load a ControlNetModel from a diffusers folder or cached Hugging Face id onto the base pipeline's device and
    dtype; cached, so units that stay in a plan load once."""
    from diffusers import ControlNetModel

    device = device or pick_device(options.device)
    dtype = dtype or default_dtype(device)
    source = _locate_controlnet(model, options)
    key = (source, str(device), str(dtype), options.allow_unsafe)
    if key in _CONTROLNETS:
        _CONTROLNETS.move_to_end(key)
        return _CONTROLNETS[key]
    kwargs: dict[str, Any] = dict(torch_dtype=dtype, local_files_only=not options.allow_download)
    if not options.allow_unsafe:
        kwargs["use_safetensors"] = True
    try:
        unit = ControlNetModel.from_pretrained(source, **kwargs)
    except (OSError, EnvironmentError, ValueError, KeyError, RuntimeError) as e:
        hint = "" if options.allow_unsafe else " If it only has .bin weights, allow unsafe (pickle) weights."
        raise ModelError(f"could not load ControlNet '{model}': {e}.{hint}") from e
    unit = unit.to(device).eval()
    _CONTROLNETS[key] = unit
    while len(_CONTROLNETS) > _MAX_CONTROLNETS:
        _CONTROLNETS.popitem(last=False)
    return unit


def _locate_controlnet(model: str, options: LoadOptions) -> str:
    return locate_component(model.strip(), "ControlNet", "ControlNetModel", "lllyasviel/sd-controlnet-canny", options,
                            ": only ControlNetModel (SD 1.x/2.x and SDXL ControlNets) is supported")


def check_controlnet_fits(base: DiffusionPipeline, unit: ControlNetModel, kind: str) -> None:
    """An SD ControlNet on an SDXL model (or the reverse) fails deep in a matmul; say so plainly instead."""
    config = getattr(unit, "config", None)
    if config is None:
        raise ModelError(f"{type(unit).__name__} is not a ControlNet model")
    unit_kind = "sdxl" if config.get("addition_embed_type") == "text_time" else "sd"
    cross = base.unet.config.cross_attention_dim
    if unit_kind != kind or config.get("cross_attention_dim") != cross:
        name = config.get("_name_or_path") or "a ControlNet"
        raise ModelError(f"ControlNet '{name}' is for {unit_kind.upper()} (cross-attention width "
                         f"{config.get('cross_attention_dim')}) but the model is {kind.upper()} (width {cross})")
