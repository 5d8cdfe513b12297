"""One diffusers call for a batch of frames, shared by the img2img modes (feedback and video).

It picks the pipeline for the task (text-to-image, image-to-image or inpainting, with or without ControlNet units;
depth-to-image for a depth model) from the loaded model's components, encodes prompts through the shared
PromptEncoder (composable parts, Compel syntax), seeds every frame from its own seed, applies the Giffusion latent
coherence pull, and stops within one denoising step on cancel. Masked frames keep their init outside the (feathered)
mask; a depth-to-image model gets each frame's Blender depth as relative inverse depth.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .. import image_ops, masks, noise_warp, warp
from ..fusion import Fusion, fusion_pull, latent_mask
from ..composable import composed
from ..feature_reuse import interval_of, reused_features
from ..latents import seeded_noise
from ..models.derive import derive, model_kind
from ..prompts import PromptEncoder, pipeline_inputs
from . import StepCallback, overlap


@dataclass
class Job:
    """What a mode needs to render: the base pipeline, the plan's settings, loaded ControlNets, the step callback."""

    pipe: object
    settings: dict
    on_step: StepCallback
    controlnets: list = field(default_factory=list)
    prompts: PromptEncoder | None = None
    _warned: set = field(default_factory=set)

    def __post_init__(self):
        if self.prompts is None:
            self.prompts = PromptEncoder(self.pipe)

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            print(f"warning: {message}", file=sys.stderr)


def steps_run(steps: int, strength: float) -> int:
    """How many denoising steps img2img really runs: diffusers skips the first (1 - strength) of the schedule."""
    return min(int(steps * strength), steps)


def control_images(job: Job, records: list[dict], inits: list[np.ndarray | None]) -> list[list] | None:
    """Per unit, the conditioning image of each frame: the frame's own control image, or its init image (the warped
    previous frame, the video frame), through the unit's preprocessor."""
    units = job.settings.get("controlnets", [])
    if not units:
        return None
    size = (job.settings["width"], job.settings["height"])
    result = []
    for u, unit in enumerate(units):
        images = []
        for record, init in zip(records, inits):
            entry = record["control"][u]
            images.append(image_ops.to_pil(control_image(entry, unit.get("preprocessor", "NONE"), init, size,
                                                         record)))
        result.append(images)
    return result


def control_image(entry: dict, preprocessor: str, init: np.ndarray | None, size: tuple[int, int],
                  record: dict) -> np.ndarray:
    """One unit's conditioning image for one frame (RGB uint8 at the frame size)."""
    path, frame = entry.get("image"), record["frame"]
    if preprocessor == "DEPTH":
        if not path:
            raise ValueError(f"frame {frame}: a depth ControlNet unit needs a depth pass (none was rendered)")
        return image_ops.depth_to_control(image_ops.read_depth(path), size)
    if preprocessor == "NORMAL":
        if not path:
            raise ValueError(f"frame {frame}: a normal ControlNet unit needs a normal pass (none was rendered)")
        # Blender's normal pass is in world space; normal ControlNets expect the camera's view of it.
        camera = record.get("camera")
        to_camera = np.linalg.inv(np.array(camera["matrix_world"])) if camera else None
        normals = image_ops.read_float_image(path)[..., :3]
        return image_ops.resize(image_ops.normal_to_control(normals, to_camera), size)
    if path and "index" in entry:
        source = image_ops.read_video_frame(path, entry["index"], size)
    elif path:
        source = image_ops.read_image(path, size)
    elif init is not None:
        source = init
    else:
        raise ValueError(f"frame {frame}: a ControlNet unit has no image and there is no init frame to derive one "
                         "from (give the unit a source)")
    return image_ops.preprocess_control(source, preprocessor)


def _blur(record: dict, settings: dict) -> int:
    """The frame's mask feather in pixels (keyable: in its mask), else the plan's."""
    return int(record["mask"].get("blur", settings.get("mask_blur", 4)))


