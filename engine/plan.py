"""The plan: the one contract between Blender and the engine.

A plan is plain JSON written by the bake. This module knows its schema, validates it with errors that name the field
and the frame, and computes the per-frame hashes that make resume work. It imports nothing heavy so the Blender side
can use it too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from typing import Any, Iterable, NamedTuple

from . import vocabulary as vocab

SCHEMA = "keyframe_diffusion.plan"
VERSION = 1
# The closed lists of choices the plan's settings take (engine/vocabulary.py says what each means).
MODES = vocab.names(vocab.MODES)
MOTION_MODES = vocab.names(vocab.MOTION_MODES)
CAMERA_SOURCES = vocab.names(vocab.CAMERA_SOURCES)
DEPTH_SOURCES = vocab.names(vocab.DEPTH_SOURCES)
BORDERS = vocab.names(vocab.BORDERS)
COLOR_MODES = vocab.names(vocab.COLOR_MODES)
CONTROL_PREPROCESSORS = vocab.names(vocab.CONTROL_PREPROCESSORS)
LATENT_SOURCES = vocab.names(vocab.LATENT_SOURCES)
MEMORY_MODES = vocab.names(vocab.MEMORY_MODES)
VIDEO_CACHES = vocab.names(vocab.VIDEO_CACHES)
VIDEO_CONTROLS = vocab.names(vocab.VIDEO_CONTROLS)
# The default: a tiny model trained on flat shapes, shipped in engine/shapes/model (draws "a red circle on a blue
# background" at 64x64). The random-weight tiny model is for plumbing tests and speed checks: its frames are noise.
EMBEDDED_MODEL = "embedded:shapes"
TINY_RANDOM_MODEL = "embedded:tiny"
# Random-weight tiny video models for shot mode's plumbing (engine/tiny_video_models.py): embedded:tiny-wan-t2v,
# embedded:tiny-wan-i2v, embedded:tiny-wan-vace, embedded:tiny-ltx-condition...
TINY_VIDEO_PREFIX = "embedded:tiny-"


class PlanError(ValueError):
    """A plan that can't be rendered; the message says which field (and frame) is wrong."""


_NUMBER = (int, float)

