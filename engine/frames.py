"""Frames on disk are the truth: atomic frame files and a manifest of the parameter hash each was made from."""

from __future__ import annotations

import io
import json
import os
import threading

MANIFEST = "manifest.json"
JOURNAL = "manifest.jsonl"
_PNG_END = b"IEND\xaeB`\x82"


def frame_filename(frame: int) -> str:
    # A sign keeps negative frames sortable and distinct; Blender's image strips take any file names.
    return f"frame_{frame:06d}.png" if frame >= 0 else f"frame_-{-frame:05d}.png"


class FrameStore:
    """One output folder: frame_NNNNNN.png files plus the record of the parameter hash each was made from.

    The record is manifest.json (a snapshot) plus manifest.jsonl (a journal, one line per frame written since the
    snapshot). A write appends one line, so recording frame n costs the same as frame 1; the journal is folded into
    the snapshot when it grows as long as the snapshot (amortised O(1) per frame) and when a render ends (`compact`).
    Readers merge both, so a render killed mid-way leaves every finished frame recorded.
    """

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self._lock = threading.Lock()
        self._journal_at: tuple[int, int] = (-1, 0)  # (inode, bytes) of the journal this store has read
        self._journal_lines = 0
        self._entries: dict[str, dict] = {}
        self._reload()

    def path(self, frame: int) -> str:
        return os.path.join(self.folder, frame_filename(frame))

    @property
    def _journal(self) -> str:
        return os.path.join(self.folder, JOURNAL)

    def _read_manifest(self) -> dict[str, dict]:
        try:
            with open(os.path.join(self.folder, MANIFEST), encoding="utf-8") as f:
                data = json.load(f)
            return dict(data.get("frames", {}))
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            # A damaged manifest only costs re-rendering; the frames themselves are never trusted without it.
            return {}

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

    def _reload(self) -> None:
        from filelock import FileLock

        with FileLock(os.path.join(self.folder, MANIFEST + ".lock")):  # not between another's snapshot and journal
            self._entries = self._read_manifest()
            self._journal_at, self._journal_lines = (-1, 0), 0
            self._read_journal()

    def _write_manifest(self) -> None:
        path = os.path.join(self.folder, MANIFEST)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "frames": self._entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)

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
        image.save(buffer, format="PNG", pnginfo=info)
        return self.write_png(frame, buffer.getvalue(), digest, params)

    def write_png(self, frame: int, data: bytes, digest: str, params: dict | None = None) -> str:
        """Save an encoded PNG (a frame streamed back from another machine) and record its hash."""
        path = self.path(frame)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        entry = {"hash": digest, "size": len(data)}
        if params:
            entry["params"] = params
        self._record(frame, entry)
        return path

    def _record(self, frame: int, entry: dict) -> None:
        # Several processes may write into one folder (Ray workers on shared storage, a CLI render beside Blender's
        # worker): the journal is appended to and folded under a file lock, so no one's frames are dropped.
        from filelock import FileLock  # engine-only: Blender's side imports this module for frame_filename

        line = (json.dumps({"frame": frame, **entry}, sort_keys=True) + "\n").encode("utf-8")
        with self._lock, FileLock(os.path.join(self.folder, MANIFEST + ".lock")):
            self._read_journal()
            fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                stat = os.fstat(fd)
                if stat.st_ino == self._journal_at[0] and stat.st_size > self._journal_at[1]:
                    # Under the lock nobody is appending: that tail is a line a killed writer left unfinished.
                    line = b"\n" + line
                os.write(fd, line)
                stat = os.fstat(fd)
            finally:
                os.close(fd)
            self._entries[str(frame)] = entry
            self._journal_at = (stat.st_ino, stat.st_size)  # we hold the lock: everything up to here is read
            self._journal_lines += 1
            if self._journal_lines >= max(64, len(self._entries) - self._journal_lines):
                self._fold()

    def _fold(self) -> None:
        """Write the snapshot with everything recorded, then start an empty journal (caller holds the locks)."""
        self._entries = {**self._read_manifest(), **self._entries}
        self._write_manifest()
        tmp = f"{self._journal}.{os.getpid()}.{threading.get_ident()}.tmp"
        open(tmp, "wb").close()
        os.replace(tmp, self._journal)
        self._journal_at, self._journal_lines = (os.stat(self._journal).st_ino, 0), 0

    def compact(self) -> None:
        """Fold the journal into manifest.json (at the end of a render: one file holds every frame's record)."""
        from filelock import FileLock

        with self._lock, FileLock(os.path.join(self.folder, MANIFEST + ".lock")):
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


def parameters_text(params: dict) -> str:
    """The frame's parameters in the 'prompt / Negative prompt: / Steps: ...' form most Stable Diffusion tools read."""
    prompts = params.get("prompts", [])
    prompt = " AND ".join(p["text"] if len(prompts) == 1 else f"{p['text']} :{p['weight']:.3g}" for p in prompts)
    negative = next((p.get("negative") for p in prompts if p.get("negative")), "")
    fields = [("Steps", params.get("steps")), ("Sampler", params.get("scheduler")),
              ("CFG scale", params.get("guidance")), ("Seed", params.get("seed")),
              ("Size", f"{params.get('width')}x{params.get('height')}"), ("Model", params.get("model")),
              ("Denoising strength", params.get("strength")), ("Mode", params.get("mode")),
              ("Frame", params.get("frame"))]
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    return "\n".join(lines)
