"""Loading a base pipeline through diffusers' own loaders: Stable Diffusion 1.x/2.x and SDXL (Turbo, LCM and other
distilled models saved as those classes included), their inpainting and depth-to-image models, and text-to-video
models, from a diffusers folder, a cached Hugging Face id or a single-file checkpoint. Nothing is downloaded and no
pickle is read unless the options allow it; no remote code ever runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .device import pick_device, pick_dtype
from .locate import check_class, locate, read_class_name
from .options import LoadOptions

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

# The kind (locate.PIPELINE_CLASSES) -> the diffusers class that loads it.
_BASE_CLASS = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
               "sd-inpaint": "StableDiffusionInpaintPipeline", "sdxl-inpaint": "StableDiffusionXLInpaintPipeline",
               "sd-depth": "StableDiffusionDepth2ImgPipeline", "t2v": "TextToVideoSDPipeline"}


def load_pipeline(model: str, options: LoadOptions) -> DiffusionPipeline:
    """Load a Stable Diffusion (1.x/2.x) or SDXL text-to-image pipeline onto the chosen device: a diffusers folder
    or cached id (by its model_index.json) or a single-file checkpoint (with its base model's configs)."""
    import torch  # first: in an interpreter without the engine's libraries, torch is the one to name
    import diffusers

    source = locate(model, options)
    kind = check_class(model, read_class_name(model, source, options.allow_download))
    if kind == "video" and source.single_file:
        raise ModelError(f"model '{model}' is a single file: give a Wan or LTX-Video model's diffusers folder (with "
                         "model_index.json) or Hugging Face id")
    class_name = read_class_name(model, source, options.allow_download)
    cls = getattr(diffusers, class_name if kind == "video" else _BASE_CLASS[kind])
    device = pick_device(options.device)
    kwargs: dict[str, Any] = dict(dtype=pick_dtype(options.precision, device))
    if kind == "video" and options.precision == "auto" and device.startswith("cuda"):
        kwargs["dtype"] = torch.bfloat16  # Wan and LTX are trained in bf16; fp16 overflows in their transformers
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
    if kind == "video":
        # Shot mode places it (engine/video_setup.py): on the device whole, or offloaded, as its memory mode says.
        pipe._kd_device = device
        return pipe
    return pipe.to(device)
