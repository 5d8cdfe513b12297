"""The renderer: takes a validated plan, skips frames already on disk, renders the rest, reports events.

Events (records and texts: events.py) are plain dicts so the worker can print them as JSON lines and in-process
callers can read them directly: start, loading, progress (with elapsed time and an estimate: progress.py), preview
(when asked: preview.py), frame, finished. With settings.upscale, the upscaling pass runs before "finished" (its
events: see upscale.py) and "finished" gains "upscaled", "upscale_skipped", "upscale_missing" (counts) and
"upscale_dir".
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from dataclasses import dataclass
from typing import Callable

from . import events, modes
from . import plan as plan_mod
from .errors import Cancelled, DiskFullError
from .frames import FrameStore
from .models.controlnets import load_controlnet
from .models.decoders import load_decoder, use_decoder
from .models.derive import check_model_use
from .models.kwargs import check_pipeline_kwargs
from .models.load import load_pipeline
from .models.loras import apply_loras
from .models.options import LoadOptions
from .models.schedulers import set_scheduler
from .models.speed import apply_speed, uncompiled
from .progress import Pace

Emit = events.Emit


class Renderer:
    """Keeps loaded pipelines warm between renders (the worker lives across several generate presses)."""

    def __init__(self, options: LoadOptions | None = None):
        self.options = options or LoadOptions()
        self._pipes: dict[tuple[str, str, str], object] = {}
        self._controlnets: dict[tuple[str, str], object] = {}
        self._decoders: dict[tuple[str, str, str], object] = {}
        self._upscalers: dict[tuple[str, str, str], object] = {}
        # Each output folder's flicker pairs measured so far (flicker.render_figures), the latest folders only.
        self._flicker: dict[str, dict] = {}

    def _flicker_pairs(self, folder: str) -> dict:
        """The flicker pairs measured in `folder` by this renderer (a warm re-run measures only its changed pairs)."""
        key = os.path.abspath(folder)
        pairs = self._flicker.pop(key, {})
        self._flicker[key] = pairs  # the newest last: the oldest folders go first
        while len(self._flicker) > 8:
            del self._flicker[next(iter(self._flicker))]
        return pairs

    def pipeline(self, model: str, device: str, emit: Emit, precision: str = "auto"):
        key = (model, device, precision)
        if key not in self._pipes:
            emit(events.loading(model))
            self._pipes.clear()  # one model in memory at a time
            opts = LoadOptions(self.options.allow_download, self.options.allow_unsafe, device,
                               self.options.single_file_config, precision)
            self._pipes[key] = load_pipeline(model, opts)
        return self._pipes[key]

    def reload_pipeline(self, settings: dict, emit: Emit):
        """The plan's model loaded afresh (what was done to the warm one, such as offload hooks, can't be undone)."""
        self._pipes.clear()
        return self.pipeline(settings["model"], settings["device"], emit, settings.get("precision", "auto"))

    def _check_model_class(self, settings: dict) -> None:
        """A video model only in shot mode and shot mode only with one, said before any weights load."""
        from .models.locate import locate, read_class_name
        from .video_models import check_class

        key = (settings["model"], settings["device"], settings.get("precision", "auto"))
        if key in self._pipes:
            name = type(self._pipes[key]).__name__
        else:
            options = LoadOptions(self.options.allow_download, self.options.allow_unsafe, settings["device"],
                                  self.options.single_file_config)
            name = read_class_name(settings["model"], locate(settings["model"], options),
                                   self.options.allow_download)
        check_class(settings["model"], name, settings["mode"])

    def controlnet(self, model: str, device: str, emit: Emit):
        key = (model, device)
        if key not in self._controlnets:
            emit(events.loading(model))
            opts = LoadOptions(self.options.allow_download, self.options.allow_unsafe, device,
                               self.options.single_file_config)
            self._controlnets[key] = load_controlnet(model, opts)
        return self._controlnets[key]

    def decoder(self, name: str, device: str, dtype, emit: Emit):
        key = (name, device, str(dtype))  # follows the model's precision
        if key not in self._decoders:
            emit(events.loading(name))
            self._decoders.clear()
            self._decoders[key] = load_decoder(name, self.options, device, dtype)
        return self._decoders[key]

    def upscaler(self, model: str, device: str, emit: Emit, precision: str = "auto"):
        """The upscaling pass's pipeline (see upscale.py), kept warm beside the base pipeline; one at a time."""
        from .upscale import load_upscaler

        key = (model, device, precision)
        if key not in self._upscalers:
            emit(events.loading(model))
            self._upscalers.clear()
            opts = LoadOptions(self.options.allow_download, self.options.allow_unsafe, device, None, precision)
            self._upscalers[key] = load_upscaler(model, opts)
        return self._upscalers[key]

    def upscale(
        self,
        plan: dict,
        frame_range: tuple[int, int] | None,
        emit: Emit,
        cancel: threading.Event | None = None,
    ) -> dict:
        """Only the upscaling pass, over the finished frames of `frame_range` (None: all); frames without a current
        main frame are counted as missing and left out. Ends with a finished event (events.UpscaleFinished)."""
        settings = plan["settings"]
        if not settings.get("upscale"):
            raise plan_mod.PlanError("settings: the plan has no 'upscale' settings (an upscaler model and an output "
                                     "folder), so there is nothing to upscale")
        store = FrameStore(settings["output_dir"])
        work = plan_work(plan, frame_range, store)
        # Only the chosen frames: plan_work adds the mode's other covered frames (a feedback chain's missing earlier
        # frames, a clip's other frames).
        chosen = set(plan_mod.frames_of(plan_mod.select_frames(plan, frame_range)))
        records = [r for r in work.records if r["frame"] in chosen]
        result = self._upscale_pass(plan, records, work.hashes, store, emit, cancel or threading.Event())
        summary = events.upscale_finished(**result, output_dir=store.folder)
        emit(summary)
        return summary

    def _upscale_kind(self, settings: dict) -> str | None:
        """The plan's upscaler kind ('x4'/'x2'), found without loading it, or None when the plan has no pass."""
        from .upscale import check_upscale_folder, check_upscaler

        upscale = settings.get("upscale")
        if not upscale:
            return None
        check_upscale_folder(settings)
        return check_upscaler(upscale["model"], LoadOptions(self.options.allow_download, self.options.allow_unsafe))

    def _upscale_pass(self, plan: dict, records: list[dict], hashes: dict, store: FrameStore, emit: Emit,
                      cancel: threading.Event, skip: bool = False) -> dict:
        import os

        from .upscale import run_pass

        settings = plan["settings"]
        upscale = settings["upscale"]
        if skip:  # a cancelled render: its frames' upscales wait for the next run
            return {"upscaled": 0, "upscale_skipped": 0, "upscale_missing": 0,
                    "upscale_dir": os.path.abspath(upscale["output_dir"]), "cancelled": True}

        def load():
            return self.upscaler(upscale["model"], settings["device"], emit, settings.get("precision", "auto"))

        return run_pass(load, settings, records, hashes, store, emit, cancel, self._upscale_kind(settings))

    def prepare(self, settings: dict, emit: Emit) -> tuple[object, list]:
        """The pipeline the plan's mode renders with and its ControlNet units, made from the base pipeline (loaded
        once and reused) by the mode (modes.Mode.prepare)."""
        self._check_model_class(settings)
        pipe = self.pipeline(settings["model"], settings["device"], emit, settings.get("precision", "auto"))
        if settings["mode"] != "SHOT":  # (video models: _check_model_class)
            check_model_use(pipe, settings)  # an inpainting or depth-to-image model where it can't work: say so first
        return modes.get(settings["mode"]).prepare(self, pipe, settings, emit)

    def image_pipeline(self, pipe, settings: dict, emit: Emit) -> tuple[object, list]:
        """The base pipeline with the plan's LoRAs, scheduler, decoder and speed switches, and its ControlNet units:
        what the image modes render with."""
        from . import clip_pipeline

        clip_pipeline.leave(pipe, settings["mode"])  # what a clip render left on the shared components goes
        uncompiled(pipe)  # LoRAs load into the model's own UNet
        set_scheduler(pipe, settings["scheduler"], settings.get("scheduler_kwargs"))
        name = settings.get("decoder", "").strip()
        use_decoder(pipe, self.decoder(name, str(pipe.device), pipe.unet.dtype, emit) if name else None)
        apply_loras(pipe, settings.get("loras", []), allow_unsafe=self.options.allow_unsafe)
        check_pipeline_kwargs(pipe, settings.get("pipeline_kwargs", {}))
        apply_speed(pipe, settings)
        nets = [self.controlnet(unit["model"], settings["device"], emit) for unit in settings.get("controlnets", [])]
        return pipe, nets

    def render(
        self,
        plan: dict,
        frame_range: tuple[int, int] | None,
        emit: Emit,
        cancel: threading.Event | None = None,
        hold_folder: bool = True,
        preview: bool | float = False,
    ) -> dict:
        """Render the frames of `frame_range` (None: all) not current in the output folder, then the upscaling pass.

        The render holds its output folder (FrameStore.rendering): a second render into it fails at once with a
        FolderInUseError naming this one. `hold_folder=False` only where the caller holds it already (a Ray worker
        writing into the driver's shared folder). `preview`: send live previews (preview.py), True at the default
        rate, a number: at most one per that many seconds."""
        settings = plan["settings"]
        self._upscale_kind(settings)  # a wrong upscaler fails here, before any frame is rendered
        store = FrameStore(settings["output_dir"])
        with store.rendering() if hold_folder else contextlib.nullcontext():
            return self._render(plan, frame_range, emit, cancel or threading.Event(), store, preview)

    def _render(self, plan: dict, frame_range: tuple[int, int] | None, emit: Emit, cancel: threading.Event,
                store: FrameStore, preview: bool | float = False) -> dict:
        settings = plan["settings"]
        work = plan_work(plan, frame_range, store)
        chain, records, todo, hashes = work.chain, work.records, work.todo, work.hashes
        total = len(records)
        pace = Pace(plan_mod.frames_of(todo))  # from before the model loads: elapsed is what the user waited
        done = work.announce(store, emit)
        store.expect(len(todo))
        by_frame = {r["frame"]: r for r in chain}
        rendered = 0
        cancelled = False
        if todo and not cancel.is_set():
            pipe, nets = self.prepare(settings, emit)
            previewer = None
            if preview is not False and preview is not None:
                from .preview import INTERVAL, Previewer  # (torch: the worker starts without it and says so)

                interval = INTERVAL if preview is True else float(preview)
                try:
                    previewer = Previewer(pipe, settings, store.folder, emit, interval)
                except Exception as e:  # no preview is no reason to stop a render
                    print(f"warning: no live preview for this model: {e}", file=sys.stderr)

            def on_step(frames: list[int], step: int, steps: int, latents=None) -> None:
                if cancel.is_set():
                    raise Cancelled()
                pace.step(frames, step, steps)
                emit(events.progress(frames, step, steps, done + rendered, total, timing=pace.timing()))
                if previewer is not None:
                    previewer.offer(frames, step, steps, latents)

            def write(frame: int, image) -> None:
                nonlocal rendered
                path = store.write(frame, to_image(image), hashes[frame], frame_params(settings, by_frame[frame]))
                rendered += 1
                pace.frame(frame)
                if meter is not None:
                    meter.landed(frame)
                emit(events.frame(frame, path, False, done + rendered, total, timing=pace.timing()))

            meter = None
            if measure_while_rendering(pipe):
                from .flicker import PairMeter

                meter = PairMeter(store.folder, records, (settings["width"], settings["height"]), hashes,
                                  self._flicker_pairs(store.folder))
            writer = BackgroundWriter(write, 2 * settings["batch_size"]) if settings.get("background_writes") else None
            try:
                # A cancel stops the mode at its next denoising step (on_step); frames it made before that (the
                # rest of a batch, a batch decoded on a thread, a clip) still come out and are written.
                context = modes.Context(pipe, settings, nets, chain, todo, store, on_step)
                for frame, image in modes.get(settings["mode"]).render(context):
                    writer.put(frame, image) if writer else write(frame, image)
            except Cancelled:
                cancelled = True
            finally:
                failing = sys.exc_info()[0] is not None
                if writer:  # frames already made are kept: the writes in the queue finish first
                    writer.close(raise_error=not failing)
                if meter is not None:
                    meter.close()
                try:
                    store.compact()
                except DiskFullError:
                    if not failing:  # else the error on its way says why (the journal keeps the records meanwhile)
                        raise
        elif todo:
            cancelled = True
        summary = events.finished(rendered, total - len(todo), cancelled, store.folder)
        _add_flicker(summary, store.folder, records, settings, hashes, self._flicker_pairs(store.folder))
        if settings.get("upscale"):  # the range's finished frames (all of them, also when none was rendered now)
            result = self._upscale_pass(plan, work.records, work.hashes, store, emit, cancel, skip=cancelled)
            summary["cancelled"] = cancelled or result.pop("cancelled")
            summary.update(result)
        emit(summary)
        return summary


