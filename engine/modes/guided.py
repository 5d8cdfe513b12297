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
from ..flow import estimate_flow, read_vector_pass, visible_mask, warp_previous
from ..frames import FrameStore
from ..fusion import Fusion
from ..latents import seeded_noise
from ..noise_warp import warp_noise
from ..plan import FRAME_DEFAULTS
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
    visible = visible_mask(backward, forward)[..., None]
    warped = warp_previous(previous_output.astype(np.float32), backward)
    source = current_input.astype(np.float32)
    blended = np.where(visible, (1.0 - guide) * source + guide * warped, source)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


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


def render(job: Job, records: list[dict], todo: set[int], store: FrameStore,
           read_init: Callable[[dict, tuple[int, int]], np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame, RGB uint8 image) for every frame of `records` (a chain from its start) in `todo`, in frame order;
    a frame before them that this one continues from is read back from disk. With warp_noise the noise chain is
    recomputed from the chain's start (seeds and flows only: no diffusion), so a resumed run matches."""
    size = (job.settings["width"], job.settings["height"])
    warped_noise = bool(job.settings.get("warp_noise"))
    fusion = float(job.settings.get("fusion", 0.0))
    anchor = AnchorAttention() if job.settings.get("anchor_attention") else None
    own_noise = warped_noise or bool(fusion)  # the noise is ours to give (see below)
    previous = None
    held = None  # (frame, input, output or None) of the last frame made or passed
    noise = None  # the last frame's noise (warp_noise)
    for record in records:
        frame = record["frame"]
        needed = frame in todo
        if not needed and not warped_noise:
            previous = record
            continue
        current_input = read_init(record["init"], size)
        flows = None
        if previous is not None:
            if held is None or held[0] != previous["frame"]:
                held = (previous["frame"], read_init(previous["init"], size), None)
            if needed and held[2] is None:
                held = (*held[:2], store.read(previous["frame"]))
            flows = _flows(record, previous, current_input, held[1])
        if warped_noise:
            noise = _next_noise(job, record, noise, flows)
        elif fusion:  # the fusion target is noised with the frame's own noise: the noise is ours to give
            noise = _next_noise(job, record, None, None)
        image = None
        if needed:
            init, fusions = current_input, None
            if flows is not None:
                init = guided_init(current_input, held[2], *flows, float(record.get("guide", FRAME_DEFAULTS["guide"])))
                if fusion:
                    fusions = [Fusion(warp_previous(held[2], flows[0]), visible_mask(*flows), fusion)]
            noises = [noise] if noise is not None else None
            if anchor is None:
                image = diffuse(job, [record], [init], noises=noises, fusions=fusions)[0]
            else:
                if previous is not None and not anchor.has_anchor:  # resumed later in the chain
                    _record_anchor(job, anchor, records[0], read_init(records[0]["init"], size), own_noise)
                with anchor.installed(job.pipe.unet, recording=previous is None):
                    image = diffuse(job, [record], [init], noises=noises, fusions=fusions)[0]
            yield frame, image
        held = (frame, current_input, image)
        previous = record
