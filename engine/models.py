"""Finding and loading models through diffusers' own loaders, and adjusting a loaded pipeline.

A model is a local diffusers folder, a Hugging Face id already in the local cache, a single-file checkpoint, or one of
the embedded models ('embedded:shapes', trained and shipped; 'embedded:tiny', random weights, built on first use).
Stable Diffusion 1.x/2.x and SDXL are supported (Turbo, LCM and other distilled models saved as those pipeline classes
included), and their inpainting (9-channel) and SD 2 depth-to-image (5-channel) models. Nothing is downloaded unless
the caller allows it, and nothing runs code from the model (no pickle, no remote code) unless the caller opts in.

On top of a loaded base pipeline this module gives:
  derive(pipe, task, controlnets)      img2img / inpaint / ControlNet pipelines sharing the base's components
  load_controlnet(model, ...)          ControlNet models (cached)
  apply_loras(pipe, loras)             LoRA adapters by file, reloading only what changed
  set_scheduler(pipe, name, kwargs)    schedulers by name, with validated settings
  check_pipeline_kwargs                extra pipeline arguments given as JSON data (never evaluated)
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ModelError
from .plan import EMBEDDED_MODEL, TINY_RANDOM_MODEL


@dataclass(frozen=True)
class LoadOptions:
    allow_download: bool = False
    allow_unsafe: bool = False  # pickle weights (.bin/.ckpt/.pt); never remote code from here
    device: str = "auto"
    # For single-file checkpoints: the diffusers folder or cached Hugging Face id whose configs describe the
    # checkpoint's architecture (usually its base model, e.g. 'stabilityai/stable-diffusion-xl-base-1.0'). Without
    # it the base is guessed from the weights and must then be in the cache (or downloads allowed).
    single_file_config: str | None = None
    # Weights' dtype: "auto" (fp16 on CUDA, fp32 elsewhere), "fp32", "fp16" or "bf16".
    precision: str = "auto"


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def pick_dtype(precision: str, device: str):
    """The torch dtype for a precision setting on a device."""
    import torch

    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    if precision == "auto":
        return _default_dtype(device)
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


# model_index.json `_class_name` -> the kind of pipeline the engine drives.
PIPELINE_CLASSES: dict[str, str] = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    # Inpainting models (9-channel UNet: latents, mask, masked image) and depth-to-image (5: latents, depth).
    "StableDiffusionInpaintPipeline": "sd-inpaint",
    "StableDiffusionXLInpaintPipeline": "sdxl-inpaint",
    "StableDiffusionDepth2ImgPipeline": "sd-depth",
    # Text-to-video (UNet3DConditionModel, damo-vilab/text-to-video-ms-1.7b): clip mode only (see clip_pipeline).
    "TextToVideoSDPipeline": "t2v",
}
_BASE_CLASS = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
               "sd-inpaint": "StableDiffusionInpaintPipeline", "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
               "sd-depth": "StableDiffusionDepth2ImgPipeline", "t2v": "TextToVideoSDPipeline"}
SAFE_EXTENSIONS = (".safetensors",)
PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")
# What diffusers needs of a base model to read a single-file checkpoint: configs and tokenizer files, no weights.
_CONFIG_PATTERNS = ["*.json", "**/*.json", "*.txt", "**/*.txt", "**/*.model"]


def cache_dir() -> str:
    """Where the engine keeps what it builds itself (the random tiny model). Blender points it at the extension's
    user folder; standalone runs use ~/.cache/keyframe_diffusion."""
    return os.environ.get("KEYFRAME_DIFFUSION_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keyframe_diffusion"
    )


# The trained shapes model shipped inside the engine package (built by scripts/train_shapes_model.py).
SHAPES_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes", "model")


def shapes_model_dir() -> str:
    folder = SHAPES_MODEL_DIR
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise ModelError(f"the embedded model '{EMBEDDED_MODEL}' is missing from {folder}; rebuild it with "
                         "`python scripts/train_shapes_model.py` or reinstall the extension")
    return folder


def tiny_model_dir() -> str:
    """The random-weight tiny model, built into the cache on first use."""
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


def _default_dtype(device: str):
    """fp16 on CUDA (half the memory, the speed people expect); fp32 elsewhere (CPU/MPS fp16 is slow or lossy)."""
    import torch

    return torch.float16 if str(device).startswith("cuda") else torch.float32


# --------------------------------------------------------------------------------------------------------------------
# Finding models


@dataclass(frozen=True)
class _Source:
    """Where a model's weights are and, for a single file, the local folder holding its base model's configs."""

    path: str
    single_file: bool = False
    config_dir: str | None = None


def resolve(model: str, allow_download: bool, *, single_file_config: str | None = None,
            allow_unsafe: bool = False) -> str:
    """Turn the plan's model field into something diffusers can load (a folder, a cached id or a checkpoint file),
    or explain why it can't. Checks everything loading needs, so errors arrive before any frame is touched."""
    options = LoadOptions(allow_download, allow_unsafe, "auto", single_file_config)
    return _locate(model, options).path


