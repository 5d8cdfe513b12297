"""Frames on disk are the truth: atomic frame files and a manifest of the parameter hash each was made from."""

from __future__ import annotations

import json
import os
import threading

MANIFEST = "manifest.json"
_PNG_END = b"IEND\xaeB`\x82"


def frame_filename(frame: int) -> str:
    # A sign keeps negative frames sortable and distinct; Blender's image strips take any file names.
    return f"frame_{frame:06d}.png" if frame >= 0 else f"frame_-{-frame:05d}.png"


class FrameStore:
    """One output folder: frame_NNNNNN.png files plus manifest.json {frame: {hash, size}}."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self._lock = threading.Lock()
        self._entries = self._read_manifest()

    def path(self, frame: int) -> str:
        return os.path.join(self.folder, frame_filename(frame))

    def _read_manifest(self) -> dict[str, dict]:
        try:
            with open(os.path.join(self.folder, MANIFEST), encoding="utf-8") as f:
                data = json.load(f)
            return dict(data.get("frames", {}))
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            # A damaged manifest only costs re-rendering; the frames themselves are never trusted without it.
            return {}

    def _write_manifest(self) -> None:
        path = os.path.join(self.folder, MANIFEST)
        tmp = f"{path}.{os.getpid()}.tmp"
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

    def write(self, frame: int, image, digest: str) -> str:
        """Save a PIL image as the frame's PNG (temp file + rename) and record its hash."""
        path = self.path(frame)
        tmp = f"{path}.{os.getpid()}.tmp"
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
        with self._lock:
            self._entries[str(frame)] = {"hash": digest, "size": os.path.getsize(path)}
            self._write_manifest()
        return path

    def finished_frames(self) -> list[int]:
        return sorted(int(k) for k in self._entries if os.path.isfile(self.path(int(k))))
