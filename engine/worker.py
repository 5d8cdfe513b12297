"""The engine worker: a subprocess that renders plans and speaks JSON lines.

Commands on stdin, one JSON object per line:
  {"cmd": "render", "plan": PATH, "frames": [A, B] | null, "ray": null | {"address": str, "workers": int | null,
   "shared": bool}, "id": str | int (optional), "preview": bool (optional)}
                             (with "ray": the frames are spread over a Ray cluster; with "preview": live previews
                             of the frame being denoised, preview events, see preview.py)
  {"cmd": "cancel", "id": ... (optional)}   stops, within one denoising step, the render with that id, or without an
                             id every render sent before it (running or queued); a cancel that finds none (the worker
                             idle, the render already over) does nothing: it never reaches a later render
  {"cmd": "quit"}            (end of stdin means the same: a worker never outlives Blender)
Events on stdout (records and texts: events.py): ready, the renderer's events, and error (kind: plan, model,
output, cluster, environment, protocol or internal), after which the worker waits for the next command. Anything libraries
print goes to stderr, never into the protocol.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback
from typing import IO

from . import events
from . import plan as plan_mod
from .distributed import DistributedError as _DistributedError
from .errors import ModelError, OutputFolderError
from .models.options import LoadOptions
from .renderer import Emit, Renderer


def _protocol_stream() -> IO[str]:
    # Keep the real stdout for the protocol and point fd 1 / sys.stdout at stderr, so a stray print() or a
    # C library writing to fd 1 can't corrupt a line.
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8")


def serve(options: LoadOptions, stdin: IO[str] | None = None, out: IO[str] | None = None) -> int:
    stdin = stdin or sys.stdin
    emit = _emitter(out or _protocol_stream())
    commands: queue.Queue = queue.Queue()
    live = _LiveRenders()
    renderers = _Renderers(options)
    emit(events.ready(os.getpid()))  # always the first line; commands wait in the pipe until the reader starts
    threading.Thread(target=_read_commands, args=(stdin, commands, live, emit), daemon=True,
                     name="kd-commands").start()
    while (item := commands.get())[0].get("cmd") != "quit":
        cmd, cancel = item
        if cmd.get("cmd") == "render":
            try:
                _render(cmd, renderers, emit, cancel)
            finally:
                live.remove(cancel)
        else:
            emit(events.error("protocol", f"unknown command {cmd.get('cmd')!r}"))
    return 0


class _LiveRenders:
    """The renders sent and not yet over (queued or running), each with its own cancel event. A cancel sets only
    these, so one that arrives while the worker is idle, or just after a render ended, is dropped instead of stopping
    the next render; the reader registers a render before queueing it, so a cancel sent after it always finds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._renders: list[tuple[object, threading.Event]] = []

    def add(self, render_id: object) -> threading.Event:
        cancel = threading.Event()
        with self._lock:
            self._renders.append((render_id, cancel))
        return cancel

    def remove(self, cancel: threading.Event) -> None:
        with self._lock:
            self._renders = [(i, c) for i, c in self._renders if c is not cancel]

    def cancel(self, render_id: object = None) -> None:
        """Cancel the render with this id (None: every live one)."""
        with self._lock:
            for i, c in self._renders:
                if render_id is None or i == render_id:
                    c.set()


def _emitter(out: IO[str]) -> Emit:
    """Writes each event as one JSON line; the lock keeps lines whole when threads emit at once."""
    lock = threading.Lock()

    def emit(event: events.Event) -> None:
        with lock:
            out.write(json.dumps(event) + "\n")
            out.flush()

    return emit


def _read_commands(stdin: IO[str], commands: queue.Queue, live: _LiveRenders, emit: Emit) -> None:
    """The command reader (a thread): a cancel takes effect at once, other commands queue (a render with its own
    cancel event); end of stdin cancels everything and quits."""
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
        except json.JSONDecodeError:
            emit(events.error("protocol", f"not a JSON command: {line[:80]}"))
            continue
        if not isinstance(cmd, dict):
            emit(events.error("protocol", f"a command is a JSON object, got: {line[:80]}"))
        elif not isinstance(cmd.get("id"), (str, int, type(None))) or isinstance(cmd.get("id"), bool):
            emit(events.error("protocol", f"a command's \"id\" is a string or an integer, got: {line[:80]}"))
        elif cmd.get("cmd") == "cancel":
            live.cancel(cmd.get("id"))
        elif cmd.get("cmd") == "render":
            commands.put((cmd, live.add(cmd.get("id"))))
        else:
            commands.put((cmd, None))
    live.cancel()
    commands.put(({"cmd": "quit"}, None))


class _Renderers:
    """The local renderer and one RayRenderer per cluster choice, each kept (with its models) between renders."""

    def __init__(self, options: LoadOptions):
        self.options = options
        self.local = Renderer(options)
        self.ray: dict = {}

    def choose(self, ray: dict | None):
        if ray is None:
            return self.local
        from .distributed import RayRenderer

        key = (ray.get("address") or "", ray.get("workers"), bool(ray.get("shared")))
        if key not in self.ray:
            self.ray[key] = RayRenderer(self.options, key[0] or None, key[1], key[2])
        return self.ray[key]


def _render(cmd: dict, renderers: _Renderers, emit: Emit, cancel: threading.Event) -> None:
    """One render command; a failure becomes an error event and the worker waits for the next command."""
    try:
        plan = plan_mod.load(cmd["plan"])
        frames = cmd.get("frames")
        renderers.choose(cmd.get("ray")).render(plan, tuple(frames) if frames else None, emit, cancel,
                                                preview=cmd.get("preview") is True)
    except Exception as e:  # the worker reports and stays up; Blender decides what to do
        emit(_error(e, cmd))


def _error(e: Exception, cmd: dict) -> events.Error:
    if isinstance(e, plan_mod.PlanError):
        return events.error("plan", f"{cmd['plan']}: {e}")
    if isinstance(e, ModelError):
        return events.error("model", str(e))
    if isinstance(e, OutputFolderError):  # another program's files there, another render in it, a full disk
        return events.error("output", str(e))
    if isinstance(e, _DistributedError):
        return events.error("cluster", str(e))
    if isinstance(e, ImportError):  # the chosen interpreter lacks the engine's libraries
        from .environment import missing_packages

        missing = missing_packages()
        return events.error("environment", (
            f"the engine Python ({sys.executable}) can't import {e.name or e}"
            f"{' (missing there: ' + ', '.join(missing) + ')' if missing else ''}: install the engine "
            "requirements there (pip install -r requirements/engine.txt) or choose another Engine Python in the "
            "preferences"))
    traceback.print_exc()
    return events.error("internal", f"{type(e).__name__}: {e}")