def _locate(model: str, options: LoadOptions) -> _Source:
    model = model.strip()
    if model == EMBEDDED_MODEL:
        return _Source(shapes_model_dir())
    if model == TINY_RANDOM_MODEL:
        return _Source(tiny_model_dir())
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ModelError(
                f"model folder '{model}' has no model_index.json: it is not a diffusers pipeline folder "
                "(for a single-file checkpoint give the .safetensors file itself)"
            )
        return _Source(expanded)
    if os.path.isfile(expanded):
        _check_single_file(model, expanded, options.allow_unsafe)
        return _Source(expanded, True, _single_file_config_dir(model, expanded, options))
    if not _looks_like_repo_id(model):
        if os.path.sep in model or model.startswith((".", "~")):
            raise ModelError(f"model '{model}' not found: no such folder")
        raise ModelError(f"model '{model}' is neither a folder nor a Hugging Face id like 'stabilityai/sd-turbo'")
    if not options.allow_download and not _in_hf_cache(model):
        raise ModelError(
            f"model '{model}' is not in the Hugging Face cache (nor a folder here) and downloads are off. Get it with "
            f"`hf download {model}` (or `huggingface-cli download {model}`), or allow downloads in the "
            "Keyframe Diffusion preferences (and Blender's online access)."
        )
    return _Source(model)


def _looks_like_repo_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") and " " not in p for p in parts)


