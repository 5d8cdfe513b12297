"""Finding a model before loading it: the plan's model field (an embedded model, a diffusers folder, a cached Hugging
Face id or a single-file checkpoint) turned into something diffusers can load, with every error (missing, not
cached and downloads off, a pickle not allowed, an unsupported pipeline class) raised before any frame is touched.
Also single diffusers components (ControlNets, motion adapters) by the same rules."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import ModelError
from ..plan import EMBEDDED_MODEL, TINY_RANDOM_MODEL, TINY_VIDEO_PREFIX
from .embedded import shapes_model_dir, tiny_model_dir
from .hub import cached_file, in_hf_cache, looks_like_repo_id
from .options import ALLOW_DOWNLOADS, LoadOptions
from .single_file import check_single_file, single_file_config_dir

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
    # Wan 2.x and LTX-Video (engine/video_models): shot mode only.
    "WanPipeline": "video",
    "WanImageToVideoPipeline": "video",
    "WanVACEPipeline": "video",
    "LTXPipeline": "video",
    "LTXConditionPipeline": "video",
}


@dataclass(frozen=True)
class Source:
    """Where a model's weights are and, for a single file, the local folder holding its base model's configs."""

    path: str
    single_file: bool = False
    config_dir: str | None = None


def resolve(model: str, allow_download: bool, *, single_file_config: str | None = None,
            allow_unsafe: bool = False) -> str:
    """Turn the plan's model field into something diffusers can load (a folder, a cached id or a checkpoint file),
    or explain why it can't. Checks everything loading needs, so errors arrive before any frame is touched."""
    options = LoadOptions(allow_download, allow_unsafe, "auto", single_file_config)
    return locate(model, options).path


def locate(model: str, options: LoadOptions) -> Source:
    """The model's Source, by the rules of resolve."""
    model = model.strip()
    if model == EMBEDDED_MODEL:
        return Source(shapes_model_dir())
    if model == TINY_RANDOM_MODEL:
        return Source(tiny_model_dir())
    if model.startswith(TINY_VIDEO_PREFIX):
        from .embedded import tiny_video_model_dir

        return Source(tiny_video_model_dir(model[len(TINY_VIDEO_PREFIX):]))
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ModelError(
                f"model folder '{model}' has no model_index.json: it is not a diffusers pipeline folder "
                "(for a single-file checkpoint give the .safetensors file itself)"
            )
        return Source(expanded)
    if os.path.isfile(expanded):
        check_single_file(model, expanded, options.allow_unsafe)
        return Source(expanded, True, single_file_config_dir(model, expanded, options))
    if not looks_like_repo_id(model):
        if os.path.sep in model or model.startswith((".", "~")):
            raise ModelError(f"model '{model}' not found: no such folder")
        raise ModelError(f"model '{model}' is neither a folder nor a Hugging Face id like 'stabilityai/sd-turbo'")
    if not options.allow_download and not in_hf_cache(model):
        raise ModelError(
            f"model '{model}' is not in the Hugging Face cache (nor a folder here) and downloads are off. Get it with "
            f"`hf download {model}` (or `huggingface-cli download {model}`), or {ALLOW_DOWNLOADS}."
        )
    return Source(model)


def read_class_name(model: str, source: Source, allow_download: bool) -> str:
    """The pipeline class named in model_index.json (of the model, or of a single file's config folder)."""
    folder = source.config_dir if source.single_file else source.path
    if os.path.isdir(folder):
        index = os.path.join(folder, "model_index.json")
    else:
        index = cached_file(folder, "model_index.json")
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


def check_class(model: str, class_name: str) -> str:
    """The kind (PIPELINE_CLASSES) of a supported pipeline class; any other class is refused with what is supported."""
    if class_name not in PIPELINE_CLASSES:
        raise ModelError(
            f"model '{model}' is a {class_name or 'pipeline with no _class_name'} (model_index.json), which "
            "Keyframe Diffusion can't run: supported are Stable Diffusion 1.x/2.x (StableDiffusionPipeline) and SDXL "
            "(StableDiffusionXLPipeline), Turbo and other distilled models saved as those included, their inpainting "
            "models (StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline) and depth-to-image "
            "(StableDiffusionDepth2ImgPipeline), text-to-video models (TextToVideoSDPipeline, clip mode), and Wan 2.x "
            "and LTX-Video models (WanPipeline, WanImageToVideoPipeline, WanVACEPipeline, LTXPipeline, "
            "LTXConditionPipeline: shot mode)"
        )
    return PIPELINE_CLASSES[class_name]


def locate_pipeline(model: str, options: LoadOptions) -> tuple[str, str]:
    """A diffusers pipeline folder or Hugging Face id found by the base model's rules (local folder, the cache,
    downloads only when allowed), and the class its model_index.json names, for callers that load other pipeline
    classes (the upscalers). Single-file checkpoints are refused: their class can't be read from the file."""
    source = locate(model, options)
    if source.single_file:
        raise ModelError(f"model '{model}' is a single file: give its diffusers folder (with model_index.json) or "
                         "Hugging Face id")
    return source.path, read_class_name(model, source, options.allow_download)


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
    if not looks_like_repo_id(name):
        raise ModelError(f"{what} '{name}' not found: neither a folder nor a Hugging Face id like '{example}'")
    config = cached_file(name, "config.json")
    if config is None:
        if not options.allow_download:
            raise ModelError(f"{what} '{name}' is not in the Hugging Face cache and downloads are off. Get it "
                             f"with `hf download {name}`, or {ALLOW_DOWNLOADS}.")
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
