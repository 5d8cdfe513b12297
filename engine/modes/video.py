"""Video / scene input mode: every frame is image-to-image of its own init frame (a movie or image strip's frame at
that scene frame, or Blender's render of the scene), with the frame's strength, prompts and ControlNet units.

Frames are independent, so runs of frames that share steps, guidance, strength and ControlNet scales (and either all
have an inpainting mask or none has) go through the pipeline as one batch. A frame's mask applies to its init frame.
With `stream_batch`, frames whatever their keyed strength, steps and guidance share UNet calls (modes/stream.py).
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from .. import image_ops
from ..frames import FrameStore
from . import (Context, Frames, Mode, WorkUnit, chain_covered, chain_remade, chain_units, guided, overlap, register,
               stream)
from .diffuse import Job, diffuse, diffuse_later


def read_init(init: dict, size: tuple[int, int]) -> np.ndarray:
    """The init frame of a plan record: {"path": file} for images, plus {"index": n} for a movie's frame n."""
    if "index" in init:
        return image_ops.read_video_frame(init["path"], init["index"], size)
    return image_ops.read_image(init["path"], size)


def _batch_key(record: dict) -> tuple:
    # Masked frames are inpainted, the others image-to-image: never in one batch. (Masks may differ per frame.)
    return (record["steps"], record["guidance"], record.get("guidance_rescale", 0.0), record.get("strength", 0.6),
            repr([{k: c.get(k) for k in ("scale", "start", "end")} for c in record.get("control", [])]),
            bool(record.get("mask")))


def batches(records: list[dict], batch_size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for record in records:
        if batch and (len(batch) >= batch_size or _batch_key(record) != _batch_key(batch[0])):
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


def render(job: Job, records: list[dict]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, RGB uint8 image) for each record, in order."""
    size = (job.settings["width"], job.settings["height"])
    if job.settings.get("stream_batch"):
        why_not = stream.supported(job)
        if why_not is None:
            yield from _streamed(job, records, size)
            return
        job.warn_once(f"stream batching is not available for {why_not}: frames go through plain batches")
    yield from _batched(job, records, size)


def _batched(job: Job, records: list[dict], size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    runs = list(batches(records, job.settings["batch_size"]))
    if not job.settings.get("overlap_decode"):
        for batch in runs:
            inits = [read_init(r["init"], size) for r in batch]
            yield from zip([r["frame"] for r in batch], diffuse(job, batch, inits))
        return

    def denoised():  # the next batch's inits are read, and this batch decoded, while the next one denoises
        reads = overlap.prefetch(runs, lambda batch: [read_init(r["init"], size) for r in batch])
        for batch, inits in zip(runs, reads):
            yield [r["frame"] for r in batch], diffuse_later(job, batch, inits)

    yield from overlap.pipelined(denoised())


def _streamed(job: Job, records: list[dict], size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    """Runs of frames the stream takes go through it; masked frames through plain batches, in frame order."""
    for is_stream, run in itertools.groupby(records, key=stream.eligible):
        run = list(run)
        if is_stream:
            yield from stream.render(job, run, lambda r: read_init(r["init"], size))
        else:
            yield from _batched(job, run, size)


@register
class Video(Mode):
    """Independent frames, each from its own init frame; a distributed unit is one batch. Flow-guided (settings
    "flow_guide"), each frame continues from the one before (modes/guided.py): chains, as feedback."""

    name = "VIDEO"

    def is_linked(self, settings: dict) -> bool:
        return bool(settings.get("flow_guide"))

    def render(self, ctx: Context) -> Frames:
        if not self.is_linked(ctx.settings):
            return render(ctx.job(), ctx.todo)
        return self._guided(ctx)

    def _guided(self, ctx: Context) -> Frames:
        job, todo = ctx.job(), ctx.todo_frames
        for segment in ctx.segments():
            yield from guided.render(job, segment, todo, ctx.store, read_init)

    def covered(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
                settings: dict) -> list[dict]:
        if not self.is_linked(settings):
            return records
        return chain_covered(records, chain, store, hashes, settings.get("cadence", 1))

    def remake(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
               settings: dict) -> set[int]:
        if not self.is_linked(settings):
            return set()
        return chain_remade(records, chain, store, hashes, settings.get("cadence", 1))

    def units(self, plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
        if self.is_linked(plan["settings"]):
            return chain_units(plan, todo, records)
        return super().units(plan, todo, records)

    def batches(self, records: list[dict], batch_size: int) -> Iterator[list[dict]]:
        return batches(records, batch_size)
