"""Generation modes: one file per mode, each a `Mode` registered under its plan name (settings["mode"]).

The renderer (engine/renderer.py) and the distributed renderer (engine/distributed.py) never branch on the mode's
name: they look it up with `get(settings["mode"])` and use only this interface:

- `render(ctx)`: (frame, image) for every frame in ctx.todo, in frame order; an image is a PIL image or an RGB uint8
  array. `ctx` is a `Context`: the prepared pipeline, the plan's settings, the loaded ControlNet units, the plan's
  frames (`chain`), the frames to render (`todo`), the output folder (`store`, to read finished frames back) and the
  step callback (`on_step(frames, step, steps, latents=None)`: call it every denoising step; it raises Cancelled on
  a cancel; `latents`, the batch's latents as the loop holds them (first frame first), feed the live preview).
- `prepare(renderer, pipe, settings, emit) -> (pipe, controlnets)`: the pipeline to render with, made from the loaded
  base `pipe`. Default: the image pipeline (renderer.image_pipeline: scheduler, decoder, LoRAs, speed switches,
  ControlNet units).
- `linked`: False (the default) when every frame is made on its own; True when a frame depends on the other frames of
  its chain (a run of frames from the plan's first frame or a `restart` to the next): then frame hashes are taken over
  the whole plan (plan.frame_hashes chains them) and `covered` says which other frames a render must include.
  `is_linked(settings)` says it for a plan (a mode whose option chains its frames, as flow-guided video, overrides it).
- `covered(records, chain, store, hashes, settings)`: the frames a render of `records` (a frame range's frames) takes
  on, in frame order. Default: `records`; chained frames: `chain_covered`.
- `remake(records, chain, store, hashes, settings)`: frames of the covered `records` that are current on disk but are
  made again all the same. Default: none; chained frames with a cadence: `chain_remade` (in-betweens whose key after
  them is not on disk).
- `units(plan, todo, records)`: the distributed renderer's pieces of work, each `(frames, frame_range)`: a sub-plan of
  those frames, rendered over `frame_range` (None: all of them) by one worker. Default: the mode's `batches` of
  `todo`, so workers form the batches a local render would and the frames come out identical; chained frames:
  `chain_units`.

Adding a mode:
1. A new file here, engine/modes/<name>.py, with a subclass of `Mode` that sets `name` (the plan's mode
   identifier), implements `render` and overrides the hooks it needs, decorated with `@register`. `get` imports every
   module of this package the first time it is called, so nothing in the renderer or the distributed renderer
   changes. (The other modules here, diffuse, overlap and stream, are shared stages the modes use and register
   nothing.)
2. The plan's side, which the Blender side imports and which therefore imports no mode: the identifier in
   engine/vocabulary.py MODES (the plan accepts it and Blender's enum shows it), and the frame fields that decide its
   pixels in plan._HASHED_FRAME (a frame's hash is what makes resume skip it). A check that a mode needs of its
   frames (like video mode's init frames) goes in plan.validate.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from .. import plan as plan_mod

if TYPE_CHECKING:
    from ..frames import FrameStore
    from .diffuse import Job

StepCallback = Callable[..., None]  # (frames, step, steps, latents=None)
Frames = Iterator[tuple[int, object]]
WorkUnit = tuple[list[int], "tuple[int, int] | None"]


@dataclass
class Context:
    """What a mode renders from (see the module doc)."""

    pipe: object
    settings: dict
    controlnets: list
    chain: list[dict]  # every frame of the plan, in frame order
    todo: list[dict]  # the frames to render, in frame order
    store: FrameStore
    on_step: StepCallback

    @property
    def todo_frames(self) -> set[int]:
        return set(plan_mod.frames_of(self.todo))

    def segments(self) -> list[list[dict]]:
        """The chains (or clips) that hold a frame to render, in frame order."""
        return touched(self.chain, self.todo_frames)

    def job(self) -> Job:
        """A diffuse.Job for the img2img stages (diffuse, stream) over this context."""
        from .diffuse import Job

        return Job(self.pipe, self.settings, self.on_step, self.controlnets)


def touched(chain: list[dict], frames: set[int]) -> list[list[dict]]:
    """The chains of `chain` (from its first frame or a restart to the next) that hold one of `frames`."""
    return [s for s in plan_mod.chain_segments(chain) if frames.intersection(plan_mod.frames_of(s))]


class Mode:
    """A generation mode; see the module doc for the interface and the defaults."""

    name: str = ""
    linked: bool = False

    def render(self, ctx: Context) -> Frames:
        raise NotImplementedError(f"mode {self.name} has no render")

    def is_linked(self, settings: dict) -> bool:
        return self.linked

    def prepare(self, renderer, pipe, settings: dict, emit) -> tuple[object, list]:
        return renderer.image_pipeline(pipe, settings, emit)

    def covered(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
                settings: dict) -> list[dict]:
        return records

    def remake(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
               settings: dict) -> set[int]:
        return set()

    def units(self, plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
        return [(plan_mod.frames_of(batch), None) for batch in self.batches(todo, plan["settings"]["batch_size"])]

    def batches(self, records: list[dict], batch_size: int) -> Iterator[list[dict]]:
        """Runs of frames the mode renders in one call (default: consecutive frames, batch_size at a time)."""
        for start in range(0, len(records), batch_size):
            yield records[start:start + batch_size]


def chain_covered(records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
                  cadence: int = 1) -> list[dict]:
    """For chained frames: the chosen frames plus the earlier frames of their chains that are missing on disk. A
    chain's frames need every frame before them back to its start (a restart cuts the chain); missing ones are
    rendered and kept too. With a cadence, an in-between also needs the key after it: when that is missing, it is
    rendered too, and so are the in-betweens before a rendered key that a killed render left on disk without it
    (waiting_inbetweens)."""
    chosen = set(plan_mod.frames_of(records))
    needed = []
    for segment in touched(chain, chosen):
        frames = plan_mod.frames_of(segment)
        first = min(chosen.intersection(frames))
        keys = plan_mod.cadence_keys(len(segment), cadence)
        last = max(i for i, f in enumerate(frames) if f in chosen)
        after = frames[next(k for k in keys if k >= last)]
        taken = {f for f in frames if f in chosen
                 or ((f < first or f == after) and not store.is_current(f, hashes[f]))}
        taken |= {f for f, key in waiting_inbetweens(segment, store, hashes, cadence).items() if key in taken}
        needed += [r for r in segment if r["frame"] in taken]
    return needed


def waiting_inbetweens(segment: list[dict], store: FrameStore, hashes: dict, cadence: int) -> dict[int, int]:
    """A chain's cadence in-betweens on disk whose key after them is not, each with that key's frame. In frame order
    an in-between is written before its key, so a render killed between the two leaves it behind: it is made again
    with the key (which may come out a little differently on another run's arithmetic)."""
    if cadence <= 1:
        return {}
    frames = plan_mod.frames_of(segment)
    keys = plan_mod.cadence_keys(len(frames), cadence)
    return {f: frames[b] for a, b in zip(keys, keys[1:]) if not store.is_current(frames[b], hashes[frames[b]])
            for f in frames[a + 1:b] if store.is_current(f, hashes[f])}


def chain_remade(records: list[dict], chain: list[dict], store: FrameStore, hashes: dict, cadence: int) -> set[int]:
    """The covered `records`' in-betweens waiting on disk for their key (waiting_inbetweens): made again."""
    frames = set(plan_mod.frames_of(records))
    return {f for segment in touched(chain, frames) for f in waiting_inbetweens(segment, store, hashes, cadence)
            if f in frames}


def chain_units(plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
    """For chained frames, per chain with frames to render: the chain up to its last frame this render covers, over
    the range of its covered frames; frames before the range are links the worker reads back (or renders when
    missing)."""
    chosen = set(plan_mod.frames_of(records))
    out = []
    for segment in touched(plan["frames"], set(plan_mod.frames_of(todo))):
        frames = plan_mod.frames_of(segment)
        inside = sorted(chosen.intersection(frames))
        out.append(([f for f in frames if f <= inside[-1]], (inside[0], inside[-1])))
    return out


_MODES: dict[str, Mode] = {}
_loaded = False


def register(cls: type[Mode]) -> type[Mode]:
    """Class decorator: makes an instance of `cls` the mode for plans whose mode is `cls.name`."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no mode name")
    if cls.name in _MODES and type(_MODES[cls.name]) is not cls:
        raise TypeError(f"two modes are called {cls.name}: {type(_MODES[cls.name]).__name__} and {cls.__name__}")
    _MODES[cls.name] = cls()
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def get(name: str) -> Mode:
    """The registered mode called `name` (a plan's settings["mode"])."""
    _load()
    if name not in _MODES:
        raise plan_mod.PlanError(f"settings: no engine mode '{name}' (the engine has: {', '.join(names())})")
    return _MODES[name]


def names() -> list[str]:
    """Every registered mode's name."""
    _load()
    return sorted(_MODES)
