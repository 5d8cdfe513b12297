"""A generate job: refresh audio-driven keys, bake, make the strips, drive the worker, and turn its events into
strip updates and status.

Shared by the modal operator (polled from a timer), the blocking operator, the CLI command and the render hook.
The worker stays loaded between jobs (engine_link/workers.py) so a second Generate doesn't reload the model.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import bpy

from ..bake.scene import BakeError, write_plan
from ..engine.events import describe, progress_text
from ..engine.frames import frame_filename
from ..engine_link import workers
from ..engine_link.worker_client import WorkerClient, WorkerError
from ..timeline import audio_keys, frame_range, pins
from . import compositor, estimate, live_preview, strips


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
        preview: bool | None = None,
    ):
        """`preview`: ask the engine for live previews (None: the scene's Live Preview, when a window shows them)."""
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
        # Strip sizing and the first-use changes a failed first try takes back (_take_back_first_use).
        self.size: tuple[int, int] = (0, 0)  # the frames' width and height (the plan's)
        self.upscale_factor = 0  # the upscaled frames' size over the frames' (0 until one exists)
        self.made: list[str] = []  # the names of the strips this job created
        self.first_use: dict[str, str] = {}  # "size", "view": what this job changed in the scene, as said to the user
        # The word before the render and its measured pace (run/estimate.py).
        self.plan: dict | None = None
        self.announcement = ""  # "24 frames to generate (1-24, from the prompt keys), ...", set by the start event
        self.timer = estimate.StepTimer()
        # Elapsed time, estimate and live preview (panels/progress.py): what is being done without the timing, the
        # last timing the engine sent (elapsed, eta, when it came), the preview's text ("" until one arrives).
        self.detail = ""
        self.timing_at: tuple[float, float | None, float] | None = None
        self.preview = ""
        self.previews = 0  # preview events shown
        self.want_preview = preview

    def start(self, context=None) -> None:
        if self.scene.keyframe_diffusion.audio_links:
            # A sound strip moved or was trimmed since its keys were written: write them again before the bake.
            try:
                audio_keys.refresh(self.scene, context=context)
            except audio_keys.AudioError as e:
                raise GenerateError(f"Audio: {e}") from e
        pins.sync_stored_frames(self.scene)  # a pin whose marker is deleted later stays where it was baked
        try:
            self.plan_path, plan = write_plan(self.scene, self.output, self.model)
        except BakeError as e:
            raise GenerateError(f"Bake failed: {e}") from e
        self.plan = plan
        self.folder = plan["settings"]["output_dir"]
        try:
            self._make_strips(plan)
            self.worker = workers.get_worker(context)
            preview = self.want_preview
            if preview is None:  # headless, nobody would see a preview: the engine makes none
                preview = self.scene.keyframe_diffusion.live_preview and not bpy.app.background
            self.worker.render(self.plan_path, self.frames, self.ray, preview=preview)
        except BaseException as e:
            self._take_back_first_use()  # nothing rendered: the scene stays as it was
            if isinstance(e, WorkerError):
                raise GenerateError(str(e)) from e
            raise
        self.message = "Starting engine"

    def _make_strips(self, plan: dict) -> None:
        """Make or update the strips, sized to the scene's picture; on the first Generate in a scene, also match the
        render size and the view transform to the frames (once per scene; said in self.notice)."""
        scene = self.scene
        settings = plan["settings"]
        frames = [r["frame"] for r in plan["frames"]]
        self.size = (settings["width"], settings["height"])
        if strips.find_strip(scene) is None:
            self.made.append(scene.keyframe_diffusion.strip_name)
            # With the frames in the compositor the render size and look are the render's own: neither changes.
            if compositor.group_node(scene) is None:
                self._match_scene()
        strips.update_strip(scene, self.folder, frames, size=self.size)
        if settings.get("upscale"):
            self.upscale_folder = settings["upscale"]["output_dir"]
            name = strips.upscaled_name(scene)
            if strips.find_strip(scene, name) is None:
                self.made.append(name)
            strips.update_strip(scene, self.upscale_folder, frames, upscaled=True)
            paths = (os.path.join(self.upscale_folder, frame_filename(f)) for f in frames)
            self._fit_upscaled(next((p for p in paths if os.path.isfile(p)), ""))
        compositor.sync(scene)

    def _match_scene(self) -> None:
        """The first strip in a scene: the render size and view transform become the frames' (once per scene: either
        mark present already means done before, so neither changes again)."""
        scene = self.scene
        had_size, had_view = strips.SIZE_MARK in scene, strips.VIEW_MARK in scene
        said_size = strips.match_render_size(scene, *self.size)
        said_view = strips.show_as_generated(scene)
        if not had_size and strips.SIZE_MARK in scene:
            self.first_use["size"] = said_size
        if not had_view and strips.VIEW_MARK in scene:
            self.first_use["view"] = said_view
        self._say(said_size, said_view)

    def _say(self, *texts: str) -> None:
        self.notice = ". ".join(text for text in texts if text)

    def _fit_upscaled(self, path: str) -> None:
        """The plan doesn't say the upscaler's factor (2 or 4, by its pipeline class), so the first upscaled frame on
        disk (`path`) tells it: the upscaled strip is fitted then, and a render size this job set to the frames'
        grows to the upscaled frames' (both strips refitted to it)."""
        if self.upscale_factor or not path:
            return
        size = strips.image_size(path)
        if size is None:
            return
        self.upscale_factor = factor = max(1, round(size[0] / self.size[0]))
        scene = self.scene
        if "size" in self.first_use:
            said = strips.grow_render_size(scene, *self.size, factor)
            if said:
                self.first_use["size"] = said
                self._say(said, self.first_use.get("view", ""))
        main = strips.find_strip(scene)
        if main is not None:
            strips.fit_strip(scene, main, *self.size)
        upscaled = strips.find_strip(scene, strips.upscaled_name(scene))
        if upscaled is not None:
            strips.fit_strip(scene, upscaled, self.size[0] * factor, self.size[1] * factor)

    def _take_back_first_use(self) -> None:
        """A Generate that failed or was cancelled before any of its frames existed leaves the scene as it was: the
        strips it made are removed (no red missing-media strip) and its first-use changes undone. Once frames exist
        the strip stays (finished frames are kept)."""
        scene = self.scene
        for name in self.made:
            strip = strips.find_strip(scene, name)
            if strip is not None and not strips.frame_files_exist(strip):
                strips.remove_strip(scene, strip)
        if strips.find_strip(scene) is None:  # the main strip was this job's and is gone: so are its changes
            if "size" in self.first_use:
                factor = self.upscale_factor or 1
                strips.undo_render_size(scene, (self.size, (self.size[0] * factor, self.size[1] * factor)))
            if "view" in self.first_use:
                strips.undo_view(scene)
            self.notice = ""
        self.made = []
        self.first_use = {}

    def handle(self, event: dict) -> None:
        """Follow one worker event: the status line says it as every printer does (engine.events.describe); frames
        that land refresh their strip."""
        kind = event.get("event")
        said = describe(event)
        self.timer.see(event)
        if kind == "start":
            self.total = len(event["frames"])
            self.announcement = self._announce(event)
        elif kind == "progress":
            share = len(event["frames"]) * event["step"] / event["steps"]
            self.progress = (event["done"] + share) / max(1, event["total"])
            self._timing(event)
        elif kind == "preview":
            self._preview(event)
            return
        elif kind == "upscale_start":
            self.progress = 0.0
        elif kind in ("frame", "upscaled"):
            self.progress = event["done"] / max(1, event["total"])
            self._timing(event)
            if kind == "upscaled":
                self._fit_upscaled(event["path"])
            if not event["skipped"]:
                upscaled = kind == "upscaled"
                (self.upscaled if upscaled else self.rendered).append(event["frame"])
                strips.refresh_strip(self.scene, upscaled=upscaled)
                compositor.sync(self.scene, reload=True)
            return  # the status keeps saying the step progress, not each file
        elif kind == "finished":
            self._record_pace()
            compositor.sync(self.scene, reload=True)  # the compositor re-reads the frames that changed
            self.finished = True
            self.cancelled = event["cancelled"]
            if self.cancelled:
                self._take_back_first_use()
            said = ". ".join(text for text in (said, self.notice) if text)
        elif kind in ("error", "exit"):
            self.finished = True
            self.error = said
            self._take_back_first_use()
            if kind == "exit":
                workers.forget(self.worker)
            return
        if said:
            self.message = said
            self.detail = progress_text(event) if kind == "progress" else said

    def _timing(self, event: dict) -> None:
        if "elapsed" in event:
            self.timing_at = (event["elapsed"], event.get("eta"), time.monotonic())

    def timing(self, now: float | None = None) -> tuple[float, float | None]:
        """(elapsed, eta) now: the engine's last figures moved on by the time since they came (None: no estimate
        yet), so the panel's clock runs between events (a long step on a CPU)."""
        if self.timing_at is None:
            return 0.0, None
        elapsed, eta, at = self.timing_at
        since = max(0.0, (time.monotonic() if now is None else now) - at)
        return elapsed + since, None if eta is None else max(0.0, eta - since)

    def _preview(self, event: dict) -> None:
        """The frame being denoised, into the preview image; a preview that can't be read is skipped (the next
        one comes a moment later)."""
        try:
            shown = live_preview.show(event["path"])
        except (RuntimeError, OSError) as e:  # Blender can't read it (half a file never happens: it's renamed in)
            print(f"keyframe_diffusion: live preview skipped: {e}")
            return
        if shown is not None:
            self.previews += 1
            self.preview = f"Frame {event['frame']}, step {event['step']}/{event['steps']}"

    def _announce(self, event: dict) -> str:
        if self.plan is None:
            return ""
        source = frame_range.source(self.scene) if self.frames is None else "the frames asked for"
        steps, seconds = estimate.plan_estimate(self.plan, event["todo"])
        return estimate.headless_line(event["frames"], event["todo"], source, steps, seconds)

    def _record_pace(self) -> None:
        """Keep this render's seconds per step per frame for the next estimate (not a Ray cluster's pace)."""
        rate = self.timer.rate()
        if rate is None or self.ray is not None or self.plan is None:
            return
        settings = self.plan["settings"]
        key = estimate.timing_key(settings["model"], settings["width"], settings["height"], settings["device"],
                                  settings["mode"])
        try:
            estimate.record_rate(key, rate)
        except OSError as e:  # the estimate is a courtesy: never fail a finished render over it
            print(f"keyframe_diffusion: could not keep the render's timing: {e}")

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
