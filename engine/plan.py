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
from typing import Any, Iterable

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
# The default: a tiny model trained on flat shapes, shipped in engine/shapes/model (draws "a red circle on a blue
# background" at 64x64). The random-weight tiny model is for plumbing tests and speed checks: its frames are noise.
EMBEDDED_MODEL = "embedded:shapes"
TINY_RANDOM_MODEL = "embedded:tiny"


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
    # An upscaling pass over finished frames into its own folder: {"model": x4 or latent upscaler, "steps", "guidance",
    # "noise_level" (x4 only), "output_dir"}
    "upscale": ((dict,), False),
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
}
FRAME_DEFAULTS: dict[str, Any] = {"guidance_rescale": 0.0, "strength": 0.6}
_CHOICES = {"precision": vocab.names(vocab.PRECISIONS), "motion_mode": MOTION_MODES,
            "camera_source": CAMERA_SOURCES, "depth_source": DEPTH_SOURCES,
            "depth_kind": ("planar", "radial"), "border": BORDERS, "color_coherence": COLOR_MODES}


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object",
             bool: "true or false"}
    if types == _NUMBER:
        return "a number"
    return " or ".join(names.get(t, "null") for t in types)


def _check_fields(obj: Any, fields: dict, where: str) -> None:
    if not isinstance(obj, dict):
        raise PlanError(f"{where} must be an object, got {type(obj).__name__}")
    for name, (types, required) in fields.items():
        if name not in obj:
            if required:
                raise PlanError(f"{where}: missing field '{name}'")
            continue
        value = obj[name]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise PlanError(f"{where}: field '{name}' must be {_type_name(types)}, got {json.dumps(value)[:60]}")
        if isinstance(value, float) and not math.isfinite(value):
            raise PlanError(f"{where}: field '{name}' must be finite, got {value}")


def validate(plan: Any) -> dict:
    """Check a plan and return it with defaults filled in. Raises PlanError naming the field and frame."""
    if not isinstance(plan, dict):
        raise PlanError("the plan must be a JSON object")
    if plan.get("schema") != SCHEMA:
        raise PlanError(f"not a Keyframe Diffusion plan: 'schema' must be '{SCHEMA}'")
    version = plan.get("version")
    if version != VERSION:
        raise PlanError(f"unknown plan version {version!r}: this engine reads version {VERSION}; bake the plan again")
    settings = plan.get("settings")
    _check_fields(settings, SETTINGS_FIELDS, "settings")
    settings = {**SETTINGS_DEFAULTS, **settings}
    if settings["mode"] not in MODES:
        raise PlanError(f"settings: unknown mode '{settings['mode']}' (known: {', '.join(MODES)})")
    if settings["latent_source"] not in LATENT_SOURCES:
        raise PlanError(f"settings: unknown latent_source '{settings['latent_source']}'")
    for name, choices in _CHOICES.items():
        if settings[name] not in choices:
            raise PlanError(f"settings: '{name}' must be one of {', '.join(choices)}, got {settings[name]!r}")
    for name in ("cadence", "coherence_every"):
        if settings[name] < 1:
            raise PlanError(f"settings: '{name}' must be at least 1, got {settings[name]}")
    if settings["plane_distance"] <= 0:
        raise PlanError(f"settings: 'plane_distance' must be above 0, got {settings['plane_distance']}")
    _check_units(settings)
    _check_clip(settings)
    _check_upscale(settings)
    for i, lora in enumerate(settings.get("loras", [])):
        _check_fields(lora, {"path": ((str,), True), "scale": (_NUMBER, True)}, f"settings.loras[{i}]")
    for side in ("width", "height"):
        if settings[side] < 8 or settings[side] % 8:
            raise PlanError(f"settings: '{side}' must be a multiple of 8 and at least 8, got {settings[side]}")
    if settings["batch_size"] < 1:
        raise PlanError("settings: 'batch_size' must be at least 1")
    if not settings["model"].strip():
        raise PlanError("settings: 'model' is empty; give a model folder or Hugging Face id")
    frames = plan.get("frames")
    if not isinstance(frames, list) or not frames:
        raise PlanError("the plan has no 'frames' list (or it is empty)")
    seen: set[int] = set()
    for i, record in enumerate(frames):
        where = f"frames[{i}]"
        if isinstance(record, dict) and isinstance(record.get("frame"), int):
            where += f" (frame {record['frame']})"
        _check_fields(record, FRAME_FIELDS, where)
        if record["frame"] in seen:
            raise PlanError(f"{where}: frame {record['frame']} appears twice")
        seen.add(record["frame"])
        if record["steps"] < 1:
            raise PlanError(f"{where}: 'steps' must be at least 1, got {record['steps']}")
        for group in ("motion", "image"):
            for key, value in record.get(group, {}).items():
                if isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value):
                    raise PlanError(f"{where}: '{group}.{key}' must be a finite number, got {json.dumps(value)[:60]}")
        _check_frame_inputs(record, settings, where)
        _check_mask(record, settings, where)
        if not record["prompts"]:
            raise PlanError(f"{where}: no prompt has weight above zero at this frame")
        for j, prompt in enumerate(record["prompts"]):
            _check_fields(prompt, PROMPT_FIELDS, f"{where} prompts[{j}]")
            if prompt["weight"] < 0:
                raise PlanError(f"{where} prompts[{j}]: 'weight' must not be negative")
    return {**plan, "settings": settings}


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
        _check_fields(lora, {"path": ((str,), True), "scale": (_NUMBER, True)}, f"settings.motion_loras[{i}]")
    length, overlap = settings["context_length"], settings["context_overlap"]
    if length < 2:
        raise PlanError(f"settings: 'context_length' must be at least 2 frames, got {length}")
    if not 0 <= overlap < length:
        raise PlanError(f"settings: 'context_overlap' must lie in 0-{length - 1} (below the context length), got "
                        f"{overlap}")
    if settings["mask_blur"] < 0:
        raise PlanError(f"settings: 'mask_blur' must not be negative, got {settings['mask_blur']}")
    if settings["mode"] != "CLIP" and (settings.get("motion_adapter", "").strip() or settings.get("motion_loras")):
        raise PlanError("settings: a motion adapter and motion LoRAs work in clip mode only "
                        f"(the mode is {settings['mode']})")


