"""Frames on disk are the truth: atomic frame files and a manifest of the parameter hash each was made from.

An output folder is ours when its manifest.json carries our format marker (or is a version-1 manifest of ours, from
before the marker), or when it has no manifest and nothing of anyone else's: a folder holding another program's
manifest.json or manifest.jsonl, or files named like our frames that we did not make, is refused with an
OutputFolderError and never written over. A new folder is claimed (a marked, empty manifest.json) before its first frame.

A render holds the folder (`FrameStore.rendering`): an OS file lock, released by the OS when the process dies, with a
note of who holds it (manifest.render.json) for the error a second render gets. Taking it sweeps the temporary files
a killed writer left. A full disk is a DiskFullError naming the folder and the space needed; the temporary file goes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import socket
import sys
import threading
import time
from typing import Iterator

from .errors import DiskFullError, FolderInUseError, OutputFolderError

MANIFEST = "manifest.json"
JOURNAL = "manifest.jsonl"
RECORD_LOCK = MANIFEST + ".lock"  # held for a journal append or a fold (a few milliseconds)
RENDER_LOCK = "manifest.render.lock"  # held for a whole render
RENDER_NOTE = "manifest.render.json"  # who holds RENDER_LOCK: pid, host, start time, command
FORMAT = "keyframe-diffusion-frames"
VERSION = 2  # 1: {"version": 1, "frames": {...}} without the format marker (still read)
_PNG_END = b"IEND\xaeB`\x82"
_PNG_CHUNK = b"keyframe_diffusion\x00"  # our text chunk's keyword: a frame file we made says so in its first bytes
_FRAME_NAME = re.compile(r"frame_(-?\d+)\.png")
# What our writers leave behind when killed or stopped by a full disk: `<file>.<pid>.<thread id>.tmp`.
# (manifest.preview.png: the live preview, preview.py)
_TEMPORARY = re.compile(r"(frame_-?\d+\.png|manifest\.json|manifest\.jsonl|manifest\.render\.json"
                        r"|manifest\.preview\.png)\.\d+\.\d+\.tmp")
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def frame_filename(frame: int) -> str:
    # A sign keeps negative frames sortable and distinct; Blender's image strips take any file names.
    return f"frame_{frame:06d}.png" if frame >= 0 else f"frame_-{-frame:05d}.png"


# zlib's level for frame PNGs (Blender writes PNGs at its 15% compression, which is level 1).
PNG_COMPRESSION = 1


class FrameStore:
    """One output folder: frame_NNNNNN.png files plus the record of the parameter hash each was made from.

    The record is manifest.json (a snapshot) plus manifest.jsonl (a journal, one line per frame written since the
    snapshot). A write appends one line, so recording frame n costs the same as frame 1; the journal is folded into
    the snapshot when it grows as long as the snapshot (amortised O(1) per frame) and when a render ends (`compact`).
    Readers merge both, so a render killed mid-way leaves every finished frame recorded.

    `writable=False` opens a folder only to read it (export): nothing is created or claimed, and a folder that is not
    ours reads as holding no recorded frames instead of being refused.
    """

    def __init__(self, folder: str, writable: bool = True):
        self.folder = os.path.abspath(folder)
        self._lock = threading.Lock()
        self._journal_at: tuple[int, int] = (-1, 0)  # (inode, bytes) of the journal this store has read
        self._journal_lines = 0
        self._entries: dict[str, dict] = {}
        self.frames_left: int | None = None  # set by `expect`: for the space a full disk needs
        if not writable:
            if os.path.isdir(self.folder) and _folder_problem(self.folder) is None:
                try:
                    self._reload()
                except OSError:  # no lock file can be made there (read-only media): read it unlocked
                    self._load()
            return
        os.makedirs(self.folder, exist_ok=True)
        problem = _folder_problem(self.folder)  # before any file of ours is made there
        if problem:
            raise OutputFolderError(problem)
        with self._record_lock():
            if not os.path.exists(os.path.join(self.folder, MANIFEST)):
                # Claimed before its first frame: a render killed between that frame's rename and its journal line
                # leaves a folder that is still recognisably ours.
                self._write_manifest()
            self._load()

    def path(self, frame: int) -> str:
        return os.path.join(self.folder, frame_filename(frame))

    @property
    def _journal(self) -> str:
        return os.path.join(self.folder, JOURNAL)

    def _record_lock(self):
        from filelock import FileLock  # engine-only: Blender's side imports this module for frame_filename

        return FileLock(os.path.join(self.folder, RECORD_LOCK))

    def _read_manifest(self) -> dict[str, dict]:
        # A damaged manifest of ours only costs re-rendering; the frames themselves are never trusted without it.
        kind, frames = _read_manifest_file(os.path.join(self.folder, MANIFEST))
        return frames if kind == "ours" else {}

    def _read_journal(self) -> None:
        """Take in the journal lines written since this store last read it (all of it after a compaction)."""
        try:
            with open(self._journal, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                if inode != self._journal_at[0]:
                    # Folded into the snapshot by someone else since: the snapshot holds what we read before.
                    if self._journal_at[0] != -1:
                        self._entries.update(self._read_manifest())
                    self._journal_at, self._journal_lines = (inode, 0), 0
                f.seek(self._journal_at[1])
                data = f.read()
        except FileNotFoundError:
            return
        # Only whole lines: a line still being appended (or cut short by a killed process) waits or is dropped.
        whole = data[:data.rfind(b"\n") + 1]
        for line in whole.splitlines():
            try:
                item = json.loads(line)
                self._entries[str(item.pop("frame"))] = item
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            self._journal_lines += 1
        self._journal_at = (self._journal_at[0], self._journal_at[1] + len(whole))

    def _load(self) -> None:
        self._entries = self._read_manifest()
        self._journal_at, self._journal_lines = (-1, 0), 0
        self._read_journal()

    def _reload(self) -> None:
        with self._record_lock():  # not between another's snapshot and journal
            self._load()

    def _write_manifest(self) -> None:
        data = json.dumps({"format": FORMAT, "version": VERSION, "frames": self._entries}, indent=1, sort_keys=True)
        self._write_file(os.path.join(self.folder, MANIFEST), data.encode("utf-8"), MANIFEST)

    def _write_file(self, path: str, data: bytes, what: str) -> None:
        """`data` into `path` through a temporary file and a rename, so a reader never sees half of it. When the write
        fails the temporary file goes; a full disk says so (DiskFullError) and how much it needs."""
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if e.errno in _DISK_FULL:
                raise self._disk_full(e, what, len(data)) from e
            raise

    def _disk_full(self, error: OSError, what: str, size: int) -> DiskFullError:
        entries = list(self._entries.values())  # one C-level copy: safe beside a writer thread
        sizes = [e["size"] for e in entries if isinstance(e, dict) and isinstance(e.get("size"), int)]
        finished = len(sizes)
        left = self.frames_left or 0
        need = f"{_bytes(size)} for {what}"
        if left > 1:  # the rest at the size of the frames written so far (or of this one)
            need += f", about {_bytes(left * (sum(sizes) / finished if finished else size))} for the {left} frames left"
        return DiskFullError(
            f"output folder '{self.folder}': the disk is full ({error.strerror or error}); it needs {need}. Free "
            f"space on that disk (or choose an output folder on another one) and render again: the {finished} "
            "finished frames are kept and only the missing ones are rendered.")

    def expect(self, frames: int) -> None:
        """How many frames this render will write: a full disk then says how much space the rest needs."""
        self.frames_left = frames

    @contextlib.contextmanager
    def rendering(self) -> Iterator[None]:
        """Hold the folder for one render: a second render into it (another Blender, a `python -m engine render`) is
        refused at once with a FolderInUseError naming this one, instead of both rendering every frame over each
        other. The OS lock dies with the process (kill -9 leaves nothing to clean up). Under it no one else writes
        here, so the temporary files a killed writer left are swept. Readers (export) need no lock."""
        from filelock import FileLock, Timeout

        lock = FileLock(os.path.join(self.folder, RENDER_LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise FolderInUseError(self._in_use()) from None
        note = os.path.join(self.folder, RENDER_NOTE)
        try:
            sweep_temporary(self.folder)
            self._write_file(note, json.dumps(_holder()).encode("utf-8"), RENDER_NOTE)
            yield
        finally:
            with contextlib.suppress(OSError):
                os.remove(note)
            lock.release()

    def _in_use(self) -> str:
        # Who and what to do first, the command last: a one-line error display may cut the end.
        try:
            with open(os.path.join(self.folder, RENDER_NOTE), encoding="utf-8") as f:
                note = json.load(f)
            who = f"process {int(note['pid'])} on {note['host']} since {note['started']}"
            command = f" It was started by `{note['command']}`."
        except (OSError, ValueError, KeyError, TypeError):  # it has the lock but has not written its note yet
            who, command = "a render that has just started", ""
        return (f"output folder '{self.folder}' is in use by another render, {who}: wait for it to finish (or cancel "
                "it), or choose another output folder. Two renders into one folder would each render every frame "
                f"over the other's.{command}")

    def is_current(self, frame: int, digest: str) -> bool:
        """True when the frame file exists whole and was made from these parameters."""
        entry = self._entries.get(str(frame))
        if not entry or entry.get("hash") != digest:
            return False
        path = self.path(frame)
        try:
            size = os.path.getsize(path)
            if size != entry.get("size") or size < len(_PNG_END):
                return False
            with open(path, "rb") as f:
                f.seek(-len(_PNG_END), os.SEEK_END)
                return f.read() == _PNG_END
        except OSError:
            return False

    def write(self, frame: int, image, digest: str, params: dict | None = None) -> str:
        """Save a PIL image as the frame's PNG (temp file + rename) and record its hash.

        `params` (the frame's generation parameters) go into the PNG as text chunks, so a frame file says how it
        was made wherever it is copied: `keyframe_diffusion` (JSON) and `parameters` (the one-line form image
        viewers and other Stable Diffusion tools read). The manifest keeps the same JSON.
        """
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        if params:
            info.add_text("keyframe_diffusion", json.dumps(params, sort_keys=True))
            info.add_text("parameters", parameters_text(params))
        buffer = io.BytesIO()
        # zlib level 1, as Blender's own PNG default (15% compression): a 512x512 frame encodes in ~20 ms instead of
        # ~170 ms at PIL's default 6, for files ~18% larger (bench/overhead.py).
        image.save(buffer, format="PNG", pnginfo=info, compress_level=PNG_COMPRESSION)
        return self.write_png(frame, buffer.getvalue(), digest, params)

    def write_png(self, frame: int, data: bytes, digest: str, params: dict | None = None) -> str:
        """Save an encoded PNG (a frame streamed back from another machine) and record its hash."""
        path = self.path(frame)
        self._write_file(path, data, f"frame {frame} ({frame_filename(frame)})")
        entry = {"hash": digest, "size": len(data)}
        if params:
            entry["params"] = params
        self._record(frame, entry)
        return path

    def _record(self, frame: int, entry: dict) -> None:
        # Several processes may write into one folder (Ray workers on shared storage): the journal is appended to and
        # folded under a file lock, so no one's frames are dropped.
        line = (json.dumps({"frame": frame, **entry}, sort_keys=True) + "\n").encode("utf-8")
        with self._lock, self._record_lock():
            self._read_journal()
            fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                stat = os.fstat(fd)
                if stat.st_ino == self._journal_at[0] and stat.st_size > self._journal_at[1]:
                    # Under the lock nobody is appending: that tail is a line a killed writer left unfinished.
                    line = b"\n" + line
                _append(fd, line)
                stat = os.fstat(fd)
            except OSError as e:
                if e.errno in _DISK_FULL:  # what did get in is a torn line: the next append starts after it
                    raise self._disk_full(e, f"the record of frame {frame} ({JOURNAL})", len(line)) from e
                raise
            finally:
                os.close(fd)
            self._entries[str(frame)] = entry
            self._journal_at = (stat.st_ino, stat.st_size)  # we hold the lock: everything up to here is read
            self._journal_lines += 1
            if self.frames_left:
                self.frames_left -= 1
            if self._journal_lines >= max(64, len(self._entries) - self._journal_lines):
                self._fold()

    def _fold(self) -> None:
        """Write the snapshot with everything recorded, then start an empty journal (caller holds the locks)."""
        self._entries = {**self._read_manifest(), **self._entries}
        self._write_manifest()
        self._write_file(self._journal, b"", JOURNAL)
        self._journal_at, self._journal_lines = (os.stat(self._journal).st_ino, 0), 0

    def compact(self) -> None:
        """Fold the journal into manifest.json (at the end of a render: one file holds every frame's record)."""
        with self._lock, self._record_lock():
            self._read_journal()
            if self._journal_lines or not os.path.isfile(os.path.join(self.folder, MANIFEST)) and self._entries:
                self._fold()

    def refresh(self) -> None:
        """Take in what other processes recorded since this store read the manifest."""
        with self._lock:
            self._read_journal()

    def read(self, frame: int):
        """A finished frame as an RGB uint8 array (feedback mode resumes its chain from it)."""
        import numpy as np
        from PIL import Image

        with Image.open(self.path(frame)) as im:
            return np.asarray(im.convert("RGB")).copy()

    def finished_frames(self) -> list[int]:
        return sorted(int(k) for k in self._entries if os.path.isfile(self.path(int(k))))


def _append(fd: int, data: bytes) -> None:
    # os.write may take only part (a nearly full disk): the rest follows, or the error it meets is raised.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _bytes(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError(size)


def sweep_temporary(folder: str) -> list[str]:
    """Remove the temporary files our writers leave when killed or stopped by a full disk (only our own names:
    `frame_*.png.<pid>.<thread>.tmp`, `manifest.json*.tmp`, `manifest.jsonl*.tmp`, the live preview's
    `manifest.preview.png.*.tmp`). Call it only while holding the
    folder's render lock, when no one else is writing there. Returns the names removed."""
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if _TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)
                    removed.append(entry.name)
    return sorted(removed)


def _holder() -> dict:
    """Who is rendering: the note a refused render's error names."""
    argv = sys.argv or [""]
    main = argv[0]
    if os.path.basename(main) == "__main__.py":  # `python -m engine ...`
        command = f"python -m {os.path.basename(os.path.dirname(main))}"
    else:
        command = os.path.basename(main) or os.path.basename(sys.executable)
    command = " ".join([command, *argv[1:]])
    if argv[1:2] == ["worker"]:
        command += " (Blender's engine worker)"
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": command[:300]}


# -- whose folder is it ---------------------------------------------------------------------------------------------

def _read_manifest_file(path: str) -> tuple[str, dict]:
    """What manifest.json at `path` is: ('missing' | 'ours' | 'damaged ours' | 'damaged' | 'foreign' | 'newer', the
    frames it records when ours)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return "missing", {}
    except IsADirectoryError:
        return "foreign", {}
    try:
        data = json.loads(raw)
    except ValueError:  # a truncated or overwritten file (UnicodeDecodeError is a ValueError too)
        return ("damaged ours" if FORMAT.encode() in raw else "damaged"), {}
    if not isinstance(data, dict):
        return "foreign", {}
    frames = data.get("frames")
    if data.get("format") == FORMAT:
        if isinstance(data.get("version"), int) and data["version"] > VERSION:
            return "newer", {}
        return ("ours", frames) if isinstance(frames, dict) and data.get("version") == VERSION else ("damaged ours", {})
    # Version 1 had no marker: the version and entries that all look like ours.
    if "format" not in data and data.get("version") == 1 and isinstance(frames, dict) and all(
            isinstance(e, dict) and "hash" in e and "size" in e for e in frames.values()):
        return "ours", frames
    return "foreign", {}


def _journal_kind(path: str) -> str:
    """'missing', 'empty', 'ours' (a line of ours in its first 64 KB, whole or cut short) or 'foreign'."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        return "foreign"
    if not head.strip():
        return "empty"
    for line in head.split(b"\n"):
        try:
            item = json.loads(line)
        except ValueError:
            if line.startswith(b'{"frame": '):  # ours, cut short by a killed writer (every line of ours starts so)
                return "ours"
            continue
        if isinstance(item, dict) and {"frame", "hash", "size"} <= item.keys():
            return "ours"
    return "foreign"


def _made_by_us(path: str) -> bool:
    """A frame file carrying our text chunk (written before the image data, so its first bytes hold it)."""
    try:
        with open(path, "rb") as f:
            return _PNG_CHUNK in f.read(4096)
    except OSError:
        return False


def _folder_problem(folder: str) -> str | None:
    """Why this engine must not write into `folder` (another program's files are there), or None."""
    # Frame names first, the manifest after: a store of ours claims its folder before writing any frame, so a frame
    # seen here of a render starting meanwhile means its manifest is seen below.
    names = sorted(e.name for e in os.scandir(folder)
                   if (m := _FRAME_NAME.fullmatch(e.name)) and frame_filename(int(m.group(1))) == e.name)
    what = "choose another output folder, or move that file out of this one"
    kind, _ = _read_manifest_file(os.path.join(folder, MANIFEST))
    if kind in ("ours", "damaged ours"):
        return None
    where = f"output folder '{folder}'"
    if kind == "newer":
        return (f"{where}: {MANIFEST} was written by a newer Keyframe Diffusion (a later manifest version): update "
                "the extension, or choose another output folder")
    if kind == "foreign":
        return f"{where} holds a {MANIFEST} that is not Keyframe Diffusion's; rendering would overwrite it: {what}"
    journal = _journal_kind(os.path.join(folder, JOURNAL))
    if journal == "foreign":
        return f"{where} holds a {JOURNAL} that is not Keyframe Diffusion's; rendering would overwrite it: {what}"
    if journal == "ours":
        return None  # a folder of ours from before the marker (or the claim), whose manifest was never written
    foreign = next((n for n in names if not _made_by_us(os.path.join(folder, n))), None)
    if kind == "damaged" and (foreign or not names):
        return (f"{where}: {MANIFEST} is not valid JSON and nothing shows it is Keyframe Diffusion's. If it is a "
                "damaged manifest of ours, delete it (its frames will be rendered again); otherwise " + what)
    if foreign:
        return (f"{where} holds {foreign}, which is named like a Keyframe Diffusion frame but was not made by it "
                "(and no manifest of ours is there); rendering would overwrite it: choose another output folder, or "
                "move the frame_*.png files that are not Keyframe Diffusion's out of this one")
    return None


def parameters_text(params: dict) -> str:
    """The frame's parameters in the 'prompt / Negative prompt: / Steps: ...' form most Stable Diffusion tools read."""
    prompts = params.get("prompts", [])
    prompt = " AND ".join(p["text"] if len(prompts) == 1 else f"{p['text']} :{p['weight']:.3g}" for p in prompts)
    negative = next((p.get("negative") for p in prompts if p.get("negative")), "")
    fields = [("Steps", params.get("steps")), ("Sampler", params.get("scheduler")),
              ("CFG scale", params.get("guidance")), *seed_fields(params),
              ("Size", f"{params.get('width')}x{params.get('height')}"), ("Model", params.get("model")),
              ("Denoising strength", params.get("strength")), ("Mode", params.get("mode")),
              ("Frame", params.get("frame"))]
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    return "\n".join(lines)


def seed_fields(params: dict) -> list[tuple[str, object]]:
    """The parameters line's seed fields: what the frame's first noise is made from.

    Interpolate with prompt seeds starts each frame from the prompts' seeded noises slerped together by their weights
    (engine.latents.blend: each further prompt slerped in by its share of the running total), so one seed can't
    reproduce it: 'Seed: 12 -> 99 at 0.25' says the noise of seed 12 slerped towards seed 99's by 0.25 (a third
    prompt adds '-> 7 at 0.1'). The frame's own seed still seeds the sampler's noise (ancestral samplers use it):
    'Sampler seed' when it differs from the first."""
    seed = params.get("seed")
    if params.get("latent_source") != "PROMPT_SEEDS" or not params.get("prompts"):
        return [("Seed", seed)]
    chain: list[tuple[object, float]] = []  # (seed, share it is slerped in by); the first one's share is unused
    total = 0.0
    for prompt in params["prompts"]:
        prompt_seed, weight = prompt.get("seed", seed), float(prompt.get("weight", 0.0))
        total += weight
        if not chain:
            chain = [(prompt_seed, 1.0)]
        elif total > 0 and weight / total >= 1.0:  # slerp at 1 is the new noise itself (a start with weight 0)
            chain = [(prompt_seed, 1.0)]
        elif total > 0 and weight > 0:
            chain.append((prompt_seed, weight / total))
    text = " -> ".join([str(chain[0][0])] + [f"{s} at {share:.6g}" for s, share in chain[1:]])
    return [("Seed", text)] + ([("Sampler seed", seed)] if seed != chain[0][0] or len(chain) > 1 else [])
