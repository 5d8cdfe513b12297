"""Prompt keys and their crossfades.

A prompt key is at full weight (1) at its frame and at 0 at its neighbours' frames; the shape of the crossfade is
the F-curve interpolation of those keys. Giffusion's "sine" and "curve" schedules are not a key pair's shape, so
they are written as one key per frame that reproduces them. Any number of prompts may be non-zero at a frame; the
bake normalises the weights.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..engine import schedule
from ..settings import compat
from . import fcurves


def _weight_fcurve(scene, item):
    return compat.find_fcurve(scene, item.path_from_id("weight"))


def _key(scene, item, frame: int, value: float, transition: str) -> None:
    _label, interpolation, easing, _ = fcurves.TRANSITIONS[transition]
    item.weight = value
    compat.keyframe_insert(item, "weight", frame)
    for point in _weight_fcurve(scene, item).keyframe_points:
        if round(point.co[0]) == frame:
            point.interpolation = interpolation
            point.easing = easing


def add_prompt_key(scene, text: str, negative: str = "", frame: int | None = None, transition: str = "LINEAR"):
    """Add a prompt at `frame` with weight 1 there and 0 at its neighbours' frames; neighbours get 0 at `frame`.

    Keys the user made elsewhere stay as they are. Giffusion shapes need the whole key list: use set_transitions.
    """
    if transition not in fcurves.TRANSITIONS:
        raise ValueError(f"'{transition}' is applied to all prompts at once (Prompts > Transitions), not per key")
    settings = scene.keyframe_diffusion
    frame = scene.frame_current if frame is None else frame
    count = len(settings.prompts)
    earlier = [p.frame for p in settings.prompts if p.frame < frame]
    later = [p.frame for p in settings.prompts if p.frame > frame]
    seed = max((p.seed for p in settings.prompts), default=-1) + 1  # distinct noise per key
    item = settings.prompts.add()
    # Fetched after add(): growing the collection can move its items, and a reference taken before would be stale
    # (keyframe_insert then "could not make path", from the sixth key of a fresh scene on).
    others = [settings.prompts[i] for i in range(count)]
    item.text, item.negative, item.frame, item.seed = text, negative, frame, seed
    for other in others:
        if other.frame != frame:
            _key(scene, other, frame, 0.0, transition)
    if earlier:
        _key(scene, item, max(earlier), 0.0, transition)
    if later:
        _key(scene, item, min(later), 0.0, transition)
    _key(scene, item, frame, 1.0, transition)
    settings.active_prompt = len(settings.prompts) - 1
    scene.frame_set(scene.frame_current)  # re-evaluate so properties show the animated values
    return item


def remove_prompt_key(scene, index: int) -> None:
    """Remove a prompt, its weight curve, and the zero keys it put on others; keep later curves on their items."""
    settings = scene.keyframe_diffusion
    item = settings.prompts[index]
    frame = item.frame
    fc = _weight_fcurve(scene, item)
    if fc is not None:
        compat.remove_fcurve(scene, fc)
    for other in settings.prompts:
        if other.frame != frame and other != item:
            curve = _weight_fcurve(scene, other)
            if curve is not None:
                for point in [p for p in curve.keyframe_points if round(p.co[0]) == frame]:
                    curve.keyframe_points.remove(point)
    # Curves address items by index: move those of later items down by one.
    pattern = re.compile(r"^keyframe_diffusion\.prompts\[(\d+)\]")
    for curve in sorted(compat.action_fcurves(scene), key=lambda c: c.data_path):
        m = pattern.match(curve.data_path)
        if m and int(m.group(1)) > index:
            curve.data_path = pattern.sub(f"keyframe_diffusion.prompts[{int(m.group(1)) - 1}]", curve.data_path)
    settings.prompts.remove(index)
    # Re-link the neighbours that the removed key stood between.
    keys = sorted(settings.prompts, key=lambda p: p.frame)
    for a, b in zip(keys, keys[1:]):
        if a.frame < frame < b.frame:
            _key(scene, a, b.frame, 0.0, "LINEAR")
            _key(scene, b, a.frame, 0.0, "LINEAR")
    settings.active_prompt = min(settings.active_prompt, max(0, len(settings.prompts) - 1))
    scene.frame_set(scene.frame_current)


def _mix_factors(scene, transition: str, a: int, b: int, frequencies: Sequence[float], curve: str):
    """Giffusion's mix factor towards the next prompt for frames a..b-1 (scene frames)."""
    if transition == "GIFFUSION_SINE":
        return schedule.giffusion_sine(b - a + 1, frequencies)[:-1]
    count = scene.frame_end - scene.frame_start + 1
    # Giffusion counts frames from 0 like Deforum: the curve's frame 0 is the scene's first frame.
    return schedule.giffusion_curve(curve, a - scene.frame_start, b - 1 - scene.frame_start,
                                    max(count, b - scene.frame_start))


