"""Blender's side of the worker protocol: start the engine subprocess, send commands, read events.

No bpy here: Blender polls `events()` from a timer (modal) or in a loop (background), always on the main thread.
The worker can crash, hang or be killed: Blender only ever sees an "exit" event, never an exception from the pipe.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from typing import Iterable, Iterator


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
        # Enough for a whole traceback after the libraries' warnings and progress bars (last_words picks from it).
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=300)
        self._stderr_reader: threading.Thread | None = None
        self._render_ids = itertools.count(1)
        self.render_id: int | None = None  # the id of the last render sent (what cancel() names)

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
            # Its last line that isn't a library's warning (the CLI's "error: ..." or the exception), and how it
            # ended when a signal ended it.
            words = _without_noise(done.stderr.splitlines())[-1:]
            if done.returncode < 0 or not words:
                words.insert(0, f"engine command {args[0]} {exit_reason(done.returncode)}")
            raise WorkerError(": ".join(words))
        return done.stdout.strip()

    def worker_command(self) -> list[str]:
        """The worker's command line."""
        return [self.python, "-m", "engine", "worker", *self.flags]

    def start(self) -> None:
        env = self._env()
        try:
            self.process = subprocess.Popen(
                self.worker_command(),
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
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True, name="kd-worker-err")
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, daemon=True, name="kd-worker-out").start()

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
        # stdout can close before the last of stderr (the traceback) is read: wait for the rest of it.
        self._stderr_reader.join(5)
        self._events.put({"event": "exit", "code": code, "message": self.last_words(code)})

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr_tail.append(line.rstrip()[:_LINE_LIMIT])

    def last_words(self, code: int | None = None) -> str:
        """What explains the worker's end: how it ended (`code`), then its traceback or its last lines on stderr,
        without the libraries' warnings and progress bars."""
        return last_words(self._stderr_tail, code)

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

    def render(self, plan_path: str, frames: tuple[int, int] | None = None, ray: dict | None = None,
               preview: bool = False) -> int:
        """Start rendering a plan; `ray` ({"address", "workers", "shared"}) spreads it over a Ray cluster; `preview`
        asks for live previews (preview events). Returns the render's id (what cancel names)."""
        render_id = next(self._render_ids)
        self.send({"cmd": "render", "plan": plan_path, "frames": list(frames) if frames else None, "ray": ray,
                   "id": render_id, "preview": preview})
        self.render_id = render_id
        return render_id

    def cancel(self, render_id: int | None = None) -> None:
        """Cancel a render (default: the last one sent). The worker drops a cancel whose render is already over, so
        an Esc just as a render finishes never stops the next one."""
        render_id = self.render_id if render_id is None else render_id
        if self.alive() and render_id is not None:
            try:
                self.send({"cmd": "cancel", "id": render_id})
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


_LINE_LIMIT = 2000  # characters kept of one stderr line
# Lines that never explain an exit: Python warnings ("path.py:12: FutureWarning: ...", and the source line after
# one), the transformers notices (torchvision missing, deprecations) and tqdm progress bars.
_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
_NOISE = re.compile(r"^\[transformers\] |requires torchvision|^\S[^|]*:\s*\d+%\|.*\|")
_TRACEBACK = "Traceback (most recent call last):"


def exit_reason(code: int | None) -> str:
    """How a process ended, in words: killed by which signal (SIGKILL is most often the out-of-memory killer)."""
    if code is None:
        return ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "an unknown signal"
        hint = ": out of memory?" if -code == signal.SIGKILL else ""
        return f"killed by signal {-code} ({name}{hint})"
    return f"exited with code {code}"


def _without_noise(lines: Iterable[str]) -> list[str]:
    kept, after_warning = [], False
    for line in lines:
        # The source line warnings.warn shows under a warning is indented; a traceback's lines are too, but never
        # follow a warning line directly.
        if after_warning and line.startswith(" "):
            after_warning = False
            continue
        after_warning = bool(_WARNING.match(line))
        if line.strip() and not after_warning and not _NOISE.search(line):
            kept.append(line)
    return kept


def last_words(stderr: Iterable[str], code: int | None = None, limit: int = 12) -> str:
    """The lines of a process's stderr that explain its end: the last traceback (its last `limit` lines, ending with
    the exception) or else its last 8 lines, without known noise; led by how it ended when `code` is given."""
    lines = _without_noise(stderr)
    starts = [i for i, line in enumerate(lines) if line.startswith(_TRACEBACK)]
    words = lines[starts[-1]:][-limit:] if starts else lines[-8:]
    return "\n".join(([exit_reason(code)] if code else []) + words)


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
