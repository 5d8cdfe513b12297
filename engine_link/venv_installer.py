"""Create a dedicated virtual environment for the engine and pip-install its requirements there, on a background
thread, with progress events and a cancel that kills pip and everything it started.

No bpy here: the operator polls `poll()` from a timer (UI) or waits in `run_blocking()` (background mode), always on
Blender's main thread; only this module's own thread touches the subprocesses.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import shutil
import signal
import subprocess
import threading

MARKER = ".keyframe_diffusion_ready"
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")
_NAME = re.compile(r"^([A-Za-z0-9_.\-]+)")


def venv_python(target: str) -> str:
    """The interpreter of the virtual environment in `target`."""
    if os.name == "nt":
        return os.path.join(target, "Scripts", "python.exe")
    return os.path.join(target, "bin", "python")


def venv_ready(target: str) -> bool:
    """True when an installation into `target` finished (marker written) and its Python is still there."""
    return os.path.isfile(os.path.join(target, MARKER)) and os.path.isfile(venv_python(target))


def requirement_pins(paths: list[str]) -> list[str]:
    """The `name==version` lines of requirements files, following `-r` includes (relative to the including file)."""
    pins: list[str] = []
    seen: set[str] = set()

    def read(path: str) -> None:
        path = os.path.abspath(path)
        if path in seen:
            return
        seen.add(path)
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                parts = line.split(None, 1)
                if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
                    read(os.path.join(os.path.dirname(path), parts[1].strip()))
                elif _PIN.match(line):
                    pins.append(line)

    for path in paths:
        read(path)
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_of(line: str) -> str | None:
    """The package a pip "Collecting X ..." / "Processing ./x-1.0-py3-none-any.whl ..." line is about."""
    for prefix in ("Collecting ", "Processing "):
        if line.startswith(prefix):
            what = line[len(prefix):].split(" (from", 1)[0].strip()
            if prefix == "Processing ":  # a file or folder: its name starts with the project's name
                what = os.path.basename(what.rstrip("/\\")).split("-", 1)[0]
            match = _NAME.match(what)
            return _canonical(match.group(1)) if match else None
    return None


class _Cancelled(Exception):
    pass


class VenvInstaller:
    def __init__(self, target: str, base_python: str, requirements: list[str], *, find_links: str = "",
                 torch_index: str = ""):
        self.target = os.path.abspath(target)
        self.base_python = base_python
        self.requirements = [os.path.abspath(path) for path in requirements]
        self.find_links = find_links
        self.torch_index = torch_index
        self.stage = ""
        self.done = 0
        self.total = 0
        self._message = ""
        self._error = ""
        self._finished = False
        self._events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()  # orders "start a process" against "cancel" so no process escapes a cancel
        self._cancelled = False
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._seen: set[str] = set()
        self._tail: collections.deque[str] = collections.deque(maxlen=30)
        self.pids: list[int] = []  # every process this run started (tests check they are gone)

    @property
    def python(self) -> str:
        return venv_python(self.target)

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def message(self) -> str:
        return self._message

    @property
    def error(self) -> str:
        return self._error

    @property
    def cancelled(self) -> bool:
        return self.stage == "cancelled"

    @property
    def progress(self) -> float:
        """venv 0-5 %, collecting the packages 5-80 %, installing them 80-100 %."""
        if self.stage == "done":
            return 1.0
        if self.stage == "install":
            return 0.95 if self._message.startswith("Successfully installed") else 0.8
        if self.stage == "download":
            return 0.05 + 0.75 * self.done / max(1, self.total)
        return 0.0

    def _emit(self, stage: str, message: str) -> None:
        self.stage, self._message = stage, message
        self._events.put({"stage": stage, "message": message, "done": self.done, "total": self.total})

    def poll(self) -> list[dict]:
        """The events that have arrived since the last call; never blocks."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this installer has already run")
        self._thread = threading.Thread(target=self._run, daemon=True, name="kd-venv-installer")
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the started run to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._finished

    def run_blocking(self, timeout: float | None = None) -> bool:
        """Start and wait (background mode); cancels when `timeout` runs out. True when the environment is ready."""
        self.start()
        if not self.wait(timeout):
            self.cancel()
            self.wait()
        return self.stage == "done"

    def cancel(self) -> None:
        with self._lock:
            if self._finished or self._cancelled:
                return
            self._cancelled = True
            self._message = "Cancelling..."
            if self._process is not None and self._process.poll() is None:
                _kill_group(self._process)

    def _run(self) -> None:
        python = self.python
        fresh = not os.path.exists(python)
        try:
            if fresh and os.path.isdir(self.target) and os.listdir(self.target):
                # Never mix a venv into a folder of other files: a failed run would have to delete them.
                fresh = False
                raise RuntimeError(f"{self.target} is not empty and holds no Python environment: "
                                   "choose an empty or new folder")
            pins = requirement_pins(self.requirements)
            self.total = len(pins)
            if fresh:
                self._call([self.base_python, "-m", "venv", self.target], "venv",
                           f"Creating the environment in {self.target}")
            else:
                self._emit("venv", f"Using the existing environment in {self.target}")
            marker = os.path.join(self.target, MARKER)
            if os.path.exists(marker):
                os.remove(marker)  # it is only true again once this install succeeds
            self._call(self._pip_args(python), "download",
                       "Collecting packages" + (f" from {self.find_links}" if self.find_links else ""))
            with open(marker, "w", encoding="utf-8") as f:
                f.write("\n".join(pins) + "\n")
            self._emit("done", f"Engine environment ready: {python}")
        except _Cancelled:
            self._clean(fresh)
            self._emit("cancelled", "Engine environment: cancelled")
        except Exception as e:  # anything else (no venv module, a broken file): an error event, never a dead thread
            self._error = str(e)
            self._clean(fresh)
            self._emit("error", self._error)
        finally:
            self._finished = True

    def _pip_args(self, python: str) -> list[str]:
        args = [python, "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
        for path in self.requirements:
            args += ["-r", path]
        if self.find_links:
            args += ["--no-index", "--find-links", self.find_links]
        elif self.torch_index:  # with --no-index pip would ignore an index anyway
            args += ["--extra-index-url", self.torch_index]
        return args

    def _call(self, args: list[str], stage: str, message: str) -> None:
        """Run one step (announced once its process runs, so a cancel after the event always has a process to
        kill), turning pip's output into events; raises _Cancelled, or RuntimeError with the step's last words."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Blender's or a dev shell's paths would make pip see their packages as "already satisfied" in the venv.
        for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__"):
            env.pop(name, None)
        self._tail.clear()
        with self._lock:
            if self._cancelled:
                raise _Cancelled()
            # A new session / process group of its own, so cancel can kill pip and the builds it starts.
            group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else \
                {"start_new_session": True}
            self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                                             errors="replace", env=env, **group)
            self.pids.append(self._process.pid)
            self._emit(stage, message)
        for line in self._process.stdout:
            self._read(line.rstrip())
        code = self._process.wait()
        if self._cancelled:
            raise _Cancelled()
        if code != 0:
            what = "Creating the environment" if stage == "venv" else "pip install"
            raise RuntimeError(f"{what} failed (exit code {code}): {self._last_words()}")

    def _read(self, line: str) -> None:
        if not line.strip() or line.lstrip().startswith("[notice]"):
            return
        self._tail.append(line.strip())
        package = _package_of(line)
        if package is not None:
            self._seen.add(package)
            self.done = min(self.total, len(self._seen))
            what = line.split(" (from", 1)[0]
            if what.startswith("Processing "):  # a local file: its name says enough
                what = "Processing " + os.path.basename(what[len("Processing "):].rstrip("/\\"))
            self._emit("download", what)
        elif line.startswith("Installing collected packages"):
            self._emit("install", line)
        elif line.startswith("Successfully installed"):
            self._emit("install", line)

    def _last_words(self) -> str:
        errors = [line for line in self._tail if line.upper().startswith("ERROR")]
        return "\n".join((errors or list(self._tail))[-4:])

    def _clean(self, fresh: bool) -> None:
        # A half-made environment must never be used: remove it if this run made it.
        if fresh:
            shutil.rmtree(self.target, ignore_errors=True)


def _kill_group(process: subprocess.Popen) -> None:
    if os.name == "nt":
        # taskkill /T takes the whole tree; CREATE_NEW_PROCESS_GROUP kept it apart from Blender.
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
        process.kill()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group id is pip's pid: it leads its own session
    except ProcessLookupError:
        pass