def _coherence_callback(job: Job, records: list[dict], reference: torch.Tensor | None):
    """Giffusion's coherence: every N steps pull the latents towards a reference latent by a gradient step on their
    mean squared difference, then move the reference towards the latents by alpha."""
    scales = [r.get("image", {}).get("coherence_scale", 0.0) for r in records]
    if reference is None or not any(scales):
        return None
    # Every N steps per frame (coherence_every is keyable): a frame not due this step keeps its latents and reference.
    every = [int(r.get("image", {}).get("coherence_every", job.settings.get("coherence_every", 1))) for r in records]
    scale = torch.tensor(scales, dtype=reference.dtype, device=reference.device).view(-1, 1, 1, 1)
    alpha = torch.tensor([r.get("image", {}).get("coherence_alpha", 1.0) for r in records], dtype=reference.dtype,
                         device=reference.device).view(-1, 1, 1, 1)
    state = {"ref": reference}

    def pull(latents: torch.Tensor, step: int) -> torch.Tensor:
        due = [(step + 1) % n == 0 for n in every]
        if not any(due):
            return latents
        ref = state["ref"]
        per_sample = latents[0].numel()
        # d/dx mean((x - ref)^2) = 2 (x - ref) / n, written out instead of autograd: same step, no graph.
        pulled = latents - scale * 2.0 * (latents - ref) / per_sample
        moved = alpha * pulled + (1.0 - alpha) * ref
        if all(due):
            state["ref"] = moved
            return pulled
        mask = torch.tensor(due, device=latents.device).view(-1, 1, 1, 1)
        state["ref"] = torch.where(mask, moved, ref)
        return torch.where(mask, pulled, latents)

    return pull


def encode_latents(pipe, images: list[np.ndarray]) -> torch.Tensor:
    """Images -> VAE latents (the distribution's mean: deterministic, so a resumed run matches). A tiny autoencoder
    (AutoencoderTiny, TAESD) has no distribution: its latents are already deterministic."""
    tensor = pipe.image_processor.preprocess([image_ops.to_pil(i) for i in images])
    tensor = tensor.to(pipe.device, pipe.vae.dtype)
    with torch.no_grad():
        encoded = pipe.vae.encode(tensor)
        latents = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
    return latents * pipe.vae.config.scaling_factor


def diffuse(job: Job, records: list[dict], inits: list[np.ndarray] | None,
            coherence_reference: list[np.ndarray] | None = None,
            keep: list[np.ndarray] | None = None, noises: list[torch.Tensor] | None = None,
            fusions: list[Fusion] | None = None) -> list[np.ndarray]:
    """Render one batch of frames that share steps, guidance and strength; returns RGB uint8 arrays.

    `inits` None is text-to-image from each frame's seeded noise; otherwise image-to-image where strength is the
    share of the schedule that is re-diffused (0 keeps the init, 1 ignores it: diffusers' direction, the opposite of
    Deforum's strength, which the Deforum import inverts).

    Frames with a `mask` are inpainted: outside the feathered mask they are `keep` (default: the inits), exactly.
    `noises` (one latent-sized tensor per frame) replace the seeded image-to-image noise (flow-warped noise);
    `fusions` (with `noises`) pull each step's latents towards a target where it is valid (engine/fusion.py).
    """
    return diffuse_later(job, records, inits, coherence_reference, keep, defer=False, noises=noises,
                         fusions=fusions)()


def diffuse_later(job: Job, records: list[dict], inits: list[np.ndarray] | None,
                  coherence_reference: list[np.ndarray] | None = None,
                  keep: list[np.ndarray] | None = None, defer: bool = True,
                  noises: list[torch.Tensor] | None = None,
                  fusions: list[Fusion] | None = None) -> Callable[[], list[np.ndarray]]:
    """diffuse() up to the denoised latents; the returned function decodes them (and pastes masked frames back), so
    a caller can run it on a thread while the next batch denoises (see modes/overlap.py).

    In the stages of a diffusers pipeline: check_inputs (masks, depth, ControlNet images, the task), prepare_inputs
    (the pipeline call's arguments), denoise (the call, with the step callback), decode (the returned function).
    A batch with less than one step to run is its inits; one that a single call can't take goes frame by frame.
    """
    steps, strength = records[0]["steps"], float(records[0].get("strength", 0.6))
    if inits is not None and steps_run(steps, strength) < 1:
        return _unchanged(job, records, inits, keep)
    if _one_at_a_time(job, records):
        return _singles(job, records, inits, coherence_reference, keep, defer, noises, fusions)
    batch = check_inputs(job, records, inits, keep)
    batch.noises = _usable_noises(job, batch, noises)
    batch.fusions = fusions if batch.noises is not None else None
    pipe = derive(job.pipe, batch.task, job.controlnets or None)
    defer = defer and not overlap.needs_upcast(pipe)
    call, weights = prepare_inputs(job, pipe, batch, defer)
    result = denoise(job, pipe, batch, call, weights, coherence_reference)
    return lambda: decode(pipe, batch, result.images, defer)