def _cached_file(repo_id: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def _in_hf_cache(repo_id: str) -> bool:
    return _cached_file(repo_id, "model_index.json") is not None


def _check_single_file(model: str, path: str, allow_unsafe: bool) -> None:
    """Refuse pickles (they can run code when loaded) unless opted in, and files that aren't checkpoints at all."""
    lower = path.lower()
    if lower.endswith(PICKLE_EXTENSIONS):
        if not allow_unsafe:
            raise ModelError(
                f"model '{model}' is a single file in a pickle format ({os.path.splitext(path)[1]}), which can run "
                "code when loaded: use a .safetensors version of it, or allow unsafe (pickle) weights in the "
                "preferences if you trust its source"
            )
        return
    if not lower.endswith(SAFE_EXTENSIONS):
        raise ModelError(f"model '{model}' is a single file but not a checkpoint (.safetensors, or .ckpt/.pt with "
                         "unsafe weights allowed)")
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise ModelError(f"model '{model}' is a single file but not a readable safetensors checkpoint: {e}") from e


class _LazyCheckpoint(Mapping):
    """A safetensors file as a read-only mapping that loads a tensor only when asked: enough for diffusers to
    guess the architecture from a few keys without reading gigabytes."""

    def __init__(self, handle):
        self._f = handle
        self._keys = set(handle.keys())

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return self._f.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


def _guess_base_repo(path: str) -> str | None:
    """The Hugging Face id of the base model whose configs match this checkpoint, as diffusers guesses it."""
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    try:
        if path.lower().endswith(SAFE_EXTENSIONS):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                return fetch_diffusers_config(_LazyCheckpoint(f))["pretrained_model_name_or_path"]
        # Pickles only reach here with unsafe weights allowed; they can't be read lazily.
        from diffusers.loaders.single_file_utils import load_single_file_checkpoint

        return fetch_diffusers_config(load_single_file_checkpoint(path, local_files_only=True))[
            "pretrained_model_name_or_path"]
    except Exception:
        return None


def _single_file_config_dir(model: str, path: str, options: LoadOptions) -> str:
    """A local folder with the configs a single-file checkpoint needs. diffusers would download them behind our back
    (even with local_files_only) when they are not cached, so the engine finds them itself and hands over a folder."""
    config = (options.single_file_config or "").strip()
    if config:
        expanded = os.path.expanduser(config)
        if os.path.isdir(expanded):
            if not os.path.isfile(os.path.join(expanded, "model_index.json")):
                raise ModelError(f"config '{config}' for model '{model}' has no model_index.json: give a diffusers "
                                 "folder (or Hugging Face id) of a model with the same architecture")
            return expanded
        if not _looks_like_repo_id(config):
            raise ModelError(f"config '{config}' for model '{model}' is neither a diffusers folder nor a Hugging Face "
                             "id like 'stabilityai/stable-diffusion-xl-base-1.0'")
        repo, why = config, f"its config '{config}'"
    else:
        repo = _guess_base_repo(path)
        if repo is None:
            raise ModelError(f"model '{model}' is a single file whose architecture could not be recognised: set a "
                             "config (a diffusers folder or Hugging Face id of its base model)")
        why = f"the config of its base model '{repo}' (guessed from its weights)"
    cached = _cached_file(repo, "model_index.json")
    if cached is not None:
        return os.path.dirname(cached)
    if not options.allow_download:
        raise ModelError(
            f"model '{model}' is a single file; loading it needs {why}, which is not in the Hugging Face cache and "
            f"downloads are off. Get it with `hf download {repo} --include '*.json' '*.txt'`, set a config (a "
            "diffusers folder or cached id of a model with the same architecture), or allow downloads."
        )
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo, allow_patterns=_CONFIG_PATTERNS)
    except Exception as e:  # network and hub errors come in many types
        raise ModelError(f"could not download {why} for model '{model}': {e}") from e


def _read_class_name(model: str, source: _Source, allow_download: bool) -> str:
    """The pipeline class named in model_index.json (of the model, or of a single file's config folder)."""
    folder = source.config_dir if source.single_file else source.path
    if os.path.isdir(folder):
        index = os.path.join(folder, "model_index.json")
    else:
        index = _cached_file(folder, "model_index.json")
        if index is None and allow_download:
            from huggingface_hub import hf_hub_download

            try:
                index = hf_hub_download(folder, "model_index.json")
            except Exception as e:  # network and hub errors come in many types
                raise ModelError(f"could not fetch model_index.json of model '{model}': {e}") from e
    if index is None:
        raise ModelError(f"model '{model}' has no model_index.json in the Hugging Face cache")
    try:
        with open(index, encoding="utf-8") as f:
            return str(json.load(f).get("_class_name", ""))
    except (OSError, ValueError) as e:
        raise ModelError(f"model '{model}': unreadable model_index.json: {e}") from e


def _check_class(model: str, class_name: str) -> str:
    if class_name not in PIPELINE_CLASSES:
        raise ModelError(
            f"model '{model}' is a {class_name or 'pipeline with no _class_name'} (model_index.json), which "
            "Keyframe Diffusion can't run: supported are Stable Diffusion 1.x/2.x (StableDiffusionPipeline) and SDXL "
            "(StableDiffusionXLPipeline), Turbo and other distilled models saved as those included, their inpainting "
            "models (StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline) and depth-to-image "
            "(StableDiffusionDepth2ImgPipeline), and text-to-video models (TextToVideoSDPipeline, clip mode)"
        )
    return PIPELINE_CLASSES[class_name]


