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

SCHEMA = "keyframe_diffusion.plan"
VERSION = 1
MODES = ("INTERPOLATE",)  # FEEDBACK, VIDEO and CLIP arrive with later issues
LATENT_SOURCES = ("PROMPT_SEEDS", "FIXED")
EMBEDDED_MODEL = "embedded:tiny"


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
}
FRAME_DEFAULTS: dict[str, Any] = {"guidance_rescale": 0.0}


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
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
        if isinstance(value, bool) or not isinstance(value, types):
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
        if not record["prompts"]:
            raise PlanError(f"{where}: no prompt has weight above zero at this frame")
        for j, prompt in enumerate(record["prompts"]):
            _check_fields(prompt, PROMPT_FIELDS, f"{where} prompts[{j}]")
            if prompt["weight"] < 0:
                raise PlanError(f"{where} prompts[{j}]: 'weight' must not be negative")
    return {**plan, "settings": settings}


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
_HASHED_FRAME = {"INTERPOLATE": ("prompts", "seed", "steps", "guidance", "guidance_rescale")}


def frame_hash(settings: dict, record: dict) -> str:
    """Hash of everything that decides one frame's pixels in this mode."""
    keys = _HASHED_FRAME[settings["mode"]]
    data = {
        "settings": {k: settings.get(k) for k in _HASHED_SETTINGS},
        "frame": {k: record.get(k, FRAME_DEFAULTS.get(k)) for k in keys},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


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
