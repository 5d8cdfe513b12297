"""Schedule strings in and out of F-curves: Deforum keyframe strings, prompt schedules and settings files.

Frame numbering, defined here once: Deforum and Giffusion count frames from 0, a Blender scene from its
`frame_start`. Deforum frame `t` is scene frame `frame_start + t`, and Deforum's `max_frames` is the scene's frame
count. Importing writes ordinary keys: numeric keys stay keys (linear in-betweens, constant before and after, as
Deforum holds them); expression spans become a key per frame; integer properties (steps, seed) get constant keys
where Deforum's truncated value changes, so Blender's evaluation equals Deforum's exactly.
"""

from __future__ import annotations

import json
import math
import os

import bpy
import numpy as np

from ..engine import deforum, schedule
from ..engine_link.worker_client import WorkerError
from ..engine_link.workers import make_client
from ..settings import compat
from ..settings.properties import ANIMATABLE
from . import fcurves
from .prompt_keys import replace_prompts

SPECS = {spec.prop: spec for spec in deforum.IMPORT_SCHEDULES}
FCURVE_SEEDS = 2**23  # seeds an F-curve (32-bit float, rounded half up by Blender) reproduces exactly
# Plain (not per-frame) settings that Deforum settings files carry.
VALUE_PROPS = ("width", "height", "seed_behavior", "seed_iter_n", "scheduler", "mode", "motion_mode", "border",
               "color_coherence", "cadence", "negative_prompt")


def scene_frame(scene, deforum_frame: int) -> int:
    """The scene frame of a Deforum/Giffusion frame index."""
    return scene.frame_start + deforum_frame


def frame_count(scene) -> int:
    return scene.frame_end - scene.frame_start + 1


def _is_integer(settings, prop: str) -> bool:
    return settings.bl_rna.properties[prop].type == "INT"


def _step_keys(values) -> list[tuple[int, float]]:
    """Constant keys at each change of an integer sequence."""
    keys = []
    for i, v in enumerate(values):
        if not keys or keys[-1][1] != v:
            keys.append((i, float(v)))
    return keys


def _evaluate_in_engine(text: str, count: int, seed: int) -> tuple[list[float], list[str]]:
    """Per-frame values from `python -m engine schedule` in the engine's Python, for a Blender without numexpr."""
    try:
        out = make_client().run_command(["schedule", text, "--frames", str(count), "--seed", str(seed)], 60)
    except WorkerError as e:
        raise schedule.ScheduleError(str(e).removeprefix("error: "), text) from e
    result = json.loads(out)
    return result["values"], result["warnings"]


def schedule_keys(scene, prop: str, text: str, count: int, seed: int) -> tuple[list, str, list[str]]:
    """(Deforum-frame keys, interpolation, warnings) for `prop` from a keyframe string; touches nothing.

    Raises schedule.ScheduleError (with the position) for bad text, ValueError for a value the setting can't hold.
    """
    settings = scene.keyframe_diffusion
    if prop not in ANIMATABLE:
        raise ValueError(f"'{prop}' is not an animatable Keyframe Diffusion setting (known: {', '.join(ANIMATABLE)})")
    rna = settings.bl_rna.properties[prop]
    try:
        if _is_integer(settings, prop):
            values, warnings = schedule.evaluate(text, count, seed)
            keys = None
        else:
            keys, warnings = schedule.fcurve_keys(text, count, seed)
    except schedule.ExpressionsUnavailable:
        values, warnings = _evaluate_in_engine(text, count, seed)
        keys = None
    if _is_integer(settings, prop):
        ints = np.trunc(values).astype(np.int64)  # Deforum's .astype(int)
        keys, interpolation = _step_keys(ints.tolist()), "CONSTANT"
    else:
        keys = keys if keys is not None else schedule.simplify(range(count), values)
        interpolation = "LINEAR"
    if prop in SPECS:  # Deforum's value to ours (strength: 1 - x)
        keys = [(f, float(SPECS[prop].to_ours(v))) for f, v in keys]
    if prop == "seed":
        # F-curves hold 32-bit floats that Blender rounds (x + 0.5) into an int property: exact below 2**23. Seeds
        # outside that range (Deforum's -1, "a random seed", among them) wrap into it, so the baked seed is the one
        # written.
        wrapped = [(f, float(int(v) % FCURVE_SEEDS)) for f, v in keys]
        if wrapped != keys:
            warnings = [*warnings, f"seeds outside 0..{FCURVE_SEEDS - 1} wrap into it (F-curves are 32-bit floats; "
                        f"-1 becomes {FCURVE_SEEDS - 1})"]
        keys = wrapped
    low, high = rna.hard_min, rna.hard_max
    outside = [(f, v) for f, v in keys if not low <= v <= high]
    if outside:
        f, v = outside[0]
        raise ValueError(f"value {v:g} at Deforum frame {f} is outside the setting's range {low:g}..{high:g}")
    return keys, interpolation, warnings


