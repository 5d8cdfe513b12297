"""Image operations between feedback frames and for ControlNet conditioning images. Never imports bpy.

Unless a docstring says otherwise an image is a numpy ``uint8`` array of shape ``(height, width, 3)`` in RGB order;
sizes are given as ``(width, height)`` like OpenCV and Pillow. Functions never change their arguments; where an
operation is a no-op (``amount == 0``, ``contrast == 1``...) the input array itself is returned, otherwise a new one.

Feedback mode follows Deforum's render loop, which prepares the previous frame for the next img2img in this order:
warp -> colour coherence (:func:`match_colors`) -> contrast (:func:`adjust_contrast`) -> (anti-blur) -> noise
(:func:`add_noise`). Cadence in-betweens are cross-blends (:func:`blend_frames`). Each function's docstring says
where it matches Deforum and where it deliberately differs.

OpenCV does the image work (colour conversions, resizing, Canny, file and movie decoding) and scikit-image the
histogram matching; scikit-image is imported on first use so importing this module stays cheap.
"""

from __future__ import annotations

import os

# OpenCV decodes OpenEXR only with this set (it is off by default because of the parser's exposure to untrusted
# files; here the files are the user's own renders). Set before cv2 is imported so it holds whenever OpenCV reads it.
os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"

import threading  # noqa: E402
from collections import OrderedDict  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from . import vocabulary as vocab  # noqa: E402

COLOR_MODES = vocab.names(vocab.COLOR_MODES)
PREPROCESSORS = ("NONE", "CANNY", "DEPTH", "NORMAL", "INVERT")

# Blender writes this (1e10) as the depth of pixels where no surface was hit; anything this far counts as background.
BACKGROUND_DEPTH = 1e9

_VIDEO_CACHE_SIZE = 4
# A forward jump of at most this many frames is decoded instead of seeking.
_MAX_FORWARD_GRAB = 32


# ---------------------------------------------------------------------------------------------------------------------
# Conversions

def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1 (same shape). Float input is returned as float32 unchanged in value."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    return image.astype(np.float32, copy=False)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float 0..1 -> uint8 0..255, rounded to nearest and clipped; uint8 input is returned as it is."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return round_clip(image.astype(np.float32) * (255.0 / 65535.0))
    return round_clip(image.astype(np.float32) * 255.0)


def to_pil(image: np.ndarray) -> "PIL.Image.Image":  # noqa: F821 (Pillow is imported on use)
    """uint8 RGB (HxWx3) or grey (HxW) array -> ``PIL.Image.Image`` ("RGB" / "L"), e.g. for diffusers' pipelines."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"to_pil needs a uint8 array, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(image))
    return Image.fromarray(np.ascontiguousarray(_check_rgb(image)))


def round_clip(values: np.ndarray) -> np.ndarray:
    """Float pixel values in 0..255 units -> uint8, rounded to nearest and clipped."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _check_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an HxWx3 RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    return image


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey (HxW or HxWx1) -> HxWx3 by repeating the channel; HxWx3 unchanged."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image


