"""The pipeline clip mode denoises with, built from the loaded base model and the plan's clip settings.

Two kinds of model make a clip:
  AnimateDiff     an SD 1.x-family model plus a MotionAdapter (settings["motion_adapter"]): an AnimateDiffPipeline
                  made with from_pipe, sharing the base's text encoder, tokenizer and VAE (its UNetMotionModel is the
                  base UNet's weights with the motion modules added: one extra UNet in memory). Cached on the base.
  text-to-video   the model itself is a TextToVideoSDPipeline (UNet3DConditionModel, the damo-vilab/text-to-video-ms
                  kind), loaded by models.load.load_pipeline; no adapter.

`prepare` applies the plan's scheduler, decoder, LoRAs and motion LoRAs, speed switches and CPU offload to it;
`leave` undoes what clip mode did to the shared components when a plan of another mode comes.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from . import events
from .errors import ModelError
from .models.decoders import use_decoder
from .models.derive import base_pipeline, pipeline_kind
from .models.locate import locate_component
from .models.loras import apply_loras
from .models.options import LoadOptions
from .models.schedulers import checked_settings, set_scheduler
from .models.speed import apply_speed, uncompiled

# diffusers' AnimateDiff docs: DDIM with linear betas, no sample clipping, linspace timesteps (the motion modules were
# trained with this schedule). Used when the plan's scheduler is "default".
ANIMATEDIFF_SCHEDULER = {"beta_schedule": "linear", "clip_sample": False, "timestep_spacing": "linspace",
                         "steps_offset": 1}
NO_CLIP_MODEL = ("clip mode needs a motion adapter (AnimateDiff) or a text-to-video model: set a Motion Adapter (a "
                 "MotionAdapter folder or Hugging Face id such as guoyww/animatediff-motion-adapter-v1-5-3) for this "
                 "SD 1.x model, or pick a text-to-video model (TextToVideoSDPipeline, e.g. "
                 "damo-vilab/text-to-video-ms-1.7b)")

def is_text_to_video(pipe) -> bool:
    return type(base_pipeline(pipe)).__name__ == "TextToVideoSDPipeline"


def is_animatediff(pipe) -> bool:
    return type(pipe).__name__ == "AnimateDiffPipeline"


# --------------------------------------------------------------------------------------------------------------------
# Motion adapters


def _locate_adapter(name: str, options: LoadOptions) -> str:
    return locate_component(name, "motion adapter", "MotionAdapter", "guoyww/animatediff-motion-adapter-v1-5-3",
                            options)


def load_motion_adapter(name: str, options: LoadOptions, device: str, dtype=None):
    """A diffusers MotionAdapter from a folder or cached Hugging Face id (safetensors unless unsafe weights are
    allowed, no download unless allowed). Not cached: its weights are copied into the clip pipeline, which is."""
    from diffusers import MotionAdapter

    name = name.strip()
    source = _locate_adapter(name, options)
    kwargs: dict[str, Any] = dict(torch_dtype=dtype, local_files_only=not options.allow_download)
    if not options.allow_unsafe:
        kwargs["use_safetensors"] = True
    try:
        adapter = MotionAdapter.from_pretrained(source, **kwargs)
    except (OSError, EnvironmentError, ValueError, KeyError, RuntimeError, TypeError) as e:
        hint = "" if options.allow_unsafe else " If it only has .bin/.ckpt weights, allow unsafe (pickle) weights."
        raise ModelError(f"could not load motion adapter '{name}': {e}.{hint}") from e
    return adapter.to(device).eval()


# --------------------------------------------------------------------------------------------------------------------
# The clip pipeline


def clip_pipeline(base, settings: dict, options: LoadOptions, emit: Callable[[dict], None] | None = None):
    """The pipeline that denoises clips for this plan: the text-to-video model itself, or the base model with the
    plan's motion adapter as an AnimateDiffPipeline (built once per adapter and cached on the base)."""
    adapter_name = (settings.get("motion_adapter") or "").strip()
    if is_text_to_video(base):
        if adapter_name:
            raise ModelError(f"model '{settings['model']}' is a text-to-video model with its own motion layers: a "
                             f"motion adapter ('{adapter_name}') is for SD 1.x models; clear the Motion Adapter")
        if settings.get("motion_loras"):
            raise ModelError("motion LoRAs are for AnimateDiff motion adapters; the text-to-video model "
                             f"'{settings['model']}' can't take them: remove them")
        return base
    if not adapter_name:
        raise ModelError(NO_CLIP_MODEL)
    if pipeline_kind(base) != "sd":
        raise ModelError(f"AnimateDiff motion adapters work with SD 1.x models; '{settings['model']}' is "
                         f"{pipeline_kind(base).upper()}")
    source = _locate_adapter(adapter_name, options)
    # The base's LoRAs come off: its text encoder is shared with the clip pipeline (whose own LoRAs prepare loads),
    # and the motion UNet is made from the base UNet's own weights, without LoRA layers.
    apply_loras(base, [])
    key = (source, options.allow_unsafe)
    cached = base.__dict__.get("_kd_clip")
    if cached is not None and cached[0] == key:
        return cached[1]
    import diffusers

    if cached is not None:  # another adapter's pipeline lets go of the shared components, and of its memory
        _release(base, cached[1])
        base._kd_clip = None
    if emit is not None:
        emit(events.loading(adapter_name))
    # Not a compiled wrapper or a stand-in decoder from an earlier render either.
    unet = base.__dict__.get("_kd_own_unet", base.unet)
    vae = base.__dict__.get("_kd_own_vae", base.vae)
    adapter = load_motion_adapter(adapter_name, options, device_of(base), unet.dtype)
    try:
        pipe = diffusers.AnimateDiffPipeline.from_pipe(base, motion_adapter=adapter, unet=unet, vae=vae)
    except (ValueError, RuntimeError, KeyError) as e:  # block or channel counts that don't match the base UNet
        raise ModelError(f"motion adapter '{adapter_name}' does not fit model '{settings['model']}' (is it an "
                         f"adapter for SD 1.x?): {e}") from e
    # The motion modules are copied into the motion UNet; the adapter itself is not needed again.
    pipe.register_modules(motion_adapter=None)
    pipe.set_progress_bar_config(disable=True)
    pipe._kd_default_scheduler = base.__dict__.get("_kd_default_scheduler", base.scheduler)
    pipe._kd_device = device_of(base)
    pipe._kd_motion_max = adapter.config.motion_max_seq_length
    base._kd_clip = (key, pipe)
    return pipe


