"""A word before a long render: how many frames, how many steps, and about how long.

The time comes from the last render with the same model, size, device and mode on this machine: after each render
the job records its seconds per denoising step per frame (StepTimer) in a small JSON file in the extension's user
folder, so it survives Blender restarts. Until a first render has finished there is no figure, and the text says so.
The Generate button asks before a long render (is_long); headless runs print one line (headless_line).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass

import bpy

from ..settings import compat
from ..settings import preferences
from ..timeline import frame_range

LONG_FRAMES = 48  # Generate asks first above this many frames...
LONG_SECONDS = 120.0  # ...or above this estimate
TIMINGS_FILE = "timings.json"
IMG2IMG_MODES = ("FEEDBACK", "VIDEO")  # modes that run only Strength's share of the steps


def _timings_path() -> str:
    try:
        folder = bpy.utils.extension_path_user(preferences.ADDON_PACKAGE, path="", create=True)
    except (ValueError, AttributeError):  # loaded as a legacy add-on, not an extension
        folder = bpy.utils.user_resource("CONFIG", path="keyframe_diffusion", create=True)
    return os.path.join(folder, TIMINGS_FILE)


def timing_key(model: str, width: int, height: int, device: str, mode: str) -> str:
    return f"{model.strip()}|{width}x{height}|{device}|{mode}"


_cache: tuple[tuple, dict] = ((), {})  # (the file's path, mtime and size; its data): the sidebar asks at every redraw


def _read_timings() -> dict:
    global _cache
    path = _timings_path()
    try:
        stat = os.stat(path)
        stamp = (path, stat.st_mtime_ns, stat.st_size)
        if stamp == _cache[0]:
            return dict(_cache[1])
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):  # none yet, or damaged: a lost figure only costs one "not known yet"
        return {}
    data = data if isinstance(data, dict) else {}
    _cache = (stamp, data)
    return dict(data)


def recorded_rate(key: str) -> float | None:
    """Seconds per denoising step per frame last measured for this key, or None."""
    entry = _read_timings().get(key)
    rate = entry.get("seconds_per_step") if isinstance(entry, dict) else None
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def record_rate(key: str, seconds_per_step: float) -> None:
    """Keep a measured rate (the newest wins: the machine, drivers and model files change)."""
    path = _timings_path()
    data = _read_timings()
    data[key] = {"seconds_per_step": round(seconds_per_step, 6), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=TIMINGS_FILE, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class StepTimer:
    """Measures a render's seconds per denoising step per frame from the worker's events (the main pass only).

    The window runs from the first step report to the last frame written, so model loading and prompt encoding
    don't count but decoding and writing do; the first report's steps (done before the window opened) are left out
    of the count."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._first: tuple[float, int] | None = None  # (time, frame-steps) at the first step report
        self._frame_steps = 0
        self._end: tuple[float, int] | None = None  # (time, frame-steps) at the last frame written

    def see(self, event: dict) -> None:
        kind = event.get("event")
        if "worker" in event or event.get("pass") == "upscale":
            return  # a Ray cluster's or the upscaler's pace is not this machine's render pace
        if kind == "progress":
            self._frame_steps += len(event["frames"])
            if self._first is None:
                self._first = (self._clock(), self._frame_steps)
        elif kind == "frame" and not event["skipped"] and self._first is not None:
            self._end = (self._clock(), self._frame_steps)

    def rate(self) -> float | None:
        """Seconds per step per frame, or None when too little was rendered to tell."""
        if self._first is None or self._end is None:
            return None
        steps = self._end[1] - self._first[1]
        seconds = self._end[0] - self._first[0]
        return seconds / steps if steps > 0 and seconds > 0 else None


def steps_run(mode: str, steps: int, strength: float) -> int:
    """Denoising steps a frame really runs: img2img skips the first (1 - strength) of the schedule (as
    engine/modes/diffuse.py's steps_run, which needs torch to import)."""
    if mode in IMG2IMG_MODES:
        return max(1, min(int(steps * strength), steps))
    return steps


@dataclass
class Estimate:
    first: int
    last: int
    frames: int  # frames in the range (those current on disk are skipped by the render, but not known here)
    source: str  # what chose the range, in words
    steps: tuple[int, int]  # fewest and most steps a frame runs
    frame_steps: int  # denoising steps over all the frames
    seconds: float | None  # None: no render of this model, size, device and mode measured yet

    @property
    def range_text(self) -> str:
        return f"{self.first}-{self.last}" if self.first != self.last else f"{self.first}"


SAMPLES = 2000  # keyed steps or strength over a longer range: evaluated at this many frames and scaled


