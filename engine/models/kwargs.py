"""Extra pipeline arguments given as JSON data: each a named parameter of the pipeline's __call__, none that the
engine passes itself, every value plain data that is never evaluated."""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

_PROMPTS = "use the keyframe prompts and the negative prompt"
_CONTROL = "use the ControlNet unit settings"
_ENGINE = "the engine sets it itself"
_PROGRESS = _ENGINE + " (progress and cancel)"
# Arguments the engine passes itself (or that need objects JSON can't describe) -> what to do instead.
RESERVED_PIPELINE_KWARGS: dict[str, str] = {
    **{k: _PROMPTS for k in ("prompt", "prompt_2", "negative_prompt", "negative_prompt_2", "prompt_embeds",
                             "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")},
    "latents": "use the seeds (and the latent source)",
    "generator": "use the seeds",
    "image": "use the mode's init image or the ControlNet unit images",
    "control_image": _CONTROL,
    "mask_image": "use the frames' masks (Inpainting)",
    "masked_image_latents": "use the frames' masks (Inpainting)",
    "padding_mask_crop": "the engine pastes the frame back outside the mask itself",
    "depth_map": "depth-to-image takes each frame's depth pass (Scene Depth)",
    "ip_adapter_image": "IP-Adapter is not supported yet",
    "ip_adapter_image_embeds": "IP-Adapter is not supported yet",
    "strength": "use the Strength setting (per keyframe)",
    "num_inference_steps": "use the Steps setting",
    "timesteps": "use the Steps setting and the scheduler settings",
    "sigmas": "use the Steps setting and the scheduler settings",
    "guidance_scale": "use the Guidance (CFG) setting",
    "guidance_rescale": "use the CFG Rescale setting",
    "width": "use the render resolution",
    "height": "use the render resolution",
    "num_images_per_prompt": "use the Batch Size setting",
    "controlnet_conditioning_scale": _CONTROL,
    "control_guidance_start": _CONTROL,
    "control_guidance_end": _CONTROL,
    "output_type": _ENGINE,
    "return_dict": _ENGINE,
    "callback": _PROGRESS,
    "callback_steps": _PROGRESS,
    "callback_on_step_end": _PROGRESS,
    "callback_on_step_end_tensor_inputs": _PROGRESS,
}


def check_pipeline_kwargs(pipe: DiffusionPipeline, kwargs: dict, reserved: Collection[str] | None = None,
                          what: str = "pipeline arguments") -> dict:
    """Validate extra arguments for the pipeline's __call__: each key a named parameter of it, none that the engine
    sets itself (`reserved`, by default RESERVED_PIPELINE_KWARGS), every value plain JSON data. Nothing is ever
    evaluated: a string stays a string. Returns a copy to pass on."""
    if not isinstance(kwargs, Mapping):
        raise ModelError(f"{what} must be a JSON object, not {type(kwargs).__name__}")
    reserved = RESERVED_PIPELINE_KWARGS if reserved is None else reserved
    params = inspect.signature(type(pipe).__call__).parameters
    accepted = sorted(p.name for p in params.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    for key, value in kwargs.items():
        if key in reserved:
            raise ModelError(f"{what}: '{key}' can't be given here: {RESERVED_PIPELINE_KWARGS.get(key, _ENGINE)}")
        if key not in accepted:
            free = [k for k in accepted if k not in reserved]
            raise ModelError(f"{what}: '{key}' is not an argument of {type(pipe).__name__} (accepted: "
                             f"{', '.join(free)})")
        check_json_value(value, f"{what}: '{key}'", allow_objects=True)
    return dict(kwargs)


def check_json_value(value: Any, where: str, allow_objects: bool) -> None:
    """Plain JSON data only: what json.loads can produce, with finite numbers (and no objects where not allowed)."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where}: {value} is not a finite number")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_json_value(item, where, allow_objects)
        return
    if isinstance(value, Mapping) and allow_objects:
        for k, item in value.items():
            if not isinstance(k, str):
                raise ModelError(f"{where}: object keys must be strings, got {k!r}")
            check_json_value(item, where, allow_objects)
        return
    kinds = "numbers, strings, true/false, null, lists" + (" and objects" if allow_objects else "")
    raise ModelError(f"{where}: {type(value).__name__} values are not allowed (JSON {kinds} only)")
