"""Schedulers by name, always built from the model's own scheduler config, with optional settings that must be
parameters of the scheduler class and plain JSON values. A name is one of the friendly names below (A1111-style
sampler names included) or the name of any scheduler class diffusers exports that fits the model (its scheduler's
`compatibles`, e.g. "DEISMultistepScheduler")."""

from __future__ import annotations

import inspect
import json
import re
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


_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*Scheduler")


def compatible_classes(default: Any) -> dict[str, type]:
    """The diffusers scheduler classes that can replace a model's own scheduler (`default`), by class name, sorted:
    those diffusers
    lists as compatible with it (`compatibles`), and, where it is one of the discrete-time schedulers SD and SDXL UNets
    use (diffusers' KarrasDiffusionSchedulers), all of those and the friendly names' classes (LCM and TCD too: they
    drive the same UNets, distilled or with an LCM/TCD LoRA, though diffusers lists none of them as compatible)."""
    import diffusers
    from diffusers.schedulers import KarrasDiffusionSchedulers

    own = type(default)
    classes = {cls.__name__: cls for cls in getattr(default, "compatibles", [])}
    classes[own.__name__] = own
    family = {e.name for e in KarrasDiffusionSchedulers} | {c for c in SCHEDULERS.values() if c}
    if own.__name__ in family:
        classes.update({name: getattr(diffusers, name) for name in sorted(family) if hasattr(diffusers, name)})
    return dict(sorted(classes.items()))


def _diffusers_scheduler(name: str) -> type | None:
    """The diffusers scheduler class of that name, or None (the name is only looked up when it looks like one)."""
    if not _CLASS_NAME.fullmatch(name):
        return None
    import diffusers

    try:
        cls = getattr(diffusers, name, None)
    except Exception:  # diffusers' lazy import of a class whose optional dependency is missing
        return None
    return cls if isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin) else None


def scheduler_class(name: str, default: Any) -> type:
    """The class a plan's scheduler name means for a model whose own scheduler is `default`: a friendly name or a
    diffusers class name; ModelError (listing what fits the model) for an unknown name or a class that doesn't fit."""
    if name == "default":
        return type(default)
    compatible = compatible_classes(default)
    cls_name = SCHEDULERS.get(name, name)
    if cls_name in compatible:
        return compatible[cls_name]
    friendly = [n for n, c in SCHEDULERS.items() if c is None or c in compatible]
    choices = f"names: {', '.join(friendly)}; diffusers classes: {', '.join(compatible)}"
    if name in SCHEDULERS or _diffusers_scheduler(name):
        which = f"'{name}'" + (f" ({cls_name})" if cls_name != name else "")
        raise ModelError(f"scheduler {which} doesn't fit this model, whose own scheduler is {type(default).__name__} "
                         f"(diffusers doesn't list it as compatible); choose one that does: {choices}")
    raise ModelError(f"unknown scheduler '{name}': choose one that fits this model ({type(default).__name__}): "
                     f"{choices}")


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
    """Switch the pipeline's scheduler by name (a friendly name or a diffusers class that fits the model), always
    derived from the model's own scheduler config, with optional settings (JSON scalars/lists, each a parameter of
    that scheduler class). Same name and settings: no rebuild."""
    if not hasattr(pipe, "_kd_default_scheduler"):
        pipe._kd_default_scheduler = pipe.scheduler
    default = pipe._kd_default_scheduler
    cls = scheduler_class(name, default)
    kwargs = checked_settings(f"'{name}' ({cls.__name__})", cls, kwargs)
    state = (name, json.dumps(kwargs, sort_keys=True))
    if getattr(pipe, "_kd_scheduler_state", None) == state and pipe.scheduler is getattr(pipe, "_kd_scheduler", None):
        return
    if name == "default" and not kwargs:
        scheduler = default
    else:
        try:
            scheduler = cls.from_config(default.config, **{**SCHEDULER_PRESETS.get(name, {}), **kwargs})
        except Exception as e:  # schedulers raise ValueError/NotImplementedError/TypeError for bad settings
            raise ModelError(f"scheduler '{name}' refused the settings {json.dumps(kwargs)}: {e}") from e
    pipe.scheduler = scheduler
    pipe._kd_scheduler = scheduler
    pipe._kd_scheduler_state = state
