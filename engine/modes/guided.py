"""Flow-guided video and scene frames (video mode with settings["flow_guide"]): each frame starts from its input
blended with the previous output warped along the motion, so what stays still stays the same and what moves carries
its look along instead of being re-invented every frame.

Per frame t of a chain: the backward flow of t and the forward flow of t-1 (Blender's Vector pass of each frame, the
record's "flow", or OpenCV's DIS flow between the inputs: engine/flow.py) warp the previous output into frame t; where
a pixel is visible in both frames the init is (1 - guide) * input + guide * warped, elsewhere (revealed background,
what came into the picture) the input alone; then image-to-image with the frame's strength, as unguided video frames.

With settings["warp_noise"] the image-to-image noise is moved along the same flow (engine/noise_warp.py), so what
the denoiser grows from it moves with the surface too; with settings["fusion"] every denoising step is pulled towards
the warped previous output where it is visible (engine/fusion.py), so the denoiser can't wander off it; with
settings["anchor_attention"] self-attention also attends to the chain's first frame (engine/anchor_attention.py).

The chain's only state is the previous output, read back from its PNG on disk when it was made by an earlier run (the
same 8-bit pixels an uninterrupted run continues from), so a run resumed after a kill or a cancel gives the same
frames. Frames are diffused one at a time: each needs the one before.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from ..anchor_attention import AnchorAttention
from ..image_ops import round_clip
from ..flow import estimate_flow, read_vector_pass, visible_mask, warp_previous
from ..frames import FrameStore
from ..fusion import Fusion
from ..inbetween import Span, inbetween
from ..latents import seeded_noise
from ..noise_warp import warp_noise
from ..plan import FRAME_DEFAULTS, cadence_keys
from .diffuse import Job, diffuse


def _flows(record: dict, previous: dict, current_input: np.ndarray, previous_input: np.ndarray):
    """(backward flow of frame t, forward flow of frame t-1): from Blender's Vector passes when both records have
    one, else estimated from the two inputs."""
    if record.get("flow") and previous.get("flow"):
        backward, _ = read_vector_pass(record["flow"])
        _, forward = read_vector_pass(previous["flow"])
        if backward.shape[:2] == current_input.shape[:2]:
            return backward, forward
    return estimate_flow(current_input, previous_input), estimate_flow(previous_input, current_input)


def guided_init(current_input: np.ndarray, previous_output: np.ndarray, backward: np.ndarray, forward: np.ndarray,
                guide: float) -> np.ndarray:
    """Frame t's init: its input, with the previous output warped along the flow blended in by `guide` where the
    pixel is visible in both frames."""
    warped = warp_previous(previous_output.astype(np.float32), backward)
    return _blend_init(current_input, warped, visible_mask(backward, forward), guide)


def _blend_init(current_input: np.ndarray, warped: np.ndarray, valid: np.ndarray, guide: float) -> np.ndarray:
    source = current_input.astype(np.float32)
    blended = np.where(valid[..., None], (1.0 - guide) * source + guide * warped, source)
    return round_clip(blended)


def _next_noise(job: Job, record: dict, previous: torch.Tensor | None, flows) -> torch.Tensor:
    """This frame's image-to-image noise with warp_noise: the previous frame's moved along the flow, fresh from the
    frame's seed where nothing was visible before (and for a chain's first frame)."""
    pipe, settings = job.pipe, job.settings
    factor = pipe.vae_scale_factor
    shape = (pipe.vae.config.latent_channels, settings["height"] // factor, settings["width"] // factor)
    fresh = seeded_noise(record["seed"], shape)
    if previous is None or flows is None:
        return fresh
    backward, forward = flows
    return warp_noise(previous, backward, visible_mask(backward, forward), fresh)


def _record_anchor(job: Job, anchor: AnchorAttention, first: dict, first_input: np.ndarray, own_noise: bool) -> None:
    """Diffuse the chain's first frame again, as it was made, only to record its attention features."""
    noises = [_next_noise(job, first, None, None)] if own_noise else None
    with anchor.installed(job.pipe.unet, recording=True):
        diffuse(job, [first], [first_input], noises=noises)