_UPSCALE_FIELDS = {"model": ((str,), True), "steps": ((int,), False), "guidance": (_NUMBER, False),
                   "noise_level": ((int,), False), "output_dir": ((str,), True)}


def _check_upscale(settings: dict) -> None:
    upscale = settings.get("upscale")
    if upscale is None:
        return
    _check_fields(upscale, _UPSCALE_FIELDS, "settings.upscale")
    if not upscale["model"].strip():
        raise PlanError("settings.upscale: 'model' is empty; give an upscaler folder or Hugging Face id "
                        "(stabilityai/stable-diffusion-x4-upscaler, stabilityai/sd-x2-latent-upscaler)")
    if upscale.get("steps", 1) < 1:
        raise PlanError(f"settings.upscale: 'steps' must be at least 1, got {upscale['steps']}")
    if not 0 <= upscale.get("noise_level", 0) <= 350:
        raise PlanError(f"settings.upscale: 'noise_level' must lie in 0-350, got {upscale['noise_level']}")
    if not upscale["output_dir"].strip():
        raise PlanError("settings.upscale: 'output_dir' is empty")


_MASK_FIELDS = {"path": ((str,), True), "index": ((int,), False), "select": ((list,), False),
                "invert": ((bool,), False)}


def _check_mask(record: dict, settings: dict, where: str) -> None:
    mask = record.get("mask")
    if mask is None:
        return
    if settings["mode"] not in ("FEEDBACK", "VIDEO"):
        raise PlanError(f"{where}: masks (inpainting) work in feedback and video modes, not {settings['mode']}")
    _check_fields(mask, _MASK_FIELDS, f"{where} mask")
    for value in mask.get("select", []):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanError(f"{where} mask: 'select' must list integer pass indices, got {json.dumps(value)[:60]}")


