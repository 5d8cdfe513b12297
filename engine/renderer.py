"""The renderer: takes a validated plan, skips frames already on disk, renders the rest, reports events.

Events are plain dicts so the worker can print them as JSON lines and in-process callers can read them directly:
  {"event": "start", "frames": [...], "todo": [...]}
  {"event": "loading", "model": str}
  {"event": "progress", "frames": [...], "step": int, "steps": int, "done": int, "total": int}
  {"event": "frame", "frame": int, "path": str, "skipped": bool, "done": int, "total": int}
  {"event": "finished", "rendered": int, "skipped": int, "cancelled": bool, "output_dir": str}
"""

from __future__ import annotations

import threading
from typing import Callable

from . import plan as plan_mod
from .errors import Cancelled
from .frames import FrameStore
from .models import LoadOptions, load_pipeline, set_scheduler

Emit = Callable[[dict], None]


class Renderer:
    """Keeps loaded pipelines warm between renders (the worker lives across several generate presses)."""

    def __init__(self, options: LoadOptions | None = None):
        self.options = options or LoadOptions()
        self._pipes: dict[tuple[str, str], object] = {}

    def pipeline(self, model: str, device: str, emit: Emit):
        key = (model, device)
        if key not in self._pipes:
            emit({"event": "loading", "model": model})
            self._pipes.clear()  # one model in memory at a time
            opts = LoadOptions(self.options.allow_download, self.options.allow_unsafe, device)
            self._pipes[key] = load_pipeline(model, opts)
        return self._pipes[key]

    def render(
        self,
        plan: dict,
        frame_range: tuple[int, int] | None,
        emit: Emit,
        cancel: threading.Event | None = None,
    ) -> dict:
        cancel = cancel or threading.Event()
        settings = plan["settings"]
        records = plan_mod.select_frames(plan, frame_range)
        store = FrameStore(settings["output_dir"])
        hashes = {r["frame"]: plan_mod.frame_hash(settings, r) for r in records}
        todo = [r for r in records if not store.is_current(r["frame"], hashes[r["frame"]])]
        total = len(records)
        done = total - len(todo)
        emit({"event": "start", "frames": plan_mod.frames_of(records), "todo": plan_mod.frames_of(todo)})
        todo_frames = {r["frame"] for r in todo}
        for r in records:
            if r["frame"] not in todo_frames:
                emit({"event": "frame", "frame": r["frame"], "path": store.path(r["frame"]), "skipped": True,
                      "done": done, "total": total})
        rendered = 0
        cancelled = False
        if todo and not cancel.is_set():
            pipe = self.pipeline(settings["model"], settings["device"], emit)
            set_scheduler(pipe, settings["scheduler"])

            def on_step(frames: list[int], step: int, steps: int) -> None:
                if cancel.is_set():
                    raise Cancelled()
                emit({"event": "progress", "frames": frames, "step": step, "steps": steps,
                      "done": done + rendered, "total": total})

            from .modes import interpolate

            try:
                for frame, image in interpolate.render(pipe, settings, todo, on_step):
                    path = store.write(frame, image, hashes[frame])
                    rendered += 1
                    emit({"event": "frame", "frame": frame, "path": path, "skipped": False,
                          "done": done + rendered, "total": total})
                    if cancel.is_set():
                        raise Cancelled()
            except Cancelled:
                cancelled = True
        elif todo:
            cancelled = True
        summary = {"event": "finished", "rendered": rendered, "skipped": total - len(todo), "cancelled": cancelled,
                   "output_dir": store.folder}
        emit(summary)
        return summary