def resize(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize to ``size = (width, height)``; ``None`` or the same size returns the input.

    Shrinking uses ``cv2.INTER_AREA`` (no aliasing), growing ``cv2.INTER_CUBIC`` (clipped back to the dtype's range,
    as cubic overshoots at edges). An axis that shrinks while the other grows counts as shrinking.
    """
    if size is None:
        return image
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be two positive integers (width, height), got {size!r}")
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrinking = width < w or height < h
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Feedback-loop operations

def _to_space(rgb01: np.ndarray, mode: str) -> np.ndarray:
    if mode == "LAB":
        return cv2.cvtColor(rgb01, cv2.COLOR_RGB2LAB)
    if mode == "HSV":
        return cv2.cvtColor(rgb01, cv2.COLOR_RGB2HSV)
    return rgb01


def _from_space(values: np.ndarray, mode: str) -> np.ndarray:
    if mode == "LAB":
        return cv2.cvtColor(values, cv2.COLOR_LAB2RGB)
    if mode == "HSV":
        return cv2.cvtColor(values, cv2.COLOR_HSV2RGB)
    return values


def match_colors(image: np.ndarray, reference: np.ndarray, mode: str, amount: float = 1.0) -> np.ndarray:
    """Pull ``image``'s colours towards ``reference``'s: per-channel histogram matching in colour space ``mode``.

    This is Deforum's colour coherence (``maintain_colors``: ``skimage.exposure.match_histograms`` with the channel
    axis, after an OpenCV RGB -> LAB/HSV conversion, or directly on RGB), applied to the previous frame before it
    becomes the next init image, with the first frame (or a chosen image) as ``reference``. Differences from
    Deforum: the conversion and matching run in float (Deforum converts uint8 images, which quantises Lab/HSV), the
    arrays really are RGB (Deforum hands OpenCV's BGR frames to the RGB conversions), and ``amount`` blends the
    matched result with the original in RGB: ``(1 - amount) * image + amount * matched`` (Deforum always uses 1).

    ``mode`` is one of ``COLOR_MODES`` (case-insensitive); ``"NONE"`` or ``amount <= 0`` returns ``image`` itself,
    unchanged. ``amount`` is clipped to 0..1. ``reference`` may have a different size. Returns a new uint8 RGB image
    of ``image``'s shape.
    """
    mode = str(mode).upper()
    if mode not in COLOR_MODES:
        raise ValueError(f"unknown colour mode {mode!r}; expected one of {COLOR_MODES}")
    image = _check_rgb(image)
    amount = float(np.clip(amount, 0.0, 1.0))
    if mode == "NONE" or amount == 0.0:
        return image
    reference = _check_rgb(reference, "reference")

    from skimage.exposure import match_histograms

    source = to_float(image)
    matched = match_histograms(_to_space(source, mode), _to_space(to_float(reference), mode), channel_axis=-1)
    matched = np.clip(_from_space(matched.astype(np.float32), mode), 0.0, 1.0)
    if amount < 1.0:
        matched = source + (matched - source) * np.float32(amount)
    return to_uint8(matched)


def _rng_seed(seed: int) -> int:
    # default_rng needs a non-negative integer; Deforum seeds can be -1 or exceed 32 bits.
    return int(seed) % (1 << 64)


def add_noise(image: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``amount`` in the [-1, 1] image range (``amount * 127.5`` levels).

    This is the Deforum notebook's ``add_noise(sample, noise_amt)`` (``sample + randn * noise_amt`` on the [-1, 1]
    tensor), i.e. the unit of Deforum's noise schedule; the result is rounded and clipped to 0..255. (The A1111
    extension instead cross-fades towards a noise image, ``addWeighted(image, 1 - amt, noise_image, amt)``, which also
    pulls the frame towards grey by ``1 - amt``; its noise strength per unit is similar, about 0.8x.)

    The noise is reproducible: it comes from ``numpy.random.default_rng(seed)`` (any int; taken modulo 2**64) and
    is drawn per pixel and channel, so the same seed and image shape give the same noise. ``amount <= 0`` returns
    ``image`` itself, unchanged.
    """
    image = _check_rgb(image)
    amount = float(amount)
    if amount <= 0.0:
        return image
    rng = np.random.default_rng(_rng_seed(seed))
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    return round_clip(image.astype(np.float32) + noise * np.float32(amount * 127.5))


def adjust_contrast(image: np.ndarray, contrast: float) -> np.ndarray:
    """Deforum's contrast schedule: multiply every pixel value by ``contrast`` (``round(clip(image * contrast))``).

    Deforum's render loop does ``(prev_img * contrast).round().astype(np.uint8)``: despite the name it is a gain
    towards black (``< 1`` darkens, ``> 1`` brightens), not a stretch about mid-grey. Deforum does not clip, so values
    over 255 wrap around in its uint8 cast; here they are clipped to 255. ``contrast == 1`` returns ``image`` itself,
    unchanged; a negative ``contrast`` is an error.
    """
    image = _check_rgb(image)
    contrast = float(contrast)
    if contrast < 0.0 or not np.isfinite(contrast):
        raise ValueError(f"contrast must be a finite factor >= 0, got {contrast}")
    if contrast == 1.0:
        return image
    return round_clip(image.astype(np.float32) * np.float32(contrast))


def blend_frames(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Cross-blend two frames: ``(1 - t) * a + t * b``, rounded; ``t`` (clipped to 0..1) runs from ``a`` to ``b``.

    This is Deforum's cadence in-between: between two diffused frames (both warped to the in-between's camera),
    frame ``i`` of a run of ``cadence`` frames gets ``t = i / cadence`` for ``i = 1..cadence``, the last (``t = 1``)
    being the newly diffused frame itself. ``t = 0`` gives ``a`` and ``t = 1`` gives ``b`` exactly.
    """
    a = _check_rgb(a, "a")
    b = _check_rgb(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"frames to blend differ in shape: {a.shape} and {b.shape}")
    t = float(np.clip(t, 0.0, 1.0))
    if t == 0.0:
        return a.copy()
    if t == 1.0:
        return b.copy()
    return round_clip(a.astype(np.float32) * np.float32(1.0 - t) + b.astype(np.float32) * np.float32(t))


def luma_mean(image: np.ndarray) -> float:
    """Mean Rec. 601 luma (OpenCV's RGB -> grey weights) of an RGB image, in 0..255 levels; grey input as is."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(np.mean(image))


# ---------------------------------------------------------------------------------------------------------------------
# Reading images, movies and depth

def _read_file_bytes(path: str) -> np.ndarray:
    """The file's bytes, for ``cv2.imdecode`` (``cv2.imread`` cannot open non-ASCII paths on Windows)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from exc


def _decode(path: str, flags: int) -> np.ndarray:
    data = _read_file_bytes(path)
    try:
        decoded = cv2.imdecode(data, flags) if data.size else None
    except cv2.error as exc:
        raise ValueError(f"cannot decode image file {path}: {exc}") from exc
    if decoded is None:
        raise ValueError(f"cannot decode image file {path} (not an image, or a format OpenCV does not read)")
    return decoded


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear 0..1 -> sRGB-encoded 0..1 (IEC 61966-2-1 transfer function)."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def read_image(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read any image file OpenCV decodes (PNG, JPEG, TIFF, WebP, BMP, OpenEXR, HDR...) as uint8 RGB.

    Grey images are repeated to three channels. An alpha channel is dropped after compositing over black (straight
    alpha for integer formats; float formats such as EXR are premultiplied already, so their colour is kept). 16-bit
    images are scaled to 8 bits (``v * 255 / 65535``, rounded). Float images (EXR, HDR) are taken as scene-linear and
    sRGB-encoded after clipping to 0..1 (no view transform such as AgX/Filmic). ``size = (width, height)`` resizes as
    :func:`resize` does. EXIF orientation is not applied.

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it cannot be decoded; both
    name the path.
    """
    path = os.fspath(path)
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim == 2:
        colour, alpha = raw[:, :, None], None
    elif raw.shape[2] == 2:  # grey + alpha
        colour, alpha = raw[:, :, :1], raw[:, :, 1:]
    elif raw.shape[2] == 3:
        colour, alpha = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB), None
    elif raw.shape[2] == 4:
        colour, alpha = cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2RGB), raw[:, :, 3:]
    else:
        raise ValueError(f"image file {path} has {raw.shape[2]} channels; expected 1 to 4")

    if raw.dtype.kind == "f":
        rgb = to_uint8(_srgb_encode(np.nan_to_num(colour.astype(np.float32))))
    else:
        if raw.dtype == np.uint8:
            peak = 255.0
        elif raw.dtype == np.uint16:
            peak = 65535.0
        else:
            peak = float(np.iinfo(raw.dtype).max)
        values = colour.astype(np.float32) / np.float32(peak)
        if alpha is not None:
            values = values * (alpha.astype(np.float32) / np.float32(peak))
        rgb = to_uint8(values)
    return np.ascontiguousarray(resize(_as_rgb(rgb), size))


