"""Schedulers by name (A1111-style sampler names included), always built from the model's own scheduler config,
with optional settings that must be parameters of the scheduler class and plain JSON values."""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .kwargs import check_json_value

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

# name -> diffusers scheduler class (None: the model's own).
SCHEDULERS: dict[str, str | None] = {
    "default": None,
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_karras": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpm++_karras": "DPMSolverMultistepScheduler",
    "dpm++_sde": "DPMSolverMultistepScheduler",
    "dpm++_sde_karras": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "heun": "HeunDiscreteScheduler",
    "lms": "LMSDiscreteScheduler",
    "lms_karras": "LMSDiscreteScheduler",
    "pndm": "PNDMScheduler",
    "lcm": "LCMScheduler",
    "tcd": "TCDScheduler",
}
# Settings a name implies (A1111's sampler names); the user's kwargs override them.
SCHEDULER_PRESETS: dict[str, dict[str, Any]] = {
    "euler_karras": {"use_karras_sigmas": True},
    "dpm++_karras": {"use_karras_sigmas": True},
    "dpm++_sde": {"algorithm_type": "sde-dpmsolver++"},
    "dpm++_sde_karras": {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    "lms_karras": {"use_karras_sigmas": True},
}


def scheduler_parameters(cls: type) -> list[str]:
    """The settings a scheduler class takes (its __init__ parameters): the only keys kwargs may use."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def checked_settings(label: str, cls, kwargs: dict | None) -> dict:
    """A copy of the plan's scheduler settings, refused (naming the accepted ones) where `cls` takes no such setting
    or a value isn't plain JSON."""
    kwargs = dict(kwargs or {})
    accepted = scheduler_parameters(cls)
    for key, value in kwargs.items():
        if key not in accepted:
            raise ModelError(f"scheduler {label} has no setting '{key}'; accepted: {', '.join(sorted(accepted))}")
        check_json_value(value, f"scheduler setting '{key}'", allow_objects=False)
    return kwargs


def set_scheduler(pipe: DiffusionPipeline, name: str, kwargs: dict | None = None) -> None:
    """Switch the pipeline's scheduler by name, always derived from the model's own scheduler config, with optional
    settings (JSON scalars/lists, each a parameter of that scheduler class). Same name and settings: no rebuild."""
    import diffusers

    if name not in SCHEDULERS:
        raise ModelError(f"unknown scheduler '{name}' (known: {', '.join(SCHEDULERS)})")
    if not hasattr(pipe, "_kd_default_scheduler"):
        pipe._kd_default_scheduler = pipe.scheduler
    default = pipe._kd_default_scheduler
    cls_name = SCHEDULERS[name]
    cls = type(default) if cls_name is None else getattr(diffusers, cls_name)
    kwargs = checked_settings(f"'{name}' ({cls.__name__})", cls, kwargs)
    state = (name, json.dumps(kwargs, sort_keys=True))
    if getattr(pipe, "_kd_scheduler_state", None) == state and pipe.scheduler is getattr(pipe, "_kd_scheduler", None):
        return
    if cls_name is None and not kwargs:
        scheduler = default
    else:
        try:
            scheduler = cls.from_config(default.config, **{**SCHEDULER_PRESETS.get(name, {}), **kwargs})
        except Exception as e:  # schedulers raise ValueError/NotImplementedError/TypeError for bad settings
            raise ModelError(f"scheduler '{name}' refused the settings {json.dumps(kwargs)}: {e}") from e
    pipe.scheduler = scheduler
    pipe._kd_scheduler = scheduler
    pipe._kd_scheduler_state = state