def _check_frame_inputs(record: dict, settings: dict, where: str) -> None:
    """The per-frame inputs each mode needs: init frames for video, one control entry per ControlNet unit."""
    strength = record.get("strength", FRAME_DEFAULTS["strength"])
    if not 0.0 <= strength <= 1.0:
        raise PlanError(f"{where}: 'strength' must lie in 0-1, got {strength}")
    if settings["mode"] == "VIDEO":
        init = record.get("init")
        if init is None:
            raise PlanError(f"{where}: video mode needs an 'init' image for every frame (no input strip covers it?)")
    if "init" in record:
        _check_fields(record["init"], {"path": ((str,), True), "index": ((int,), False)}, f"{where} init")
    units = settings.get("controlnets", [])
    control = record.get("control", [])
    if len(control) != len(units):
        raise PlanError(f"{where}: 'control' has {len(control)} entries but the settings have {len(units)} "
                        "ControlNet units")
    for j, entry in enumerate(control):
        _check_fields(entry, _CONTROL_FIELDS, f"{where} control[{j}]")
        start, end = entry.get("start", 0.0), entry.get("end", 1.0)
        if not 0.0 <= start <= end <= 1.0:
            raise PlanError(f"{where} control[{j}]: need 0 <= start <= end <= 1, got {start}-{end}")


def load(path: str | os.PathLike) -> dict:
    """Read and validate a plan file. Relative output folders are taken relative to the plan file."""
    try:
        with open(path, encoding="utf-8") as f:
            plan = json.load(f)
    except FileNotFoundError:
        raise PlanError(f"plan file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise PlanError(f"{path} is not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}") from None
    plan = validate(plan)
    out = plan["settings"]["output_dir"]
    if not os.path.isabs(out):
        plan["settings"]["output_dir"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), out))
    upscale = plan["settings"].get("upscale")
    if upscale and not os.path.isabs(upscale["output_dir"]):  # the upscaled frames' folder follows the same rule
        plan["settings"]["upscale"] = {**upscale, "output_dir": os.path.normpath(
            os.path.join(os.path.dirname(os.path.abspath(path)), upscale["output_dir"]))}
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
    "VIDEO": (*_FRAME_BASE, "strength", "init", "control", "image", "depth", "mask"),
    "FEEDBACK": (*_FRAME_BASE, "strength", "motion", "image", "camera", "depth", "control", "mask"),
    "CLIP": _FRAME_BASE,
}
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


def _frame_data(settings: dict, record: dict) -> dict:
    data = {k: record.get(k, FRAME_DEFAULTS.get(k)) for k in _HASHED_FRAME[settings["mode"]]}
    if data.get("init"):
        data["init"] = {**data["init"], "file": _file_stamp(data["init"].get("path"))}
    if data.get("control"):
        data["control"] = [{**c, "file": _file_stamp(c.get("image"))} for c in data["control"]]
    if data.get("depth"):
        data["depth"] = _file_stamp(data["depth"])
    if data.get("mask"):
        data["mask"] = {**data["mask"], "file": _file_stamp(data["mask"].get("path")), "blur": settings["mask_blur"]}
    if data.get("mask") is None:
        data.pop("mask", None)  # frames hashed before masks existed keep their hash
    if settings["mode"] == "VIDEO" and data.get("depth") is None:
        data.pop("depth", None)  # likewise video frames before depth-to-image
    return data


def _settings_data(settings: dict) -> dict:
    data = {k: settings.get(k) for k in _HASHED_SETTINGS}
    data.update({k: settings[k] for k in _OPTIONAL_HASHED if settings.get(k)})
    if settings["mode"] == "CLIP":
        data.update({k: settings.get(k) for k in _HASHED_CLIP})
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
    if settings["mode"] != "FEEDBACK":
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


def _clip_hashes(settings: dict, records: list[dict]) -> dict[int, str]:
    base = _settings_data(settings)
    hashes = {}
    for segment in chain_segments(records):
        clip = _digest({"settings": base, "frames": [{"frame": r["frame"], **_frame_data(settings, r)}
                                                     for r in segment]})
        hashes.update({r["frame"]: _digest({"clip": clip, "frame": r["frame"]}) for r in segment})
    return hashes


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
