"""The engine's events: one record per kind, the one place they are built, and how each reads for a person.

A render reports what it does as events, plain dicts that in-process callers read directly (Renderer.render's `emit`)
and that the worker writes as JSON lines on its stdout (worker.py). Each kind is a TypedDict below, built by its
constructor here, never as a literal at the emit site; `describe(event)` is the one text for a person, so the
Blender status bar, the Blender CLI and the engine CLI all say the same thing.

Kinds, in the order a render sends them (keys in [brackets] only sometimes):
  ready          pid                                  the worker is up (worker.py)
  start          frames, todo                         the range's frames, those not current on disk
  workers        count, address, resources, per_worker   a Ray render, once the cluster is known (distributed.py)
  loading        model [worker]                       a model (pipeline, ControlNet, decoder, adapter, upscaler)
  progress       frames, step, steps, done, total [elapsed, eta] [pass="upscale"] [worker]   one denoising step of
                                                      a batch; elapsed: seconds since the render started, eta:
                                                      seconds left (None until a rate is known; progress.py)
  preview        frame, step, steps, path             the frame being denoised, roughly (a latent-to-RGB map,
                                                      preview.py), as a small PNG at path (replaced each time)
  frame          frame, path, skipped, done, total [elapsed, eta] [worker]   a frame on disk (skipped: it was
                                                      current already)
  upscale_start  frames, todo, missing, upscale_dir   the upscaling pass (upscale.py): frames with a current main
                                                      frame, those to upscale, those left out (no main frame)
  upscaled       frame, path, skipped, done, total    an upscaled frame on disk
  finished       rendered, skipped, cancelled, output_dir [retried] [upscaled, upscale_skipped, upscale_missing,
                 upscale_dir]; the upscaling pass alone (`python -m engine upscale`): pass="upscale", upscaled,
                 upscale_skipped, upscale_missing, upscale_dir, cancelled, output_dir
  error          kind, message                        the command failed; the worker waits for the next one
  exit           code, message                        Blender's side: the worker process ended (message: its last
                                                      words on stderr); engine_link/worker_client.py
"""

from __future__ import annotations

import time
from typing import Callable, Literal, TypedDict, Union

# -- the records ------------------------------------------------------------------------------------------------


class Ready(TypedDict):
    event: Literal["ready"]
    pid: int


class Start(TypedDict):
    event: Literal["start"]
    frames: list[int]
    todo: list[int]


class _Loading(TypedDict):
    event: Literal["loading"]
    model: str


class Loading(_Loading, total=False):
    worker: str  # a Ray worker, "host:pid"


class Workers(TypedDict):
    event: Literal["workers"]
    count: int
    address: str  # "local" for a cluster started here
    resources: dict[str, float]  # the cluster's CPU and GPU
    per_worker: dict[str, float]  # what each worker takes: num_cpus, num_gpus


class _Progress(TypedDict):
    event: Literal["progress"]
    frames: list[int]
    step: int
    steps: int
    done: int  # frames finished before this batch
    total: int


class _Timing(TypedDict, total=False):
    """Optional on progress and frame events (events from before they were added lack them)."""

    elapsed: float  # seconds since the render started
    eta: Union[float, None]  # seconds left; None until the rate is known


# "pass" is a Python keyword, so these keys are declared the functional way.
_PassAndWorker = TypedDict("_PassAndWorker", {"pass": Literal["upscale"], "worker": str}, total=False)


class Progress(_Progress, _Timing, _PassAndWorker):
    """A denoising step; with pass="upscale" a step of the upscaling pass."""


class Preview(TypedDict):
    event: Literal["preview"]
    frame: int
    step: int
    steps: int
    path: str  # a PNG, replaced atomically by the next preview


class _Frame(TypedDict):
    event: Literal["frame"]
    frame: int
    path: str
    skipped: bool
    done: int
    total: int


class Frame(_Frame, _Timing, total=False):
    worker: str


class UpscaleStart(TypedDict):
    event: Literal["upscale_start"]
    frames: list[int]
    todo: list[int]
    missing: list[int]
    upscale_dir: str


class Upscaled(TypedDict):
    event: Literal["upscaled"]
    frame: int
    path: str
    skipped: bool
    done: int
    total: int


class _Finished(TypedDict):
    event: Literal["finished"]
    rendered: int
    skipped: int  # frames that were current already
    cancelled: bool
    output_dir: str


class Finished(_Finished, total=False):
    retried: int  # a Ray render: units handed to another worker after theirs died
    flicker: dict  # the range's temporal warping error, and its input's (engine/flicker.render_figures)
    upscaled: int  # with settings.upscale: the upscaling pass's counts and folder
    upscale_skipped: int
    upscale_missing: int
    upscale_dir: str