def locate_pipeline(model: str, options: LoadOptions) -> tuple[str, str]:
    """A diffusers pipeline folder or Hugging Face id found by the base model's rules (local folder, the cache,
    downloads only when allowed), and the class its model_index.json names, for callers that load other pipeline
    classes (the upscalers). Single-file checkpoints are refused: their class can't be read from the file."""
    source = _locate(model, options)
    if source.single_file:
        raise ModelError(f"model '{model}' is a single file: give its diffusers folder (with model_index.json) or "
                         "Hugging Face id")
    return source.path, _read_class_name(model, source, options.allow_download)


# --------------------------------------------------------------------------------------------------------------------
# Loading pipelines


def load_pipeline(model: str, options: LoadOptions):
    """Load a Stable Diffusion (1.x/2.x) or SDXL text-to-image pipeline onto the chosen device: a diffusers folder
    or cached id (by its model_index.json) or a single-file checkpoint (with its base model's configs)."""
    import torch  # noqa: F401  first: in an interpreter without the engine's libraries, torch is the one to name
    import diffusers

    source = _locate(model, options)
    kind = _check_class(model, _read_class_name(model, source, options.allow_download))
    cls = getattr(diffusers, _BASE_CLASS[kind])
    device = pick_device(options.device)
    kwargs: dict[str, Any] = dict(dtype=pick_dtype(options.precision, device))
    if kind in ("sd", "sd-inpaint"):
        # Frames of an animation must not turn black one by one; the checker is the user's choice, not ours.
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if kind == "sd-depth":
        # The depth comes from Blender's depth pass, never estimated: the DPT estimator (1.3 GB) stays on disk.
        kwargs.update(depth_estimator=None, feature_extractor=None)
    hint = "" if options.allow_unsafe else (" If it only has .bin/.ckpt weights, allow unsafe (pickle) weights in "
                                            "the preferences.")
    if source.single_file:
        try:
            # The config folder is local by now, so nothing here reaches the network.
            pipe = cls.from_single_file(source.path, config=source.config_dir, local_files_only=True, **kwargs)
        except Exception as e:  # conversion errors come in many types (SingleFileComponentError is no ValueError)
            raise ModelError(f"could not load single-file model '{model}' with the configs in "
                             f"'{source.config_dir}' (is that its base model's architecture?): {e}") from e
    else:
        if not options.allow_unsafe:
            kwargs["use_safetensors"] = True
        try:
            pipe = cls.from_pretrained(source.path, local_files_only=not options.allow_download, **kwargs)
        except (OSError, EnvironmentError, ValueError, KeyError, RuntimeError, TypeError) as e:
            raise ModelError(f"could not load model '{model}': {e}.{hint}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_decoder(name: str, options: LoadOptions, device: str, dtype=None):
    """A tiny autoencoder (diffusers' AutoencoderTiny, TAESD-type) from a folder or a Hugging Face id, to stand in for
    a pipeline's VAE (see use_decoder)."""
    import torch  # noqa: F401
    from diffusers import AutoencoderTiny

    path = os.path.expanduser(name.strip())
    local = os.path.isdir(path)
    kwargs: dict[str, Any] = dict(torch_dtype=dtype or _default_dtype(device),
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


def use_decoder(pipe, decoder) -> None:
    """Put `decoder` (None: the model's own VAE back) in place of the pipeline's VAE, for encoding and decoding.
    The pipelines derived from it follow (see derive)."""
    base = _base(pipe)
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


def uncompiled(pipe) -> None:
    """Put the model's own UNet back where apply_speed put a compiled one."""
    base = _base(pipe)
    base.unet = base.__dict__.get("_kd_own_unet", base.unet)


def apply_speed(pipe, settings: dict) -> None:
    """The plan's speed switches on the loaded pipeline; each can be turned back off by the next plan.

    channels_last: the UNet's and VAE's weights in NHWC layout (faster convolutions on recent GPUs and oneDNN CPUs).
    vae_slicing: decode a batch one frame at a time (memory); vae_tiling: decode and encode in overlapping tiles
    (memory at large sizes, faint seams possible). compile: torch.compile of the UNet, compiled once per shape and
    reused across frames and renders (CUDA graphs on CUDA); the first frames of a new shape pay the compile time.
    """
    import torch

    base = _base(pipe)
    layout = torch.channels_last if settings.get("channels_last") else torch.contiguous_format
    own_unet = base.__dict__.setdefault("_kd_own_unet", base.unet)
    own_unet.to(memory_format=layout)
    base.vae.to(memory_format=layout)
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


def pipeline_kind(pipe) -> str:
    """'sdxl' for pipelines with SDXL's second text encoder, 'sd' for Stable Diffusion 1.x/2.x: callers pick prompt
    encoding and conditioning by it."""
    components = getattr(pipe, "components", {})
    if "text_encoder_2" in components:
        return "sdxl"
    if "unet" in components and "text_encoder" in components:
        return "sd"
    raise ModelError(f"{type(pipe).__name__} is neither a Stable Diffusion nor an SDXL pipeline")


def model_kind(pipe) -> str:
    """pipeline_kind plus what the UNet takes beside the latents, read from its channels (not from the class the model
    was saved as): 'sd' / 'sdxl'; 'sd-inpaint' / 'sdxl-inpaint' (9 channels: latents, mask, masked image);
    'sd-depth' (5: latents, depth)."""
    base = _base(pipe)
    kind = pipeline_kind(base)
    config = base.unet.config
    extra = config.in_channels - config.out_channels
    if extra == 0:
        return kind
    if extra == 5:
        return f"{kind}-inpaint"
    if extra == 1 and kind == "sd":
        return "sd-depth"
    raise ModelError(f"{type(base).__name__}: a UNet with {config.in_channels} input channels is neither a "
                     "text-to-image, an inpainting nor a depth-to-image model")


def check_model_use(pipe, settings: dict) -> None:
    """Refuse, before any frame, what an inpainting or depth-to-image model can't do with the plan's settings."""
    kind = model_kind(pipe)
    if kind in ("sd", "sdxl"):
        return
    what = "a depth-to-image" if kind == "sd-depth" else "an inpainting"
    if settings["mode"] not in ("FEEDBACK", "VIDEO"):
        raise ModelError(f"model '{settings['model']}' is {what} model: it works in feedback and video modes, not "
                         f"{settings['mode'].lower()} mode")
    if kind == "sd-depth" and settings.get("controlnets"):
        raise ModelError(f"model '{settings['model']}' is a depth-to-image model: depth-to-image and ControlNet "
                         "units are not supported together (remove the units, or use a depth ControlNet on an "
                         "ordinary model)")


def _base(pipe):
    """The loaded pipeline a derived one was made from (itself for a base pipeline)."""
    return getattr(pipe, "_kd_base", None) or pipe


# --------------------------------------------------------------------------------------------------------------------
# Derived pipelines and ControlNet

TASKS = ("txt2img", "img2img", "inpaint")
_DERIVED_CLASSES = {
    ("sd", "txt2img", False): "StableDiffusionPipeline",
    ("sd", "img2img", False): "StableDiffusionImg2ImgPipeline",
    ("sd", "txt2img", True): "StableDiffusionControlNetPipeline",
    ("sd", "img2img", True): "StableDiffusionControlNetImg2ImgPipeline",
    ("sdxl", "txt2img", False): "StableDiffusionXLPipeline",
    ("sdxl", "img2img", False): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "txt2img", True): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "img2img", True): "StableDiffusionXLControlNetImg2ImgPipeline",
    # Inpainting: an ordinary model's inpaint pipeline keeps the init's latents outside the mask at every step; an
    # inpainting model's (9 channels) only ever inpaints (with a full mask where a frame has none).
    ("sd", "inpaint", False): "StableDiffusionInpaintPipeline",
    ("sd", "inpaint", True): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "inpaint", False): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "inpaint", True): "StableDiffusionXLControlNetInpaintPipeline",
    ("sd-inpaint", "inpaint", False): "StableDiffusionInpaintPipeline",
    ("sd-inpaint", "inpaint", True): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl-inpaint", "inpaint", False): "StableDiffusionXLInpaintPipeline",
    ("sdxl-inpaint", "inpaint", True): "StableDiffusionXLControlNetInpaintPipeline",
    # Depth-to-image (5 channels) only ever makes a frame from an image (a grey one for text-to-image) and a depth map.
    ("sd-depth", "img2img", False): "StableDiffusionDepth2ImgPipeline",
}
_MAX_DERIVED = 8