def set_transitions(scene, transition: str = "LINEAR", frequencies: str = "1.0", curve: str = "0:(0), 1:(1)") -> None:
    """Rewrite every prompt's weight curve as crossfades between consecutive keys with one shape.

    Raises schedule.ScheduleError for a bad frequency list or curve, ValueError for prompts sharing a frame.
    """
    settings = scene.keyframe_diffusion
    items = sorted(settings.prompts, key=lambda p: p.frame)
    frames = [p.frame for p in items]
    if len(set(frames)) != len(frames):
        twice = sorted({f for f in frames if frames.count(f) > 1})
        raise ValueError(f"more than one prompt at frame {twice[0]}: move one before setting transitions")
    keys: dict[int, list[tuple[int, float]]] = {i: [] for i in range(len(items))}
    if transition in fcurves.TRANSITIONS:
        _label, interpolation, easing, _ = fcurves.TRANSITIONS[transition]
        for i, frame in enumerate(frames):
            if i > 0:
                keys[i].append((frames[i - 1], 0.0))
            keys[i].append((frame, 1.0))
            if i + 1 < len(frames):
                keys[i].append((frames[i + 1], 0.0))
    else:
        easing = "AUTO"
        interpolation = "LINEAR"
        freqs = schedule.parse_frequencies(frequencies) if transition == "GIFFUSION_SINE" else []
        for i in range(len(frames) - 1):
            a, b = frames[i], frames[i + 1]
            for frame, t in zip(range(a, b), _mix_factors(scene, transition, a, b, freqs, curve)):
                keys[i].append((frame, 1.0 - float(t)))
                keys[i + 1].append((frame, float(t)))
            keys[i].append((b, 0.0))
        keys[len(frames) - 1].append((frames[-1], 1.0))
    for i, item in enumerate(items):
        unique = dict(keys[i])  # a frame keyed twice keeps its last value
        fcurves.replace_keys(item, "weight", sorted(unique.items()), interpolation, easing)
    scene.frame_set(scene.frame_current)


def replace_prompts(scene, prompts: Sequence[tuple[int, str, str]], transition: str = "LINEAR",
                    frequencies: str = "1.0", curve: str = "0:(0), 1:(1)") -> None:
    """Replace all prompt keys with (scene frame, text, negative) and crossfade them with one transition."""
    settings = scene.keyframe_diffusion
    for item in settings.prompts:
        fcurves.clear_animation(item, "weight")
    settings.prompts.clear()
    for seed, (frame, text, negative) in enumerate(sorted(prompts, key=lambda p: p[0])):
        item = settings.prompts.add()
        item.frame, item.text, item.negative, item.seed = frame, text, negative, seed
        item.weight = 1.0
    settings.active_prompt = 0
    if len(settings.prompts) > 1:
        set_transitions(scene, transition, frequencies, curve)
    scene.frame_set(scene.frame_current)