UpscaleFinished = TypedDict("UpscaleFinished", {
    "event": Literal["finished"], "pass": Literal["upscale"], "upscaled": int, "upscale_skipped": int,
    "upscale_missing": int, "upscale_dir": str, "cancelled": bool, "output_dir": str})

ErrorKind = Literal["plan", "model", "output", "cluster", "environment", "protocol", "internal"]


class Error(TypedDict):
    event: Literal["error"]
    kind: ErrorKind
    message: str


class Exit(TypedDict):
    event: Literal["exit"]
    code: int
    message: str  # the worker's last lines on stderr, or ""


Event = Union[Ready, Start, Loading, Workers, Progress, Preview, Frame, UpscaleStart, Upscaled, Finished, UpscaleFinished,
              Error, Exit]
Emit = Callable[[Event], None]

KINDS: dict[str, type] = {"ready": Ready, "start": Start, "loading": Loading, "workers": Workers,
                          "progress": Progress, "preview": Preview, "frame": Frame, "upscale_start": UpscaleStart,
                          "upscaled": Upscaled, "finished": Finished, "error": Error, "exit": Exit}


def schema(event: dict) -> type:
    """The record an event must match: its kind's (the upscaling pass alone ends with UpscaleFinished)."""
    if event["event"] == "finished" and event.get("pass") == "upscale":
        return UpscaleFinished
    return KINDS[event["event"]]


# -- building them ----------------------------------------------------------------------------------------------


def ready(pid: int) -> Ready:
    return {"event": "ready", "pid": pid}


def start(frames: list[int], todo: list[int]) -> Start:
    return {"event": "start", "frames": frames, "todo": todo}


def loading(model: str) -> Loading:
    return {"event": "loading", "model": model}


def workers(count: int, address: str, resources: dict[str, float], per_worker: dict[str, float]) -> Workers:
    return {"event": "workers", "count": count, "address": address, "resources": resources, "per_worker": per_worker}


def progress(frames: list[int], step: int, steps: int, done: int, total: int, upscale: bool = False,
             timing: dict | None = None) -> Progress:
    """`timing`: {"elapsed", "eta"} (progress.Pace.timing)."""
    event: Progress = {"event": "progress", "frames": frames, "step": step, "steps": steps, "done": done,
                       "total": total}
    if upscale:
        event["pass"] = "upscale"
    if timing:
        event.update(timing)  # type: ignore[typeddict-item]
    return event


def preview(frame: int, step: int, steps: int, path: str) -> Preview:
    return {"event": "preview", "frame": frame, "step": step, "steps": steps, "path": path}


def frame(frame: int, path: str, skipped: bool, done: int, total: int, timing: dict | None = None) -> Frame:
    event: Frame = {"event": "frame", "frame": frame, "path": path, "skipped": skipped, "done": done, "total": total}
    if timing:
        event.update(timing)  # type: ignore[typeddict-item]
    return event


def upscale_start(frames: list[int], todo: list[int], missing: list[int], upscale_dir: str) -> UpscaleStart:
    return {"event": "upscale_start", "frames": frames, "todo": todo, "missing": missing, "upscale_dir": upscale_dir}


def upscaled(frame: int, path: str, skipped: bool, done: int, total: int) -> Upscaled:
    return {"event": "upscaled", "frame": frame, "path": path, "skipped": skipped, "done": done, "total": total}


def finished(rendered: int, skipped: int, cancelled: bool, output_dir: str) -> Finished:
    """A render's summary; a Ray render adds "retried", an upscaling pass its counts (see Finished)."""
    return {"event": "finished", "rendered": rendered, "skipped": skipped, "cancelled": cancelled,
            "output_dir": output_dir}


def upscale_finished(upscaled: int, upscale_skipped: int, upscale_missing: int, upscale_dir: str, cancelled: bool,
                     output_dir: str) -> UpscaleFinished:
    return {"event": "finished", "pass": "upscale", "upscaled": upscaled, "upscale_skipped": upscale_skipped,
            "upscale_missing": upscale_missing, "upscale_dir": upscale_dir, "cancelled": cancelled,
            "output_dir": output_dir}


def error(kind: ErrorKind, message: str) -> Error:
    return {"event": "error", "kind": kind, "message": message}


def exited(code: int, message: str) -> Exit:
    return {"event": "exit", "code": code, "message": message}


def on_worker(event: Event, worker: str) -> Event:
    """The event as a Ray worker's: the same with "worker" (its "host:pid") added."""
    return {**event, "worker": worker}  # type: ignore[return-value]


# -- saying them ------------------------------------------------------------------------------------------------


def describe(event: Event) -> str:
    """The event for a person, one line (an exit with last words: more); "" for one that tells a person nothing
    (a frame or upscaled frame that was current already, a kind it doesn't know)."""
    say = _SAY.get(event.get("event"))
    return say(event) if say else ""


def _frames(frames: list[int]) -> str:
    first, last = frames[0], frames[-1]
    return f"frame {first}" if first == last else f"frames {first}-{last}"


