"""Render a plan over a Ray cluster: the frames of one plan spread over several machines' GPUs (or CPU slots).

Ray does the distributing (placement, transport, failure detection); this module only hands out units of work (the
mode says what one is: Mode.units, see modes/__init__.py) and keeps the output folder the single truth, as in a local
run:

- independent modes (interpolate, video/scene input): a unit is one batch, the same batch the local renderer would
  form from the same frames, so every frame goes through the same pipeline call and comes out identical;
- feedback: a unit is one chain (the plan's frames from a start or restart to the next); a chain runs on one worker,
  resuming from the frames of it already on disk;
- clip: a unit is one clip (likewise from a start or restart), denoised whole by one worker, which sends back only
  the frames not already current.

Each worker is a Ray actor holding one `Renderer`, so a model is loaded once per worker and reused for every unit it
gets. Frames are streamed back to this process, which writes them into the output folder (no shared storage
needed), or, with `shared=True`, workers write into the output folder themselves (it must be the same path on every
machine); the manifest is merged under a file lock either way. A worker that dies has its unit retried on another
one; frames it finished are kept, and the retried unit resumes after them. Events are the local renderer's (see
renderer.py), plus "workers" once the cluster is known, and "worker" ("host:pid") on loading, progress and
rendered frame events (records and texts: events.py).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import events, modes
from . import plan as plan_mod
from .errors import ModelError
from .frames import FrameStore
from .models.options import LoadOptions
from .progress import Pace
from .renderer import Emit, Renderer, frame_params, plan_work

ENGINE_DIR = os.path.dirname(os.path.abspath(__file__))
# Environment a worker needs to find the same models and caches as this process (when the paths exist there).
_PASSED_ENV = ("KEYFRAME_DIFFUSION_CACHE", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_ENDPOINT")
MAX_ATTEMPTS = 3  # a unit whose worker dies this many times is reported instead of killing worker after worker
START_TIMEOUT = 120.0  # seconds to wait for at least one worker when none is up
CANCEL_TIMEOUT = 60.0


class DistributedError(RuntimeError):
    """The cluster could not render the plan (no Ray, no workers, a unit that keeps killing its workers)."""


def require_ray():
    try:
        import ray
    except ImportError as e:
        raise DistributedError(
            "Ray is not installed in the engine Python: pip install -r requirements/ray.txt "
            "(the same Ray version on every machine of the cluster)") from e
    return ray


@dataclass
class Unit:
    """One piece of work for one worker: a sub-plan of these frames, and the range of them to render."""

    frames: list[int]
    frame_range: tuple[int, int] | None = None
    attempts: int = 0
    workers: list[str] = field(default_factory=list)  # who had it (the ids of workers that died on it)


def units(plan: dict, todo: list[dict], records: list[dict]) -> list[Unit]:
    """The units of work for the frames in `todo` (of the render's `records`), in frame order: the mode's (see
    modes.Mode.units)."""
    mode = modes.get(plan["settings"]["mode"])
    return [Unit(frames, frame_range) for frames, frame_range in mode.units(plan, todo, records)]


def sub_plan(plan: dict, frames: list[int], output_dir: str) -> dict:
    keep = set(frames)
    return {**plan, "settings": {**plan["settings"], "output_dir": output_dir},
            "frames": [r for r in plan["frames"] if r["frame"] in keep]}


class FrameWorker:
    """A Ray actor: one Renderer (the model stays loaded between units) and a way to cancel its current unit."""

    def __init__(self, options: dict, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.renderer = Renderer(LoadOptions(**options))
        self.cancels: dict[int, threading.Event] = {}  # units running now, by the caller's token
        self.early: set[int] = set()
        self.lock = threading.Lock()

    def info(self) -> dict:
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname()}

    def busy(self) -> int:
        """How many units this worker is rendering now (0 once a cancel has taken effect)."""
        with self.lock:
            return len(self.cancels)

    def cancel(self, token: int) -> None:
        with self.lock:
            if token in self.cancels:
                self.cancels[token].set()
            else:  # not started yet (or already over): a unit that starts with this token starts cancelled
                self.early.add(token)

    def render(self, plan: dict, frame_range, seeds: dict, shared: bool, token: int):
        """Render a unit, yielding the renderer's events; rendered frames carry their PNG bytes unless `shared`.

        `seeds` are finished frames of the unit ({frame: (png bytes, hash)}) that a feedback chain resumes from.
        """
        with self.lock:
            cancel = self.cancels[token] = threading.Event()
            if token in self.early:
                cancel.set()
            # Tokens grow with each unit a caller sends: older early cancels can no longer match anything.
            self.early = {t for t in self.early if t > token}
        scratch = None if shared else tempfile.mkdtemp(prefix="kd-ray-")
        stream: queue.Queue = queue.Queue()
        # The upscaling pass runs once on the driver, over all the frames, not per unit on the workers.
        plan = {**plan, "settings": {k: v for k, v in plan["settings"].items() if k != "upscale"}}
        try:
            if scratch is not None:
                store = FrameStore(scratch)
                for frame, (data, digest) in seeds.items():
                    store.write_png(int(frame), data, digest)
                plan = {**plan, "settings": {**plan["settings"], "output_dir": scratch}}

            def run() -> None:
                try:
                    # With shared storage the driver holds the output folder for the whole render.
                    self.renderer.render(plan, frame_range, stream.put, cancel, hold_folder=scratch is not None)
                except plan_mod.PlanError as e:
                    stream.put(events.error("plan", str(e)))
                except ModelError as e:
                    stream.put(events.error("model", str(e)))
                except Exception as e:  # reported to the caller, which stops the other workers
                    stream.put(events.error("internal", f"{type(e).__name__}: {e}"))
                stream.put(None)

            thread = threading.Thread(target=run, name="kd-unit", daemon=True)
            thread.start()
            while (event := stream.get()) is not None:
                if event["event"] == "frame" and not event["skipped"] and scratch is not None:
                    with open(event["path"], "rb") as f:
                        event = {**event, "png": f.read()}
                yield event
            thread.join()
        finally:
            cancel.set()  # a caller that stops listening (closed stream) stops the render too
            with self.lock:
                self.cancels.pop(token, None)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def connect(address: str | None, **init_options) -> None:
    """Join the cluster at `address` ("auto", "HOST:PORT" or "ray://HOST:10001"), or start a local one.

    The engine package travels with the job (Ray's py_modules), so the cluster's machines need only the engine's
    requirements installed, not this extension. `init_options` go to ray.init (a local cluster's num_cpus...).
    """
    ray = require_ray()
    if ray.is_initialized():
        return
    if address and address != "auto":
        check_reachable(address)
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    try:
        ray.init(address=address or None, include_dashboard=False, configure_logging=False, log_to_driver=False,
                 runtime_env={"py_modules": [ENGINE_DIR], "env_vars": env}, **init_options)
    except ConnectionError as e:
        raise DistributedError(f"can't reach the Ray cluster at '{address}': {e}") from e


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nobody answers at: Ray itself retries an unreachable one for minutes."""
    import socket

    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise DistributedError(f"Ray cluster address '{address}' is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise DistributedError(f"can't reach the Ray cluster at '{address}' ({e.strerror or e}): is Ray running there "
                               "(ray start --head) and the port open?") from e


def cluster_slots(workers: int | None) -> tuple[int, dict]:
    """How many workers to start and the resources each takes: one per GPU, else one per CPU slot."""
    ray = require_ray()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:
        count = min(workers or gpus, gpus)
        return count, {"num_gpus": 1, "num_cpus": max(1, min(2, cpus // count))}
    count = max(1, min(workers or cpus, cpus))
    return count, {"num_cpus": max(1, cpus // count)}


class RayRenderer:
    """Renders plans over a Ray cluster; its workers (and their loaded models) stay up between renders, like the
    local worker's Renderer."""

    def __init__(self, options: LoadOptions | None = None, address: str | None = None, workers: int | None = None,
                 shared: bool = False):
        self.options = options or LoadOptions()
        self._upscaling: Renderer | None = None  # the local upscaling pass, kept warm between renders
        self.address = address
        self.workers_wanted = workers
        self.shared = shared
        self._actors: list = []
        self._resources: dict = {}
        self._count = 0
        self._token = 0

    # -- the pool -------------------------------------------------------------------------------------------------

    def _new_actor(self):
        ray = require_ray()
        options = {"allow_download": self.options.allow_download, "allow_unsafe": self.options.allow_unsafe,
                   "device": self.options.device, "single_file_config": self.options.single_file_config}
        # Threaded (max_concurrency) so that cancel() runs while render() is busy.
        cls = ray.remote(FrameWorker).options(max_concurrency=4, **self._resources)
        return cls.remote(options, self._resources.get("num_cpus", 1))

    def connect(self) -> None:
        connect(self.address)

    def start(self, emit: Emit) -> None:
        connect(self.address)
        count, self._resources = cluster_slots(self.workers_wanted)
        self._count = count
        while len(self._actors) < count:
            self._actors.append(self._new_actor())
        ray = require_ray()
        emit(events.workers(count, self.address or "local",
                            {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")},
                            dict(self._resources)))

    def release(self) -> None:
        ray = require_ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []

    # -- rendering ------------------------------------------------------------------------------------------------

    def render(self, plan: dict, frame_range: tuple[int, int] | None, emit: Emit,
               cancel: threading.Event | None = None, preview: bool | float = False) -> dict:
        """`preview` is accepted for the worker protocol's sake and ignored: the frames denoise on the workers."""
        store = FrameStore(plan["settings"]["output_dir"])
        with store.rendering():  # a second render into the folder is refused (workers on shared storage write in it)
            return self._render(plan, frame_range, emit, cancel or threading.Event(), store)

    def _render(self, plan: dict, frame_range: tuple[int, int] | None, emit: Emit, cancel: threading.Event,
                store: FrameStore) -> dict:
        settings = plan["settings"]
        work = plan_work(plan, frame_range, store)
        total = len(work.records)
        done = work.announce(store, emit)
        store.expect(len(work.todo))
        by_frame = {r["frame"]: r for r in work.chain}
        pending = deque(units(plan, work.todo, work.records))
        pace = Pace(plan_mod.frames_of(work.todo))  # the whole render's, not each worker's
        rendered, retried = 0, 0
        cancelled = False
        if pending and cancel.is_set():
            cancelled = True
        elif pending:
            self.start(emit)
            run = _Run(self, plan, store, work.hashes, emit, pace)
            try:
                rendered, cancelled = run.drive(pending, cancel, by_frame, done, total)
            finally:
                run.stop()
                store.compact()  # with shared storage, the workers' journal lines too
            retried = run.retried
        summary = events.finished(rendered, total - len(work.todo), cancelled, store.folder)
        summary["retried"] = retried
        if settings.get("upscale"):
            # The upscaling pass runs here, beside the finished frames (a cancelled render skips it).
            if self._upscaling is None:
                self._upscaling = Renderer(self.options)
            summary.update(self._upscaling._upscale_pass(plan, work.records, work.hashes, store, emit, cancel,
                                                         skip=cancelled))
        emit(summary)
        return summary


class _Run:
    """One render's bookkeeping: which worker has which unit, their event streams, retries and cancel."""

    def __init__(self, owner: RayRenderer, plan: dict, store: FrameStore, hashes: dict, emit: Emit,
                 pace: Pace | None = None):
        self.owner, self.plan, self.store, self.hashes, self.emit = owner, plan, store, hashes, emit
        self.pace = pace or Pace([])
        self.events: queue.Queue = queue.Queue()
        self.ready: list = []  # idle workers
        self.busy: dict = {}  # worker -> (unit, token)
        self.names: dict = {}  # worker -> "host:pid"
        self.starting = set()
        self.threads: list[threading.Thread] = []
        self.retried = 0  # units handed to another worker after theirs died
        self.start_failures = 0
        # drive()'s: units waiting, frames rendered, whether it stops early and why.
        self.pending: deque = deque()
        self.by_frame: dict = {}
        self.done = self.total = self.rendered = 0
        self.cancelling = False
        self.failure: Exception | None = None
        self.idle_since = time.monotonic()
        for actor in owner._actors:
            self._greet(actor)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="kd-ray")
        thread.start()
        self.threads.append(thread)

    def _greet(self, actor) -> None:
        """Ask a (maybe still starting) worker who it is; it joins the ready list once it answers."""
        import ray

        self.starting.add(actor)

        def hello():
            try:
                self.events.put(("ready", actor, None, ray.get(actor.info.remote())))
            except Exception as e:  # RayActorError: it died starting (no torch there, killed, node lost)
                self.events.put(("died", actor, None, e))

        self._spawn(hello)

    def _seeds(self, unit: Unit) -> dict:
        """Finished frames of a unit that travel with it (streaming mode: the worker has its own scratch folder)."""
        if self.owner.shared:
            return {}
        self.store.refresh()
        return {f: (_read_bytes(self.store.path(f)), self.hashes[f]) for f in unit.frames
                if self.store.is_current(f, self.hashes[f])}

    def _dispatch(self, actor, unit: Unit) -> None:
        import ray

        self.owner._token += 1
        token = self.owner._token
        self.busy[actor] = (unit, token)
        unit.attempts += 1
        sub = sub_plan(self.plan, unit.frames, self.plan["settings"]["output_dir"])
        seeds = self._seeds(unit)

        def pump():
            try:
                for ref in actor.render.remote(sub, unit.frame_range, seeds, self.owner.shared, token):
                    self.events.put(("event", actor, unit, ray.get(ref)))
                self.events.put(("done", actor, unit, None))
            except Exception as e:  # RayActorError: the worker died; or the stream broke (object lost, node gone)
                self.events.put(("died", actor, unit, e))

        self._spawn(pump)

    def drive(self, pending: deque, cancel: threading.Event, by_frame: dict, done: int,
              total: int) -> tuple[int, bool]:
        """Hand units to idle workers and take in what they send until every unit is done, or the render is cancelled
        or has failed (raised here); returns (frames rendered, whether it stopped early)."""
        self.pending, self.by_frame, self.done, self.total = pending, by_frame, done, total
        self.rendered, self.cancelling, self.failure = 0, False, None
        self.idle_since = time.monotonic()
        handle = {"ready": self._on_ready, "done": self._on_done, "died": self._on_died, "event": self._on_event}
        cancel_deadline = None
        while (pending and not self.cancelling) or self.busy:
            if cancel.is_set() and not self.cancelling:
                self._stop_early()
            if self.cancelling and cancel_deadline is None:
                cancel_deadline = time.monotonic() + CANCEL_TIMEOUT
            while pending and self.ready and not self.cancelling:
                self._dispatch(self.ready.pop(0), pending.popleft())
            if self.cancelling and time.monotonic() > cancel_deadline:
                self._kill_busy()
                break
            self._check_started()
            try:
                kind, actor, unit, payload = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            handle[kind](actor, unit, payload)
        if self.failure is not None:
            raise self.failure
        return self.rendered, self.cancelling

    def _stop_early(self, failure: Exception | None = None) -> None:
        """Cancel every unit running (the render was cancelled, or failed with `failure`: the first one is raised)."""
        if failure is not None:
            if self.failure is not None:
                return
            self.failure = failure
        self.cancelling = True
        self._cancel_all()

    def _check_started(self) -> None:
        if self.busy or self.ready:
            self.idle_since = time.monotonic()
        elif time.monotonic() - self.idle_since > START_TIMEOUT:
            raise DistributedError(f"no Ray worker started within {START_TIMEOUT:.0f} s: does the cluster have "
                                   f"a free {'GPU' if 'num_gpus' in self.owner._resources else 'CPU'}?")

    def _on_ready(self, actor, _unit, info: dict) -> None:
        self.starting.discard(actor)
        self.names[actor] = f"{info['host']}:{info['pid']}"
        self.ready.append(actor)

    def _on_done(self, actor, _unit, _payload) -> None:
        self.busy.pop(actor, None)
        self.ready.append(actor)

    def _on_died(self, actor, unit: Unit | None, error: Exception) -> None:
        self.starting.discard(actor)
        self.busy.pop(actor, None)
        self._forget(actor)
        if unit is None and actor not in self.names:
            self.start_failures += 1
            if self.start_failures >= MAX_ATTEMPTS and not self.names:
                raise DistributedError(f"Ray workers fail to start: {_first_lines(error)}")
        if self.cancelling or (unit is not None and not self._retry(unit, actor, error)):
            return
        # Ray places the new worker wherever there is room; workers that never start are not replaced forever.
        if len(self.owner._actors) < self.owner._count and self.start_failures < 3 * self.owner._count:
            self._replace()

    def _retry(self, unit: Unit, actor, error: Exception) -> bool:
        """Put a dead worker's unit back in line; False (the render stops) once it has killed MAX_ATTEMPTS workers."""
        unit.workers.append(self.names.get(actor, "?"))
        if unit.attempts >= MAX_ATTEMPTS:
            self._stop_early(DistributedError(
                f"frames {unit.frames[0]}-{unit.frames[-1]}: {unit.attempts} workers died rendering "
                f"them ({', '.join(unit.workers)}); last: {_first_lines(error, 3)}"))
            return False
        self.pending.appendleft(unit)  # finished frames of it are kept; the retry resumes after them
        self.retried += 1
        return True

    def _on_event(self, actor, _unit, event: dict) -> None:
        """A worker's event: passed on as this render's (a rendered frame written here first); an error stops it."""
        kind = event["event"]
        worker = self.names.get(actor, "?")
        if kind == "loading":
            self.emit(events.on_worker(event, worker))
        elif kind == "progress":
            self.pace.step(event["frames"], event["step"], event["steps"])
            self.emit(events.on_worker({**event, "done": self.done + self.rendered, "total": self.total,
                                        **self.pace.timing()}, worker))
        elif kind == "frame" and not event["skipped"]:
            frame = event["frame"]
            if "png" in event:
                path = self.store.write_png(frame, event["png"], self.hashes[frame],
                                            frame_params(self.plan["settings"], self.by_frame[frame]))
            else:
                self.store.refresh()
                path = self.store.path(frame)
            self.rendered += 1
            self.pace.frame(frame)
            self.emit(events.on_worker(events.frame(frame, path, False, self.done + self.rendered, self.total,
                                                    timing=self.pace.timing()), worker))
        elif kind == "error":
            kinds = {"plan": plan_mod.PlanError, "model": ModelError}
            self._stop_early(kinds.get(event["kind"], DistributedError)(event["message"]))

    def _forget(self, actor) -> None:
        owner = self.owner
        if actor in owner._actors:
            owner._actors.remove(actor)
        if actor in self.ready:
            self.ready.remove(actor)

    def _replace(self) -> None:
        """Start a worker in place of a dead one."""
        actor = self.owner._new_actor()
        self.owner._actors.append(actor)
        self._greet(actor)

    def _cancel_all(self) -> None:
        for actor, (_unit, token) in list(self.busy.items()):
            actor.cancel.remote(token)

    def _kill_busy(self) -> None:
        import ray

        for actor in list(self.busy):
            ray.kill(actor)
            self._forget(actor)
        self.busy.clear()

    def stop(self) -> None:
        self._cancel_all()  # units still running when the driver stops early (an error here) must not go on
        for thread in self.threads:
            thread.join(timeout=0.1)


def _first_lines(error: Exception, count: int = 12) -> str:
    return "\n".join(str(error).strip().splitlines()[:count])


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
