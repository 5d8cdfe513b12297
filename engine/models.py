"""Finding and loading models through diffusers' own `from_pretrained`.

A model is a local folder, a Hugging Face id already in the local cache, or the embedded tiny model. Nothing is
downloaded unless the caller allows it, and nothing runs code from the model (no pickle, no remote code) unless
the caller opts in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .plan import EMBEDDED_MODEL


class ModelError(RuntimeError):
    """A model that can't be found or loaded; the message names it and says how to get it."""


@dataclass(frozen=True)
class LoadOptions:
    allow_download: bool = False
    allow_unsafe: bool = False  # pickle weights (.bin/.ckpt); never remote code from here
    device: str = "auto"


def cache_dir() -> str:
    """Where the engine keeps what it builds itself (the embedded model). Blender points it at the extension's
    user folder; standalone runs use ~/.cache/keyframe_diffusion."""
    return os.environ.get("KEYFRAME_DIFFUSION_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keyframe_diffusion"
    )


def embedded_model_dir() -> str:
    from .tiny_model import make_tiny_model

    folder = os.path.join(cache_dir(), "models", "tiny-sd")
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        make_tiny_model(folder)
    return folder


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve(model: str, allow_download: bool) -> str:
    """Turn the plan's model field into something from_pretrained can load, or explain why it can't."""
    model = model.strip()
    if model == EMBEDDED_MODEL:
        return embedded_model_dir()
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ModelError(
                f"model folder '{model}' has no model_index.json: it is not a diffusers pipeline folder "
                "(single-file checkpoints arrive with a later release)"
            )
        return expanded
    if os.path.isfile(expanded):
        raise ModelError(f"model '{model}' is a single file: give a diffusers folder with model_index.json "
                         "(single-file checkpoints arrive with a later release)")
    if not _looks_like_repo_id(model):
        if os.path.sep in model or model.startswith((".", "~")):
            raise ModelError(f"model '{model}' not found: no such folder")
        raise ModelError(f"model '{model}' is neither a folder nor a Hugging Face id like 'stabilityai/sd-turbo'")
    if not allow_download and not _in_hf_cache(model):
        raise ModelError(
            f"model '{model}' is not in the Hugging Face cache (nor a folder here) and downloads are off. Get it with "
            f"`hf download {model}` (or `huggingface-cli download {model}`), or allow downloads in the "
            "Keyframe Diffusion preferences (and Blender's online access)."
        )
    return model


def _looks_like_repo_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") and " " not in p for p in parts)


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "model_index.json")
    return isinstance(found, str)


def load_pipeline(model: str, options: LoadOptions):
    """Load a Stable Diffusion text-to-image pipeline onto the chosen device."""
    import torch
    from diffusers import StableDiffusionPipeline

    source = resolve(model, options.allow_download)
    device = pick_device(options.device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    kwargs = dict(
        dtype=dtype,
        local_files_only=not options.allow_download,
        # Frames of an animation must not turn black one by one; the checker is the user's choice, not ours.
        safety_checker=None,
        requires_safety_checker=False,
    )
    if not options.allow_unsafe:
        kwargs["use_safetensors"] = True
    try:
        pipe = StableDiffusionPipeline.from_pretrained(source, **kwargs)
    except (OSError, EnvironmentError, ValueError) as e:
        hint = "" if options.allow_unsafe else " If it only has .bin/.ckpt weights, allow unsafe (pickle) weights in the preferences."
        raise ModelError(f"could not load model '{model}': {e}.{hint}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


SCHEDULERS = {
    "default": None,
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "lcm": "LCMScheduler",
}


def set_scheduler(pipe, name: str) -> None:
    """Switch the pipeline's scheduler by name, always derived from the model's own scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ModelError(f"unknown scheduler '{name}' (known: {', '.join(SCHEDULERS)})")
    if not hasattr(pipe, "_kd_default_scheduler"):
        pipe._kd_default_scheduler = pipe.scheduler
    default = pipe._kd_default_scheduler
    cls_name = SCHEDULERS[name]
    pipe.scheduler = default if cls_name is None else getattr(diffusers, cls_name).from_config(default.config)