def _write_keys(scene, prop: str, keys: list, interpolation: str) -> None:
    settings = scene.keyframe_diffusion
    if len({v for _, v in keys}) == 1:  # one value everywhere: a plain setting, no curve
        fcurves.clear_animation(settings, prop)
        value = keys[0][1]
        setattr(settings, prop, int(value) if settings.bl_rna.properties[prop].type == "INT" else value)
    else:
        fcurves.replace_keys(settings, prop, [(scene_frame(scene, f), v) for f, v in keys], interpolation)


def import_schedule(scene, prop: str, text: str, seed: int | None = None) -> list[str]:
    """Key `scene.keyframe_diffusion.<prop>` from a Deforum keyframe string; returns the parser's warnings.
    On an error (see schedule_keys) the setting keeps its curve."""
    seed = scene.keyframe_diffusion.seed if seed is None else seed
    keys, interpolation, warnings = schedule_keys(scene, prop, text, frame_count(scene), seed)
    _write_keys(scene, prop, keys, interpolation)
    scene.frame_set(scene.frame_current)
    return warnings


def sample(scene, props) -> dict[str, list[float]]:
    """Each property's value at every frame of the scene, as Blender evaluates it (curves, drivers, NLA)."""
    settings = scene.keyframe_diffusion
    current, subframe = scene.frame_current, scene.frame_subframe
    values: dict[str, list[float]] = {p: [] for p in props}
    try:
        for frame in range(scene.frame_start, scene.frame_end + 1):
            scene.frame_set(frame)
            for p in props:
                values[p].append(getattr(settings, p))
    finally:
        scene.frame_set(current, subframe=subframe)
    return values


def export_schedules(scene, props=None) -> dict[str, str]:
    """Deforum keyframe strings of the given (default: all) animatable properties, as few keys as reproduce them."""
    props = list(props or ANIMATABLE)
    out = {}
    for prop, values in sample(scene, props).items():
        if prop in SPECS:  # ours to Deforum's (strength: 1 - x)
            values = [SPECS[prop].to_deforum(v) for v in values]
        values = [float(np.float32(v)) for v in values]  # Blender's own precision; no spurious digits
        keys = schedule.simplify(range(len(values)), values)
        while len(keys) > 1 and keys[-1][1] == keys[-2][1]:
            keys.pop()  # a value held to the end needs no key there: Deforum holds after the last key
        out[prop] = schedule.format_keyframes(keys)
    return out


def import_prompts(scene, keys, transition: str = "LINEAR", frequencies: str = "1.0",
                   curve: str = "0:(0), 1:(1)") -> list[str]:
    """Replace the prompt keys with schedule.PromptKey items (Deforum/Giffusion frames); returns warnings."""

    count = frame_count(scene)
    beyond = [k for k in keys if k.frame >= count]
    warnings = [f"prompt at frame {k.frame} lies beyond the scene's {count} frames (kept; extend the frame range to "
                "see it)" for k in beyond]
    replace_prompts(scene, [(scene_frame(scene, k.frame), k.text, k.negative) for k in keys], transition, frequencies,
                    curve)
    return warnings