@dataclass
class Batch:
    """One pipeline call's frames and their checked inputs (see check_inputs)."""

    records: list[dict]
    inits: list[np.ndarray] | None  # None: text-to-image
    keep: list[np.ndarray] | None  # what masked frames keep outside the mask (None: their inits)
    task: str  # "txt2img", "img2img" or "inpaint"
    grey: bool  # an inpainting or depth model without an init: a grey image re-diffused whole
    soft: list[np.ndarray] | None  # feathered masks (0-1), when frames are inpainted from an init
    depth: torch.Tensor | None  # a depth-to-image model's conditioning
    controls: list[list] | None  # per ControlNet unit, each frame's conditioning image
    noises: list[torch.Tensor] | None = None  # image-to-image noise given per frame (flow-warped), else seeded
    fusions: list[Fusion] | None = None  # per frame, latents pulled towards a target after each step (with noises)

    @property
    def frames(self) -> list[int]:
        return [r["frame"] for r in self.records]

    @property
    def steps(self) -> int:
        return self.records[0]["steps"]

    @property
    def strength(self) -> float:
        return float(self.records[0].get("strength", 0.6))


def _unchanged(job: Job, records: list[dict], inits: list[np.ndarray],
               keep: list[np.ndarray] | None) -> Callable[[], list[np.ndarray]]:
    """Less than one step of the schedule left to run: each frame is its init (diffusers would refuse)."""
    settings, steps = job.settings, records[0]["steps"]
    job.on_step([r["frame"] for r in records], steps, steps)
    if keep is not None and any(r.get("mask") for r in records):  # still only the mask may change
        size = (settings["width"], settings["height"])
        kept = [masks.paste_back(i, k, masks.read_mask(r["mask"], size, _blur(r, settings), r["frame"]))
                if r.get("mask") else np.array(i, copy=True) for r, i, k in zip(records, inits, keep)]
    else:
        kept = [np.array(i, copy=True) for i in inits]
    return lambda: kept


def _one_at_a_time(job: Job, records: list[dict]) -> bool:
    """diffusers' Multi-ControlNet takes one conditioning image per unit, not a batch, and a frame without a mask is
    image-to-image, not inpainting: such batches go one frame per call."""
    masked = [bool(r.get("mask")) for r in records]
    return (len(job.controlnets) > 1 or any(masked) and not all(masked)) and len(records) > 1


def _singles(job: Job, records: list[dict], inits, coherence_reference, keep, defer: bool, noises,
             fusions) -> Callable[[], list[np.ndarray]]:
    none = [None] * len(records)
    singles = [diffuse_later(job, [r], None if inits is None else [i], None if coherence_reference is None else [c],
                             None if keep is None else [k], defer, None if noises is None else [n],
                             None if fusions is None else [f])
               for r, i, c, k, n, f in zip(records, inits or none, coherence_reference or none, keep or none,
                                           noises or none, fusions or none)]
    return lambda: [finish()[0] for finish in singles]


def check_inputs(job: Job, records: list[dict], inits: list[np.ndarray] | None,
                 keep: list[np.ndarray] | None) -> Batch:
    """The batch's ControlNet images, masks and depth maps, read and checked, and the task they make: inpainting
    (masked frames, or an inpainting model), image-to-image (an init, or a grey one) or text-to-image."""
    settings = job.settings
    controls = control_images(job, records, inits or [None] * len(records))
    size = (settings["width"], settings["height"])
    kind = model_kind(job.pipe)
    masked = any(r.get("mask") for r in records)
    if masked and inits is None:
        job.warn_once("a frame with no init image (the first of a feedback chain without an Init Image) can't be "
                      "inpainted: its mask is ignored")
    soft = None
    if masked and inits is not None:
        soft = [masks.read_mask(r["mask"], size, _blur(r, settings), r["frame"]) for r in records]
    depth = depth_maps(records, size) if kind == "sd-depth" else None
    if depth is not None and soft is not None:
        raise ValueError(f"frame {records[0]['frame']}: the model is a depth-to-image model, and depth-to-image and "
                         "inpainting masks are not supported together (remove the mask, or use an ordinary or "
                         "inpainting model)")
    inpaint = soft is not None or kind.endswith("-inpaint")
    # Inpainting and depth models start from an image; their text-to-image is a grey one re-diffused whole.
    grey = inits is None and (inpaint or depth is not None)
    task = "inpaint" if inpaint else "img2img" if inits is not None or grey else "txt2img"
    return Batch(records, inits, keep, task, grey, soft, depth, controls)