def derive(pipe, task: str, controlnets: list | None = None):
    """The pipeline for `task` ('txt2img', 'img2img' or 'inpaint'), with ControlNet units if given, built with
    from_pipe so it shares the base's UNet, VAE, text encoders, LoRA adapters and scheduler (no extra memory but the
    ControlNets). Cached on the base pipeline: asking again with the same units returns the same object. Inpainting
    and depth-to-image models (see model_kind) have only the pipelines they can run; other tasks raise ModelError."""
    import diffusers

    base = _base(pipe)
    if task not in TASKS:
        raise ModelError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    units = list(controlnets or [])
    kind = pipeline_kind(base)
    for unit in units:
        _check_controlnet_fits(base, unit, kind)
    variant = model_kind(base)
    cls_name = _DERIVED_CLASSES.get((variant, task, bool(units)))
    if cls_name is None:
        raise ModelError(_no_pipeline(variant, task, bool(units)))
    if not units and type(base).__name__ == cls_name:
        return base
    cache: OrderedDict = base.__dict__.setdefault("_kd_derived", OrderedDict())
    # The cached pipeline holds the ControlNets, so their ids can't be reused while the entry exists.
    key = (task, tuple(id(u) for u in units))
    derived = cache.get(key)
    if derived is None:
        extra: dict[str, Any] = {}
        if units:
            from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

            extra["controlnet"] = units[0] if len(units) == 1 else MultiControlNetModel(units)
        # Passed explicitly: from_pipe drops components whose class isn't the one the target pipeline annotates, and
        # a tiny autoencoder (AutoencoderTiny, as in the embedded model) is a valid VAE for all of them.
        extra["vae"] = base.vae
        derived = getattr(diffusers, cls_name).from_pipe(base, **extra)
        derived.set_progress_bar_config(disable=True)
        derived._kd_base = base
        cache[key] = derived
        while len(cache) > _MAX_DERIVED:
            cache.popitem(last=False)
    cache.move_to_end(key)
    if derived.scheduler is not base.scheduler:  # set_scheduler acts on the base; derived pipelines follow
        derived.scheduler = base.scheduler
    if derived.vae is not base.vae:  # so does use_decoder
        derived.vae = base.vae
    if derived.unet is not base.unet:  # and apply_speed's compiled UNet
        derived.unet = base.unet
    return derived