def _fps_pair(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a rate: 29.97 -> (30, 1.001)."""
    whole = max(1, round(fps))
    return whole, whole / fps


def apply_settings_file(scene, path: str, prompt_transition: str = "CONSTANT") -> tuple[list[str], list[str]]:
    """Import a Deforum settings file into the scene; returns (ignored Deforum keys, warnings).

    Every schedule is evaluated before anything changes, so a bad file leaves the scene as it was.
    """
    data = deforum.read_settings(path)
    settings = scene.keyframe_diffusion
    warnings = list(data.warnings)
    count = int(data.scene.get("frame_count", frame_count(scene)))
    # Deforum's `s` is the run's base seed: the file's constant seed (the seed schedule's first value).
    seed = int(schedule.evaluate(data.schedules["seed"], 1)[0][0]) if "seed" in data.schedules else settings.seed
    planned = {}
    for prop, text in data.schedules.items():
        try:
            planned[prop] = schedule_keys(scene, prop, text, count, seed)
        except (schedule.ScheduleError, ValueError) as e:
            raise schedule.ScheduleError(f"{SPECS[prop].deforum_key}: {e}", text,
                                         getattr(e, "position", None)) from e
        warnings += [f"{SPECS[prop].deforum_key}: {w}" for w in planned[prop][2]]
    scene.frame_end = scene.frame_start + count - 1
    if "frame_count" in data.scene:
        settings.frame_range = "SCENE"  # Deforum renders max_frames frames, not just up to its last prompt
    if "fps" in data.scene:
        scene.render.fps, scene.render.fps_base = _fps_pair(float(data.scene["fps"]))
    for prop, value in data.values.items():
        if prop in ANIMATABLE:
            fcurves.clear_animation(settings, prop)
        setattr(settings, prop, value)
    for prop, (keys, interpolation, _warnings) in planned.items():
        _write_keys(scene, prop, keys, interpolation)
    if data.video_path is not None:
        warnings += _video_input(scene, data.video_path, path)
    if data.prompts:
        keys = [schedule.PromptKey(frame, text, negative) for frame, text, negative in data.prompts]
        warnings += import_prompts(scene, keys, prompt_transition)
    scene.frame_set(scene.frame_current)
    return data.ignored, warnings


def _video_input(scene, video: str, settings_path: str) -> list[str]:
    """Deforum's Video Input video as the video mode's input strip: the movie strip of that file already in the
    Sequencer, or a new one from the scene's first frame (Deforum frame t is video frame t) on a free channel. A
    relative path is taken from the settings file's folder. Returns warnings."""
    folder = os.path.dirname(os.path.abspath(settings_path))
    path = os.path.normpath(os.path.join(folder, os.path.expanduser(video)))
    strip = next((s for s in compat.all_strips(scene) if s.type == "MOVIE"
                  and os.path.normpath(bpy.path.abspath(s.filepath, library=s.id_data.library)) == path), None)
    if strip is None:
        if not os.path.isfile(path):
            return [f"video_init_path {video}: no such file here; add the video as a movie strip and choose it as "
                    "the Input Strip"]
        channel = 1 + max((s.channel for s in compat.all_strips(scene)), default=0)
        try:
            strip = compat.top_strips(scene).new_movie(name=os.path.basename(path), filepath=path,
                                                       channel=min(channel, 128), frame_start=scene.frame_start)
        except RuntimeError as e:
            return [f"video_init_path {video}: Blender can't open it as a movie ({e}); convert it, add it as a "
                    "movie strip and choose it as the Input Strip"]
    settings = scene.keyframe_diffusion
    settings.init_source, settings.init_strip = "STRIP", strip.name
    return []


def settings_dict(scene, notes: list[str] | None = None) -> dict:
    """The scene as a Deforum settings dict (the export direction of apply_settings_file); what Deforum has no
    counterpart for is appended to `notes`."""
    settings = scene.keyframe_diffusion
    props = [spec.prop for spec in deforum.SCHEDULES]
    values = {p: getattr(settings, p) for p in VALUE_PROPS}
    values["video_init_path"] = _input_movie(scene)
    fps = scene.render.fps / scene.render.fps_base
    prompts = {}
    for item in sorted(settings.prompts, key=lambda p: p.frame):
        prompts[str(item.frame - scene.frame_start)] = item.text + (f" --neg {item.negative}" if item.negative else "")
    data = deforum.write_settings(values, export_schedules(scene, props),
                                  {"fps": fps if not math.isclose(fps, round(fps)) else round(fps),
                                   "frame_count": frame_count(scene)}, prompts, notes)
    if values["video_init_path"] and settings.flow_guide:  # Follow Motion on a movie: Deforum's hybrid video
        deforum.write_hybrid(data, export_schedules(scene, ["guide"])["guide"])
    return data


def _input_movie(scene) -> str:
    """The video mode's input movie file ('' when the input is not a movie strip): Deforum's video_init_path."""
    settings = scene.keyframe_diffusion
    if settings.mode != "VIDEO" or settings.init_source != "STRIP":
        return ""
    strip = next((s for s in compat.all_strips(scene) if s.name == settings.init_strip), None)
    if strip is None or strip.type != "MOVIE":
        return ""
    return os.path.normpath(bpy.path.abspath(strip.filepath, library=strip.id_data.library))


def write_settings_file(scene, path: str) -> list[str]:
    """Write the scene as a Deforum settings file; returns what was not exported (Deforum has no counterpart)."""
    notes: list[str] = []
    data = settings_dict(scene, notes)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    return notes