# field name -> (accepted types, required). bool is excluded from numbers on purpose: JSON true is not a step count.
SETTINGS_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "mode": ((str,), True),
    "model": ((str,), True),
    "width": ((int,), True),
    "height": ((int,), True),
    "output_dir": ((str,), True),
    "scheduler": ((str,), False),
    "batch_size": ((int,), False),
    "device": ((str,), False),
    "latent_source": ((str,), False),
    "fps": (_NUMBER, False),
    "frame_start": ((int,), False),
    "frame_end": ((int,), False),
    # Feedback-mode settings, recorded now so the plan says what the scene asked for.
    "motion_mode": ((str,), False),
    "border": ((str,), False),
    "cadence": ((int,), False),
    "color_coherence": ((str,), False),
    "camera_source": ((str,), False),
    "depth_source": ((str,), False),
    "depth_kind": ((str,), False),  # "planar" (Blender's Z pass) or "radial" (distance along each ray)
    "plane_distance": (_NUMBER, False),
    "color_reference": ((str,), False),  # image to match colours to; empty: the first frame
    "coherence_every": ((int,), False),  # latent coherence pull every N denoising steps
    "init_image": ((str,), False),  # feedback: the first frame starts from this image instead of noise
    # [{"model": str, "preprocessor": one of CONTROL_PREPROCESSORS, "name": str}], one per ControlNet unit
    "controlnets": ((list,), False),
    "loras": ((list,), False),  # [{"path": str, "scale": number}]
    "scheduler_kwargs": ((dict,), False),
    "pipeline_kwargs": ((dict,), False),
    # A tiny autoencoder (AutoencoderTiny, TAESD-type: a folder or a Hugging Face id such as madebyollin/taesd) in
    # place of the model's VAE: decoding costs next to nothing (a fast path for previews and few-step models).
    "decoder": ((str,), False),
    # Speed (see models/speed.py): weights' precision, and switches that leave the pixels alone but for float noise
    # (so they are not part of a frame's hash, like device and batch size).
    "precision": ((str,), False),
    "channels_last": ((bool,), False),
    "vae_slicing": ((bool,), False),
    "vae_tiling": ((bool,), False),
    "compile": ((bool,), False),
    # Feature reuse (DeepCache's idea, engine/feature_reuse.py): the whole UNet every N denoising steps, only its
    # shallow branch in between (0 or 1: off). Unlike the switches above it changes the pixels slightly, so a frame's
    # hash includes it when on.
    "feature_reuse": ((int,), False),
    "background_writes": ((bool,), False),  # frames written on a thread, overlapping the next frames' denoising
    # video mode: a pool of batch_size frames, each at its own denoising step, shares every UNet call (modes/stream.py)
    "stream_batch": ((bool,), False),
    # interpolate and video modes: a batch decodes on a thread while the next one denoises (modes/overlap.py)
    "overlap_decode": ((bool,), False),
    # Clip mode: an AnimateDiff motion adapter (MotionAdapter folder or id) on an SD 1.5-family model (not needed for a
    # text-to-video UNet3D model), motion LoRAs [{"path", "scale"}], and context windows: shots longer than the
    # motion model's context are denoised in overlapping windows of context_length frames, context_overlap shared.
    "motion_adapter": ((str,), False),
    "motion_loras": ((list,), False),
    "context_length": ((int,), False),
    "context_overlap": ((int,), False),
    "free_noise": ((bool,), False),  # FreeNoise: every window starts from a shuffle of the first window's noise
    "cpu_offload": ((bool,), False),  # diffusers' model CPU offload: each model on the GPU only while it runs
    "mask_blur": ((int,), False),  # inpainting: pixels of feathering at the mask's edge
    # Video mode: each frame starts from its input blended with the previous output warped along the motion (each
    # frame's "guide" weight; modes/guided.py), so frames chain like feedback. Feedback 3D with the scene camera: the
    # previous frame moves along each frame's "flow" (Blender's Vector pass) instead of the camera and depth.
    "flow_guide": ((bool,), False),
    # ... and each frame's image-to-image noise is the previous frame's moved along the flow (engine/noise_warp.py).
    "warp_noise": ((bool,), False),
    # ... and each denoising step is pulled towards the warped previous output where visible, by this weight (0-1;
    # engine/fusion.py).
    "fusion": ((int, float), False),
    # ... and self-attention attends to the chain's first frame too (engine/anchor_attention.py). "cadence" applies
    # to flow-guided video too: only every Nth frame is diffused, the rest moved from the keys along the flow.
    "anchor_attention": ((bool,), False),
    # Interpolate mode: in-between frames re-timed so the picture changes evenly along the keyed weight curve
    # (engine/pacing.py; the searched positions are cached in the output folder).
    "pace": ((bool,), False),
    # An upscaling pass over finished frames into its own folder: {"model": x4 or latent upscaler, "steps", "guidance",
    # "noise_level" (x4 only), "output_dir"}
    "upscale": ((dict,), False),
    # Shot mode (a Wan 2.x or LTX-Video model renders each shot, the plan's frames from a start or restart to the next):
    # pictures pinned at timeline frames [{"frame", "path", "index" (a movie's frame, 0-based), "strength" (0-1)}];
    # windows of shot_window frames (0: the model's own length) sharing shot_overlap frames for long shots;
    # chain_shots: a shot starts from the last frames of the one before; the memory mode (and a limit in GB in place
    # of the device's free memory, 0: none), a cache hook, and what each frame's control_frame is.
    "pins": ((list,), False),
    "shot_window": ((int,), False),
    "shot_overlap": ((int,), False),
    "chain_shots": ((bool,), False),
    "memory_mode": ((str,), False),
    "memory_limit_gb": (_NUMBER, False),
    "video_cache": ((str,), False),
    "video_control": ((str,), False),
    "control_scale": (_NUMBER, False),
}
FRAME_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "frame": ((int,), True),
    "prompts": ((list,), True),
    "seed": ((int,), True),
    "steps": ((int,), True),
    "guidance": (_NUMBER, True),
    "strength": (_NUMBER, False),
    "guidance_rescale": (_NUMBER, False),
    "motion": ((dict,), False),  # zoom, angle, translation_x ... fov: numbers, Deforum's names and units
    "image": ((dict,), False),  # noise, contrast, color_coherence_amount, coherence_scale, coherence_alpha
    "camera": ((dict, type(None)), False),
    "init": ((dict,), False),  # video mode: {"path": image or movie file, "index": movie frame (0-based)}
    "depth": ((str,), False),  # 3D feedback: depth file of this frame seen from its camera (.exr/.npy)
    "control": ((list,), False),  # one per ControlNet unit: {"image": path (optional), "scale", "start", "end"}
    # Feedback: the chain starts again here (a camera cut, a keyed Restart Chain, a "cut" marker): this frame is made
    # like the first one, and nothing before it affects it, so chains render independently (and on different machines).
    # Clip mode: a new clip (a separate denoising of its own frames) starts here.
    "restart": ((bool,), False),
    # Inpainting (feedback and video modes): which pixels are repainted (white) and which kept. {"path": image, movie or
    # index-pass file, "index": movie frame (0-based), "select": [pass index values] (an object or material index pass:
    # the pixels with one of these values), "invert": true to repaint the others}
    "mask": ((dict,), False),
    # Flow-guided video mode: how much of the previous output, warped along the motion, the frame starts from (0-1),
    # and Blender's Vector pass of this frame (engine/flow.py); without it the motion is estimated from the inputs.
    "guide": (_NUMBER, False),
    "flow": ((str,), False),
    # Shot mode: this frame's control picture, of the kind settings.video_control names: {"path": image, movie, .exr
    # or .npy pass file, "index": movie frame (0-based)}
    "control_frame": ((dict,), False),
}
PROMPT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "text": ((str,), True),
    "negative": ((str,), False),
    "weight": (_NUMBER, True),
    "seed": ((int,), False),
}

SETTINGS_DEFAULTS: dict[str, Any] = {
    "scheduler": "default",
    "batch_size": 1,
    "device": "auto",
    "latent_source": "PROMPT_SEEDS",
    "fps": 24.0,
    "motion_mode": "2D",
    "border": "REPLICATE",
    "cadence": 1,
    "color_coherence": "NONE",
    "camera_source": "SCENE",
    "depth_source": "SCENE",
    "depth_kind": "planar",
    "plane_distance": 10.0,
    "color_reference": "",
    "coherence_every": 1,
    "init_image": "",
    "precision": "auto",
    "context_length": 16,
    "context_overlap": 4,
    "free_noise": True,
    "mask_blur": 4,
    "shot_window": 0,
    "shot_overlap": 8,
    "chain_shots": False,
    "memory_mode": "AUTO",
    "memory_limit_gb": 0.0,
    "video_cache": "NONE",
    "video_control": "NONE",
    "control_scale": 1.0,
}
FRAME_DEFAULTS: dict[str, Any] = {"guidance_rescale": 0.0, "strength": 0.6, "guide": 0.5}
_CHOICES = {"precision": vocab.names(vocab.PRECISIONS), "motion_mode": MOTION_MODES,
            "camera_source": CAMERA_SOURCES, "depth_source": DEPTH_SOURCES,
            "depth_kind": ("planar", "radial"), "border": BORDERS, "color_coherence": COLOR_MODES,
            "memory_mode": MEMORY_MODES, "video_cache": VIDEO_CACHES, "video_control": VIDEO_CONTROLS}


