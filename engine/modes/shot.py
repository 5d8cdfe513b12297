"""Shot mode: each shot (the plan's frames from the first or a restart to the next) is made at once by a video model
(Wan 2.x, LTX-Video: engine/video_models), held to the pictures pinned at its frames and driven by its control video.

A shot longer than the model's window is made in windows of `shot_window` frames sharing `shot_overlap` frames. A
window's frames that an earlier window made are pins of the next one (as far as the model takes pins: any frame for
VACE and LTX conditions, the first frame for image-to-video), so the new window continues the old one, and the shared
frames cross-fade from the old window's pictures to the new one's, which leaves no seam. With `chain_shots` a shot
starts from the last frames of the shot before it the same way: they are rendered as its first frames and dropped.

Frame counts: a model takes 1 + k*step frames (Wan: step 4, LTX: 8). A window of another length is rendered at the
next count it takes and the frames past the window dropped, except when a first/last-frame model (Wan I2V) has a
picture pinned at the window's last frame: then the window's frames are spread evenly over the longer render, so the
pin stays the last frame.

Prompts travel as in clip mode's text-to-video: the models take one text conditioning per call, so each window gets
its frames' keyed prompt weights averaged (composable ``a | b`` parts included), the embeddings mixed by them.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Iterator

import numpy as np

from .. import image_ops
from .. import plan as plan_mod
from ..errors import ModelError
from ..frames import FrameStore
from ..plan import PlanError, frames_of
from ..prompts import parse_composable
from ..video_inputs import control_picture, read_picture
from . import Context, Frames, Mode, WorkUnit, register, touched
from .clip import context_windows


def positions(length: int, count: int, spread: bool) -> list[int]:
    """The model frame each of a window's `length` frames is taken from, out of `count` rendered (see module doc)."""
    if not spread or length < 2:
        return list(range(length))
    return [round(j * (count - 1) / (length - 1)) for j in range(length)]


class ShotPrompts:
    """Each window's text conditioning: the keyed prompts of its frames, averaged, each text encoded once."""

    def __init__(self, family, pipe):
        self.family, self.pipe = family, pipe
        self._cache: dict[str, dict] = {}

    def _encode(self, text: str) -> dict:
        if text not in self._cache:
            import torch

            with torch.no_grad():
                self._cache[text] = self.family.encode(self.pipe, [text], self.pipe._execution_device)
        return self._cache[text]

    def _mix(self, weights: dict[str, float]) -> dict:
        total = sum(weights.values())
        parts = [(self._encode(text), w / total) for text, w in weights.items() if w]
        out = {"embeds": sum(e["embeds"].float() * w for e, w in parts).to(parts[0][0]["embeds"].dtype)}
        if "mask" in parts[0][0]:  # a token any text attends to stays visible
            out["mask"] = torch_max([e["mask"] for e, _ in parts])
        return out

    def window(self, records: list[dict]) -> dict:
        positive: dict[str, float] = defaultdict(float)
        negative: dict[str, float] = defaultdict(float)
        for record in records:
            total = sum(p["weight"] for p in record["prompts"])
            for prompt in record["prompts"]:
                share = prompt["weight"] / total / len(records)
                try:
                    parts = parse_composable(prompt["text"])
                except ValueError as e:
                    raise PlanError(f"frame {record['frame']}: prompt {prompt['text']!r}: {e}") from None
                norm = sum(w for _, w in parts)
                for text, w in parts:
                    positive[text] += share * w / norm
                negative[prompt.get("negative", "")] += share
        return self.family.embed_kwargs(self._mix(positive), self._mix(negative))


def torch_max(tensors: list):
    out = tensors[0]
    for t in tensors[1:]:
        out = out.maximum(t)
    return out


class ShotInputs:
    """A shot's pictures at the plan's size: its pins by frame and each frame's control picture (read on use)."""

    def __init__(self, settings: dict, segment: list[dict]):
        self.size = (settings["width"], settings["height"])
        self.kind = settings.get("video_control", "NONE")
        self.pins = {p["frame"]: p for p in plan_mod.shot_pins(settings, segment)}
        self._pictures: dict[int, np.ndarray] = {}
        self._controls: dict[int, np.ndarray] = {}

    def pin_picture(self, frame: int) -> np.ndarray:
        if frame not in self._pictures:
            pin = self.pins[frame]
            try:
                self._pictures[frame] = read_picture(pin, self.size)
            except (OSError, ValueError) as e:
                raise PlanError(f"the picture pinned at frame {frame} can't be read: {e}") from None
        return self._pictures[frame]

    def control(self, record: dict) -> np.ndarray:
        frame = record["frame"]
        if frame not in self._controls:
            try:
                self._controls[frame] = control_picture(record["control_frame"], self.kind, self.size)
            except (OSError, ValueError) as e:
                raise PlanError(f"frame {frame}: the {self.kind.lower()} control picture can't be read: {e}") from None
        return self._controls[frame]


