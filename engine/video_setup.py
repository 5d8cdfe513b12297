"""Getting a loaded video model ready for a plan's shots: settings it can't take refused before any step, the
frame size checked against what it takes, its memory mode chosen and applied (engine/video_memory.py), its cache
hook (engine/video_cache.py)."""

from __future__ import annotations

import sys

from .plan import PlanError

# Settings of the image modes that a video model has no place for: (field, what to do instead).
_IMAGE_ONLY = (("controlnets", "remove the ControlNet units (a VACE model takes depth, flow and layout as its control "
                "video: set the Control Video)"),
               ("loras", "remove the LoRAs (shot mode doesn't load LoRAs yet)"),
               ("decoder", "clear the Decoder (the video models decode with their own video VAE)"),
               ("motion_adapter", "clear the Motion Adapter (it is for AnimateDiff in clip mode)"))


def check_settings(pipe, family, settings: dict) -> None:
    from .video_models import check_size

    for name, instead in _IMAGE_ONLY:
        if settings.get(name):
            raise PlanError(f"settings: '{name}' doesn't apply to a video model in shot mode: {instead}")
    if settings.get("scheduler", "default") != "default":
        raise PlanError(f"settings: shot mode renders with the video model's own flow-matching scheduler; set the "
                        f"Scheduler to Model Default (it is {settings['scheduler']})")
    check_size(settings["model"], family.label, settings["width"], settings["height"], family.size_step(pipe))


def window_frames(pipe, family, settings: dict) -> int:
    """The most frames one call renders for this plan: a full window, or less when the plan's frame range (with the
    frames a chained shot carries) is shorter. The memory estimate is made for it."""
    from .video_models import valid_count, window_length

    step = family.frame_step(pipe)
    full = window_length(settings, step, family.default_window)
    start, end = settings.get("frame_start"), settings.get("frame_end")
    if start is None or end is None or end < start:
        return full
    carried = settings["shot_overlap"] if settings.get("chain_shots") else 0
    return min(full, valid_count(end - start + 1 + carried, step))


def prepare_video(renderer, pipe, family, settings: dict, emit):
    """The pipeline ready to render the plan's shots (reloaded when its memory mode must change)."""
    from . import video_cache, video_memory

    check_settings(pipe, family, settings)
    device = getattr(pipe, "_kd_device", "cpu")
    frames = window_frames(pipe, family, settings)
    mode = video_memory.choose(pipe, settings, frames, settings["height"], settings["width"], device)
    current = video_memory.applied(pipe)
    if current is not None and current != mode:
        pipe = renderer.reload_pipeline(settings, emit)
    if video_memory.applied(pipe) is None:
        video_memory.apply(pipe, mode, device)
        print(f"shot mode: memory mode {mode} on {device}", file=sys.stderr)
    video_cache.apply_cache(pipe, settings.get("video_cache", "NONE"))
    return pipe
