"""Feedback mode: each frame is image-to-image of the previous finished frame after motion (Deforum's 2D and 3D).

Per diffused ("key") frame, in Deforum's order: warp the previous key through the motion of every frame since it
(2D: zoom/angle/translation; 3D: reprojection into the frame's camera with depth, or with Follow Motion along
Blender's Vector pass, so objects that move by themselves carry their look too), match colours to the first frame
(or a reference image), apply contrast, add seeded noise, then img2img with the frame's strength. With a cadence of N
only every Nth frame (and the last) is diffused; the frames between are the keys on both sides warped to the
in-between frame and cross-blended, so every frame of the range is written. A key's mask (inpainting) applies to
its init: outside the mask the frame is the warped previous key, unchanged.

The chain's only state is the previous key's image, and it is read back from its PNG on disk, the same 8-bit pixels
an uninterrupted run continues from: a run resumed after a cancel or a crash gives the same frames.
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from .. import image_ops, warp
from ..flow import read_vector_pass, warp_previous
from ..frames import FrameStore
from ..plan import cadence_keys
from . import Context, Frames, Mode, WorkUnit, chain_covered, chain_remade, chain_units, register
from .diffuse import Job, diffuse


class Motion:
    """The plan's motion for every frame: 2D matrices, or 3D camera poses with their depth."""

    def __init__(self, settings: dict, records: list[dict]):
        self.settings = settings
        self.records = records
        self.width, self.height = settings["width"], settings["height"]
        self.mode = settings["motion_mode"]
        self.border = settings["border"]
        # Follow Motion with the scene camera: Blender's Vector pass moves the frame, objects that move by
        # themselves included; the camera path and depth see only the camera's own motion.
        self.flows = (self.mode == "3D" and bool(settings.get("flow_guide"))
                      and all(r.get("flow") for r in records[1:]))
        self._vectors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if self.mode == "3D":
            self._cameras()

    def _vector(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `index`'s (backward, forward) flow from its Vector pass, read once."""
        if index not in self._vectors:
            self._vectors[index] = read_vector_pass(self.records[index]["flow"])
        return self._vectors[index]

    def _cameras(self) -> None:
        """The chain's camera path (warp.CameraPath): the baked scene camera, or Deforum's motion accumulated from an
        identity pose (the same camera path a Deforum 3D run takes)."""
        use_scene = self.settings["camera_source"] == "SCENE" and all(r.get("camera") for r in self.records)
        self.use_scene = use_scene
        if use_scene:
            self.path = warp.CameraPath.scene([r["camera"] for r in self.records], self.width, self.height)
        else:
            self.path = warp.CameraPath.deforum([r.get("motion", {}) for r in self.records], self.width, self.height)

    def _plane(self, index: int) -> float:
        """Frame `index`'s plane distance. Deforum's units (translation / 200 per frame) assume its flat scene one
        unit in front of the camera; a scene camera's plane sits where the user puts it (keyable, per frame)."""
        if not self.use_scene:
            return 1.0
        return float(self.records[index].get("motion", {}).get("plane_distance", self.settings["plane_distance"]))

    def _depth(self, index: int) -> np.ndarray | None:
        path = self.records[index].get("depth")
        if self.settings["depth_source"] != "SCENE" or not path:
            return None
        depth = image_ops.read_depth(path)
        # Where the scene has no geometry (the world background), the plane stands in for it.
        empty = ~np.isfinite(depth) | (depth <= 0) | (depth >= warp.FAR_DEPTH)
        return np.where(empty, self._plane(index), depth).astype(np.float32)

    def step(self, image: np.ndarray, index: int) -> np.ndarray:
        """Move `image`, which shows frame index-1, to frame `index`."""
        if self.mode == "2D":
            return warp.warp_2d(image, self.records[index].get("motion", {}), self.border)
        if self.flows:
            return warp_previous(image, self._vector(index)[0])
        return self.between(image, index - 1, index)

    def between(self, image: np.ndarray, source: int, target: int) -> np.ndarray:
        """Move `image`, which shows frame `source`, to frame `target` in one warp (either direction)."""
        if self.mode == "2D":
            matrix = np.eye(3)
            lo, hi = sorted((source, target))
            for i in range(lo + 1, hi + 1):
                matrix = warp.matrix_2d(self.width, self.height, self.records[i].get("motion", {})) @ matrix
            if target < source:
                matrix = np.linalg.inv(matrix)
            return cv2.warpPerspective(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                                       borderMode=warp.border_mode(self.border))
        if self.flows:  # frame by frame along the Vector passes: backward flows forwards, forward flows back
            step = 1 if target > source else -1
            for i in range(source + step, target + step, step):
                image = warp_previous(image, self._vector(i)[0] if step > 0 else self._vector(i)[1])
            return image
        warped, _valid = self.path.reproject(
            image, source, target, depth=self._depth(target) if self.use_scene else None,
            depth_kind=self.settings["depth_kind"], plane_distance=self._plane(target), border=self.border)
        return warped


def _prepare(job: Job, image: np.ndarray, record: dict, reference: np.ndarray | None) -> np.ndarray:
    """Deforum's order between frames: colour match, contrast, noise."""
    values = record.get("image", {})
    mode = job.settings["color_coherence"]
    if reference is not None and mode != "NONE":
        image = image_ops.match_colors(image, reference, mode, values.get("color_coherence_amount", 1.0))
    image = image_ops.adjust_contrast(image, values.get("contrast", 1.0))
    return image_ops.add_noise(image, values.get("noise", 0.0), record["seed"])


def _needed_keys(keys: list[int], todo_indices: list[int]) -> list[int]:
    """Keys up to the one at or after the last frame to render: every earlier key is a link of the chain."""
    last = max(todo_indices)
    stop = next(k for k in keys if k >= last)
    return [k for k in keys if k <= stop]


def render(job: Job, records: list[dict], todo: set[int], store: FrameStore) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, RGB uint8 image) for every frame in `todo`, in frame order.

    `records` are the plan's frames from the first up to at least the last one to render; frames not in `todo`
    are finished on disk and are read back when the chain passes through them.
    """
    settings = job.settings
    size = (settings["width"], settings["height"])
    indices = [i for i, r in enumerate(records) if r["frame"] in todo]
    if not indices:
        return
    motion = Motion(settings, records)
    keys = cadence_keys(len(records), settings["cadence"])
    reference = image_ops.read_image(settings["color_reference"], size) if settings["color_reference"] else None
    previous: tuple[int, np.ndarray] | None = None
    for key in _needed_keys(keys, indices):
        record = records[key]
        # The previous key warped, frame by frame, to every frame up to this key: the key's init and the first
        # half of each in-between's blend.
        warped: dict[int, np.ndarray] = {}
        if previous is not None:
            image = previous[1]
            for j in range(previous[0] + 1, key + 1):
                image = motion.step(image, j)
                warped[j] = image
        if record["frame"] in todo:
            if previous is None:
                start = image_ops.read_image(settings["init_image"], size) if settings["init_image"] else None
                init = None if start is None else _prepare(job, start, record, reference)
                key_image = diffuse(job, [record], None if init is None else [init],
                                    keep=None if start is None else [start])[0]
            else:
                init = _prepare(job, warped[key], record, reference)
                coherence = [warped[key]] if record.get("image", {}).get("coherence_scale", 0.0) else None
                # A mask keeps the warped frame itself: colour matching, contrast and noise are for what is repainted
                # (left in kept pixels, they would pile up frame after frame).
                key_image = diffuse(job, [record], [init], coherence, keep=[warped[key]])[0]
        else:
            key_image = store.read(record["frame"])
        if reference is None and settings["color_coherence"] != "NONE":
            reference = key_image if previous is None else reference
        if previous is not None:
            span = key - previous[0]
            for j in range(previous[0] + 1, key):
                if records[j]["frame"] in todo:
                    t = (j - previous[0]) / span
                    yield records[j]["frame"], image_ops.blend_frames(warped[j], motion.between(key_image, key, j), t)
        if record["frame"] in todo:
            yield record["frame"], key_image
        previous = (key, key_image)


@register
class Feedback(Mode):
    """Chains of frames, each made from the one before it: a render covers the missing earlier frames of the chains it
    touches, and a distributed unit is one chain."""

    name = "FEEDBACK"
    linked = True

    def render(self, ctx: Context) -> Frames:
        job, todo = ctx.job(), ctx.todo_frames
        for segment in ctx.segments():
            yield from render(job, segment, todo, ctx.store)

    def covered(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
                settings: dict) -> list[dict]:
        return chain_covered(records, chain, store, hashes, settings["cadence"])

    def remake(self, records: list[dict], chain: list[dict], store: FrameStore, hashes: dict,
               settings: dict) -> set[int]:
        return chain_remade(records, chain, store, hashes, settings["cadence"])

    def units(self, plan: dict, todo: list[dict], records: list[dict]) -> list[WorkUnit]:
        return chain_units(plan, todo, records)