_OPENEXR_PIN = "OpenEXR==3.5.3"
# Channel sets of an EXR image in the order they are returned; a file with none of them must hold one channel (or
# one of these single ones: depth, value, luminance).
_EXR_VECTORS = (("R", "G", "B"), ("X", "Y", "Z"))
_EXR_SINGLES = ("Z", "V", "Y", "R", "X")


def _is_exr(path: str) -> bool:
    return path.lower().endswith(".exr")


def read_exr_channels(path: str) -> dict[str, np.ndarray] | None:
    """Every channel of an OpenEXR file (its first part) by its full name (``R``, ``X``, ``ViewLayer.Normal.X``...)
    as float32 HxW, through the OpenEXR package. OpenCV reads only channels called R, G, B, A or Y, so it reads
    Blender's Normal pass (A, X, Y, Z) as luminance and alpha. None when the OpenEXR package is not installed (an
    engine environment made before it was required; the engine check names it). Raises ``ValueError`` naming the
    file when it can't be read."""
    try:
        import OpenEXR
    except ImportError:
        return None
    try:
        with OpenEXR.File(path, separate_channels=True) as exr:
            channels = {name: np.asarray(channel.pixels, dtype=np.float32) for name, channel in exr.channels().items()}
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"cannot read OpenEXR file {path}: {exc}") from exc
    shapes = {values.shape for values in channels.values()}
    if not channels or len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"OpenEXR file {path} has no image channels of one size (channels: "
                         f"{', '.join(f'{n} {v.shape}' for n, v in channels.items()) or 'none'})")
    return channels


