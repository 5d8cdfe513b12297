"""Frames on disk are the truth: atomic frame files and a manifest of the parameter hash each was made from."""

from __future__ import annotations

import io
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
        # worker): the manifest is re-read and updated under a file lock, so no one's frames are dropped from it.
        from filelock import FileLock  # engine-only: Blender's side imports this module for frame_filename

        with self._lock, FileLock(os.path.join(self.folder, MANIFEST + ".lock")):
            self._entries = {**self._entries, **self._read_manifest(), str(frame): entry}
            self._write_manifest()

    def refresh(self) -> None:
        """Take in what other processes recorded since this store read the manifest."""
        with self._lock:
            self._entries = {**self._entries, **self._read_manifest()}

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
