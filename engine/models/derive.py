"""What kind of model a loaded pipeline is, and the pipelines derived from it for each task (img2img, inpainting,
ControlNet): built with from_pipe so they share the base's components, cached on the base, and kept following the
base's scheduler, VAE and UNet when those are swapped."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .controlnets import check_controlnet_fits

if TYPE_CHECKING:
    from diffusers import ControlNetModel, DiffusionPipeline


def base_pipeline(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """The loaded pipeline a derived one was made from (itself for a base pipeline): what adjustments act on."""
    return getattr(pipe, "_kd_base", None) or pipe


def pipeline_kind(pipe: DiffusionPipeline) -> str:
    """'sdxl' for pipelines with SDXL's second text encoder, 'sd' for Stable Diffusion 1.x/2.x: callers pick prompt
    encoding and conditioning by it."""
    components = getattr(pipe, "components", {})
    if "text_encoder_2" in components:
        return "sdxl"
    if "unet" in components and "text_encoder" in components:
        return "sd"
    raise ModelError(f"{type(pipe).__name__} is neither a Stable Diffusion nor an SDXL pipeline")


def model_kind(pipe: DiffusionPipeline) -> str:
    """pipeline_kind plus what the UNet takes beside the latents, read from its channels (not from the class the model
    was saved as): 'sd' / 'sdxl'; 'sd-inpaint' / 'sdxl-inpaint' (9 channels: latents, mask, masked image);
    'sd-depth' (5: latents, depth)."""
    base = base_pipeline(pipe)
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


def check_model_use(pipe: DiffusionPipeline, settings: dict) -> None:
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


def derive(pipe: DiffusionPipeline, task: str, controlnets: list[ControlNetModel] | None = None) -> DiffusionPipeline:
    """The pipeline for `task` ('txt2img', 'img2img' or 'inpaint'), with ControlNet units if given, built with
    from_pipe so it shares the base's UNet, VAE, text encoders, LoRA adapters and scheduler (no extra memory but the
    ControlNets). Cached on the base pipeline: asking again with the same units returns the same object. Inpainting
    and depth-to-image models (see model_kind) have only the pipelines they can run; other tasks raise ModelError."""
    import diffusers

    base = base_pipeline(pipe)
    if task not in TASKS:
        raise ModelError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    units = list(controlnets or [])
    kind = pipeline_kind(base)
    for unit in units:
        check_controlnet_fits(base, unit, kind)
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
