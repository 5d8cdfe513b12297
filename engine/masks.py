"""Inpainting masks from Blender: which pixels of a frame are repainted (white) and which are kept (black).

A frame's mask (the plan's per-frame `mask`) is one of:
  {"path": image}                   a painted mask or a mask strip's frame (PNG, EXR, ...): grey >= 0.5 is repainted
  {"path": movie, "index": n}       frame n (0-based) of a mask movie, read like a video init frame
  {"path": pass, "select": [i...]}  an object or material index pass (float EXR or .npy, the index in the first
                                    channel): the pixels whose rounded index is one of `select` are repainted
plus "invert": true to repaint the other pixels instead.

The mask is feathered by the settings' mask_blur pixels: a Gaussian cut off at that radius, so a pixel farther than
mask_blur from the mask's edge is exactly kept (0) or exactly repainted (1). Colour files are read colour-managed
(read_image); float files (EXR, HDR, .npy) as data, since Blender writes a mask strip's coverage there unencoded.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from . import image_ops

DATA_SUFFIXES = (".exr", ".hdr", ".npy")
_MAX_LISTED = 20  # pass indices named in an error


def read_mask(mask: dict, size: tuple[int, int], blur: int = 0, frame: int | None = None) -> np.ndarray:
    """The frame's mask at `size` (width, height): float32 HxW in 0-1, 1 = repaint, feathered by `blur` pixels.
    Raises FileNotFoundError / ValueError naming the frame and the file."""
    where = f"frame {frame}: " if frame is not None else ""
    path = mask["path"]
    select = mask.get("select")
    if select is not None and not select:
        raise ValueError(f"{where}the mask's 'select' lists no pass index (for the index pass {path})")
    if select is not None and "index" in mask:
        raise ValueError(f"{where}an index pass mask is one file per frame: 'index' (a movie frame) does not apply "
                         f"to {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}mask file not found: {path}")
    try:
        values = image_ops.read_float_image(path) if select is not None else _grey(path, mask.get("index"), size)
    except (OSError, ValueError, cv2.error) as e:
        raise ValueError(f"{where}can't read mask file {path}: {e}") from e
    binary = _selected(values, select, path, size, where) if select is not None else values >= 0.5
    if mask.get("invert"):
        binary = ~binary
    return feather(binary.astype(np.float32), blur)


def _grey(path: str, index: int | None, size: tuple[int, int]) -> np.ndarray:
    """The file as grey 0-1 (float data as it is, unclipped) at `size`."""
    if index is not None:
        rgb = image_ops.read_video_frame(path, index, size)
    elif path.lower().endswith(DATA_SUFFIXES):
        values = image_ops.read_float_image(path)
        if values.ndim == 3:
            values = values[..., :3].mean(axis=2) if values.shape[2] >= 3 else values[..., 0]
        return image_ops.resize(np.nan_to_num(values), size)
    else:
        rgb = image_ops.read_image(path, size)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _selected(values: np.ndarray, select: list[int], path: str, size: tuple[int, int], where: str) -> np.ndarray:
    """An index pass's pixels whose rounded index (first channel) is one of `select`, at `size`."""
    if values.ndim == 3:
        values = values[..., 0]
    indices = np.rint(np.nan_to_num(values)).astype(np.int64)
    chosen = np.isin(indices, np.asarray(select, dtype=np.int64))
    if not chosen.any():
        present = np.unique(indices)
        listed = ", ".join(str(v) for v in present[:_MAX_LISTED]) + (" ..." if len(present) > _MAX_LISTED else "")
        raise ValueError(f"{where}the index pass {path} has none of the selected pass indices "
                         f"{', '.join(map(str, select))} (it has {listed})")
    # Area-resized coverage, thresholded like a painted mask: an object keeps its outline at another size.
    return image_ops.resize(chosen.astype(np.float32), size) >= 0.5


def feather(mask: np.ndarray, blur: int) -> np.ndarray:
    """Soften a 0/1 mask's edge over `blur` pixels each side: a Gaussian (sigma blur/2) cut off at radius blur, so
    pixels farther than that from the edge keep their exact 0 or 1."""
    if blur <= 0:
        return mask
    k = 2 * int(blur) + 1
    soft = cv2.GaussianBlur(mask, (k, k), sigmaX=blur / 2.0, sigmaY=blur / 2.0, borderType=cv2.BORDER_REPLICATE)
    # The kernel's weights sum to 1 only up to float rounding: snap what should be exact.
    soft[soft > 1.0 - 1e-6] = 1.0
    soft[soft < 1e-6] = 0.0
    return np.clip(soft, 0.0, 1.0)


def repaint_area(mask: np.ndarray) -> np.ndarray:
    """The pixels the pipeline repaints: all the feathered mask lets through, so the feathered edge blends the init
    into new content rather than into the model's copy of the init."""
    return ((mask > 0) * 255).astype(np.uint8)


def paste_back(generated: np.ndarray, init: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The init outside the mask, the generated frame inside, blended by the feathered mask. Diffusion and the VAE's
    round trip touch every pixel; the mask decides which may change."""
    weight = mask.astype(np.float32)[..., None]
    mixed = init.astype(np.float32) * (1.0 - weight) + generated.astype(np.float32) * weight
    return image_ops.round_clip(mixed)
