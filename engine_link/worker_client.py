"""Blender's side of the worker protocol: start the engine subprocess, send commands, read events.

No bpy here: Blender polls `events()` from a timer (modal) or in a loop (background), always on the main thread.
The worker can crash, hang or be killed: Blender only ever sees an "exit" event, never an exception from the pipe.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
from typing import Iterator


class WorkerError(RuntimeError):
    """The worker could not start or stopped unexpectedly; the message carries its last words."""


class WorkerClient:
    def __init__(
        self,
        extension_dir: str,
        python: str | None = None,
        *,
        allow_download: bool = False,
        allow_unsafe: bool = False,
        env: dict[str, str] | None = None,
        wheels_dir: str | None = None,
    ):
        self.extension_dir = extension_dir
        self.python = python or sys.executable
        self.own_python = python is None
        # Where Blender installed the extension's bundled wheels (the light/full builds); None for a source build.
        self.wheels_dir = wheels_dir if wheels_dir and os.path.isdir(wheels_dir) else None
        self.flags = (["--allow-download"] if allow_download else []) + (["--allow-unsafe"] if allow_unsafe else [])
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)

    @property
    def key(self) -> tuple:
        return (self.python, tuple(self.flags), tuple(sorted(self.extra_env.items())))

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [self.extension_dir]
        if not os.path.isfile(self.python) and not _on_path(self.python):
            raise WorkerError(f"engine Python '{self.python}' does not exist; fix it in the extension preferences")
        if self.own_python:
            # Blender's Python finds the bundled wheels through Blender's own sys.path; hand it on.
            paths += [p for p in sys.path if p and os.path.isdir(p)]
        elif self.wheels_dir and python_version(self.python) == "%d.%d" % sys.version_info[:2]:
            # The light build: the user's Python brings torch, the bundled wheels the rest (pinned, so they go
            # first). Compiled wheels only load in the Python version they were built for, hence the check.
            paths.append(self.wheels_dir)
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def run_command(self, args: list[str], timeout: float = 600) -> str:
        """Run a one-off `python -m engine ARGS` (e.g. export) with the worker's interpreter; returns stdout."""
        try:
            done = subprocess.run([self.python, "-m", "engine", *args], cwd=self.extension_dir, env=self._env(),
                                  capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise WorkerError(f"engine command {args[0]} failed: {e}") from e
        if done.returncode != 0:
            raise WorkerError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else
                              f"engine command {args[0]} exited with {done.returncode}")
        return done.stdout.strip()

    def start(self) -> None:
        env = self._env()
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", "engine", "worker", *self.flags],
                cwd=self.extension_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except OSError as e:
            raise WorkerError(f"can't start the engine with '{self.python}': {e}") from e
        threading.Thread(target=self._read_stdout, daemon=True, name="kd-worker-out").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="kd-worker-err").start()

    def _read_stdout(self) -> None:
        proc = self.process
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                self._stderr_tail.append(line)
        code = proc.wait()
        self._events.put({"event": "exit", "code": code, "message": self.last_words()})

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr_tail.append(line.rstrip())

    def last_words(self) -> str:
        lines = [l for l in self._stderr_tail if l.strip()]
        return "\n".join(lines[-8:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, command: dict) -> None:
        if not self.alive():
            raise WorkerError("the engine worker is not running")
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerError(f"the engine worker stopped: {self.last_words() or e}") from e

    def render(self, plan_path: str, frames: tuple[int, int] | None = None, ray: dict | None = None) -> None:
        """Start rendering a plan; `ray` ({"address", "workers", "shared"}) spreads it over a Ray cluster."""
        self.send({"cmd": "render", "plan": plan_path, "frames": list(frames) if frames else None, "ray": ray})

    def cancel(self) -> None:
        if self.alive():
            try:
                self.send({"cmd": "cancel"})
            except WorkerError:
                pass

    def events(self, timeout: float = 0.0) -> Iterator[dict]:
        """Events that have arrived; waits up to `timeout` for the first one."""
        try:
            yield self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to quit, then kill it if it doesn't."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None


_versions: dict[tuple[str, float], str] = {}


def python_version(python: str) -> str:
    """"3.11" for an interpreter (asked once per path and modification time), "" when it won't answer."""
    try:
        key = (python, os.path.getmtime(python) if os.path.exists(python) else 0.0)
    except OSError:
        return ""
    if key not in _versions:
        try:
            done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
            _versions[key] = done.stdout.strip() if done.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            _versions[key] = ""
    return _versions[key]


def _on_path(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None
