"""Deforum settings files <-> this extension's scene settings (pure data mapping, no bpy).

A Deforum settings file (``*_settings.txt`` or ``.json``; JSON either way) comes from one of two producers, and
both are read:

- the AUTOMATIC1111 / Forge extension (``sd-webui-deforum``): ``prompts`` (dict frame -> text, negatives after
  ``--neg``), ``positive_prompts`` / ``negative_prompts`` (what a run saves) or ``animation_prompts_positive`` /
  ``animation_prompts_negative`` (what the UI's "save settings" writes; preferred when both are there),
  ``cfg_scale_schedule``, ``steps_schedule`` + ``enable_steps_scheduling``, ``seed_schedule``, ``fov_schedule``,
  ``transform_center_x/y``, ``sampler`` ("Euler a", "DPM++ 2M Karras", ...), ``color_coherence`` ("LAB", ...);
- the Colab notebook (``deforum-stable-diffusion``): ``prompts`` (older) or ``cond_prompts`` / ``uncond_prompts``
  (newer), a constant ``scale`` (guidance), constant ``fov``, ``sampler`` ("euler_ancestral", "dpmpp_2m", ...),
  ``color_coherence`` ("Match Frame 0 LAB", ...), ``diffusion_cadence`` as a string.
  ``animation_prompts`` (a deprecated alias of ``prompts``, sometimes a JSON string) is read too.

What maps where:

- ``schedules``: one row of ``SCHEDULES`` per animatable property; the value kept is Deforum's RAW keyframe string
  (``"0: (1.02), 30: (1.0+0.01*sin(t))"``), not parsed or inverted here. Frame numbers in it are Deforum's (0 =
  first frame). Where a file has only a constant, it becomes ``"0: (value)"``: ``steps`` (when
  ``enable_steps_scheduling`` is off, as Deforum does), ``scale`` -> guidance, ``fov`` -> fov, and ``seed`` for every
  behaviour but schedule (Deforum uses ``seed_schedule`` only with ``seed_behavior: schedule``). Deforum's seed
  ``-1`` ("random") is resolved to a concrete random seed with a warning, so the imported scene is reproducible; in a
  seed schedule, Deforum's variable ``s`` (the base seed) is replaced by that number.
- ``strength`` is the exception in meaning: this extension uses diffusers' convention (how far img2img moves away
  from the init frame) and Deforum the opposite (how much of the previous frame is kept), so its row has
  ``invert=True``: a value v in the raw string means ``1 - v`` here (``ScheduleSpec.to_ours``). Deforum's constant
  ``strength`` is the init-image strength of frame 0 and is not mapped.
- Other units and meanings are Deforum's: zoom is a scale per frame, angle and rotation_3d_* degrees per frame,
  translation_* pixels (2D) or Deforum's 3D units per frame, transform_center_x/y a fraction 0..1 of the image,
  fov degrees, noise the amount added to the previous frame, contrast a factor. (Deforum 2D moves the image DOWN for
  a positive translation_y, OpenCV's y axis.) Deforum evaluates ``max_f`` in schedules as ``max_frames - 1``.
- ``values``: the constant settings present in the file (``width``, ``height`` rounded to the nearest multiple of 8
  with a warning, ``seed_behavior``, ``seed_iter_n``, ``scheduler``, ``motion_mode``, ``border``,
  ``color_coherence``, ``cadence``, ``negative_prompt``); see ``SAMPLER_MAP`` and the functions below for the value
  tables. A value with no counterpart is left out with a warning.
- ``animation_mode`` picks the generation mode (``values["mode"]``): ``2D`` and ``3D`` the feedback mode with that
  ``motion_mode``, ``Video Input`` the video mode (its ``video_init_path`` in ``video_path``, for the Blender side
  to make the input strip), ``Interpolation`` the Interpolate mode, and ``None`` (independent stills) the Interpolate
  mode too, with a note. An unknown one leaves the mode as it was, with a warning.
- ``scene``: ``fps`` and ``frame_count`` (``max_frames``).
- ``prompts``: ``(frame, positive, negative)`` sorted by frame, combined the way Deforum combines them: the prompt's
  text is split at its first ``--neg``, the global positive prompt is put in front of its positive part and the
  global negative after its negative part, joined by a space (Deforum builds
  ``f"{positive} {prompt} --neg {negative}"``). Settings saved by a Deforum RUN already hold combined prompts, so a
  global part that is already there is not added twice. Frame keys may be expressions (``"max_f/2"``, with
  ``max_f = max_frames`` as Deforum's prompt code has it), evaluated safely here. ``raw_prompts`` keeps the file's
  prompt dict untouched.
- ``ignored``: the file's keys nothing here reads (sorted), so the user sees what did not come over; features that
  are switched ON in the file but have no counterpart (init image, perspective flip, Parseq...) also get a
  warning.
- Hybrid video (``hybrid_motion``, ``hybrid_composite``) with a ``video_init_path`` is the video mode with Follow
  Motion on that video (``values["flow_guide"]``), the guidance from ``hybrid_comp_alpha_schedule`` inverted
  (``GUIDE_SPEC``); ``write_hybrid`` writes it back.

``write_settings`` goes the other way, to a dict with the A1111 extension's key names that ``parse_settings`` maps
back to the same values and schedules (and the same mode: clip mode, which Deforum lacks, is noted, not written).
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field

from . import schedule
from . import vocabulary as vocab
from .seeds import BEHAVIORS, SEED_MAX, wrap_seed


class DeforumError(ValueError):
    """A settings file that cannot be read or has a value of the wrong type; the message names file and key."""


@dataclass(frozen=True)
class ScheduleSpec:
    """One animatable property and the Deforum key whose keyframe string drives it."""

    prop: str  # our scene property
    deforum_key: str  # Deforum's keyframe-string key
    integer: bool = False  # Deforum truncates these with int()
    invert: bool = False  # value -> 1 - value (strength: Deforum keeps, diffusers moves)

    def to_ours(self, value: float) -> float | int:
        """A value of Deforum's schedule as this property's value."""
        value = 1.0 - value if self.invert else value
        return int(value) if self.integer else float(value)

    def to_deforum(self, value: float) -> float | int:
        """This property's value as a value for Deforum's schedule (the inverse of ``to_ours``)."""
        value = 1.0 - value if self.invert else value
        return int(value) if self.integer else float(value)


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec("steps", "steps_schedule", integer=True),
    ScheduleSpec("guidance", "cfg_scale_schedule"),
    ScheduleSpec("strength", "strength_schedule", invert=True),
    ScheduleSpec("seed", "seed_schedule", integer=True),
    ScheduleSpec("zoom", "zoom"),
    ScheduleSpec("angle", "angle"),
    ScheduleSpec("translation_x", "translation_x"),
    ScheduleSpec("translation_y", "translation_y"),
    ScheduleSpec("translation_z", "translation_z"),
    ScheduleSpec("transform_center_x", "transform_center_x"),
    ScheduleSpec("transform_center_y", "transform_center_y"),
    ScheduleSpec("rotation_3d_x", "rotation_3d_x"),
    ScheduleSpec("rotation_3d_y", "rotation_3d_y"),
    ScheduleSpec("rotation_3d_z", "rotation_3d_z"),
    ScheduleSpec("fov", "fov_schedule"),
    ScheduleSpec("noise", "noise_schedule"),
    ScheduleSpec("contrast", "contrast_schedule"),
)
_SPEC = {spec.prop: spec for spec in SCHEDULES}
# Constants that stand in for a schedule (Colab files, or A1111 with the schedule switched off).
_CONSTANT_FALLBACK = {"steps": "steps", "guidance": "scale", "fov": "fov"}

# Deforum sampler (normalised: lower case, '_' -> ' ', 'dpmpp' -> 'dpm++', no 'k ' prefix) -> our scheduler.
SAMPLER_MAP = {
    "euler a": "euler_a",
    "euler ancestral": "euler_a",
    "euler": "euler",
    "ddim": "ddim",
    "plms": "pndm",  # diffusers' PNDMScheduler runs PLMS steps (skip_prk_steps)
    "pndm": "pndm",
    "dpm++ 2m": "dpm++",
    "lcm": "lcm",
}
# Our scheduler -> the A1111 extension's sampler name (write direction; "default" has none).
SAMPLER_NAMES = {"ddim": "DDIM", "euler": "Euler", "euler_a": "Euler a", "dpm++": "DPM++ 2M", "pndm": "PLMS",
                 "lcm": "LCM"}
SCHEDULERS = ("default", *SAMPLER_NAMES)
MOTION_MODES = vocab.names(vocab.MOTION_MODES)
BORDERS = vocab.names(vocab.BORDERS)
COLOR_COHERENCE = vocab.names(vocab.COLOR_MODES)

# Deforum's animation_mode -> (our generation mode, motion_mode or None); "video input" also takes video_init_path.
_ANIMATION_MODES = {"2d": ("FEEDBACK", "2D"), "3d": ("FEEDBACK", "3D"), "video input": ("VIDEO", None),
                    "interpolation": ("INTERPOLATE", None), "none": ("INTERPOLATE", None)}
# Our generation mode -> Deforum's animation_mode (feedback: its motion_mode, 2D or 3D; clip mode has none).
_DEFORUM_MODES = {"INTERPOLATE": "Interpolation", "VIDEO": "Video Input"}
_MODE_NOTES = {
    "none": "Deforum's animation_mode 'None' renders independent stills: imported as the Interpolate mode, where "
            "prompt keys change at their frames (a hard cut) and nothing moves",
}

# Switches that, when on, ask for something nothing here does: (key, what it is).
_UNSUPPORTED_FEATURES = (
    ("use_init", "init image"),
    ("use_mask", "mask"),
    ("use_mask_video", "mask video"),
    ("enable_perspective_flip", "perspective flip"),
    ("flip_2d_perspective", "perspective flip"),
    ("enable_sampler_scheduling", "sampler schedule"),
    ("enable_checkpoint_scheduling", "checkpoint schedule"),
    ("enable_subseed_scheduling", "subseed schedule"),
    ("enable_clipskip_scheduling", "CLIP skip schedule"),
    ("optical_flow_cadence", "optical flow cadence"),
    ("parseq_manifest", "Parseq manifest"),
    ("use_looper", "guided images"),
)

# Prompt keys in the order they are looked for; the first present wins.
_PROMPT_KEYS = ("prompts", "animation_prompts", "cond_prompts")
_CONSUMED = {
    *(spec.deforum_key for spec in SCHEDULES), *_CONSTANT_FALLBACK.values(), "seed", "enable_steps_scheduling",
    "W", "H", "seed_behavior", "seed_iter_N", "sampler", "animation_mode", "border", "color_coherence",
    "diffusion_cadence", "fps", "max_frames", *_PROMPT_KEYS, "uncond_prompts", "positive_prompts", "negative_prompts",
    "animation_prompts_positive", "animation_prompts_negative",
    "hybrid_motion", "hybrid_composite", "hybrid_comp_alpha_schedule", "hybrid_flow_method",
}
# Hybrid video's composite alpha (the video frame's share of the init) is Follow Motion's guidance inverted.
GUIDE_SPEC = ScheduleSpec("guide", "hybrid_comp_alpha_schedule", invert=True)
IMPORT_SCHEDULES = (*SCHEDULES, GUIDE_SPEC)  # what an import may key; the export writes the hybrid keys itself
_HYBRID_MOTIONS = ("none", "optical flow", "perspective", "affine")


@dataclass
class DeforumSettings:
    """What a Deforum settings file means here (see the module notes for each part)."""

    schedules: dict[str, str] = field(default_factory=dict)  # our prop -> raw Deforum keyframe string
    values: dict[str, object] = field(default_factory=dict)  # our constant props -> value
    scene: dict[str, object] = field(default_factory=dict)  # fps, frame_count
    prompts: list[tuple[int, str, str]] = field(default_factory=list)  # (Deforum frame, positive, negative)
    ignored: list[str] = field(default_factory=list)  # file keys with no counterpart, sorted
    warnings: list[str] = field(default_factory=list)
    raw_prompts: dict[str, str] = field(default_factory=dict)  # the file's prompt dict as it was
    animation_mode: str | None = None  # Deforum's raw animation_mode (values["mode"] is what it means here)
    video_path: str | None = None  # Video Input's video_init_path, as written in the file


# ---------------------------------------------------------------------------------------------------------- reading


def read_settings(path: str) -> DeforumSettings:
    """Read and map a Deforum settings file; DeforumError names the file (and line/column for broken JSON)."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: files saved by Windows editors may start with a BOM
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DeforumError(f"{path}: cannot read the Deforum settings file ({e})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DeforumError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    return parse_settings(data, source=path)


def parse_settings(data: dict, source: str = "settings") -> DeforumSettings:
    """Map a Deforum settings dict (already decoded JSON); ``source`` names it in messages."""
    if not isinstance(data, dict):
        raise DeforumError(f"{source}: expected a JSON object of Deforum settings, got {_type_name(data)}")
    out = DeforumSettings(ignored=sorted(k for k in data if k not in _CONSUMED))
    get = _Reader(data, source)

    _read_size(get, out)
    max_frames = get.whole("max_frames", minimum=1)
    if max_frames is not None:
        out.scene["frame_count"] = max_frames
    fps = get.number("fps")
    if fps is not None:
        if fps <= 0:
            raise DeforumError(f"{source}: 'fps' must be above 0, got {fps!r}")
        out.scene["fps"] = fps

    for spec in SCHEDULES:
        if spec.prop != "seed":
            _read_schedule(get, out, spec)
    _read_seed(get, out)
    _read_choices(get, out)
    _read_prompts(get, out, max_frames)
    _read_hybrid(get, out)

    # With Follow Motion, a cadence's in-betweens are moved along the flow: Deforum's optical flow cadence.
    handled = {"optical_flow_cadence"} if out.values.get("flow_guide") else set()
    on = sorted({f"{what} ({key})" for key, what in _UNSUPPORTED_FEATURES
                 if _is_on(data.get(key)) and key not in handled})
    if on:
        out.warnings.append("switched on in the file but not supported here, so ignored: " + ", ".join(on))
    return out


class _Reader:
    """Typed access to the settings dict, raising DeforumError that names the source and key."""

    def __init__(self, data: dict, source: str):
        self.data, self.source = data, source

    def fail(self, key: str, what: str, value: object) -> DeforumError:
        return DeforumError(f"{self.source}: '{key}' must be {what}, got {value!r}")

    def number(self, key: str, what: str = "a number") -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str):  # Colab and hand-edited files quote numbers
            try:
                value = float(value.strip())
            except ValueError:
                raise self.fail(key, what, self.data[key]) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, what, self.data[key])
        return float(value)

    def whole(self, key: str, minimum: int | None = None) -> int | None:
        value = self.number(key, "a whole number")
        if value is None:
            return None
        if value != int(value):
            raise self.fail(key, "a whole number", self.data[key])
        if minimum is not None and value < minimum:
            raise self.fail(key, f"at least {minimum}", self.data[key])
        return int(value)

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "text", value)
        return value