class Range(NamedTuple):
    """Inclusive bounds of a number (open_low: the low bound itself is refused, e.g. a zoom of 0)."""

    low: float
    high: float
    open_low: bool = False
    open_high: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def text(self) -> str:
        if self.open_low or self.open_high:
            return (f"{'above' if self.open_low else 'at least'} {_show(self.low)} and "
                    f"{'below' if self.open_high else 'at most'} {_show(self.high)}")
        return f"{_show(self.low)}..{_show(self.high)}"


# Upper bounds. Past them a plan costs minutes or gigabytes before it fails, or renders black frames recorded as done;
# every bound is at or above what the Blender side lets a user set (docs/architecture.md#limits). The frame size
# limits can be raised with environment variables for a machine that really renders larger frames.
MAX_FRAME = 1_048_574  # Blender's MAXFRAME: scene frames lie in -MAXFRAME..MAXFRAME
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes an unsigned 64-bit seed; numpy's default_rng too
MAX_STEPS = 1000  # the training timesteps of every SD-family scheduler: more steps can't be distinct
MAX_INDEX = 2**31 - 1  # a movie frame index (Blender's int range)
MAX_PASS_INDEX = 32767  # Blender's object and material pass_index
MAX_DEPTH = 64  # nesting of objects and lists anywhere in a plan (a baked plan nests 5 deep)
FLT_MAX = 3.4028234663852886e38  # Blender's float properties' range (camera lens, shift, clip...)
MAX_SIDE_ENV, MAX_PIXELS_ENV = "KD_MAX_SIDE", "KD_MAX_PIXELS"
DEFAULT_MAX_SIDE = 8192
DEFAULT_MAX_PIXELS = 8192 * 8192

SETTINGS_RANGES = {
    "batch_size": Range(1, 256), "fps": Range(0, 4e9, open_low=True),
    "frame_start": Range(-MAX_FRAME, MAX_FRAME), "frame_end": Range(-MAX_FRAME, MAX_FRAME),
    "cadence": Range(1, 1000), "plane_distance": Range(0, 1e6, open_low=True), "coherence_every": Range(1, MAX_STEPS),
    "context_length": Range(2, 256), "context_overlap": Range(0, 255), "mask_blur": Range(0, 1024),
    "fusion": Range(0, 1), "feature_reuse": Range(0, MAX_STEPS),
    "shot_window": Range(0, 4096), "shot_overlap": Range(0, 4095), "memory_limit_gb": Range(0, 1e6),
    "control_scale": Range(0, 10),
}
FRAME_RANGES = {
    "frame": Range(-MAX_FRAME, MAX_FRAME), "seed": Range(0, MAX_SEED), "steps": Range(1, MAX_STEPS),
    "guidance": Range(0, 100), "strength": Range(0, 1), "guidance_rescale": Range(0, 1), "guide": Range(0, 1),
}
PROMPT_RANGES = {"weight": Range(0, 1e6), "seed": Range(0, MAX_SEED)}
LORA_RANGES = {"scale": Range(-100, 100)}
UPSCALE_RANGES = {"steps": Range(1, MAX_STEPS), "guidance": Range(0, 100), "noise_level": Range(0, 350)}
CONTROL_RANGES = {"index": Range(0, MAX_INDEX), "scale": Range(-100, 100), "start": Range(0, 1), "end": Range(0, 1)}
INIT_RANGES = {"index": Range(0, MAX_INDEX)}
MASK_RANGES = {"index": Range(0, MAX_INDEX), "blur": Range(0, 1024)}
_OFFSET = Range(-1e6, 1e6)  # pixels, scene units or degrees per frame
MOTION_RANGES = {
    "zoom": Range(0, 100, open_low=True), "angle": _OFFSET, "translation_x": _OFFSET, "translation_y": _OFFSET,
    "translation_z": _OFFSET, "transform_center_x": Range(-1000, 1000), "transform_center_y": Range(-1000, 1000),
    "rotation_3d_x": _OFFSET, "rotation_3d_y": _OFFSET, "rotation_3d_z": _OFFSET,
    "fov": Range(0, 180, open_low=True, open_high=True), "plane_distance": Range(0, 1e6, open_low=True),
}
IMAGE_RANGES = {"noise": Range(0, 100), "contrast": Range(0, 100), "color_coherence_amount": Range(0, 1),
                "coherence_scale": Range(0, 1e6), "coherence_alpha": Range(0, 1),
                "coherence_every": Range(1, MAX_STEPS)}
# A baked Blender camera: Blender's own ranges (lens and sensor at least 1 mm there).
CAMERA_RANGES = {"lens": Range(0, FLT_MAX, open_low=True), "sensor_width": Range(0, FLT_MAX, open_low=True),
                 "sensor_height": Range(0, FLT_MAX, open_low=True), "shift_x": Range(-FLT_MAX, FLT_MAX),
                 "shift_y": Range(-FLT_MAX, FLT_MAX), "clip_start": Range(0, FLT_MAX, open_low=True),
                 "clip_end": Range(0, FLT_MAX, open_low=True)}


def _show(value: Any) -> str:
    """A value for a message: never a 5,000-digit number (str() of one raises ValueError)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, _LongInteger):
        return value.describe()
    try:
        return json.dumps(value)[:60]
    except (TypeError, ValueError, RecursionError):
        return type(value).__name__


def _check_range(value: Any, limits: Range, where: str, name: str) -> None:
    if not limits.holds(value):
        raise PlanError(f"{where}: '{name}' {_show(value)} is out of range {limits.text()}")


def _env_limit(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 2**62:
        raise PlanError(f"the environment variable {name} must be a whole number above 0, got {text[:40]!r}")
    return int(text)


def max_side() -> int:
    """The largest frame width or height a plan may ask for ($KD_MAX_SIDE, default 8192 pixels)."""
    return _env_limit(MAX_SIDE_ENV, DEFAULT_MAX_SIDE)


def max_pixels() -> int:
    """The most pixels (width x height) a plan's frames may have ($KD_MAX_PIXELS, default 8192 x 8192)."""
    return _env_limit(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS)