def _read_exr(path: str) -> np.ndarray | None:
    """An EXR's pixels by channel name: HxWx3 (R, G, B or X, Y, Z) with A appended when present, or HxW for a single
    channel. Layer prefixes ("ViewLayer.Normal.X") are dropped; a file with two layers of one name is refused."""
    channels = read_exr_channels(path)
    if channels is None:
        return None
    short: dict[str, np.ndarray] = {}
    for name, values in channels.items():
        key = name.rsplit(".", 1)[-1]
        if key in short:
            raise ValueError(f"OpenEXR file {path} holds several layers ({', '.join(sorted(channels))}): write one "
                             "pass a file")
        short[key] = values
    for names in _EXR_VECTORS:
        if all(n in short for n in names):
            order = [*names, "A"] if "A" in short else list(names)
            return np.stack([short[n] for n in order], axis=2)
    if len(short) == 1:
        return next(iter(short.values()))
    for name in _EXR_SINGLES:
        if name in short:
            return short[name]
    raise ValueError(f"OpenEXR file {path} has no colour (R, G, B), vector (X, Y, Z) or depth (Z) channels: "
                     f"{', '.join(sorted(channels))}")


def read_float_image(path: str) -> np.ndarray:
    """Read a data image (e.g. a Normal pass) with its values as stored: float32 HxW or HxWxC, channels in RGB(A) order.

    ``.npy`` files are loaded as they are; OpenEXR files are read by channel name (:func:`read_exr_channels`: R, G, B
    or X, Y, Z, then A; Blender writes a vector pass such as Normal as A, X, Y, Z); other files go through OpenCV
    (float TIFF, or integer formats, whose raw values are returned as float, unscaled). No colour transform, no alpha
    compositing. Raises
    ``FileNotFoundError`` / ``ValueError`` naming the path.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    if path.lower().endswith(".npy"):
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read array file {path}: {exc}") from exc
    else:
        values = _read_exr(path) if _is_exr(path) else None
        if values is None:
            values = _decode(path, cv2.IMREAD_UNCHANGED)
            if values.ndim == 3 and values.shape[2] == 3:
                values = cv2.cvtColor(values, cv2.COLOR_BGR2RGB)
            elif values.ndim == 3 and values.shape[2] == 4:
                values = cv2.cvtColor(values, cv2.COLOR_BGRA2RGBA)
            elif _is_exr(path) and values.ndim == 3 and values.shape[2] == 2:
                # OpenCV knows only R, G, B, A and Y: an X, Y, Z (vector) EXR comes out as luminance and alpha.
                raise ValueError(f"{path}: OpenCV can't read this EXR's channels; install the OpenEXR package "
                                 f"(pip install {_OPENEXR_PIN}, listed in requirements/engine.txt)")
    values = np.asarray(values)
    if values.ndim not in (2, 3) or values.size == 0 or values.dtype.kind not in "fiu":
        raise ValueError(f"{path} does not hold a numeric image (shape {values.shape}, {values.dtype})")
    return np.ascontiguousarray(values, dtype=np.float32)


class _VideoReader:
    """An open capture and the index of the frame its next ``read()`` returns."""

    def __init__(self, path: str):
        self.path = path
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            self.capture.release()
            raise ValueError(f"cannot open movie file {path} (not a movie, or a codec OpenCV's FFmpeg lacks)")
        self.position = 0
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def rewind(self) -> None:
        self.capture.release()
        self.capture = cv2.VideoCapture(self.path)
        if not self.capture.isOpened():
            raise ValueError(f"cannot reopen movie file {self.path}")
        self.position = 0

    def _skip_to(self, index: int) -> bool:
        while self.position < index:
            if not self.capture.grab():
                return False
            self.position += 1
        return True

    def read(self, index: int) -> np.ndarray | None:
        if index != self.position:
            if self.position < index <= self.position + _MAX_FORWARD_GRAB:
                if not self._skip_to(index):
                    return None
            else:
                sought = self.capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                if sought and int(round(self.capture.get(cv2.CAP_PROP_POS_FRAMES))) == index:
                    self.position = index
                else:  # seeking unsupported or inexact: decode from the start
                    if index < self.position or not sought:
                        self.rewind()
                    if not self._skip_to(index):
                        return None
        ok, frame = self.capture.read()
        if not ok or frame is None:
            return None
        self.position = index + 1
        return frame

    def close(self) -> None:
        self.capture.release()


_video_lock = threading.Lock()
_video_cache: OrderedDict[tuple[str, float, int], _VideoReader] = OrderedDict()


def close_videos() -> None:
    """Release every cached movie capture (:func:`read_video_frame` keeps the last few open)."""
    with _video_lock:
        while _video_cache:
            _video_cache.popitem(last=False)[1].close()


def read_video_frame(path: str, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Frame ``index`` (0-based, in decode order) of a movie file as uint8 RGB, optionally resized to ``size``.

    Uses ``cv2.VideoCapture`` (OpenCV's FFmpeg). The last few movies stay open in a small LRU cache keyed by path
    and modification time, so reading frames in order decodes each once; a backward or long forward jump seeks with
    ``CAP_PROP_POS_FRAMES``, checks where it landed, and falls back to decoding from the start when the seek is not
    exact. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and index when the file
    cannot be opened or has no such frame.
    """
    path = os.path.abspath(os.fspath(path))
    index = int(index)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"movie file not found: {path}")
    if index < 0:
        raise ValueError(f"frame index {index} of movie {path} is negative")
    stat = os.stat(path)
    key = (path, stat.st_mtime, stat.st_size)
    with _video_lock:
        reader = _video_cache.pop(key, None)
        if reader is None:
            for stale in [k for k in _video_cache if k[0] == path]:
                _video_cache.pop(stale).close()
            reader = _VideoReader(path)
        _video_cache[key] = reader
        while len(_video_cache) > _VIDEO_CACHE_SIZE:
            _video_cache.popitem(last=False)[1].close()
        frame = reader.read(index)
        count = reader.frame_count
    if frame is None:
        known = f" (it has {count} frames)" if count > 0 else ""
        raise ValueError(f"cannot read frame {index} of movie {path}: out of range or undecodable{known}")
    return np.ascontiguousarray(resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size))


