"""A generate job: refresh audio-driven keys, bake, make the strips, drive the worker, and turn its events into
strip updates and status.

Shared by the modal operator (polled from a timer), the blocking operator, the CLI command and the render hook.
The worker stays loaded between jobs (engine_link/workers.py) so a second Generate doesn't reload the model.
"""

from __future__ import annotations

from typing import Callable

import bpy

from ..bake.scene import BakeError, write_plan
from ..engine.events import describe
from ..engine_link import workers
from ..engine_link.worker_client import WorkerClient, WorkerError
from ..timeline import audio_keys
from . import strips


class GenerateError(RuntimeError):
    """Generation failed; the message is meant for the user (self.report / the terminal)."""


def ray_choice(settings, use_ray: bool | None = None, address: str | None = None) -> dict | None:
    """The worker's "ray" option: the scene's Distribute with Ray settings, or the operator's / CLI's override."""
    if not (settings.use_ray if use_ray is None else use_ray):
        return None
    address = settings.ray_address if address is None else address
    return {"address": address.strip(), "workers": settings.ray_workers or None, "shared": False}


class GenerateJob:
    def __init__(
        self,
        scene: bpy.types.Scene,
        frames: tuple[int, int] | None = None,
        model: str | None = None,
        output: str | None = None,
        use_ray: bool | None = None,
        ray_address: str | None = None,
    ):
        self.scene = scene
        self.ray = ray_choice(scene.keyframe_diffusion, use_ray, ray_address)
        self.frames = frames
        self.model = model
        self.output = output
        self.worker: WorkerClient | None = None
        self.plan_path = ""
        self.folder = ""
        self.total = 0
        self.rendered: list[int] = []
        self.upscaled: list[int] = []
        self.upscale_folder = ""
        self.finished = False
        self.cancelled = False
        self.error = ""
        self.message = ""
        self.notice = ""  # said once with the final message (strips.show_as_generated)
        self.progress = 0.0

    def start(self, context=None) -> None:
        if self.scene.keyframe_diffusion.audio_links:
            # A sound strip moved or was trimmed since its keys were written: write them again before the bake.
            try:
                audio_keys.refresh(self.scene, context=context)
            except audio_keys.AudioError as e:
                raise GenerateError(f"Audio: {e}") from e
        try:
            self.plan_path, plan = write_plan(self.scene, self.output, self.model)
        except BakeError as e:
            raise GenerateError(f"Bake failed: {e}") from e
        self.folder = plan["settings"]["output_dir"]
        frames = [r["frame"] for r in plan["frames"]]
        created = strips.find_strip(self.scene) is None
        strips.update_strip(self.scene, self.folder, frames)
        if created:
            self.notice = strips.show_as_generated(self.scene)
        if plan["settings"].get("upscale"):
            self.upscale_folder = plan["settings"]["upscale"]["output_dir"]
            strips.update_strip(self.scene, self.upscale_folder, frames, upscaled=True)
        try:
            self.worker = workers.get_worker(context)
            self.worker.render(self.plan_path, self.frames, self.ray)
        except WorkerError as e:
            raise GenerateError(str(e)) from e
        self.message = "Starting engine"

    def handle(self, event: dict) -> None:
        """Follow one worker event: the status line says it as every printer does (engine.events.describe); frames
        that land refresh their strip."""
        kind = event.get("event")
        said = describe(event)
        if kind == "start":
            self.total = len(event["frames"])
        elif kind == "progress":
            share = len(event["frames"]) * event["step"] / event["steps"]
            self.progress = (event["done"] + share) / max(1, event["total"])
        elif kind == "upscale_start":
            self.progress = 0.0
        elif kind in ("frame", "upscaled"):
            self.progress = event["done"] / max(1, event["total"])
            if not event["skipped"]:
                upscaled = kind == "upscaled"
                (self.upscaled if upscaled else self.rendered).append(event["frame"])
                strips.refresh_strip(self.scene, upscaled=upscaled)
            return  # the status keeps saying the step progress, not each file
        elif kind == "finished":
            self.finished = True
            self.cancelled = event["cancelled"]
            said = ". ".join(text for text in (said, self.notice) if text)
        elif kind in ("error", "exit"):
            self.finished = True
            self.error = said
            if kind == "exit":
                workers.forget(self.worker)
            return
        if said:
            self.message = said

    def poll(self, timeout: float = 0.0, on_event: Callable[[dict], None] | None = None) -> bool:
        """Handle the events that have arrived; True once the job is over."""
        for event in self.worker.events(timeout):
            self.handle(event)
            if on_event:
                on_event(event)
            if self.finished:
                break
        return self.finished

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def run_blocking(self, context=None, on_event: Callable[[dict], None] | None = None) -> None:
        """Start and wait, handling every event on this (the main) thread. Ctrl+C cancels cleanly."""
        self.start(context)
        try:
            while not self.poll(0.2, on_event):
                pass
        except KeyboardInterrupt:
            self.cancel()
            while not self.poll(0.2, on_event):
                pass
        if self.error:
            raise GenerateError(self.error)