def _no_pipeline(variant: str, task: str, units: bool) -> str:
    if variant == "sd-depth":
        if units:
            return "depth-to-image and ControlNet units are not supported together"
        if task == "inpaint":
            return "depth-to-image and inpainting masks are not supported together"
        return "a depth-to-image model has no text-to-image pipeline: it starts from a grey image at strength 1"
    return f"an inpainting model has no {task} pipeline: it inpaints with a full mask instead"


def _check_controlnet_fits(base, unit, kind: str) -> None:
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


_CONTROLNETS: OrderedDict = OrderedDict()
_MAX_CONTROLNETS = 4


def load_controlnet(model: str, options: LoadOptions, device: str | None = None, dtype=None):
    """Load a ControlNetModel from a diffusers folder or cached Hugging Face id onto the base pipeline's device and
    dtype; cached, so units that stay in a plan load once."""
    from diffusers import ControlNetModel

    device = device or pick_device(options.device)
    dtype = dtype or _default_dtype(device)
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


def locate_component(name: str, what: str, class_name: str, example: str, options: LoadOptions,
                     other_class: str = "") -> str:
    """A single diffusers model (a ControlNet, a motion adapter) as a folder or a Hugging Face id: the folder, or the
    id once its config is found in the cache (or downloads are on). Its config's class must be `class_name`; errors
    name the model, say what it is instead and how to get it. `other_class` ends the wrong-class message."""
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        config = os.path.join(expanded, "config.json")
        if not os.path.isfile(config):
            raise ModelError(f"{what} folder '{name}' has no config.json: it is not a diffusers {class_name} folder")
        _check_component_class(name, what, class_name, config, other_class)
        return expanded
    if os.path.isfile(expanded):
        raise ModelError(f"{what} '{name}' is a single file: give its diffusers folder (with config.json) or Hugging "
                         f"Face id such as {example}; single-file {what}s are not supported")
    if not _looks_like_repo_id(name):
        raise ModelError(f"{what} '{name}' not found: neither a folder nor a Hugging Face id like '{example}'")
    config = _cached_file(name, "config.json")
    if config is None:
        if not options.allow_download:
            raise ModelError(f"{what} '{name}' is not in the Hugging Face cache and downloads are off. Get it "
                             f"with `hf download {name}`, or allow downloads in the preferences.")
    else:
        _check_component_class(name, what, class_name, config, other_class)
    return name