def clock(seconds: float) -> str:
    """0:42, 2:10, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def timing(elapsed: float | None, eta: float | None) -> str:
    """'0:42 elapsed, about 2:10 left'; '0:42 elapsed' with no estimate (None or negative: Blender's status keeps -1);
    '' with no elapsed time (None or 0: nothing started yet)."""
    if not elapsed or elapsed < 0:
        return ""
    return f"{clock(elapsed)} elapsed" + (f", about {clock(eta)} left" if eta is not None and eta >= 0 else "")


def _timed(text: str, e: dict) -> str:
    said = timing(e.get("elapsed"), e.get("eta"))
    return f"{text} · {said}" if said else text


def progress_text(e: Progress) -> str:
    """A progress event without its timing (what a progress bar says; the timing goes beside it)."""
    what = "upscaled" if e.get("pass") == "upscale" else "done"
    return f"{e['done']}/{e['total']} {what}, {_frames(e['frames'])}: step {e['step']}/{e['steps']}"


def _progress(e: Progress) -> str:
    return _timed(progress_text(e), e)


def _frame(e: Frame) -> str:
    return "" if e["skipped"] else _timed(f"[{e['done']}/{e['total']}] frame {e['frame']} -> {e['path']}", e)


def _workers(e: Workers) -> str:
    each = [f"{e['per_worker'][key]:g} {name}{'' if e['per_worker'][key] == 1 else 's'}"
            for key, name in (("num_gpus", "GPU"), ("num_cpus", "CPU")) if e["per_worker"].get(key)]
    return f"Ray cluster {e['address']}: {e['count']} workers" + (f", {' and '.join(each)} each" if each else "")


def _upscale_start(e: UpscaleStart) -> str:
    missing = e["missing"]
    return f"Upscaling {len(e['todo'])} of {len(e['frames'])} frames" + (
        f"; {len(missing)} frames skipped: no current main frame on disk (render them first)" if missing else "")


def _finished(e: Finished | UpscaleFinished) -> str:
    head = "Cancelled" if e["cancelled"] else "Done"
    if e.get("pass") == "upscale":
        missing = e["upscale_missing"]
        return f"{head}: {e['upscaled']} upscaled, {e['upscale_skipped']} up to date" + (
            f", {missing} without a current main frame" if missing else "")
    return f"{head}: {e['rendered']} rendered, {e['skipped']} up to date" + (
        f", {e['upscaled']} upscaled" if e.get("upscaled") else "") + _flicker(e.get("flicker"))


def _flicker(figures: dict | None) -> str:
    """The flicker figure as a person reads it: the warping error (engine/flicker.py), beside the input's."""
    if not figures or figures.get("warping_error") is None:
        return ""
    said = f"; flicker {figures['warping_error']:.4f}"
    reference = (figures.get("reference") or {}).get("warping_error")
    return said + (f" (input {reference:.4f})" if reference is not None else "")


def _exit(e: Exit) -> str:
    words = e.get("message") or ""
    return f"The engine worker stopped (exit code {e['code']}); finished frames are kept." + (
        f"\n{words}" if words else "")


_SAY: dict[str, Callable[..., str]] = {
    "ready": lambda e: f"Engine worker ready (pid {e['pid']})",
    "start": lambda e: f"{len(e['todo'])} of {len(e['frames'])} frames to render",
    "loading": lambda e: f"Loading {e['model']}" + (f" on {e['worker']}" if "worker" in e else ""),
    "workers": _workers,
    "progress": _progress,
    "preview": lambda e: "",  # a picture, not words
    "frame": _frame,
    "upscale_start": _upscale_start,
    "upscaled": lambda e: "" if e["skipped"] else
    f"[{e['done']}/{e['total']}] upscaled frame {e['frame']} -> {e['path']}",
    "finished": _finished,
    "error": lambda e: e["message"],
    "exit": _exit,
}


# -- printing them on a terminal --------------------------------------------------------------------------------

# The seconds a terminal may stay silent while a frame denoises: a step line after that long (a long first frame, a
# slow CPU), never one per step.
QUIET_SECONDS = 10.0


def line_printer(write: Callable[[str], None], leave: tuple[str, ...] = (), quiet: float = QUIET_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> Emit:
    """What a terminal shows of a render (the engine CLI, Blender's -c command and -a render hook): every event said
    for a person (a line per finished frame with the count, elapsed and estimate), but denoising steps only when
    nothing was printed for `quiet` seconds, and no previews. `leave`: kinds the caller says itself."""
    last = [clock()]

    def emit(event: Event) -> None:
        kind = event.get("event")
        if kind in leave:
            return
        if kind == "progress" and clock() - last[0] < quiet:
            return
        said = describe(event)
        if said:
            write(said)
            last[0] = clock()

    return emit