def _read_size(get: _Reader, out: DeforumSettings) -> None:
    for key, prop in (("W", "width"), ("H", "height")):
        value = get.whole(key, minimum=1)
        if value is None:
            continue
        rounded = max(8, (value + 4) // 8 * 8)  # nearest multiple of 8, halves up: diffusers needs /8 sizes
        if rounded != value:
            out.warnings.append(f"{prop} {value} rounded to {rounded} (a multiple of 8)")
        out.values[prop] = rounded


def _schedule_text(get: _Reader, key: str) -> str | None:
    """The raw keyframe string at ``key`` (a bare number becomes ``"0: (n)"``); None when absent or empty."""
    value = get.data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"0: ({_num(value)})"
    raise get.fail(key, "a keyframe string like \"0: (1.0)\"", value)


def _read_schedule(get: _Reader, out: DeforumSettings, spec: ScheduleSpec) -> None:
    text = _schedule_text(get, spec.deforum_key)
    constant_key = _CONSTANT_FALLBACK.get(spec.prop)
    # Deforum uses steps_schedule only with its switch on; a file without the switch (hand-written) means it.
    if spec.prop == "steps" and get.data.get("enable_steps_scheduling") is False and "steps" in get.data:
        text = None
    if text is None and constant_key is not None:
        value = get.whole(constant_key, minimum=1) if spec.integer else get.number(constant_key)
        if value is not None:
            text = f"0: ({_num(value)})"
    if text is not None:
        out.schedules[spec.prop] = text


def _read_seed(get: _Reader, out: DeforumSettings) -> None:
    raw_behavior = get.text("seed_behavior")
    behavior = None
    if raw_behavior is not None:
        if raw_behavior.strip().upper() in BEHAVIORS:
            behavior = raw_behavior.strip().upper()
            out.values["seed_behavior"] = behavior
        else:
            out.warnings.append(f"seed_behavior {raw_behavior!r} is unknown (known: "
                                f"{', '.join(b.lower() for b in BEHAVIORS)}); seed behaviour unchanged")
    iter_n = get.whole("seed_iter_N")
    if iter_n is not None:
        if iter_n < 1:
            out.warnings.append(f"seed_iter_N {iter_n} is below 1; using 1")
        out.values["seed_iter_n"] = max(1, iter_n)

    seed = get.whole("seed")
    if seed == -1:  # Deforum draws a random seed per run; draw it once so the scene renders the same every time
        seed = random.SystemRandom().randint(0, SEED_MAX)
        out.warnings.append(f"seed -1 (random in Deforum) set to {seed} so frames are reproducible")
    elif seed is not None and wrap_seed(seed) != seed:
        out.warnings.append(f"seed {seed} is outside 0..{SEED_MAX}; wrapped to {wrap_seed(seed)}")
        seed = wrap_seed(seed)

    schedule = _schedule_text(get, "seed_schedule") if behavior == "SCHEDULE" else None
    if behavior == "SCHEDULE" and schedule is None:
        out.warnings.append("seed_behavior is schedule but the file has no seed_schedule; using the constant seed")
    if schedule is not None:
        if re.search(r"(?<![\w.])s(?!\w)", schedule):  # Deforum's variable s: the run's base seed
            if seed is None:
                out.warnings.append("seed_schedule uses s (the base seed) but the file has no seed; left as is")
            else:
                schedule = re.sub(r"(?<![\w.])s(?!\w)", str(seed), schedule)
                out.warnings.append(f"seed_schedule: s (the base seed) replaced by {seed}")
        if re.search(r"\(\s*-\s*1\s*\)", schedule):
            out.warnings.append("seed_schedule holds -1, which Deforum renders with a new random seed; here it "
                                "becomes one fixed seed, so frames render the same every time")
        out.schedules["seed"] = schedule
    elif seed is not None:
        out.schedules["seed"] = f"0: ({seed})"


def _normal_sampler(name: str) -> str:
    name = re.sub(r"[\s_]+", " ", name.strip().lower()).replace("dpmpp", "dpm++")
    return name[2:] if name.startswith("k ") else name


def map_sampler(name: str) -> tuple[str | None, str | None]:
    """Deforum sampler name -> (our scheduler or None, a note for the user or None)."""
    normal = _normal_sampler(name)
    karras = normal.endswith(" karras")
    base = normal[: -len(" karras")] if karras else normal
    scheduler = SAMPLER_MAP.get(base)
    note = None
    if scheduler is None and base.startswith("dpm++"):
        scheduler = "dpm++"
        note = f"sampler {name!r} approximated by DPM++ 2M (the only DPM++ scheduler here)"
    if scheduler is None:
        return None, (f"sampler {name!r} has no counterpart here (schedulers: {', '.join(SCHEDULERS)}); "
                      "scheduler unchanged")
    if karras:
        note = (note + "; " if note else f"sampler {name!r}: ") + "Karras sigmas are not applied"
    return scheduler, note


def _read_choices(get: _Reader, out: DeforumSettings) -> None:
    sampler = get.data.get("sampler")
    if isinstance(sampler, int) and not isinstance(sampler, bool):
        out.warnings.append(f"sampler is an index ({sampler}) into an old A1111 list; scheduler unchanged")
    elif sampler is not None:
        scheduler, note = map_sampler(get.text("sampler") or "")
        if scheduler is not None:
            out.values["scheduler"] = scheduler
        if note:
            out.warnings.append(note)

    _read_mode(get, out)

    border = get.text("border")
    if border is not None:
        value = {"replicate": "REPLICATE", "wrap": "WRAP", "reflect": "REFLECT",
                 "reflection": "REFLECT"}.get(border.strip().lower())
        if value is None:
            out.warnings.append(f"border {border!r} is unknown (known: replicate, wrap, reflect); border unchanged")
        else:
            out.values["border"] = value

    coherence = get.text("color_coherence")
    if coherence is not None:
        # Colab names are "Match Frame 0 LAB"; A1111 renamed them to "LAB".
        value = re.sub(r"^match frame 0\s+", "", coherence.strip().lower()).upper()
        if value in COLOR_COHERENCE:
            out.values["color_coherence"] = value
        else:
            out.warnings.append(f"color_coherence {coherence!r} (matching to a video or an image) is not supported "
                                "here; colour coherence unchanged")

    cadence = get.whole("diffusion_cadence")
    if cadence is not None:
        if cadence < 1:
            out.warnings.append(f"diffusion_cadence {cadence} is below 1; using 1")
        out.values["cadence"] = max(1, cadence)


def _read_mode(get: _Reader, out: DeforumSettings) -> None:
    """animation_mode -> our mode (and motion_mode): 2D/3D feedback, Video Input the video mode (with
    video_init_path), Interpolation and None the Interpolate mode. Anything else leaves the mode as it was."""
    mode = get.text("animation_mode")
    if mode is None:
        return
    out.animation_mode = mode
    key = mode.strip().lower()
    if key not in _ANIMATION_MODES:
        out.warnings.append(f"animation_mode {mode!r} is unknown (known: 2D, 3D, Video Input, Interpolation, None); "
                            "the mode is unchanged")
        return
    out.values["mode"], motion = _ANIMATION_MODES[key]
    if motion is not None:
        out.values["motion_mode"] = motion
    if key in _MODE_NOTES:
        out.warnings.append(_MODE_NOTES[key])
    if key == "video input":
        video = get.text("video_init_path")
        if video and video.strip():
            out.video_path = video.strip()
            out.ignored = [k for k in out.ignored if k != "video_init_path"]
        else:
            out.warnings.append("animation_mode 'Video Input' without a video_init_path: choose the input strip "
                                "(Input Strip) of the video mode")


def _read_hybrid(get: _Reader, out: DeforumSettings) -> None:
    """Hybrid video (a 2D/3D animation that follows a video: each frame's previous image moved along the video's
    optical flow, and the video frame composited in by an alpha) is, here, the video mode on that video with Follow
    Motion: the init is the video frame blended with the previous output moved along the flow, guidance = 1 - alpha."""
    motion = (get.text("hybrid_motion") or "None").strip()
    composite = get.data.get("hybrid_composite")
    composite_on = _is_on(composite)
    if motion.lower() == "none" and not composite_on:
        return
    if motion.lower() not in _HYBRID_MOTIONS:
        out.warnings.append(f"hybrid_motion {motion!r} is unknown (known: None, Optical Flow, Perspective, Affine); "
                            "read as Optical Flow")
    video = get.text("video_init_path")
    if not (video and video.strip()) and out.video_path is None:
        out.warnings.append("hybrid video is on but the file has no video_init_path: not imported (choose an input "
                            "strip and turn on Follow Motion in the video mode)")
        return
    if out.values.get("mode") != "VIDEO":
        out.warnings.append("hybrid video: imported as the video mode on video_init_path with Follow Motion (the "
                            "motion comes from the video; the 2D/3D motion schedules are kept but unused there)")
    out.values["mode"], out.values["flow_guide"] = "VIDEO", True
    out.video_path = out.video_path or video.strip()
    out.ignored = [k for k in out.ignored if k != "video_init_path"]
    if motion.lower() in ("perspective", "affine"):
        out.warnings.append(f"hybrid_motion {motion!r} fits one transform per frame; Follow Motion moves every pixel "
                            "along dense optical flow instead")
    method = get.text("hybrid_flow_method")
    if method and method.strip().lower() != "dis medium":
        out.warnings.append(f"hybrid_flow_method {method!r}: the flow here is OpenCV's DIS (medium) for a movie "
                            "strip, and Blender's Vector pass for a scene render")
    if not composite_on:  # Deforum's hybrid motion alone: each frame starts from the moved previous image only
        out.values["guide"] = 1.0
        return
    if str(composite).strip().lower() in ("before motion", "after generation"):
        out.warnings.append(f"hybrid_composite {composite!r}: here the video frame is blended in after the motion "
                            "(Deforum's 'Normal')")
    text = _schedule_text(get, GUIDE_SPEC.deforum_key)
    if text is not None:
        out.schedules["guide"] = text
    else:
        out.values["guide"] = 0.5  # Deforum's default alpha, 0:(0.5)


def _is_on(value: object) -> bool:
    return value not in (None, False, 0, "", "None", "none", "False", "false")


# ---------------------------------------------------------------------------------------------------------- prompts

def _frame_of(key: object, max_frames: int | None) -> int:
    if isinstance(key, str):
        key = key.strip().strip("'\"")  # Deforum accepts quoted keys such as "'max_f-10'"
    return schedule.prompt_frame(key, max_frames)


def _split_neg(text: str) -> tuple[str, str, bool]:
    """(positive, negative, more than one --neg) of a Deforum prompt: the negative follows the first --neg."""
    positive, negative = schedule.split_negative(text)
    return positive, negative, text.count("--neg") > 1


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _prompt_dict(get: _Reader, key: str) -> dict | None:
    value = get.data.get(key)
    if isinstance(value, str) and key != "prompts":
        try:  # A1111's UI keeps animation_prompts as JSON text
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, str):  # a single prompt for the whole animation
        return {"0": value}
    if isinstance(value, list):  # Colab still-image batches: one prompt per image
        if not all(isinstance(v, str) for v in value):
            raise get.fail(key, "a dict of frame -> prompt text", value)
        return {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise get.fail(key, "a dict of frame -> prompt text", value)
    for k, v in value.items():
        if not isinstance(v, str):
            raise DeforumError(f"{get.source}: '{key}' entry {k!r} must be prompt text, got {v!r}")
    return value


def _read_prompts(get: _Reader, out: DeforumSettings, max_frames: int | None) -> None:
    key = next((k for k in _PROMPT_KEYS if get.data.get(k) is not None), None)
    positive_all = get.text("animation_prompts_positive")
    if positive_all is None:
        positive_all = get.text("positive_prompts") or ""
    negative_all = get.text("animation_prompts_negative")
    if negative_all is None:
        negative_all = get.text("negative_prompts") or ""
    positive_all = positive_all.strip()
    negative_all = negative_all.replace("--neg", "").strip()  # Deforum strips a stray --neg here too
    if negative_all:
        out.values["negative_prompt"] = negative_all
    if key is None:
        return
    prompts = _prompt_dict(get, key)
    uncond, uncond_all = {}, ""
    if key == "cond_prompts" and get.data.get("uncond_prompts") is not None:
        if isinstance(get.data["uncond_prompts"], str):  # Colab: one negative for every prompt
            uncond_all = get.data["uncond_prompts"].strip()
        else:
            uncond = _prompt_dict(get, "uncond_prompts")

    # Colab's still-image runs save {"prompt text": "00000"}: keys are texts, values the image index.
    if prompts and all(isinstance(v, str) and v.isdigit() for v in prompts.values()) \
            and not all(str(k).strip().isdigit() for k in prompts):
        prompts = {v: str(k) for k, v in prompts.items()}
    out.raw_prompts = {str(k): v for k, v in prompts.items()}
    uncond_by_frame = {}
    for k, v in uncond.items():
        try:
            uncond_by_frame[_frame_of(k, max_frames)] = v
        except (ValueError, ArithmeticError, SyntaxError):
            pass

    by_frame: dict[int, tuple[str, str]] = {}
    already_combined = False
    for k, text in prompts.items():
        try:
            frame = _frame_of(k, max_frames)
        except (ValueError, ArithmeticError, SyntaxError) as e:
            out.warnings.append(f"prompt key {k!r} is not a frame number or expression ({e}); prompt skipped")
            continue
        if frame < 0:
            out.warnings.append(f"prompt key {k!r} is frame {frame}, before the start; prompt skipped")
            continue
        positive, negative, several = _split_neg(text)
        if several:
            out.warnings.append(f"prompt at frame {frame} has more than one --neg; the first one splits it")
        if key == "cond_prompts":
            negative = _join(negative, uncond_by_frame.get(frame, uncond_all).strip())
        if "`" in positive or "`" in negative:
            out.warnings.append(f"prompt at frame {frame}: `...` weight expressions are kept as plain text")
        if positive_all and positive.startswith(positive_all):
            already_combined = True
        else:
            positive = _join(positive_all, positive)
        if negative_all and negative.endswith(negative_all):
            already_combined = True
        else:
            negative = _join(negative, negative_all)
        if frame in by_frame:
            out.warnings.append(f"two prompts at frame {frame}; the later one in the file is used")
        by_frame[frame] = (positive, negative)
    if already_combined:
        out.warnings.append("prompts already contain the global positive/negative prompts (a file saved by a "
                            "Deforum run); they were not added twice")
    out.prompts = [(frame, pos, neg) for frame, (pos, neg) in sorted(by_frame.items())]


# ---------------------------------------------------------------------------------------------------------- writing

_CONSTANT_INT = re.compile(r"^\s*0\s*:\s*\(\s*(-?\d+)\s*\)\s*$")


def write_hybrid(out: dict, guide_schedule: str) -> None:
    """Follow Motion on a movie as Deforum's hybrid video (the inverse of the import): a 2D animation following the
    video's optical flow, the video frame composited in by alpha = 1 - Motion Guidance (``guide_schedule`` is the
    guidance already inverted, see GUIDE_SPEC)."""
    out.update(animation_mode="2D", hybrid_motion="Optical Flow", hybrid_flow_method="DIS Medium",
               hybrid_composite="Normal", hybrid_comp_alpha_schedule=guide_schedule)


def write_settings(values: dict, schedules: dict[str, str], scene: dict, prompts: dict[str, str],
                   notes: list[str] | None = None) -> dict:
    """Our settings as a Deforum settings dict with the A1111 extension's key names (JSON-serialisable).

    ``values`` and ``scene`` use the same names as ``DeforumSettings``; ``schedules`` holds raw Deforum keyframe
    strings per property, in Deforum's convention (strength NOT inverted: use ``ScheduleSpec.to_deforum``);
    ``prompts`` maps a frame key to Deforum prompt text (``"a cat --neg blurry"``). Deforum appends
    ``values["negative_prompt"]`` to every prompt's negative part. The scheduler ``default`` has no Deforum name and
    is left out. Deforum takes a schedule for the seed only with ``seed_behavior: schedule``; for any other
    behaviour the seed schedule must be the constant ``"0: (N)"`` (the first frame's seed), else DeforumError.
    ``values["mode"]`` (our generation mode) picks animation_mode (see :func:`_write_mode`; without it, motion_mode
    does); what Deforum has no counterpart for is appended to ``notes``. Unknown names or values raise DeforumError.
    """
    out: dict[str, object] = {}
    values = dict(values)
    mode, video = values.pop("mode", None), values.pop("video_init_path", None)
    for name in values:
        if name not in _VALUE_WRITERS:
            raise DeforumError(f"write_settings: unknown setting {name!r} (known: {', '.join(_VALUE_WRITERS)})")
        _VALUE_WRITERS[name](out, values[name])
    if mode is not None:
        _write_mode(out, mode, values.get("motion_mode"), video, notes if notes is not None else [])
    for name, value in scene.items():
        if name == "fps":
            out["fps"] = _num(float(value))
        elif name == "frame_count":
            out["max_frames"] = int(value)
        else:
            raise DeforumError(f"write_settings: unknown scene setting {name!r} (known: fps, frame_count)")

    for prop, text in schedules.items():
        spec = _SPEC.get(prop)
        if spec is None:
            raise DeforumError(f"write_settings: {prop!r} is not an animatable setting "
                               f"(known: {', '.join(_SPEC)})")
        if not isinstance(text, str) or not text.strip():
            raise DeforumError(f"write_settings: schedule of {prop!r} must be a keyframe string, got {text!r}")
        if prop == "seed":
            _write_seed(out, text, values.get("seed_behavior"))
            continue
        out[spec.deforum_key] = text
        if prop == "steps":
            out["enable_steps_scheduling"] = True
            constant = _CONSTANT_INT.match(text)  # also the plain "steps" when the schedule is a constant
            if constant:
                out["steps"] = int(constant.group(1))

    for frame, text in prompts.items():
        if not isinstance(text, str):
            raise DeforumError(f"write_settings: prompt at {frame!r} must be text, got {text!r}")
    out["prompts"] = {str(k): v for k, v in prompts.items()}
    out.setdefault("positive_prompts", "")
    out.setdefault("animation_prompts_positive", "")
    out.setdefault("negative_prompts", "")
    out.setdefault("animation_prompts_negative", "")
    return out


def _write_mode(out: dict, mode: object, motion: object, video: object, notes: list[str]) -> None:
    """Our generation mode as animation_mode: feedback is its motion mode (2D or 3D), video mode "Video Input" with the
    input movie as video_init_path, Interpolate "Interpolation"; clip mode has no Deforum counterpart and is left
    out (noted)."""
    _choice("mode", vocab.names(vocab.MODES), mode)
    if mode == "FEEDBACK":
        out["animation_mode"] = _choice("motion_mode", MOTION_MODES, motion)
        return
    if mode not in _DEFORUM_MODES:
        out.pop("animation_mode", None)
        notes.append(f"the {str(mode).title()} mode has no Deforum animation_mode: animation_mode not exported "
                     "(Deforum then animates in 2D)")
        return
    out["animation_mode"] = _DEFORUM_MODES[mode]
    if mode == "VIDEO":
        if isinstance(video, str) and video.strip():
            out["video_init_path"] = video
        else:
            notes.append("the video mode's input is not a movie strip: video_init_path not exported (Deforum's Video "
                         "Input reads a video file)")


def _write_seed(out: dict, text: str, behavior: object) -> None:
    constant = _CONSTANT_INT.match(text)
    if str(behavior).upper() == "SCHEDULE":
        out["seed_schedule"] = text
        if constant:
            out["seed"] = int(constant.group(1))
        return
    if not constant:
        raise DeforumError(f"write_settings: seed behaviour {behavior} needs a constant seed \"0: (N)\" (Deforum "
                           f"schedules the seed only with seed_behavior schedule), got {text!r}")
    out["seed"] = int(constant.group(1))


def _choice(name: str, allowed: tuple[str, ...], value: object) -> str:
    if value not in allowed:
        raise DeforumError(f"write_settings: {name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeforumError(f"write_settings: {name} must be a whole number of at least 1, got {value!r}")
    return value


def _write_scheduler(out: dict, value: object) -> None:
    if _choice("scheduler", SCHEDULERS, value) != "default":
        out["sampler"] = SAMPLER_NAMES[value]


def _write_negative(out: dict, value: object) -> None:
    if not isinstance(value, str):
        raise DeforumError(f"write_settings: negative_prompt must be text, got {value!r}")
    out["negative_prompts"] = out["animation_prompts_negative"] = value


_VALUE_WRITERS = {
    "width": lambda out, v: out.__setitem__("W", _positive_int("width", v)),
    "height": lambda out, v: out.__setitem__("H", _positive_int("height", v)),
    "seed_behavior": lambda out, v: out.__setitem__("seed_behavior", _choice("seed_behavior", BEHAVIORS, v).lower()),
    "seed_iter_n": lambda out, v: out.__setitem__("seed_iter_N", _positive_int("seed_iter_n", v)),
    "scheduler": _write_scheduler,
    "motion_mode": lambda out, v: out.__setitem__("animation_mode", _choice("motion_mode", MOTION_MODES, v)),
    # Deforum itself knows replicate and wrap; "reflect" round-trips here (Deforum would treat it as replicate).
    "border": lambda out, v: out.__setitem__("border", _choice("border", BORDERS, v).lower()),
    "color_coherence": lambda out, v: out.__setitem__(
        "color_coherence", "None" if _choice("color_coherence", COLOR_COHERENCE, v) == "NONE" else v),
    "cadence": lambda out, v: out.__setitem__("diffusion_cadence", _positive_int("cadence", v)),
    "negative_prompt": _write_negative,
}


def _num(value: float) -> int | float:
    """1.0 -> 1, 1.5 -> 1.5: keyframe strings read like Deforum's own."""
    return int(value) if float(value).is_integer() else float(value)


def _type_name(value: object) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(value), type(value).__name__)
