"""Flicker: the temporal warping error of a frame sequence (Lai et al., "Learning Blind Video Temporal Consistency",
ECCV 2018). For each pair of consecutive frames, frame t-1 is warped into frame t along the motion and compared with
frame t over the pixels visible in both; a sequence that only moves scores ~0, one that boils or flickers scores high.

The flow is in engine/flow.py's convention (backward: where each pixel of frame t was in frame t-1).

Where the flow comes from: the reference (the input the frames were made from: the scene render or the movie strip,
whose motion is the true one) when given, else the frames themselves. Estimated flow is OpenCV's DIS optical flow.
The reference's own figure, with the same flow, is the limit the output can reach.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np

from .flow import FlowError, estimate_flow, visible_mask, warp_previous


class FlickerError(FlowError):
    """The frames can't be measured; the message says which and why."""


def pair_error(current: np.ndarray, previous: np.ndarray, backward: np.ndarray, forward: np.ndarray) -> dict:
    """The warping error of one pair: Lai et al.'s mean squared colour distance (RGB in 0-1) over the visible pixels,
    the mean absolute difference per channel on a 0-255 scale, and the share of pixels visible."""
    mask = visible_mask(backward, forward)
    if not mask.any():
        return {"warping_error": None, "mean_difference": None, "visible": 0.0}
    warped = warp_previous(previous.astype(np.float32), backward)
    diff = (current.astype(np.float32) - warped)[mask]
    return {"warping_error": float(((diff / 255.0) ** 2).sum(-1).mean()),
            "mean_difference": float(np.abs(diff).mean()), "visible": float(mask.mean())}


def flows_for(frames: list[np.ndarray], method: str = "dis") -> list[tuple[np.ndarray, np.ndarray]]:
    """(backward, forward) flows of each consecutive pair, estimated from these frames."""
    return [(estimate_flow(frames[i], frames[i - 1], method), estimate_flow(frames[i - 1], frames[i], method))
            for i in range(1, len(frames))]


