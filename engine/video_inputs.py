"""Pictures for shot mode: pinned pictures and each frame's control picture (a VACE control video frame), read from
the files the bake wrote and made into what the video models were trained on."""

from __future__ import annotations

import numpy as np

from . import image_ops

# A fixed palette for the object index layout: one flat colour per index, the same on every frame and every run.
_PALETTE = np.random.default_rng(7).integers(40, 256, size=(1024, 3), dtype=np.uint8)


def read_picture(entry: dict, size: tuple[int, int]) -> np.ndarray:
    """{"path": image or movie, "index": movie frame} as RGB uint8 at size (width, height)."""
    if "index" in entry:
        return image_ops.read_video_frame(entry["path"], entry["index"], size)
    return image_ops.read_image(entry["path"], size)


def control_picture(entry: dict, kind: str, size: tuple[int, int]) -> np.ndarray:
    """A frame's control picture of the given kind (plan settings.video_control) as RGB uint8."""
    path = entry["path"]
    if kind == "DEPTH":
        if path.lower().endswith((".exr", ".npy")):  # Blender's depth pass: scene units
            return image_ops.depth_to_control(image_ops.read_depth(path), size)
        return read_picture(entry, size)  # a depth video or picture made elsewhere: as it is
    if kind == "FLOW":
        from .flow import read_vector_pass

        _, forward = read_vector_pass(path)
        return image_ops.resize(flow_picture(forward), size)
    if kind == "INDEX":
        values = image_ops.read_float_image(path)
        values = values[..., 0] if values.ndim == 3 else values
        return image_ops.resize(index_picture(values), size)
    return read_picture(entry, size)  # RENDER: Blender's render itself


def flow_picture(flow: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) in pixels as the usual colour wheel: hue the direction, brightness the speed (relative to the
    fastest pixel, so a still frame is black)."""
    import cv2

    magnitude, angle = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    hsv = np.zeros((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (angle * 90.0 / np.pi).astype(np.uint8)  # OpenCV's hue runs 0-179
    hsv[..., 1] = 255
    peak = float(magnitude.max())
    hsv[..., 2] = np.clip(magnitude / peak * 255.0, 0, 255).astype(np.uint8) if peak > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def index_picture(values: np.ndarray) -> np.ndarray:
    """An index pass (H, W) as flat colours: 0 (nothing, the world) black, each object index its own colour."""
    index = np.clip(np.rint(values), 0, len(_PALETTE) - 1).astype(np.int64)
    out = _PALETTE[index]
    out[index == 0] = 0
    return out