def _check_size(settings: dict) -> None:
    side = max_side()
    for name in ("width", "height"):
        value = settings[name]
        if value < 8 or value % 8:
            raise PlanError(f"settings: '{name}' must be a multiple of 8 and at least 8, got {_show(value)}")
        if value > side:
            raise PlanError(f"settings: '{name}' {_show(value)} is out of range 8..{side} (set the environment "
                            f"variable {MAX_SIDE_ENV} to allow larger frames)")
    pixels, limit = settings["width"] * settings["height"], max_pixels()
    if pixels > limit:
        raise PlanError(f"settings: {settings['width']}x{settings['height']} is {pixels} pixels, above the limit of "
                        f"{limit} (set the environment variable {MAX_PIXELS_ENV} to allow larger frames)")


_MAX_INT_DIGITS = 40  # beyond 64 bits either way; Python refuses int() of 4,301+ digits with a message naming nothing
_TOO_LONG = 10**_MAX_INT_DIGITS


class _LongInteger:
    """A JSON integer too long for any field of a plan: load keeps it as this (instead of letting int() raise) so that
    the check of every value can name its field."""

    def __init__(self, digits: str) -> None:
        self.length = len(digits.lstrip("-"))

    def describe(self) -> str:
        return f"an integer of {self.length} digits"


def _parse_int(text: str) -> int | _LongInteger:
    return int(text) if len(text) <= _MAX_INT_DIGITS else _LongInteger(text)


def _child(path: tuple[str, str], key: Any, value: Any) -> tuple[str, str]:
    """The path of value under key: (head, rest), e.g. ("frames[3] (frame 4)", "prompts[0].weight")."""
    head, rest = path
    if not head:  # the top level: the settings and the frames name their own parts; anything else is the plan's
        return (str(key), "") if key in ("settings", "frames") else ("the plan", str(key))
    if head == "frames" and not rest and isinstance(key, int):
        frame = value.get("frame") if isinstance(value, dict) else None
        label = f" (frame {_show(frame)})" if isinstance(frame, int) and not isinstance(frame, bool) else ""
        return f"frames[{key}]{label}", ""
    if isinstance(key, int):
        return head, f"{rest}[{key}]" if rest else f"[{key}]"
    return head, f"{rest}.{key}" if rest else str(key)


def _value_error(path: tuple[str, str], problem: str) -> PlanError:
    head, rest = path
    rest = rest if len(rest) <= 80 else rest[:60] + "..."  # deep nesting: the field it starts in says enough
    return PlanError(f"{head}: '{rest}' {problem}" if rest else f"the plan: '{head}' {problem}")


