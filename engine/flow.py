"""Motion between frames, in one convention for the whole engine.

flow[y, x] = (dx, dy) in pixels, x to the right and y down (image rows), from a frame to the one before it ("backward
flow"): the pixel at (x, y) in frame t was at (x + dx, y + dy) in frame t-1. An object moving 3 pixels to the right has
dx = -3 on its pixels, and warp_previous(frame t-1, flow) rebuilds frame t. The forward flow (frame t-1 to frame t) is
the same with the frames swapped; together they say what is visible in both (visible_mask).

Sources: Blender's Vector pass (read_vector_pass: the true motion of every pixel), or OpenCV's DIS or Farneback
optical flow estimated from the pictures (estimate_flow: movie and image strips, any frames).
"""

from __future__ import annotations

import numpy as np

# Forward-backward consistency (Sundaram, Brox and Keutzer, 2010; as Lai et al. use it): a pixel is visible in both
# frames when going back and forth along the flows returns to it, within this share of the motion plus a constant.
CONSISTENCY_SHARE = 0.01
CONSISTENCY_PIXELS = 0.5


class FlowError(ValueError):
    """Frames or flow that can't be used; the message says which and why."""


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return image.astype(np.uint8)


FLOW_METHODS = ("dis", "farneback")


def estimate_flow(current: np.ndarray, previous: np.ndarray, method: str = "dis") -> np.ndarray:
    """The backward flow from `current` to `previous` (uint8 RGB or grey, same size), by OpenCV's DIS optical flow or
    Farneback's: (H, W, 2) float32, in the convention above."""
    import cv2

    # Both give the flow with I0(p) ~ I1(p + flow(p)) for (I0, I1): current against previous is the backward flow.
    if method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(_grey(current), _grey(previous), None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(_grey(current), _grey(previous), None, 0.5, 3, 15, 3, 5, 1.2, 0)
    else:
        raise FlowError(f"unknown flow method '{method}': one of {', '.join(FLOW_METHODS)}")
    return flow.astype(np.float32)


def _sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image), grid_x + flow[..., 0], grid_y + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_previous(previous: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame t made from frame t-1 along the backward flow of frame t."""
    return _sample(previous, flow.astype(np.float32))


def visible_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of frame t visible in frame t-1 too (bool, H x W): the backward flow lands inside frame t-1, and the
    forward flow there (t-1 to t) leads back to where it started. Revealed background (hidden by a moving object in
    t-1) and pixels that came from outside the picture are not visible."""
    height, width = backward.shape[:2]
    back_there = _sample(forward.astype(np.float32), backward.astype(np.float32))
    loop = backward + back_there
    size = (backward ** 2).sum(-1) + (back_there ** 2).sum(-1)
    consistent = (loop ** 2).sum(-1) < CONSISTENCY_SHARE * size + CONSISTENCY_PIXELS
    grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
    x, y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return consistent & inside



def read_vector_pass(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Blender's Vector pass of frame t (an EXR as bake/passes.py writes it: R, G, B, A or X, Y, Z, W) as (backward,
    forward): the flow to frame t-1 and the flow to frame t+1, each (H, W, 2) float32 in the convention above.

    Blender stores, in pixels with y up: X, Y = the position in the previous frame minus the position now; Z, W = the
    position now minus the position in the next frame (checked on every Blender the tests run: an object moving 4
    pixels right and 2 up per frame reads -4, -2, -4, -2). So backward = (X, -Y) and forward = (-Z, W)."""
    from .image_ops import read_exr_channels

    channels = read_exr_channels(path)
    if channels is None:
        raise FlowError(f"reading the Vector pass {path} needs the OpenEXR package in the engine's Python")
    short = {name.rsplit(".", 1)[-1]: values for name, values in channels.items()}
    for names in (("R", "G", "B", "A"), ("X", "Y", "Z", "W")):
        if all(n in short for n in names):
            x, y, z, w = (short[n] for n in names)
            return np.stack([x, -y], axis=2).astype(np.float32), np.stack([-z, w], axis=2).astype(np.float32)
    raise FlowError(f"{path} is not a Vector pass: it has channels {', '.join(sorted(short))}, not four (R, G, B, A "
                    "or X, Y, Z, W)")
