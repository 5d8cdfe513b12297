"""Video / scene input mode: every frame is image-to-image of its own init frame (a movie or image strip's frame at
that scene frame, or Blender's render of the scene), with the frame's strength, prompts and ControlNet units.

Frames are independent, so runs of frames that share steps, guidance, strength and ControlNet scales (and either all
have an inpainting mask or none has) go through the pipeline as one batch. A frame's mask applies to its init frame.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .. import image_ops
from .diffuse import Job, diffuse


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
    for batch in batches(records, job.settings["batch_size"]):
        inits = [read_init(r["init"], size) for r in batch]
        yield from zip([r["frame"] for r in batch], diffuse(job, batch, inits))