class _Chain:
    """One chain's inputs, flows and noises, read or computed once, in frame order."""

    def __init__(self, job: Job, records: list[dict], read_init):
        self.job, self.records, self.read_init = job, records, read_init
        self.size = (job.settings["width"], job.settings["height"])
        self._inputs: dict[int, np.ndarray] = {}
        self._flows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._noise: tuple[int, torch.Tensor] | None = None

    def input(self, i: int) -> np.ndarray:
        if i not in self._inputs:
            self._inputs = {k: v for k, v in self._inputs.items() if k >= i - 1}  # only neighbours are asked again
            self._inputs[i] = self.read_init(self.records[i]["init"], self.size)
        return self._inputs[i]

    def flows(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(backward flow of frame i, forward flow of frame i-1)."""
        if i not in self._flows:
            self._flows[i] = _flows(self.records[i], self.records[i - 1], self.input(i), self.input(i - 1))
        return self._flows[i]

    def forget(self, before: int) -> None:
        self._flows = {k: v for k, v in self._flows.items() if k > before}

    def noise(self, i: int, warped: bool) -> torch.Tensor:
        """Frame i's noise: with `warped` the chain's noise moved along every flow from the first frame (seeds and
        flows only, so a resumed run recomputes it), else the frame's seeded noise."""
        if not warped:
            return _next_noise(self.job, self.records[i], None, None)
        if self._noise is None or self._noise[0] > i:
            self._noise = (0, _next_noise(self.job, self.records[0], None, None))
        at, noise = self._noise
        for k in range(at + 1, i + 1):
            noise = _next_noise(self.job, self.records[k], noise, self.flows(k))
        self._noise = (i, noise)
        return noise


def render(job: Job, records: list[dict], todo: set[int], store: FrameStore,
           read_init: Callable[[dict, tuple[int, int]], np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, RGB uint8 image) for every frame of `records` (a chain from its start) in `todo`, in frame order;
    a key before them that this one continues from is read back from disk.

    With settings["cadence"] N > 1 only every Nth frame and the last (plan.cadence_keys) is diffused, each from the
    key before it moved along the flows of the frames between; an in-between is both keys moved to it along the flow
    (the earlier forwards, the later back), blended by distance, its input where neither sees it (true-flow cadence).
    """
    settings = job.settings
    indices = [i for i, r in enumerate(records) if r["frame"] in todo]
    if not indices:
        return
    keys = cadence_keys(len(records), int(settings.get("cadence", 1)))
    keys = keys[:next(n for n, k in enumerate(keys) if k >= max(indices)) + 1]
    warped_noise = bool(settings.get("warp_noise"))
    fusion = float(settings.get("fusion", 0.0))
    anchor = AnchorAttention() if settings.get("anchor_attention") else None
    own_noise = warped_noise or bool(fusion)  # the noise is ours to give (the fusion target shares it)
    chain = _Chain(job, records, read_init)
    previous: tuple[int, np.ndarray] | None = None  # (index, output) of the last key
    for key in keys:
        record = records[key]
        between = [] if previous is None else list(range(previous[0] + 1, key))
        wanted = [j for j in between if records[j]["frame"] in todo]
        if record["frame"] not in todo and not wanted:
            previous = (key, None)
            continue
        if previous is not None and previous[1] is None:
            previous = (previous[0], store.read(records[previous[0]]["frame"]))
        # The flows from the previous key to this one, composed once for the key's init and its in-betweens
        # (engine/inbetween.py): chain.flows(j) is (frame j's backward flow, frame j-1's forward flow).
        span = None
        if previous is not None:
            pairs = [chain.flows(j) for j in range(previous[0] + 1, key + 1)]
            span = Span([back for back, _ in pairs], [ahead for _, ahead in pairs])
        earlier = {} if span is None else span.to_earlier()
        if record["frame"] in todo:
            current = chain.input(key)
            init, fusions = current, None
            if span is not None:
                reach = earlier[span.length]
                moved, valid = reach.bring(previous[1]), reach.visible
                init = _blend_init(current, moved, valid, float(record.get("guide", FRAME_DEFAULTS["guide"])))
                if fusion:
                    fusions = [Fusion(round_clip(moved), valid, fusion)]
            noises = [chain.noise(key, warped_noise)] if own_noise else None
            if anchor is None:
                image = diffuse(job, [record], [init], noises=noises, fusions=fusions)[0]
            else:
                if previous is not None and not anchor.has_anchor:  # resumed later in the chain
                    _record_anchor(job, anchor, records[0], chain.input(0), own_noise)
                with anchor.installed(job.pipe.unet, recording=previous is None):
                    image = diffuse(job, [record], [init], noises=noises, fusions=fusions)[0]
        else:
            image = store.read(record["frame"])
        if wanted:
            later = span.to_later()
            for j in wanted:
                k = j - previous[0]
                yield records[j]["frame"], inbetween(chain.input(j), previous[1], earlier[k], image, later[k],
                                                     k / span.length)
        if record["frame"] in todo:
            yield record["frame"], image
        chain.forget(key)
        previous = (key, image)