def _steps_per_frame(scene, first: int, last: int) -> tuple[list[int], int]:
    """(steps a frame runs at each of a sample of the range's frames, the range's frame count): read from the
    F-curves without moving the playhead; unkeyed, one sample stands for every frame."""
    s = scene.keyframe_diffusion
    curves = {name: compat.find_fcurve(scene, f"keyframe_diffusion.{name}") for name in ("steps", "strength")}
    count = max(0, last - first + 1)
    if not any(curves.values()):
        return ([steps_run(s.mode, s.steps, s.strength)] if count else []), count
    stride = max(1, -(-count // SAMPLES))

    def value(name: str, frame: int) -> float:
        return curves[name].evaluate(frame) if curves[name] is not None else getattr(s, name)

    return [steps_run(s.mode, round(value("steps", f)), value("strength", f))
            for f in range(first, last + 1, stride)], count


def estimate(scene, model: str | None = None, frames: tuple[int, int] | None = None) -> Estimate:
    """The render Generate is about to start: the Frame Range (narrowed to `frames` when given), its steps, and the
    time at the last measured rate."""
    s = scene.keyframe_diffusion
    first, last = frame_range.render_range(scene)
    source = frame_range.source(scene)
    if frames is not None:
        first, last = max(first, frames[0]), min(last, frames[1])
        source = "the frames asked for"
    samples, count = _steps_per_frame(scene, first, last)
    total = round(sum(samples) * count / len(samples)) if samples else 0
    rate = recorded_rate(timing_key(model or s.model, s.width, s.height, s.device, s.mode))
    return Estimate(first, last, count, source, (min(samples, default=0), max(samples, default=0)),
                    total, rate * total if rate is not None else None)


def plan_estimate(plan: dict, todo: list[int]) -> tuple[tuple[int, int], float | None]:
    """(fewest, most) steps and the time for the plan's frames in `todo`, at the last measured rate."""
    settings = plan["settings"]
    chosen = set(todo)
    per_frame = [steps_run(settings["mode"], r["steps"], r.get("strength", 1.0))
                 for r in plan["frames"] if r["frame"] in chosen]
    rate = recorded_rate(timing_key(settings["model"], settings["width"], settings["height"], settings["device"],
                                    settings["mode"]))
    seconds = rate * sum(per_frame) if rate is not None and per_frame else None
    return (min(per_frame, default=0), max(per_frame, default=0)), seconds


def duration_text(seconds: float) -> str:
    """"about 1 min 10 s", "about 40 s", "about 2 h 5 min"."""
    seconds = max(1, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"
    if minutes:
        return f"about {minutes} min {secs} s" if secs and minutes < 10 else f"about {minutes} min"
    return f"about {secs} s"


def _steps_text(steps: tuple[int, int]) -> str:
    low, high = steps
    return f"{low} step{'' if low == 1 else 's'} each" if low == high else f"{low}-{high} steps each"


def _time_text(seconds: float | None) -> str:
    if seconds is None:
        return "time not known until the first frames finish"
    return duration_text(seconds)


def is_long(est: Estimate) -> bool:
    """Whether Generate asks before starting: many frames, or a long estimate."""
    return est.frames > LONG_FRAMES or (est.seconds is not None and est.seconds > LONG_SECONDS)


def confirm_text(est: Estimate) -> tuple[str, str]:
    """(title, message) of the question Generate asks before a long render."""
    title = f"Generate {est.frames} frames?"
    message = (f"Frames {est.range_text} ({est.source}), {_steps_text(est.steps)}, {_time_text(est.seconds)}. "
               "Frame Range in the sidebar chooses the frames")
    return title, message


def summary(est: Estimate) -> str:
    """The estimate in one line, for the sidebar: "24 frames, 30 steps each, about 1 min 10 s"."""
    return f"{est.frames} frame{'' if est.frames == 1 else 's'}, {_steps_text(est.steps)}, {_time_text(est.seconds)}"


def headless_line(frames: list[int], todo: list[int], source: str, steps: tuple[int, int],
                  seconds: float | None) -> str:
    """The line a headless render prints before its first frame, e.g. "24 frames to generate (1-24, from the prompt
    keys), 30 steps each, about 1 min 10 s"."""
    span = f"{min(frames)}-{max(frames)}" if frames else "none"
    current = len(frames) - len(todo)
    where = f"{span}, {source}" + (f"; {current} up to date" if current else "")
    count = f"{len(todo)} of {len(frames)}" if current else f"{len(todo)}"
    if not todo:
        return f"0 frames to generate ({where}): all up to date"
    return f"{count} frame{'' if len(frames) == 1 else 's'} to generate ({where}), {_steps_text(steps)}, " \
           f"{_time_text(seconds)}"