def device_of(base) -> str:
    """The device the model was loaded onto (with CPU offload on, its modules' own devices say otherwise)."""
    return base.__dict__.setdefault("_kd_device", str(base.device))


def set_clip_scheduler(pipe, name: str, kwargs: dict | None) -> None:
    """set_scheduler, except that "default" on AnimateDiff is its recommended DDIM (see ANIMATEDIFF_SCHEDULER),
    made from the model's own scheduler config with the plan's scheduler settings on top."""
    if name != "default" or not is_animatediff(pipe):
        set_scheduler(pipe, name, kwargs)
        return
    from diffusers import DDIMScheduler

    kwargs = checked_settings("'default' (AnimateDiff: DDIMScheduler)", DDIMScheduler, kwargs)
    state = ("animatediff-default", json.dumps(kwargs, sort_keys=True))
    if pipe.__dict__.get("_kd_scheduler_state") == state and pipe.scheduler is pipe.__dict__.get("_kd_scheduler"):
        return
    default = pipe.__dict__.setdefault("_kd_default_scheduler", pipe.scheduler)
    try:
        scheduler = DDIMScheduler.from_config(default.config, **{**ANIMATEDIFF_SCHEDULER, **kwargs})
    except Exception as e:  # schedulers raise ValueError/TypeError for bad settings
        raise ModelError(f"scheduler 'default' (AnimateDiff: DDIMScheduler) refused the settings "
                         f"{json.dumps(kwargs)}: {e}") from e
    pipe.scheduler = scheduler
    pipe._kd_scheduler = scheduler
    pipe._kd_scheduler_state = state


def _offload(pipe, wanted: bool) -> None:
    """diffusers' model CPU offload (each model on the GPU only while it runs), on or back off."""
    device = pipe._kd_device
    offloaded = bool(pipe.__dict__.get("_kd_offloaded"))
    if wanted and not device.startswith("cuda"):
        print(f"warning: CPU offload needs a CUDA GPU; ignored on {device}", file=sys.stderr)
        wanted = False
    if wanted and not offloaded:
        pipe.enable_model_cpu_offload(device=device)
    elif offloaded and not wanted:
        pipe.remove_all_hooks()
        pipe.to(device)
    pipe._kd_offloaded = wanted


def prepare(base, settings: dict, options: LoadOptions, decoder: Callable[[str], Any],
            emit: Callable[[dict], None] | None = None):
    """The clip pipeline with the plan's scheduler, decoder (`decoder(name)` loads one), LoRAs plus motion LoRAs,
    speed switches and CPU offload, ready for modes.clip.render."""
    if settings.get("controlnets"):
        raise ModelError("ControlNet units don't work in clip mode yet: remove them or use another mode")
    if settings.get("pipeline_kwargs"):
        raise ModelError("clip mode runs its own denoising loop: extra pipeline arguments are not used there; clear "
                         "them")
    device_of(base)  # noted before any offload moves modules
    pipe = clip_pipeline(base, settings, options, emit)
    if pipe.__dict__.get("_kd_offloaded"):
        _offload(pipe, False)  # LoRAs and decoders load with every model on its device
    uncompiled(pipe)
    set_clip_scheduler(pipe, settings["scheduler"], settings.get("scheduler_kwargs"))
    name = (settings.get("decoder") or "").strip()
    use_decoder(pipe, decoder(name) if name else None)
    # Motion LoRAs go into the motion UNet's motion modules through the same adapter machinery as image LoRAs.
    apply_loras(pipe, [*settings.get("loras", []), *settings.get("motion_loras", [])],
                allow_unsafe=options.allow_unsafe)
    speed = dict(settings)
    if is_text_to_video(pipe) and speed.get("channels_last"):
        print("warning: channels-last needs 2D convolutions; the text-to-video model's 3D UNet ignores it",
              file=sys.stderr)
        speed["channels_last"] = False
    apply_speed(pipe, speed)
    _offload(pipe, bool(settings.get("cpu_offload")))
    if pipe.__dict__.get("_kd_offloaded") and pipe is not base:
        base.__dict__.get("_kd_own_unet", base.unet).to("cpu")  # the image UNet idles while clips render
    return pipe


def leave(base, mode: str) -> None:
    """Before a render in another `mode`: a text-to-video model only makes clips; and what clip mode did to
    components the AnimateDiff pipeline shares with the base (LoRA layers in the text encoder, offload hooks) is
    undone. The clip pipeline itself stays cached for the next clip render."""
    if mode == "CLIP":
        return
    if is_text_to_video(base):
        raise ModelError("this model is a text-to-video model (TextToVideoSDPipeline): it makes whole clips, so it "
                         "works in clip mode only")
    cached = base.__dict__.get("_kd_clip")
    if cached is not None:
        _release(base, cached[1])


def _release(base, pipe) -> None:
    apply_loras(pipe, [])
    _offload(pipe, False)
    base.to(device_of(base))  # offload may have left shared models (and the image UNet) on the CPU