def _check_component_class(name: str, what: str, class_name: str, config_path: str, other_class: str) -> None:
    try:
        with open(config_path, encoding="utf-8") as f:
            found = json.load(f).get("_class_name", "")
    except (OSError, ValueError) as e:
        raise ModelError(f"{what} '{name}': unreadable config.json: {e}") from e
    if found != class_name:
        why = other_class or f", not a {class_name}"
        raise ModelError(f"{what} '{name}' is a {found or 'model with no _class_name'}{why}")


# --------------------------------------------------------------------------------------------------------------------
# LoRA


def apply_loras(pipe, loras: list[dict], allow_unsafe: bool = False) -> None:
    """Make exactly these LoRAs ({"path": file, "scale": number}) active on the pipeline (and every pipeline derived
    from it, which share its UNet and text encoders). Adapters already loaded from an unchanged file are kept and
    only re-weighted; the rest are loaded or deleted, and an empty list removes every adapter layer."""
    base = _base(pipe)
    wanted: dict[str, tuple[float, tuple[int, int]]] = {}
    for i, entry in enumerate(loras):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str) or not entry["path"].strip():
            raise ModelError(f"LoRA {i + 1}: give an object with a \"path\" (and a \"scale\"), not {entry!r}")
        name = entry["path"]
        scale = entry.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ModelError(f"LoRA '{name}': scale must be a number, got {scale!r}")
        path = os.path.abspath(os.path.expanduser(name.strip()))
        if not os.path.isfile(path):
            raise ModelError(f"LoRA '{name}' not found: no such file")
        lower = path.lower()
        if lower.endswith(PICKLE_EXTENSIONS):
            if not allow_unsafe:
                raise ModelError(f"LoRA '{name}' is a pickle file, which can run code when loaded: use a "
                                 ".safetensors version, or allow unsafe (pickle) weights if you trust its source")
        elif not lower.endswith(SAFE_EXTENSIONS):
            raise ModelError(f"LoRA '{name}' is not a .safetensors file")
        if path in wanted:
            raise ModelError(f"LoRA '{name}' is listed twice: give it once with the summed scale")
        stat = os.stat(path)
        wanted[path] = (float(scale), (stat.st_mtime_ns, stat.st_size))

    loaded: dict[str, tuple[str, tuple[int, int]]] = base.__dict__.setdefault("_kd_loras", {})
    if not wanted:
        if loaded:
            base.unload_lora_weights()  # takes the adapter layers out: the UNet is exactly the original again
            loaded.clear()
        return
    stale = [p for p, (_, stamp) in loaded.items() if p not in wanted or wanted[p][1] != stamp]
    if stale:
        base.delete_adapters([loaded[p][0] for p in stale])
        for p in stale:
            del loaded[p]
    counter = base.__dict__.get("_kd_lora_counter", 0)
    for path, (_, stamp) in wanted.items():
        if path in loaded:
            continue
        counter += 1
        # Adapter names become module keys: no dots; the counter keeps them unique across reloads.
        adapter = f"kd{counter}_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])[:40]
        _load_lora(base, path, adapter)
        loaded[path] = (adapter, stamp)
    base._kd_lora_counter = counter
    base.set_adapters([loaded[p][0] for p in wanted], adapter_weights=[s for s, _ in wanted.values()])