def _usable_noises(job: Job, batch: Batch, noises: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
    """The given noises where the task makes its start latents from an init image; inpainting and text-to-image
    draw their own (said once)."""
    if noises is None or batch.task == "img2img" and not batch.grey:
        return noises
    job.warn_once(f"flow-warped noise is for image-to-image frames; {batch.task} frames use their seeded noise")
    return None


def prepare_inputs(job: Job, pipe, batch: Batch, defer: bool) -> tuple[dict, torch.Tensor | None]:
    """The pipeline call's arguments (all but the step callback) and the composable prompts' part weights."""
    first = batch.records[0]
    conds = [job.prompts.frame(r["prompts"]) for r in batch.records]
    kwargs, weights = pipeline_inputs(conds, pipe.device, pipe.unet.dtype)
    call = dict(
        num_inference_steps=batch.steps,
        guidance_scale=float(first["guidance"]),
        generator=[torch.Generator("cpu").manual_seed(r["seed"]) for r in batch.records],
        output_type="latent" if defer else "np",
        **kwargs,
    )
    rescale = float(first.get("guidance_rescale", 0.0))
    if "guidance_rescale" in inspect.signature(type(pipe).__call__).parameters:
        call["guidance_rescale"] = rescale
    elif rescale:
        job.warn_once(f"{type(pipe).__name__} has no CFG rescale; the frames' guidance_rescale is ignored")
    call.update(_image_inputs(pipe, batch, job.settings))
    if batch.controls is not None:
        call.update(_control_inputs(batch))
    call.update(job.settings.get("pipeline_kwargs", {}))
    return call, weights


def _image_inputs(pipe, batch: Batch, settings: dict) -> dict:
    """What the task starts from: seeded noise (text-to-image), the init images or a grey one with the strength, an
    inpainting model's masks, a depth model's depth maps."""
    records, dtype = batch.records, pipe.unet.dtype
    size = (settings["width"], settings["height"])
    factor = pipe.vae_scale_factor
    # out_channels: the latents' channels (in_channels also counts an inpainting model's mask or a depth map)
    shape = (pipe.unet.config.out_channels, settings["height"] // factor, settings["width"] // factor)
    out = {}
    if batch.task == "txt2img":
        out.update(width=size[0], height=size[1],
                   latents=torch.stack([seeded_noise(r["seed"], shape) for r in records]).to(pipe.device, dtype))
    else:
        sources = batch.inits if not batch.grey else [np.full((size[1], size[0], 3), 128, np.uint8)] * len(records)
        out.update(image=[image_ops.to_pil(i) for i in sources], strength=1.0 if batch.grey else batch.strength)
    if batch.task == "inpaint":
        # An inpainting model's frame without a mask is repainted whole (its image-to-image).
        areas = ([masks.repaint_area(m) for m in batch.soft] if batch.soft
                 else [np.full(size[::-1], 255, np.uint8)] * len(records))
        out.update(width=size[0], height=size[1], mask_image=[image_ops.to_pil(a) for a in areas])
        if batch.grey:  # all noise at strength 1: the frame's own seeded noise, as in text-to-image
            out["latents"] = torch.stack([seeded_noise(r["seed"], shape) for r in records]).to(pipe.device, dtype)
    if batch.depth is not None:
        out["depth_map"] = batch.depth.to(pipe.device, dtype)
        _flat_depth_safe(pipe)
    return out


def _control_inputs(batch: Batch) -> dict:
    """The ControlNet units' images, scales and guidance windows. One unit: a batch of images. Several: one image per
    unit (a single frame, see _one_at_a_time)."""
    controls, first = batch.controls, batch.records[0]
    key = "image" if batch.task == "txt2img" else "control_image"
    # Each frame has its own image (a pass or strip frame per frame); what they must share is scale and window.
    units = [[{k: c.get(k) for k in ("scale", "start", "end")} for c in r["control"]] for r in batch.records]
    scales = [float(first["control"][u]["scale"]) for u in range(len(controls))]
    starts = [float(first["control"][u].get("start", 0.0)) for u in range(len(controls))]
    ends = [float(first["control"][u].get("end", 1.0)) for u in range(len(controls))]
    if any(u != units[0] for u in units[1:]):
        raise ValueError("frames batched together must share ControlNet scales")
    if len(controls) == 1:
        return {key: controls[0], "controlnet_conditioning_scale": scales[0], "control_guidance_start": starts[0],
                "control_guidance_end": ends[0]}
    return {key: [images[0] for images in controls], "controlnet_conditioning_scale": scales,
            "control_guidance_start": starts, "control_guidance_end": ends}


def denoise(job: Job, pipe, batch: Batch, call: dict, weights: torch.Tensor | None,
            coherence_reference: list[np.ndarray] | None):
    """The pipeline call: each step reports progress (and stops there on a cancel) and pulls the latents towards the
    coherence reference."""
    reference = None
    if coherence_reference is not None:
        reference = encode_latents(pipe, coherence_reference).to(pipe.unet.dtype)
    step_end = _step_callback(job, batch, _coherence_callback(job, batch.records, reference), _fuse(pipe, batch))
    call.update(callback_on_step_end=step_end, callback_on_step_end_tensor_inputs=["latents"])
    given = noise_warp.given_noise(pipe, batch.noises) if batch.noises else contextlib.nullcontext()
    with torch.no_grad(), composed(pipe.unet, weights, 1 if weights is None else weights.shape[1]), given, \
            reused_features(pipe.unet, interval_of(job.settings)):
        return pipe(**call)


def _fuse(pipe, batch: Batch):
    """The batch's latent fusion step (engine/fusion.py), or None."""
    if not batch.fusions:
        return None
    targets = encode_latents(pipe, [f.target for f in batch.fusions]).to(pipe.unet.dtype)
    masks_ = torch.stack([latent_mask(f.visible, targets.shape[-2:]) for f in batch.fusions])[:, None]
    weights = torch.tensor([float(f.weight) for f in batch.fusions])
    return fusion_pull(pipe, targets, masks_, weights, torch.stack(list(batch.noises)))


def _step_callback(job: Job, batch: Batch, pull, fuse=None):
    frames = batch.frames
    total = steps_run(batch.steps, batch.strength) if batch.inits is not None else batch.steps

    def step_end(_pipe, step, timestep, tensors):
        # may raise Cancelled: the loop stops within this step
        job.on_step(frames, min(step + 1, total), total, tensors.get("latents"))
        if pull is not None:
            tensors["latents"] = pull(tensors["latents"], step)
        if fuse is not None:
            tensors["latents"] = fuse(tensors["latents"], timestep)
        return tensors

    return step_end


def decode(pipe, batch: Batch, output, deferred: bool) -> list[np.ndarray]:
    """The pipeline's output (latents when `deferred`, else 0-1 float images) -> RGB uint8 frames, masked frames
    pasted back onto what they keep."""
    if deferred:
        images = overlap.decode(pipe, output)
    else:
        images = [(np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8) for image in output]
    if batch.soft is not None:
        images = [masks.paste_back(image, kept, m) for image, kept, m in zip(images, batch.keep or batch.inits,
                                                                             batch.soft)]
    return images


DEPTH_HINT = "turn on Scene Depth so the bake renders Blender's depth pass"


def inverse_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Blender's depth (scene units, far = large; inf or 1e10 where nothing was hit) -> what depth-to-image models
    were trained on: MiDaS-style relative inverse depth, near = high, nothing hit = 0 (infinitely far), at `size`.
    diffusers normalises each map to -1..1 by its own min and max, so the scale of 1/z doesn't matter."""
    valid = np.isfinite(depth) & (depth > 0) & (depth < warp.FAR_DEPTH)
    inverse = np.zeros(depth.shape, np.float32)
    inverse[valid] = 1.0 / depth[valid]
    return image_ops.resize(inverse, size)


def depth_maps(records: list[dict], size: tuple[int, int]) -> torch.Tensor:
    """The depth-to-image conditioning of a batch, (frames, height, width), from each frame's depth file."""
    maps = []
    for record in records:
        path = record.get("depth")
        if not path:
            raise ValueError(f"frame {record['frame']}: the model is a depth-to-image model and the frame has no "
                             f"depth: {DEPTH_HINT}")
        maps.append(torch.from_numpy(inverse_depth(image_ops.read_depth(path), size)))
    return torch.stack(maps)


def _flat_depth_safe(pipe) -> None:
    """diffusers divides by each depth map's max - min: a flat one (a wall square to the camera, nothing but sky)
    would make the frame NaN. Such a map becomes the middle of the range instead."""
    if "prepare_depth_map" in pipe.__dict__:
        return

    def prepare(*args, **kwargs):
        normalised = type(pipe).prepare_depth_map(pipe, *args, **kwargs)
        return torch.nan_to_num(normalised, nan=0.0).clamp(-1.0, 1.0)

    pipe.prepare_depth_map = prepare