def read_depth(path: str) -> np.ndarray:
    """Read a depth map as float32 HxW in scene units (larger = farther).

    ``.npy``: a 2-D array (or HxWx1 / HxWxC, first channel) as saved by :func:`write_depth`. OpenEXR: read by
    channel name (:func:`read_exr_channels`; R of R, G, B, else X, else the one channel such as Z or V, layer prefixes
    like ``ViewLayer.Depth.Z`` allowed). Other files go through OpenCV with their values kept as they are (a 16-bit
    PNG/TIFF: raw integer values, not rescaled).

    Raises ``FileNotFoundError`` when the file is missing and ``ValueError`` naming it when it cannot be read or is
    not a 2-D map.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"depth file not found: {path}")
    if path.lower().endswith(".npy"):
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read depth file {path}: {exc}") from exc
    else:
        depth = _read_exr(path) if _is_exr(path) else None
        if depth is None:
            depth = _decode(path, cv2.IMREAD_UNCHANGED)
            if depth.ndim == 3 and depth.shape[2] >= 3:
                depth = depth[:, :, 2]  # OpenCV's BGR(A) order: channel 2 is R
    depth = np.asarray(depth)
    if depth.ndim == 3:
        depth = depth[:, :, 0]
    if depth.ndim != 2 or depth.size == 0 or depth.dtype.kind not in "fiu":
        raise ValueError(f"depth file {path} does not hold a 2-D numeric map (shape {depth.shape}, {depth.dtype})")
    return np.ascontiguousarray(depth, dtype=np.float32)


def write_depth(path: str, depth: np.ndarray) -> None:
    """Save a depth map (HxW, scene units) as float32 ``.npy`` at exactly ``path``, which must end in ``.npy``."""
    path = os.fspath(path)
    if not path.lower().endswith(".npy"):
        raise ValueError(f"depth maps are written as .npy; got {path}")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {depth.shape}")
    with open(path, "wb") as handle:
        np.save(handle, depth, allow_pickle=False)


# ---------------------------------------------------------------------------------------------------------------------
# ControlNet conditioning images

def depth_to_control(depth: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Depth in scene units (HxW, larger = farther) -> ControlNet depth image, near = bright, like MiDaS output.

    Valid pixels are finite, ``> 0`` and nearer than ``BACKGROUND_DEPTH`` (Blender writes 1e10 where nothing was
    hit). Their inverse depth is normalised min..max to 0..255 (the nearest pixel 255, the farthest 0, as the MiDaS
    annotator normalises its relative inverse depth); when all valid pixels are equally far they are 255. Invalid
    pixels are 0 (black). Returns uint8 HxWx3 (grey repeated), resized to ``size = (width, height)`` if given.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim == 3:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0) & (depth < BACKGROUND_DEPTH)
    out = np.zeros(depth.shape, dtype=np.float32)
    if valid.any():
        inverse = 1.0 / depth[valid]
        low, high = float(inverse.min()), float(inverse.max())
        out[valid] = (inverse - low) / (high - low) if high > low else 1.0
    return resize(_as_rgb(to_uint8(out)), size)


def normal_to_control(normal: np.ndarray, world_to_camera: np.ndarray | None = None) -> np.ndarray:
    """Blender Normal pass (HxWx3 float, unit vectors, components in -1..1) -> ControlNet normal map, uint8 RGB.

    The target is ControlNet 1.1's ``normalbae`` convention (its README: "blue is front, red is left, green is
    top"), encoded as ``(n * 0.5 + 0.5) * 255``. The input must be in Blender's camera space: +X right, +Y up, +Z
    towards the viewer (the camera looks down -Z). Blender's Normal pass is in world space, so either convert it
    first or pass ``world_to_camera`` (the camera's inverse world matrix, 3x3 or 4x4; only its rotation is used and
    the vectors are renormalised). The X axis is then negated (red = left): ``R, G, B = -x, y, z``. A surface facing
    the camera is (128, 128, 255); pixels with a zero normal (Blender's background) become (128, 128, 128).
    Extra channels (e.g. alpha) are ignored.
    """
    normal = np.asarray(normal, dtype=np.float32)
    if normal.ndim != 3 or normal.shape[2] < 3:
        raise ValueError(f"normal must be HxWx3, got shape {normal.shape}")
    vectors = np.nan_to_num(normal[:, :, :3])
    if world_to_camera is not None:
        rotation = np.asarray(world_to_camera, dtype=np.float32)[:3, :3]
        vectors = vectors @ rotation.T
        length = np.linalg.norm(vectors, axis=2, keepdims=True)
        vectors = np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 1e-8)
    encoded = vectors * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    return round_clip((np.clip(encoded, -1.0, 1.0) * 0.5 + 0.5) * 255.0)


def canny(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """ControlNet Canny image: ``cv2.Canny`` on the grey image with hysteresis thresholds ``low`` < ``high``.

    White (255) edge pixels on black, uint8 HxWx3. These are the thresholds of the ControlNet annotator's defaults.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"canny needs a uint8 image, got {image.dtype}")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 and image.shape[2] == 3 else image
    if grey.ndim == 3:
        grey = grey[:, :, 0]
    return _as_rgb(cv2.Canny(np.ascontiguousarray(grey), float(low), float(high)))


_PREPROCESS_OPTIONS = frozenset({"low", "high", "size", "world_to_camera"})


def preprocess_control(image: np.ndarray, preprocessor: str, **options: Any) -> np.ndarray:
    """Make a ControlNet conditioning image with ``preprocessor`` (one of ``PREPROCESSORS``, case-insensitive).

    - ``NONE``: ``image`` as it is (already a conditioning image).
    - ``CANNY``: :func:`canny` of a uint8 RGB image; options ``low``, ``high``.
    - ``DEPTH``: ``image`` is a depth map (HxW float, scene units) -> :func:`depth_to_control`.
    - ``NORMAL``: ``image`` is a Normal pass (HxWx3 float) -> :func:`normal_to_control`; option ``world_to_camera``.
    - ``INVERT``: ``255 - image`` (black lines on white, e.g. line art, to the white-on-black ControlNet expects).

    Option ``size = (width, height)`` resizes the result (any preprocessor). Options a preprocessor does not use are
    ignored; unknown option names raise ``TypeError``.
    """
    unknown = set(options) - _PREPROCESS_OPTIONS
    if unknown:
        raise TypeError(f"unknown preprocess option(s): {', '.join(sorted(unknown))}")
    name = str(preprocessor).upper()
    size = options.get("size")
    if name == "NONE":
        out = image
    elif name == "CANNY":
        out = canny(image, options.get("low", 100), options.get("high", 200))
    elif name == "DEPTH":
        out = depth_to_control(image)
    elif name == "NORMAL":
        out = normal_to_control(image, options.get("world_to_camera"))
    elif name == "INVERT":
        out = 255 - _check_rgb(_as_rgb(np.asarray(image)))
    else:
        raise ValueError(f"unknown ControlNet preprocessor {preprocessor!r}; expected one of {PREPROCESSORS}")
    return resize(out, size)