def measure_while_rendering(pipe) -> bool:
    """Whether the flicker pairs are measured on a thread while the render goes on (flicker.PairMeter): on a GPU, whose
    CPU idles meanwhile; on the CPU the thread would slow the UNet."""
    return getattr(getattr(pipe, "device", None), "type", "cpu") != "cpu"


def _add_flicker(summary: dict, folder: str, records: list[dict], settings: dict, hashes: dict[int, str],
                 cache: dict) -> None:
    """The range's flicker (and its input's) in the finished event; a figure that can't be made is no reason to
    fail a finished render."""
    from .flicker import render_figures

    try:
        figures = render_figures(folder, records, (settings["width"], settings["height"]), hashes, cache)
    except Exception as e:  # noqa: BLE001 - said, and the render's summary goes out without it
        print(f"warning: no flicker figure for this render: {e}", file=sys.stderr)
        return
    if figures is not None:
        summary["flicker"] = figures


class BackgroundWriter:
    """Writes finished frames on a thread, in frame order, so PNG encoding and the manifest overlap the next frames'
    denoising (at a few milliseconds a frame on a GPU, writing on the render thread would cap the frame rate).

    Frame events come from this thread, after each file is in place. A cancel keeps every frame already made (so it
    can keep a few more than writing in line would); a write that fails stops the render with its error.
    """

    def __init__(self, write: Callable[[int, object], None], depth: int):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))  # bounds the frames held in memory
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="kd-frame-writer")
        self._thread.start()

    def put(self, frame: int, image) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame, image))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as e:  # handed to the render thread at its next put or at close
                    self._error = e

    def close(self, raise_error: bool = True) -> None:
        self._queue.put(None)
        self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


