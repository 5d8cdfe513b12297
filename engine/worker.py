"""The engine worker: a subprocess that renders plans and speaks JSON lines.

Commands on stdin, one JSON object per line:
  {"cmd": "render", "plan": PATH, "frames": [A, B] | null, "ray": null | {"address": str, "workers": int | null,
   "shared": bool}}     (with "ray": the frames are spread over a Ray cluster, see distributed.py)
  {"cmd": "cancel"}          stops the render in progress within one denoising step
  {"cmd": "quit"}            (end of stdin means the same: a worker never outlives Blender)
Events on stdout: {"event": "ready"}, the renderer's events (see renderer.py), and
  {"event": "error", "kind": "plan" | "model" | "internal", "message": str}
after which the worker waits for the next command. Anything libraries print goes to stderr, never into the protocol.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import traceback
from typing import IO

from . import plan as plan_mod
from .distributed import DistributedError as _DistributedError
from .errors import ModelError
from .models.options import LoadOptions
from .renderer import Renderer


def _protocol_stream() -> IO[str]:
    # Keep the real stdout for the protocol and point fd 1 / sys.stdout at stderr, so a stray print() or a
    # C library writing to fd 1 can't corrupt a line.
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8")


def serve(options: LoadOptions, stdin: IO[str] | None = None, out: IO[str] | None = None) -> int:
    stdin = stdin or sys.stdin
    out = out or _protocol_stream()
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            out.write(json.dumps(event) + "\n")
            out.flush()

    commands: queue.Queue = queue.Queue()
    cancel = threading.Event()

    def read_commands() -> None:
        for line in stdin:
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except json.JSONDecodeError:
                emit({"event": "error", "kind": "protocol", "message": f"not a JSON command: {line[:80]}"})
                continue
            if cmd.get("cmd") == "cancel":
                cancel.set()
            else:
                commands.put(cmd)
        cancel.set()
        commands.put({"cmd": "quit"})

    threading.Thread(target=read_commands, daemon=True, name="kd-commands").start()
    renderer = Renderer(options)
    ray_renderers: dict = {}  # one per cluster choice, kept (with its workers' models) between renders
    emit({"event": "ready", "pid": os.getpid()})
    while True:
        cmd = commands.get()
        name = cmd.get("cmd")
        if name == "quit":
            return 0
        if name != "render":
            emit({"event": "error", "kind": "protocol", "message": f"unknown command {name!r}"})
            continue
        try:
            plan = plan_mod.load(cmd["plan"])
            frames = cmd.get("frames")
            chosen = renderer
            if cmd.get("ray") is not None:
                from .distributed import RayRenderer

                ray = cmd["ray"]
                key = (ray.get("address") or "", ray.get("workers"), bool(ray.get("shared")))
                if key not in ray_renderers:
                    ray_renderers[key] = RayRenderer(options, key[0] or None, key[1], key[2])
                chosen = ray_renderers[key]
            chosen.render(plan, tuple(frames) if frames else None, emit, cancel)
        except plan_mod.PlanError as e:
            emit({"event": "error", "kind": "plan", "message": f"{cmd['plan']}: {e}"})
        except ModelError as e:
            emit({"event": "error", "kind": "model", "message": str(e)})
        except _DistributedError as e:
            emit({"event": "error", "kind": "cluster", "message": str(e)})
        except ImportError as e:  # the chosen interpreter lacks the engine's libraries
            from .environment import missing_packages

            missing = missing_packages()
            emit({"event": "error", "kind": "environment", "message": (
                f"the engine Python ({sys.executable}) can't import {e.name or e}"
                f"{' (missing there: ' + ', '.join(missing) + ')' if missing else ''}: install the engine "
                "requirements there (pip install -r requirements/engine.txt) or choose another Engine Python in the "
                "preferences")})
        except Exception as e:  # the worker reports and stays up; Blender decides what to do
            traceback.print_exc()
            emit({"event": "error", "kind": "internal", "message": f"{type(e).__name__}: {e}"})
        finally:
            cancel.clear()