def check_shot(pipe, family, settings: dict, segment: list[dict], chained: bool = False) -> None:
    """What must hold before a shot's first step: one step count, pins the model takes. `chained`: the shot starts
    from the last frames of the one before (chain_shots)."""
    first, last = segment[0]["frame"], segment[-1]["frame"]
    steps = segment[0]["steps"]
    other = [r["frame"] for r in segment if r["steps"] != steps]
    if other:
        raise PlanError(f"shot of frames {first}-{last}: a shot is denoised in one go, so its frames must share one "
                        f"step count, but frame {first} has {steps} steps and frame {other[0]} differs (keep Steps "
                        "constant within a shot, or cut a new shot)")
    pins = plan_mod.shot_pins(settings, segment)
    if pins and family.pins == "none":
        raise ModelError(f"model '{settings['model']}' is {family.label}: it takes no pinned pictures, and the shot "
                         f"{first}-{last} has {len(pins)} (at frame {pins[0]['frame']}); use an image-to-video, VACE or "
                         "LTX condition model, or remove the pins")
    if family.pins == "first_last":
        inside = [p["frame"] for p in pins if p["frame"] not in (first, last)]
        if inside:
            raise ModelError(f"model '{settings['model']}' is {family.label}: it takes pictures at a shot's first and "
                             f"last frames only ({first} and {last}), not at frame {inside[0]}; move the pin, or use a "
                             "VACE or LTX condition model for pictures inside a shot")
    if chained and family.pins in ("first", "first_last") and pins and pins[0]["frame"] == first:
        raise ModelError(f"with Chain Shots the shot {first}-{last} starts from the last frame of the shot before, "
                         f"which {family.label} takes as its first picture: the picture pinned at frame {first} "
                         "can't apply too; remove it, or turn Chain Shots off")
    kind = settings.get("video_control", "NONE")
    if kind == "RENDER" and not (family.control or family.video_condition):
        raise ModelError(f"model '{settings['model']}' is {family.label}: it takes no video to follow; video to video "
                         "needs a VACE or LTX condition model (or set the control video to None)")
    if kind not in ("NONE", "RENDER") and not family.control:
        raise ModelError(f"model '{settings['model']}' is {family.label}: a {kind.lower()} control video needs a Wan "
                         "VACE model (or set the control video to None)")


def render_shot(ctx: Context, family, segment: list[dict], carry: list[np.ndarray],
                prompts: ShotPrompts) -> Iterator[tuple[int, np.ndarray]]:
    """Make one shot in windows; yield (frame, picture) as frames become final (see the module doc)."""
    from ..video_models import Pin, Window, valid_count, window_length

    pipe, settings = ctx.pipe, ctx.settings
    inputs = ShotInputs(settings, segment)
    step = family.frame_step(pipe)
    full = window_length(settings, step, family.default_window)
    k = len(carry)
    slots = k + len(segment)
    # A first-frame model continues a window only from a frame it shares with the one before: at least one.
    least = 0 if family.pins in ("any", "none") else 1
    spans = context_windows(slots, full, min(max(settings["shot_overlap"], least), full - 1))
    made: dict[int, np.ndarray] = dict(enumerate(carry))  # slot -> its picture so far
    pinned = {k + i: r["frame"] for i, r in enumerate(segment) if r["frame"] in inputs.pins}
    emitted = k
    for w, span in enumerate(spans):
        length = len(span)
        count = valid_count(length, step)
        spread = family.pins == "first_last" and span[-1] in pinned and count > length
        where = positions(length, count, spread)
        records = [segment[s - k] for s in span if s >= k]
        window_pins = []
        for j, slot in enumerate(span):
            holds = family.pins == "any" or (family.pins in ("first", "first_last") and j == 0)
            if slot in made and holds:
                window_pins.append(Pin(where[j], made[slot], 1.0, carried=True))
            elif slot in pinned and slot not in made:
                frame = pinned[slot]
                window_pins.append(Pin(where[j], inputs.pin_picture(frame),
                                       float(inputs.pins[frame].get("strength", 1.0))))
        window = Window(count=count, width=settings["width"], height=settings["height"], steps=records[0]["steps"],
                        guidance=float(np.mean([r["guidance"] for r in records])), seed=int(records[0]["seed"]),
                        embeds=prompts.window(records), pins=window_pins, fps=float(settings.get("fps", 24.0)),
                        control_scale=float(settings.get("control_scale", 1.0)))
        _controls(window, inputs, records, span, k, family)
        numbers = frames_of(records)
        out = family.call(pipe, window, lambda s, total: ctx.on_step(numbers, s, total))
        new = {slot: out[where[j]] for j, slot in enumerate(span)}
        shared = [s for s in span if s in made and s >= k]
        for n, slot in enumerate(shared):  # the frames both windows made: from the old window's to the new one's
            new[slot] = image_ops.blend_frames(made[slot], new[slot], (n + 1) / (len(shared) + 1))
        for slot in range(k):
            new.pop(slot, None)  # carried frames stay what the shot before made
        made.update(new)
        final = spans[w + 1][0] if w + 1 < len(spans) else slots
        for slot in range(emitted, final):
            yield segment[slot - k]["frame"], made[slot]
        emitted = max(emitted, final)