@dataclass
class Work:
    """What a render of a plan (or a range of it) has to do, given the frames already on disk."""

    chain: list[dict]  # every frame of the plan, in frame order
    records: list[dict]  # the frames this render covers, in frame order
    todo: list[dict]  # those not current on disk
    hashes: dict[int, str]

    def announce(self, store: FrameStore, emit: Emit) -> int:
        """The start event and a skipped frame event for each frame already on disk; returns how many those are."""
        emit(events.start(plan_mod.frames_of(self.records), plan_mod.frames_of(self.todo)))
        todo = set(plan_mod.frames_of(self.todo))
        done = len(self.records) - len(todo)
        for r in self.records:
            if r["frame"] not in todo:
                emit(events.frame(r["frame"], store.path(r["frame"]), True, done, len(self.records)))
        return done


def plan_work(plan: dict, frame_range: tuple[int, int] | None, store: FrameStore) -> Work:
    """The frames a render of `frame_range` (None: all) covers and which of them `store` lacks or has out of date."""
    settings = plan["settings"]
    mode = modes.get(settings["mode"])
    records = plan_mod.select_frames(plan, frame_range)
    chain = sorted(plan["frames"], key=lambda r: r["frame"])
    # A linked mode's frames depend on the other frames of their chain (feedback) or clip, so their hashes need every
    # frame, and the render covers the other frames the mode says (a chain's missing earlier frames, a whole clip).
    hashes = plan_mod.frame_hashes(settings, chain if mode.is_linked(settings) else records)
    records = mode.covered(records, chain, store, hashes, settings)
    again = mode.remake(records, chain, store, hashes, settings)  # current on disk, made again all the same
    todo = [r for r in records if r["frame"] in again or not store.is_current(r["frame"], hashes[r["frame"]])]
    return Work(chain, records, todo, hashes)


def to_image(image):
    """Modes yield PIL images or RGB uint8 arrays; frames are written from PIL."""
    from PIL import Image

    return image if isinstance(image, Image.Image) else Image.fromarray(image)


def frame_params(settings: dict, record: dict) -> dict:
    """What a frame was made from, for its PNG text chunk and the manifest."""
    params = {k: settings.get(k) for k in ("mode", "model", "width", "height", "scheduler")}
    if settings.get("mode") == "INTERPOLATE":  # where the first noise comes from: the parameters line's "Seed"
        params["latent_source"] = settings.get("latent_source")
    params.update({k: v for k, v in record.items() if k != "camera"})
    if record.get("camera"):
        params["camera"] = record["camera"].get("name")
    if settings.get("loras"):
        params["loras"] = settings["loras"]
    return params