def _load_lora(pipe, path: str, adapter: str) -> None:
    try:
        if path.lower().endswith(SAFE_EXTENSIONS):
            from safetensors.torch import load_file

            # Read here, so diffusers never gets a path it could open as a pickle.
            pipe.load_lora_weights(load_file(path), adapter_name=adapter)
        else:
            pipe.load_lora_weights(os.path.dirname(path), weight_name=os.path.basename(path), adapter_name=adapter)
    except Exception as e:  # peft and diffusers raise ValueError, KeyError, RuntimeError... for a LoRA that won't fit
        try:
            pipe.delete_adapters([adapter])
        except Exception:
            pass  # nothing of it was loaded
        raise ModelError(f"could not load LoRA '{path}' (is it for this model's architecture?): {e}") from e


# --------------------------------------------------------------------------------------------------------------------
# Schedulers

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


def scheduler_parameters(cls) -> list[str]:
    """The settings a scheduler class takes (its __init__ parameters): the only keys kwargs may use."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def set_scheduler(pipe, name: str, kwargs: dict | None = None) -> None:
    """Switch the pipeline's scheduler by name, always derived from the model's own scheduler config, with optional
    settings (JSON scalars/lists, each a parameter of that scheduler class). Same name and settings: no rebuild."""
    import diffusers

    if name not in SCHEDULERS:
        raise ModelError(f"unknown scheduler '{name}' (known: {', '.join(SCHEDULERS)})")
    kwargs = dict(kwargs or {})
    if not hasattr(pipe, "_kd_default_scheduler"):
        pipe._kd_default_scheduler = pipe.scheduler
    default = pipe._kd_default_scheduler
    cls_name = SCHEDULERS[name]
    cls = type(default) if cls_name is None else getattr(diffusers, cls_name)
    accepted = scheduler_parameters(cls)
    for key, value in kwargs.items():
        if key not in accepted:
            raise ModelError(f"scheduler '{name}' ({cls.__name__}) has no setting '{key}'; accepted: "
                             f"{', '.join(sorted(accepted))}")
        _check_json_value(value, f"scheduler setting '{key}'", allow_objects=False)
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


# --------------------------------------------------------------------------------------------------------------------
# Extra pipeline arguments as JSON

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


def check_pipeline_kwargs(pipe, kwargs: dict, reserved: Collection[str] | None = None,
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
        _check_json_value(value, f"{what}: '{key}'", allow_objects=True)
    return dict(kwargs)


def _check_json_value(value: Any, where: str, allow_objects: bool) -> None:
    """Plain JSON data only: what json.loads can produce, with finite numbers (and no objects where not allowed)."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where}: {value} is not a finite number")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json_value(item, where, allow_objects)
        return
    if isinstance(value, Mapping) and allow_objects:
        for k, item in value.items():
            if not isinstance(k, str):
                raise ModelError(f"{where}: object keys must be strings, got {k!r}")
            _check_json_value(item, where, allow_objects)
        return
    kinds = "numbers, strings, true/false, null, lists" + (" and objects" if allow_objects else "")
    raise ModelError(f"{where}: {type(value).__name__} values are not allowed (JSON {kinds} only)")