def _controls(window, inputs: ShotInputs, records: list[dict], span: list[int], k: int, family) -> None:
    """The window's control pictures (VACE) or render video (LTX), one per rendered frame."""
    if inputs.kind == "NONE":
        return
    by_slot = dict(zip([s for s in span if s >= k], records))
    # Carried frames (from the shot before) take the shot's first control picture; past the window, its last one.
    pictures = [inputs.control(by_slot.get(s, records[0])) for s in span]
    pictures += [pictures[-1]] * (window.count - len(pictures))
    strength = float(np.mean([r.get("strength", plan_mod.FRAME_DEFAULTS["strength"]) for r in records]))
    if inputs.kind == "RENDER" and family.video_condition:
        window.render, window.render_strength = pictures, strength
        return
    window.control = pictures
    if inputs.kind == "RENDER":  # VACE following the render: its strength is the frames' Strength
        window.control_scale *= strength


@register
class Shot(Mode):
    """Shots made whole by a video model: a render takes on every frame of the shots it touches, and a distributed
    unit is one shot (with chained shots, the chain)."""

    name = "SHOT"
    linked = True

    def prepare(self, renderer, pipe, settings: dict, emit) -> tuple[object, list]:
        from .. import video_models
        from ..video_setup import prepare_video

        family = video_models.family(pipe)
        return prepare_video(renderer, pipe, family, settings, emit), []

    def render(self, ctx: Context) -> Frames:
        from .. import video_models

        family = video_models.family(ctx.pipe)
        todo = ctx.todo_frames
        shots = plan_mod.chain_segments(ctx.chain)
        chosen = [i for i, shot in enumerate(shots) if todo.intersection(frames_of(shot))]
        for i in chosen:  # a bad shot fails before any shot is denoised
            check_shot(ctx.pipe, family, ctx.settings, shots[i], chained=bool(ctx.settings.get("chain_shots") and i))
        prompts = ShotPrompts(family, ctx.pipe)
        last: dict[int, np.ndarray] = {}  # the previous shot's frames, for chained shots
        for i in chosen:
            carry = _carry(ctx, family, shots, i, last) if ctx.settings.get("chain_shots") and i else []
            last = {}
            for frame, image in render_shot(ctx, family, shots[i], carry, prompts):
                last[frame] = image
                if frame in todo:
                    yield frame, image

    def covered(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
                settings: dict) -> list[dict]:
        """Every frame of the shots the range touches; with chained shots also the shots before them that are not
        on disk (a shot starts from the last frames of the one before)."""
        shots = plan_mod.chain_segments(chain)
        frames = set(frames_of(records))
        chosen = [i for i, shot in enumerate(shots) if frames.intersection(frames_of(shot))]
        if settings.get("chain_shots") and chosen:
            i = chosen[0] - 1
            while i >= 0 and not all(store.is_current(r["frame"], hashes[r["frame"]]) for r in shots[i]):
                chosen.insert(0, i)
                i -= 1
        return [r for i in chosen for r in shots[i]]

    def units(self, plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
        """One unit per shot; chained shots depend on each other, so they are one unit from the plan's start (its
        earlier shots are read back from the shared folder)."""
        shots = touched(plan["frames"], set(frames_of(todo)))
        if not plan["settings"].get("chain_shots"):
            return [(frames_of(shot), None) for shot in shots]
        covered = frames_of(records)
        end = shots[-1][-1]["frame"]
        return [([r["frame"] for r in plan["frames"] if r["frame"] <= end], (min(covered), max(covered)))]


def _carry(ctx: Context, family, shots: list[list[dict]], i: int, last: dict[int, np.ndarray]) -> list[np.ndarray]:
    """The last frames of shot i-1 that shot i starts from: as many as the windows share (one for a first-frame
    model), made just now or read back from the output folder."""
    if family.pins == "none":
        raise ModelError(f"model '{ctx.settings['model']}' is {family.label}: it takes no pictures, so a shot can't "
                         "start from the one before (turn Chain Shots off, or use an image-to-video, VACE or LTX "
                         "condition model)")
    wanted = 1 if family.pins in ("first", "first_last") else max(1, ctx.settings["shot_overlap"])
    previous = frames_of(shots[i - 1])[-wanted:]
    out = []
    for frame in previous:
        if frame in last:
            out.append(last[frame])
        else:
            try:
                out.append(image_ops.resize(ctx.store.read(frame), (ctx.settings["width"], ctx.settings["height"])))
            except OSError as e:
                print(f"warning: frame {frame} of the shot before is not readable ({e}); shot "
                      f"{shots[i][0]['frame']} starts without it", file=sys.stderr)
                return []
    return out