def _check_values(plan: dict) -> None:
    """Every value anywhere in the plan, free-form options (scheduler_kwargs...) included: nested at most MAX_DEPTH
    deep, numbers finite and within 64 bits, strings without NUL characters (a path with one fails deep inside an OS
    call, after frames were rendered). Iterative: a deep plan must not overflow Python's stack here either."""
    stack: list[tuple[Any, tuple[str, str], int]] = [(plan, ("", ""), 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise _value_error(path, f"nests objects and lists more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, _child(path, key, item), depth + 1) for key, item in items)
        elif isinstance(value, _LongInteger):
            raise _value_error(path, f"is {value.describe()}: far too large for any number in a plan")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _TOO_LONG:
            raise _value_error(path, f"is {_show(value)}: far too large for any number in a plan")
        elif isinstance(value, float) and not math.isfinite(value):
            raise _value_error(path, f"must be a finite number, got {value}")
        elif isinstance(value, str) and "\0" in value:
            raise _value_error(path, "contains a NUL character (\\u0000)")


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object",
             bool: "true or false"}
    if types == _NUMBER:
        return "a number"
    return " or ".join(names.get(t, "null") for t in types)


def _check_fields(obj: Any, fields: dict, where: str, ranges: dict[str, Range] | None = None) -> None:
    if not isinstance(obj, dict):
        raise PlanError(f"{where} must be an object, got {type(obj).__name__}")
    for name, (types, required) in fields.items():
        if name not in obj:
            if required:
                raise PlanError(f"{where}: missing field '{name}'")
            continue
        value = obj[name]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise PlanError(f"{where}: field '{name}' must be {_type_name(types)}, got {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise PlanError(f"{where}: field '{name}' must be finite, got {value}")
        if ranges and name in ranges:
            _check_range(value, ranges[name], where, name)


def validate(plan: Any) -> dict:
    """Check a plan and return it with defaults filled in. Raises PlanError naming the field and frame."""
    if not isinstance(plan, dict):
        raise PlanError("the plan must be a JSON object")
    if plan.get("schema") != SCHEMA:
        raise PlanError(f"not a Keyframe Diffusion plan: 'schema' must be '{SCHEMA}'")
    version = plan.get("version")
    if version != VERSION:
        raise PlanError(f"unknown plan version {_show(version)}: this engine reads version {VERSION}; bake the plan "
                        "again")
    _check_values(plan)
    settings = plan.get("settings")
    _check_fields(settings, SETTINGS_FIELDS, "settings", SETTINGS_RANGES)
    settings = {**SETTINGS_DEFAULTS, **settings}
    if settings["mode"] not in MODES:
        raise PlanError(f"settings: unknown mode '{settings['mode']}' (known: {', '.join(MODES)})")
    if settings["latent_source"] not in LATENT_SOURCES:
        raise PlanError(f"settings: unknown latent_source '{settings['latent_source']}'")
    for name, choices in _CHOICES.items():
        if settings[name] not in choices:
            raise PlanError(f"settings: '{name}' must be one of {', '.join(choices)}, got {settings[name]!r}")
    _check_units(settings)
    _check_clip(settings)
    _check_shot(settings)
    _check_feature_reuse(settings)
    _check_upscale(settings)
    for i, lora in enumerate(settings.get("loras", [])):
        _check_fields(lora, {"path": ((str,), True), "scale": (_NUMBER, True)}, f"settings.loras[{i}]", LORA_RANGES)
    _check_size(settings)
    if not settings["model"].strip():
        raise PlanError("settings: 'model' is empty; give a model folder or Hugging Face id")
    frames = plan.get("frames")
    if not isinstance(frames, list) or not frames:
        raise PlanError("the plan has no 'frames' list (or it is empty)")
    seen: set[int] = set()
    for i, record in enumerate(frames):
        _check_frame(record, i, settings, seen)
    _check_pins_in_shots(settings, frames)
    return {**plan, "settings": settings}


def _check_frame(record: Any, i: int, settings: dict, seen: set[int]) -> None:
    """One per-frame record; `seen` collects the frame numbers so far (a frame may appear once)."""
    where = f"frames[{i}]"
    if isinstance(record, dict) and isinstance(record.get("frame"), int) and not isinstance(record["frame"], bool):
        where += f" (frame {_show(record['frame'])})"
    _check_fields(record, FRAME_FIELDS, where, FRAME_RANGES)
    if record["frame"] in seen:
        raise PlanError(f"{where}: frame {record['frame']} appears twice")
    seen.add(record["frame"])
    for group, ranges in (("motion", MOTION_RANGES), ("image", IMAGE_RANGES)):
        for key, value in record.get(group, {}).items():
            if isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value):
                raise PlanError(f"{where}: '{group}.{key}' must be a finite number, got {_show(value)}")
            _check_range(value, ranges.get(key, _OFFSET), where, f"{group}.{key}")
    if isinstance(record.get("camera"), dict):
        _check_fields(record["camera"], {k: (_NUMBER, False) for k in CAMERA_RANGES}, f"{where} camera",
                      CAMERA_RANGES)
    _check_frame_inputs(record, settings, where)
    _check_mask(record, settings, where)
    if not record["prompts"]:
        raise PlanError(f"{where}: no prompt has weight above zero at this frame")
    for j, prompt in enumerate(record["prompts"]):
        _check_fields(prompt, PROMPT_FIELDS, f"{where} prompts[{j}]", PROMPT_RANGES)


_UNIT_FIELDS = {"model": ((str,), True), "preprocessor": ((str,), False), "name": ((str,), False)}
_CONTROL_FIELDS = {"image": ((str,), False), "index": ((int,), False), "scale": (_NUMBER, True), "start": (_NUMBER, False),
                   "end": (_NUMBER, False)}


def _check_units(settings: dict) -> None:
    for i, unit in enumerate(settings.get("controlnets", [])):
        where = f"settings.controlnets[{i}]"
        _check_fields(unit, _UNIT_FIELDS, where)
        if not unit["model"].strip():
            raise PlanError(f"{where}: 'model' is empty; give a ControlNet folder or Hugging Face id")
        if unit.get("preprocessor", "NONE") not in CONTROL_PREPROCESSORS:
            raise PlanError(f"{where}: unknown preprocessor {unit['preprocessor']!r} "
                            f"(known: {', '.join(CONTROL_PREPROCESSORS)})")


def _check_clip(settings: dict) -> None:
    for i, lora in enumerate(settings.get("motion_loras", [])):
        _check_fields(lora, {"path": ((str,), True), "scale": (_NUMBER, True)}, f"settings.motion_loras[{i}]",
                      LORA_RANGES)
    length, overlap = settings["context_length"], settings["context_overlap"]
    if not 0 <= overlap < length:
        raise PlanError(f"settings: 'context_overlap' must lie in 0-{length - 1} (below the context length), got "
                        f"{overlap}")
    if settings["mode"] != "CLIP" and (settings.get("motion_adapter", "").strip() or settings.get("motion_loras")):
        raise PlanError("settings: a motion adapter and motion LoRAs work in clip mode only "
                        f"(the mode is {settings['mode']})")


_PIN_FIELDS = {"frame": ((int,), True), "path": ((str,), True), "index": ((int,), False),
               "strength": (_NUMBER, False)}
PIN_RANGES = {"frame": Range(-MAX_FRAME, MAX_FRAME), "index": Range(0, MAX_INDEX), "strength": Range(0, 1)}
_SHOT_ONLY = ("pins", "chain_shots")


def _check_shot(settings: dict) -> None:
    pins = settings.get("pins", [])
    if settings["mode"] != "SHOT":
        used = [name for name in _SHOT_ONLY if settings.get(name)]
        if used:
            raise PlanError(f"settings: {' and '.join(used)} work in shot mode only (the mode is {settings['mode']})")
        return
    seen: dict[int, int] = {}
    for i, pin in enumerate(pins):
        where = f"settings.pins[{i}]"
        _check_fields(pin, _PIN_FIELDS, where, PIN_RANGES)
        if not pin["path"].strip():
            raise PlanError(f"{where} (frame {pin['frame']}): 'path' is empty; give the pinned picture's file")
        if pin["frame"] in seen:
            raise PlanError(f"{where}: two pictures are pinned at frame {pin['frame']} (pins[{seen[pin['frame']]}] "
                            "too); keep one, or move one to another frame")
        seen[pin["frame"]] = i
    if settings["shot_overlap"] and settings["shot_window"] and settings["shot_overlap"] >= settings["shot_window"]:
        raise PlanError(f"settings: 'shot_overlap' {settings['shot_overlap']} must be below 'shot_window' "
                        f"{settings['shot_window']} (the frames two windows share)")


def _check_pins_in_shots(settings: dict, frames: list[dict]) -> None:
    """Every pin lies on a frame of a shot (a pin between shots or past the plan's frames pins nothing)."""
    if settings["mode"] != "SHOT":
        return
    have = {r["frame"] for r in frames}
    for i, pin in enumerate(settings.get("pins", [])):
        if pin["frame"] not in have:
            shots = ", ".join(f"{s[0]['frame']}-{s[-1]['frame']}" for s in chain_segments(frames))
            raise PlanError(f"settings.pins[{i}]: the picture pinned at frame {pin['frame']} ({pin['path']}) lies "
                            f"outside every shot (the shots are frames {shots}); move the pin into a shot or widen "
                            "the frame range")


def _check_feature_reuse(settings: dict) -> None:
    if settings.get("feature_reuse", 0) < 2:
        return
    if settings["mode"] in ("CLIP", "SHOT"):
        raise PlanError(f"settings: feature reuse works on image models' UNets, not in {settings['mode'].lower()} mode (AnimateDiff's motion "
                        "UNet, text-to-video UNets); turn Feature Reuse off (0)")
    if settings.get("compile"):
        raise PlanError("settings: feature reuse skips parts of the UNet that a compiled UNet runs as one graph; turn "
                        "Compile or Feature Reuse off")


_UPSCALE_FIELDS = {"model": ((str,), True), "steps": ((int,), False), "guidance": (_NUMBER, False),
                   "noise_level": ((int,), False), "output_dir": ((str,), True)}


def _check_upscale(settings: dict) -> None:
    upscale = settings.get("upscale")
    if upscale is None:
        return
    _check_fields(upscale, _UPSCALE_FIELDS, "settings.upscale", UPSCALE_RANGES)
    if not upscale["model"].strip():
        raise PlanError("settings.upscale: 'model' is empty; give an upscaler folder or Hugging Face id "
                        "(stabilityai/stable-diffusion-x4-upscaler, stabilityai/sd-x2-latent-upscaler)")
    if not upscale["output_dir"].strip():
        raise PlanError("settings.upscale: 'output_dir' is empty")


_MASK_FIELDS = {"path": ((str,), True), "index": ((int,), False), "select": ((list,), False),
                "invert": ((bool,), False), "blur": ((int,), False)}  # blur: this frame's mask_blur


def _check_mask(record: dict, settings: dict, where: str) -> None:
    mask = record.get("mask")
    if mask is None:
        return
    if settings["mode"] not in ("FEEDBACK", "VIDEO"):
        raise PlanError(f"{where}: masks (inpainting) work in feedback and video modes, not {settings['mode']}")
    _check_fields(mask, _MASK_FIELDS, f"{where} mask", MASK_RANGES)
    for value in mask.get("select", []):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanError(f"{where} mask: 'select' must list integer pass indices, got {_show(value)}")
        if not 0 <= value <= MAX_PASS_INDEX:
            raise PlanError(f"{where} mask: 'select' pass index {_show(value)} is out of range 0..{MAX_PASS_INDEX}")


def _check_frame_inputs(record: dict, settings: dict, where: str) -> None:
    """The per-frame inputs each mode needs: init frames for video, one control entry per ControlNet unit."""
    if settings["mode"] == "VIDEO":
        init = record.get("init")
        if init is None:
            raise PlanError(f"{where}: video mode needs an 'init' image for every frame (no input strip covers it?)")
    if "control_frame" in record:
        if settings["mode"] != "SHOT":
            raise PlanError(f"{where}: 'control_frame' is for shot mode (the mode is {settings['mode']})")
        _check_fields(record["control_frame"], {"path": ((str,), True), "index": ((int,), False)},
                      f"{where} control_frame", INIT_RANGES)
    if settings["mode"] == "SHOT" and settings["video_control"] != "NONE" and "control_frame" not in record:
        raise PlanError(f"{where}: the shot's control video is {settings['video_control']} but this frame has no "
                        "'control_frame' (bake the plan again)")
    if "init" in record:
        _check_fields(record["init"], {"path": ((str,), True), "index": ((int,), False)}, f"{where} init",
                      INIT_RANGES)
    units = settings.get("controlnets", [])
    control = record.get("control", [])
    if len(control) != len(units):
        raise PlanError(f"{where}: 'control' has {len(control)} entries but the settings have {len(units)} "
                        "ControlNet units")
    for j, entry in enumerate(control):
        _check_fields(entry, _CONTROL_FIELDS, f"{where} control[{j}]", CONTROL_RANGES)
        start, end = entry.get("start", 0.0), entry.get("end", 1.0)
        if not 0.0 <= start <= end <= 1.0:
            raise PlanError(f"{where} control[{j}]: need 0 <= start <= end <= 1, got {start}-{end}")


def _read_json(path: str | os.PathLike) -> Any:
    """The JSON in a plan file; PlanError naming the file (and the line and column where there is one)."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise PlanError(f"plan file not found: {name}") from None
    except IsADirectoryError:
        raise PlanError(f"{name} is a folder, not a plan file: give the plan.json inside it") from None
    except OSError as e:
        raise PlanError(f"can't read the plan file {name}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte order mark (Windows editors write one) is not an error
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise PlanError(f"{name} is not UTF-8 text: line {line}, column {column} (byte {e.start}): {e.reason}; save "
                        "the plan as UTF-8") from None
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise PlanError(f"{name} is not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise PlanError(f"{name} nests objects and lists too deeply to read (a plan nests at most {MAX_DEPTH} "
                        "levels)") from None


def _inside(path: str, folder: str) -> bool:
    """Whether path is folder or lies in it, links resolved (a link inside pointing out is outside)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def load(path: str | os.PathLike, output: str | os.PathLike | None = None, trust_output: bool = False) -> dict:
    """Read and validate a plan file. Relative output folders are taken relative to the plan file.

    The trust model (docs/architecture.md#trusting-a-plan): a plan reads the files it names, as a .blend does, but
    writes only into the folder it was baked for, the one holding it (the bake writes output_dir/plan.json) or one
    inside it. `output` puts the frames (and the upscaled frames, below them) in a folder the user chose instead;
    `trust_output` lets the plan write where it says. Otherwise an output folder elsewhere is a PlanError."""
    plan = validate(_read_json(path))
    settings, folder = plan["settings"], os.path.dirname(os.path.abspath(path))
    baked = os.path.normpath(os.path.join(folder, settings["output_dir"]))  # an absolute output_dir stays as is
    settings["output_dir"] = os.path.abspath(output) if output is not None else baked
    if settings.get("upscale"):
        upscaled = os.path.normpath(os.path.join(folder, settings["upscale"]["output_dir"]))
        if output is not None:  # the same place relative to the frames (the bake's: frames/upscaled)
            upscaled = os.path.join(settings["output_dir"], os.path.relpath(upscaled, baked)
                                    if _inside(upscaled, baked) else "upscaled")
        settings["upscale"] = {**settings["upscale"], "output_dir": os.path.normpath(upscaled)}
    if output is None and not trust_output:
        upscaled = settings.get("upscale", {}).get("output_dir")
        for where, out in (("output_dir", baked), ("upscale.output_dir", upscaled)):
            if out is not None and not _inside(out, folder):
                raise PlanError(
                    f"{os.fspath(path)}: settings.{where} {out} lies outside the folder holding the plan ({folder}). "
                    "A plan writes only into the folder it was baked for; to render it, choose the folder yourself "
                    "(command line: --output DIR) or trust this plan's folders (--trust-output)")
    return plan


def save(plan: dict, path: str | os.PathLike) -> None:
    """Write a plan atomically (validated first, so a bad bake never leaves a plan behind)."""
    validate(plan)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(plan, f, indent=1)
    os.replace(tmp, path)


# What changes the pixels of a frame. Device and batch size don't (beyond float noise), output paths don't.
_HASHED_SETTINGS = ("mode", "model", "width", "height", "scheduler", "latent_source")
# Settings that joined later are hashed only when set, so frames rendered before they existed stay current.
_OPTIONAL_HASHED = ("controlnets", "loras", "scheduler_kwargs", "pipeline_kwargs", "decoder", "motion_adapter",
                    "motion_loras")
_FRAME_BASE = ("prompts", "seed", "steps", "guidance", "guidance_rescale")
_HASHED_FRAME = {
    "INTERPOLATE": _FRAME_BASE,
    "VIDEO": (*_FRAME_BASE, "strength", "init", "control", "image", "depth", "mask", "guide", "flow"),
    "FEEDBACK": (*_FRAME_BASE, "strength", "motion", "image", "camera", "depth", "control", "mask", "flow"),
    "CLIP": _FRAME_BASE,
    "SHOT": (*_FRAME_BASE, "strength", "control_frame"),
}
_HASHED_SHOT = ("shot_window", "shot_overlap", "chain_shots", "video_cache", "video_control", "control_scale")
_HASHED_CLIP = ("context_length", "context_overlap", "free_noise")
_HASHED_FEEDBACK = ("motion_mode", "border", "cadence", "color_coherence", "camera_source", "depth_source",
                    "depth_kind", "plane_distance", "color_reference", "coherence_every", "init_image")


def _file_stamp(path: str | None) -> list | None:
    """Size and modification time stand for a file's content: a re-rendered depth or init image re-renders."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_size, st.st_mtime_ns]


# Per-frame values that were settings-wide before (the settings keep the first frame's): where a frame's value is the
# settings' it is hashed there only, so frames rendered before they were per-frame stay current.
_WERE_SETTINGS = {("motion", "plane_distance"): "plane_distance", ("image", "coherence_every"): "coherence_every"}


def _frame_data(settings: dict, record: dict) -> dict:
    data = {k: record.get(k, FRAME_DEFAULTS.get(k)) for k in _HASHED_FRAME[settings["mode"]]}
    if data.get("init"):
        data["init"] = {**data["init"], "file": _file_stamp(data["init"].get("path"))}
    if data.get("control"):
        data["control"] = [{**c, "file": _file_stamp(c.get("image"))} for c in data["control"]]
    if data.get("depth"):
        data["depth"] = _file_stamp(data["depth"])
    if data.get("control_frame"):
        data["control_frame"] = {**data["control_frame"], "file": _file_stamp(data["control_frame"].get("path"))}
    if data.get("mask"):
        data["mask"] = {**data["mask"], "file": _file_stamp(data["mask"].get("path")),
                        "blur": data["mask"].get("blur", settings["mask_blur"])}
    if data.get("mask") is None:
        data.pop("mask", None)  # frames hashed before masks existed keep their hash
    if settings["mode"] == "VIDEO" and data.get("depth") is None:
        data.pop("depth", None)  # likewise video frames before depth-to-image
    if settings["mode"] == "VIDEO" and not settings.get("flow_guide"):
        data.pop("guide", None)  # and unguided video frames (the guide is unused there)
        data.pop("flow", None)
    elif data.get("flow"):
        data["flow"] = _file_stamp(data["flow"])
    elif settings["mode"] == "FEEDBACK":
        data.pop("flow", None)  # feedback frames hashed before Follow Motion keep their hash
    for (group, key), name in _WERE_SETTINGS.items():
        values = data.get(group)
        if isinstance(values, dict) and key in values and values[key] == settings.get(name):
            data[group] = {k: v for k, v in values.items() if k != key}
    return data


def _settings_data(settings: dict) -> dict:
    data = {k: settings.get(k) for k in _HASHED_SETTINGS}
    data.update({k: settings[k] for k in _OPTIONAL_HASHED if settings.get(k)})
    if settings.get("flow_guide"):
        data["flow_guide"] = True
        if settings.get("warp_noise"):
            data["warp_noise"] = True
        if settings.get("fusion"):
            data["fusion"] = settings["fusion"]
        if settings.get("anchor_attention"):
            data["anchor_attention"] = True
        if settings["mode"] == "VIDEO" and settings.get("cadence", 1) > 1:
            data["cadence"] = settings["cadence"]  # true-flow cadence (frames hashed before it keep their hash)
    if settings.get("feature_reuse", 0) >= 2:
        data["feature_reuse"] = settings["feature_reuse"]  # 0 and 1 (off) keep the hashes made before it existed
    if settings["mode"] == "INTERPOLATE" and settings.get("pace"):
        data["pace"] = True
    if settings["mode"] == "CLIP":
        data.update({k: settings.get(k) for k in _HASHED_CLIP})
    if settings["mode"] == "SHOT":
        data.update({k: settings.get(k) for k in _HASHED_SHOT})
    if settings["mode"] == "FEEDBACK":
        data.update({k: settings.get(k) for k in _HASHED_FEEDBACK})
        data["init_image"] = _file_stamp(settings.get("init_image"))
        data["color_reference"] = _file_stamp(settings.get("color_reference"))
    return data


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def frame_hash(settings: dict, record: dict) -> str:
    """Hash of everything that decides one frame's pixels in an independent-frame mode."""
    return _digest({"settings": _settings_data(settings), "frame": _frame_data(settings, record)})


def frame_hashes(settings: dict, records: list[dict]) -> dict[int, str]:
    """Every frame's hash. Feedback frames chain: a frame's pixels depend on every frame before it in its chain, so
    its hash includes the previous one's, and changing frame 5 makes frames 5 onwards out of date up to the next
    restart (and only those). A clip's frames are denoised together, so each depends on every frame of its clip."""
    if settings["mode"] == "CLIP":
        return _clip_hashes(settings, records)
    if settings["mode"] == "SHOT":
        return _shot_hashes(settings, records)
    if not is_chained(settings):
        return {r["frame"]: frame_hash(settings, r) for r in records}
    base = _settings_data(settings)
    hashes = {}
    for segment in chain_segments(records):
        chain, previous = [], ""
        for record in segment:
            previous = _digest({"settings": base, "frame": _frame_data(settings, record), "previous": previous})
            chain.append(previous)
        # A cadence in-between is a blend of the keys on both sides, so it also depends on the next key.
        keys = cadence_keys(len(segment), settings.get("cadence", 1))
        for i, record in enumerate(segment):
            next_key = next(k for k in keys if k >= i)
            hashes[record["frame"]] = chain[i] if next_key == i else _digest({"own": chain[i],
                                                                              "next": chain[next_key]})
    return hashes


def is_chained(settings: dict) -> bool:
    """Whether each frame is made from the one before it: feedback, and flow-guided video."""
    return settings["mode"] == "FEEDBACK" or (settings["mode"] == "VIDEO" and bool(settings.get("flow_guide")))


def _clip_hashes(settings: dict, records: list[dict]) -> dict[int, str]:
    base = _settings_data(settings)
    hashes = {}
    for segment in chain_segments(records):
        clip = _digest({"settings": base, "frames": [{"frame": r["frame"], **_frame_data(settings, r)}
                                                     for r in segment]})
        hashes.update({r["frame"]: _digest({"clip": clip, "frame": r["frame"]}) for r in segment})
    return hashes


def _shot_hashes(settings: dict, records: list[dict]) -> dict[int, str]:
    """As clips, plus each shot's own pins (a moved pin changes its shot, and the shot it left, and no other); with
    chain_shots a shot also depends on the one before it."""
    base = _settings_data(settings)
    hashes, previous = {}, ""
    pins = settings.get("pins", [])
    for segment in chain_segments(records):
        frames = {r["frame"] for r in segment}
        own = [{**p, "file": _file_stamp(p["path"])} for p in sorted(pins, key=lambda p: p["frame"])
               if p["frame"] in frames]
        shot = _digest({"settings": base, "pins": own, "previous": previous,
                        "frames": [{"frame": r["frame"], **_frame_data(settings, r)} for r in segment]})
        if settings.get("chain_shots"):
            previous = shot
        hashes.update({r["frame"]: _digest({"clip": shot, "frame": r["frame"]}) for r in segment})
    return hashes


def shot_pins(settings: dict, segment: list[dict]) -> list[dict]:
    """The pins of one shot (chain segment), in frame order."""
    frames = {r["frame"] for r in segment}
    return sorted((p for p in settings.get("pins", []) if p["frame"] in frames), key=lambda p: p["frame"])


def chain_segments(records: Iterable[dict]) -> list[list[dict]]:
    """Feedback chains (clip mode: clips) in frame order: a new one starts at the first frame and at every frame
    marked `restart`."""
    segments: list[list[dict]] = []
    for record in sorted(records, key=lambda r: r["frame"]):
        if not segments or record.get("restart"):
            segments.append([])
        segments[-1].append(record)
    return segments


def cadence_keys(count: int, cadence: int) -> list[int]:
    """Indices of the frames that are diffused with a cadence: every Nth from the first, and always the last, so
    no frame at the end is dropped or left without a key after it."""
    keys = list(range(0, count, max(1, cadence)))
    if count and keys[-1] != count - 1:
        keys.append(count - 1)
    return keys


def parse_frame_range(text: str) -> tuple[int, int]:
    """'A-B' or 'A' -> (A, B). Negative frames are allowed: '-5--1'."""
    text = text.strip()
    m = re.fullmatch(r"(-?\d+)(?:\s*(?:-|\.\.)\s*(-?\d+))?", text)
    if not m:
        raise ValueError(f"frame range {text!r} is not 'A-B' or 'A' (for example 1-24)")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    if b < a:
        raise ValueError(f"frame range {text!r} ends before it starts")
    return a, b


def select_frames(plan: dict, frame_range: tuple[int, int] | None) -> list[dict]:
    records = plan["frames"]
    if frame_range is None:
        return list(records)
    a, b = frame_range
    chosen = [r for r in records if a <= r["frame"] <= b]
    if not chosen:
        have = [r["frame"] for r in records]
        raise PlanError(f"no frames of the plan lie in {a}-{b} (the plan has frames {min(have)}-{max(have)})")
    return chosen


def frames_of(records: Iterable[dict]) -> list[int]:
    return [r["frame"] for r in records]
