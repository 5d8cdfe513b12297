"""A generate job: bake, make the strip, drive the worker, turn its events into strip updates and status.

Shared by the modal operator (polled from a timer), the blocking operator, the CLI command and the render hook.
The worker stays loaded between jobs so a second Generate doesn't reload the model.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

import bpy

from . import bake, preferences, strips
from .worker_client import WorkerClient, WorkerError

_worker: WorkerClient | None = None


class GenerateError(RuntimeError):
    """Generation failed; the message is meant for the user (self.report / the terminal)."""


def _cache_dir() -> str:
    try:
        return bpy.utils.extension_path_user(__package__, path="cache", create=True)
    except (ValueError, AttributeError):  # loaded as a legacy add-on, not an extension
        return os.path.join(tempfile.gettempdir(), "keyframe_diffusion_cache")


def make_client(context=None) -> WorkerClient:
    """A (not yet started) worker client configured from the preferences."""
    prefs = preferences.get(context)
    python = bpy.path.abspath(prefs.python_path.strip()) if prefs and prefs.python_path.strip() else None
    env = {}
    if "KEYFRAME_DIFFUSION_CACHE" not in os.environ:
        env["KEYFRAME_DIFFUSION_CACHE"] = _cache_dir()
    return WorkerClient(
        os.path.dirname(os.path.abspath(__file__)),
        python,
        allow_download=bool(prefs and prefs.allow_downloads and bpy.app.online_access),
        allow_unsafe=bool(prefs and prefs.allow_unsafe_weights),
        env=env,
        wheels_dir=wheels_site_packages(),
    )


def wheels_site_packages() -> str:
    """The folder Blender installs extensions' bundled wheels into (for this Blender's Python version)."""
    return os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                        "python%d.%d" % sys.version_info[:2], "site-packages")


def get_worker(context=None) -> WorkerClient:
    """The running worker if it fits the current preferences, else a fresh one."""
    global _worker
    client = make_client(context)
    if _worker is not None and _worker.alive() and _worker.key == client.key:
        return _worker
    release_worker()
    client.start()
    _worker = client
    return client


def release_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None


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
        self.done_frames = 0
        self.rendered: list[int] = []
        self.upscaled: list[int] = []
        self.upscale_folder = ""
        self.finished = False
        self.cancelled = False
        self.error = ""
        self.message = ""
        self.progress = 0.0

    def start(self, context=None) -> None:
        try:
            self.plan_path, plan = bake.write_plan(self.scene, self.output, self.model)
        except bake.BakeError as e:
            raise GenerateError(f"Bake failed: {e}") from e
        self.folder = plan["settings"]["output_dir"]
        frames = [r["frame"] for r in plan["frames"]]
        strips.update_strip(self.scene, self.folder, frames)
        if plan["settings"].get("upscale"):
            self.upscale_folder = plan["settings"]["upscale"]["output_dir"]
            strips.update_strip(self.scene, self.upscale_folder, frames, upscaled=True)
        try:
            self.worker = get_worker(context)
            self.worker.render(self.plan_path, self.frames, self.ray)
        except WorkerError as e:
            raise GenerateError(str(e)) from e
        self.message = "Starting engine"

    def handle(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.total = len(event["frames"])
            self.message = f"{len(event['todo'])} of {self.total} frames to render"
        elif kind == "loading":
            self.message = f"Loading {event['model']}" + (f" on {event['worker']}" if "worker" in event else "")
        elif kind == "workers":
            self.message = f"Ray: {event['count']} workers on {event['address']}"
        elif kind == "progress":
            share = len(event["frames"]) * event["step"] / event["steps"]
            self.progress = (event["done"] + share) / max(1, event["total"])
            first, last = event["frames"][0], event["frames"][-1]
            frames = f"frame {first}" if first == last else f"frames {first}-{last}"
            what = "upscaled" if event.get("pass") == "upscale" else "done"
            self.message = f"{event['done']}/{event['total']} {what}, {frames}: step {event['step']}/{event['steps']}"
        elif kind == "upscale_start":
            self.progress = 0.0
            self.message = f"Upscaling {len(event['todo'])} of {len(event['frames'])} frames"
        elif kind == "upscaled":
            self.progress = event["done"] / max(1, event["total"])
            if not event["skipped"]:
                self.upscaled.append(event["frame"])
                strips.refresh_strip(self.scene, upscaled=True)
        elif kind == "frame":
            self.done_frames = event["done"]
            self.progress = event["done"] / max(1, event["total"])
            if not event["skipped"]:
                self.rendered.append(event["frame"])
                strips.refresh_strip(self.scene)
        elif kind == "finished":
            self.finished = True
            self.cancelled = event["cancelled"]
            self.message = f"{'Cancelled' if self.cancelled else 'Done'}: {event['rendered']} rendered, " \
                           f"{event['skipped']} up to date" + (
                               f", {event['upscaled']} upscaled" if event.get("upscaled") else "")
        elif kind == "error":
            self.finished = True
            self.error = event["message"]
        elif kind == "exit":
            global _worker
            self.finished = True
            if _worker is self.worker:
                _worker = None
            words = event.get("message") or ""
            self.error = f"The engine worker stopped (exit code {event['code']}); finished frames are kept." + (
                f"\n{words}" if words else ""
            )

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