def sequence_error(frames: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """The warping error of a sequence: each pair's figures and their means over the pairs."""
    pairs = [pair_error(frames[i], frames[i - 1], *flows[i - 1]) for i in range(1, len(frames))]
    return {**_means(pairs), "pairs": pairs}


def _means(pairs: list[dict]) -> dict:
    """A sequence's figures: its pairs' means (the warping error and difference over the pairs where anything is
    visible)."""
    measured = [p for p in pairs if p["warping_error"] is not None]

    def mean(key: str) -> float | None:
        return float(np.mean([p[key] for p in measured])) if measured else None

    return {"warping_error": mean("warping_error"), "mean_difference": mean("mean_difference"),
            "visible": float(np.mean([p["visible"] for p in pairs])) if pairs else None}


def flicker(frames: list[np.ndarray], reference: list[np.ndarray] | None = None,
            flows: list[tuple[np.ndarray, np.ndarray]] | None = None, method: str = "dis") -> dict:
    """The flicker figures of `frames` (uint8 RGB, same size, in order), and of `reference` with the same flow when
    given. The flow: `flows` as given, else estimated (by `method`) from the reference, else from the frames."""
    _check(frames, "frames")
    if reference is not None:
        _check(reference, "reference")
        if len(reference) != len(frames) or reference[0].shape != frames[0].shape:
            raise FlickerError(f"the reference has {len(reference)} frames of {_size(reference[0])}, the frames "
                               f"{len(frames)} of {_size(frames[0])}: they must match")
    if flows is not None:
        source = "given"
        if len(flows) != len(frames) - 1:
            raise FlickerError(f"{len(flows)} flows for {len(frames)} frames: one per frame after the first")
    else:
        source = f"{method} from the {'reference' if reference is not None else 'frames'}"
        flows = flows_for(reference if reference is not None else frames, method)
    result = {"frames": len(frames), "flow": source, **sequence_error(frames, flows)}
    if reference is not None:
        result["reference"] = sequence_error(reference, flows)
    return result


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def _check(frames: list[np.ndarray], what: str) -> None:
    if len(frames) < 2:
        raise FlickerError(f"the {what} need at least two frames to measure flicker (got {len(frames)})")
    for i, frame in enumerate(frames):
        if frame.shape != frames[0].shape:
            raise FlickerError(f"{what} frame {i + 1} is {_size(frame)}, the first is {_size(frames[0])}: "
                               "all frames must be one size")


def frame_files(folder: str) -> list[str]:
    """The PNG/JPEG frames of a folder in frame order (by the number in their names, e.g. frame_000012.png)."""
    if not os.path.isdir(folder):
        raise FlickerError(f"no folder '{folder}'")
    paths = [p for ext in ("png", "jpg", "jpeg") for p in glob.glob(os.path.join(folder, f"*.{ext}"))]
    paths = [p for p in paths if not os.path.basename(p).startswith(".")]

    def number(path: str) -> tuple[int, str]:
        found = re.findall(r"\d+", os.path.basename(path))
        return (int(found[-1]) if found else -1, path)

    if not paths:
        raise FlickerError(f"no PNG or JPEG frames in '{folder}'")
    return sorted(paths, key=number)


def read_frames(paths: list[str]) -> list[np.ndarray]:
    import cv2

    frames = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise FlickerError(f"can't read the image '{path}'")
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return frames


def cli(folder: str, reference: str | None = None, method: str = "dis", pairs: bool = False) -> dict:
    """`python -m engine flicker`: the figures of a folder of frames (and of a reference folder) as a dict."""
    paths = frame_files(folder)
    frames = read_frames(paths)
    ref = None
    if reference is not None:
        ref_paths = frame_files(reference)
        if len(ref_paths) != len(paths):
            raise FlickerError(f"'{reference}' has {len(ref_paths)} frames and '{folder}' {len(paths)}: the "
                               "reference must have one frame per frame")
        ref = read_frames(ref_paths)
    result = {"folder": folder, **flicker(frames, ref, method=method)}
    if not pairs:
        result.pop("pairs")
        if "reference" in result:
            result["reference"].pop("pairs")
    return result


# Every render measures its frames at no more than this many pixels a side: the figure is a mean over pixels, which
# a smaller picture keeps, and optical flow on 1024x1024 frames would add seconds a frame to the end of a render.
RENDER_SIDE = 256


def _shrunk(image: np.ndarray) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    scale = RENDER_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# A pair's figures, kept by a renderer between its renders: (frames' pair error, the input's pair error or None).
PairCache = dict[tuple, tuple[dict, dict | None]]


def measure_pair(folder: str, previous: dict, record: dict, size: tuple[int, int], guided: bool,
                 hashes: dict[int, str] | None = None, cache: PairCache | None = None) -> tuple[dict, dict | None]:
    """The figures of two consecutive finished frames (plan records): the frames' and, when `guided`, their inputs',
    both along the inputs' flow (else the frames'). Kept in `cache` by the frames' hashes when both are given."""
    from .frames import frame_filename
    from .modes.video import read_init

    a, b = (hashes or {}).get(previous["frame"]), (hashes or {}).get(record["frame"])
    key = (a, b, guided) if cache is not None and a and b else None
    if key is not None and key in cache:
        return cache[key]
    frames = [_shrunk(image) for image in read_frames([os.path.join(folder, frame_filename(r["frame"]))
                                                         for r in (previous, record)])]
    inputs = [_shrunk(read_init(r["init"], size)) for r in (previous, record)] if guided else frames
    if frames[0].shape != frames[1].shape or inputs[0].shape != frames[0].shape or inputs[1].shape != frames[0].shape:
        raise FlickerError(f"frames {previous['frame']} and {record['frame']} (and their inputs) are not one size: "
                           f"{_size(frames[0])}, {_size(frames[1])}")
    flows = (estimate_flow(inputs[1], inputs[0]), estimate_flow(inputs[0], inputs[1]))
    measured = (pair_error(frames[1], frames[0], *flows), pair_error(inputs[1], inputs[0], *flows) if guided else None)
    if key is not None:
        cache[key] = measured
    return measured


def render_figures(folder: str, records: list[dict], size: tuple[int, int], hashes: dict[int, str] | None = None,
                   cache: PairCache | None = None) -> dict | None:
    """The flicker of a render's finished frames (the plan records of its range, in order), with the input's (video and
    scene modes: each record's init frame) as the reference and the source of the flow: {"frames", "flow",
    "warping_error", "mean_difference", "visible"} plus "reference" with the input's. None when fewer than two
    consecutive frames are on disk. For the finished event: a render reports its flicker beside the limit its input
    sets. Frames larger than RENDER_SIDE are measured scaled down to it.

    With `hashes` (each frame's hash) and a `cache`, a pair whose two frames have the hashes of a pair measured before
    is not measured again (a frame's hash says what is on disk): a warm re-run of one frame measures its two pairs, not
    the whole range (the flows are most of a render's cost outside the model)."""
    from .frames import frame_filename

    run: list[dict] = []
    for record in records:  # the longest stretch of consecutive frames on disk, from the start
        if not os.path.isfile(os.path.join(folder, frame_filename(record["frame"]))):
            if len(run) >= 2:
                break
            run = []
            continue
        if run and record["frame"] != run[-1]["frame"] + 1:
            break
        run.append(record)
    if len(run) < 2:
        return None
    guided = all(r.get("init") for r in run)  # the input gives the flow and the reference figure
    pairs, reference_pairs = [], []
    for previous, record in zip(run, run[1:]):
        measured = measure_pair(folder, previous, record, size, guided, hashes, cache)
        pairs.append(measured[0])
        reference_pairs.append(measured[1])
    result = {"frames": len(run), "flow": f"dis from the {'reference' if guided else 'frames'}", **_means(pairs)}
    if guided:
        result["reference"] = _means(reference_pairs)
    return result


class PairMeter:
    """Measures each pair of consecutive frames on a thread as soon as both have landed, into a renderer's pair cache,
    so render_figures finds them measured. For renders on a GPU: there the CPU idles while the next frames denoise,
    and the flows (tens of milliseconds a pair at 256 pixels) would otherwise come after the last frame, as long as a
    few-step model's whole frame. On the CPU they would take cores from the UNet: measured at the end instead."""

    def __init__(self, folder: str, records: list[dict], size: tuple[int, int], hashes: dict[int, str],
                 cache: PairCache):
        import queue
        import threading

        self._folder, self._records, self._size, self._hashes, self._cache = folder, records, size, hashes, cache
        self._index = {r["frame"]: i for i, r in enumerate(records)}
        self._guided = all(r.get("init") for r in records)  # as render_figures decides for the whole range
        self._landed: set[int] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="kd-flicker")
        self._thread.start()

    def landed(self, frame: int) -> None:
        """A finished frame is on disk: its pairs with finished neighbours go to the thread."""
        i = self._index.get(frame)
        if i is None:
            return
        with self._lock:
            self._landed.add(frame)
            for a, b in ((i - 1, i), (i, i + 1)):
                if a >= 0 and b < len(self._records):
                    previous, record = self._records[a], self._records[b]
                    if (record["frame"] == previous["frame"] + 1
                            and {previous["frame"], record["frame"]} <= self._landed):
                        self._queue.put((previous, record))

    def _run(self) -> None:
        while (pair := self._queue.get()) is not None:
            try:
                measure_pair(self._folder, *pair, self._size, self._guided, self._hashes, self._cache)
            except Exception:  # noqa: BLE001 - render_figures measures it again at the end and says what failed
                pass

    def close(self) -> None:
        """Wait for the pairs queued so far."""
        self._queue.put(None)
        self._thread.join()
