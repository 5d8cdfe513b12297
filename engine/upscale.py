"""The upscaling pass: finished frames through a diffusion upscaler into a folder of their own.

settings["upscale"] = {"model": ..., "steps", "guidance", "noise_level", "output_dir"} names a diffusers upscaler
(a folder or Hugging Face id); its model_index.json class decides which kind it is:

  StableDiffusionUpscalePipeline        'x4'  stabilityai/stable-diffusion-x4-upscaler: 4x, pixels in, noise_level
  StableDiffusionLatentUpscalePipeline  'x2'  stabilityai/sd-x2-latent-upscaler: 2x in SD's latent space

Every frame is upscaled with its own highest-weight prompt (and that prompt's negative) and seeded from its seed, so
re-running gives the same pixels. The upscaled frames live in their own FrameStore: an upscaled frame's hash is its
source frame's hash plus the upscale settings and prompt, so a re-run skips current ones and re-upscales only those
whose source frame (or prompt, or settings) changed.

Events (records and texts: events.py): upscale_start, loading, progress with "pass": "upscale", upscaled. In
upscale_start, `frames` are the frames with a current main frame on disk (the ones the pass covers), `missing` those
without one (never rendered, or out of date): they are left out, not an error.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from typing import Any, Callable

from . import events
from .errors import Cancelled, ModelError, OutputFolderError
from .frames import FrameStore
from .models.device import pick_device, pick_dtype
from .models.locate import locate_pipeline
from .models.options import LoadOptions

Emit = events.Emit

# model_index.json `_class_name` -> kind
UPSCALERS: dict[str, str] = {
    "StableDiffusionUpscalePipeline": "x4",
    "StableDiffusionLatentUpscalePipeline": "x2",
}
FACTORS = {"x4": 4, "x2": 2}
# x4: diffusers' own defaults for guidance (9) and noise_level (20); 20 steps rather than its 75, as the latent
# upscaler's documented example uses: an animation pays the steps once per frame. x2: that example's 20 steps and
# guidance 0 (the latent upscaler was trained to be used unguided; diffusers then ignores the prompt).
DEFAULTS: dict[str, dict[str, Any]] = {
    "x4": {"steps": 20, "guidance": 9.0, "noise_level": 20},
    "x2": {"steps": 20, "guidance": 0.0},
}
# Frames are upscaled together while a batch's output stays within this many pixels (one 512x512 frame at 4x): small
# frames batch, big ones go one at a time.
BATCH_PIXELS = 2048 * 2048


def upscaler_kind(model: str, class_name: str) -> str:
    """'x4' or 'x2' for an upscaler's pipeline class; ModelError naming the classes that work otherwise."""
    if class_name not in UPSCALERS:
        raise ModelError(
            f"upscaler '{model}' is a {class_name or 'pipeline with no _class_name'} (model_index.json), which can't "
            "upscale frames: use a StableDiffusionUpscalePipeline (stabilityai/stable-diffusion-x4-upscaler, 4x) or a "
            "StableDiffusionLatentUpscalePipeline (stabilityai/sd-x2-latent-upscaler, 2x)")
    return UPSCALERS[class_name]


def check_upscaler(model: str, options: LoadOptions) -> str:
    """Find the upscaler and check its class without loading weights (so a wrong name fails before any frame is
    rendered); returns its kind."""
    _, class_name = locate_pipeline(model, options)
    return upscaler_kind(model, class_name)


def check_upscale_folder(settings: dict) -> None:
    """The upscaled frames need a folder of their own: in the output folder they would replace the frames (and the
    records) they are made from."""
    folder = os.path.realpath(settings["upscale"]["output_dir"])
    if folder == os.path.realpath(settings["output_dir"]):
        raise OutputFolderError(f"settings.upscale: the upscaled frames' folder '{folder}' is the output folder itself, "
                                "where they would replace the frames they are made from: choose another folder for "
                                "them (the default is the output folder's 'upscaled' subfolder)")


def load_upscaler(model: str, options: LoadOptions) -> Any:
    """Load the upscaler onto options.device in options.precision (safetensors only unless unsafe is allowed)."""
    import torch  # first: in an interpreter without the engine's libraries, torch is the one to name
    import diffusers

    path, class_name = locate_pipeline(model, options)
    kind = upscaler_kind(model, class_name)
    device = pick_device(options.device)
    dtype = pick_dtype(options.precision, device)
    if kind == "x4" and dtype == torch.float16:
        # The x4 decoder overflows in fp16, and the pipeline would cast it up and back down around every frame.
        dtype = {"default": dtype, "vae": torch.float32}
    kwargs: dict[str, Any] = dict(dtype=dtype, local_files_only=not options.allow_download)
    if not options.allow_unsafe:
        kwargs["use_safetensors"] = True
    try:
        pipe = getattr(diffusers, class_name).from_pretrained(path, **kwargs)
    except (OSError, EnvironmentError, ValueError, KeyError, RuntimeError, TypeError) as e:
        hint = "" if options.allow_unsafe else " If it only has .bin weights, allow unsafe (pickle) weights."
        raise ModelError(f"could not load upscaler '{model}': {e}.{hint}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def batch_frames(settings: dict, kind: str) -> int:
    """How many frames to upscale at once: the plan's batch size while the batch's output stays within BATCH_PIXELS."""
    size = settings["width"] * settings["height"] * FACTORS[kind] ** 2
    return max(1, min(settings.get("batch_size", 1), BATCH_PIXELS // size))


def side_multiple(pipe, kind: str) -> int:
    """Frame sides the upscaler takes as they are. Its image processor resizes others to a multiple of the
    autoencoder's factor, and the latent upscaler's UNet (K blocks, at twice the latent size) fails on sizes that don't
    halve evenly at every level: 32 for sd-x2-latent-upscaler, so a 768x432 frame would not go through. Frames are
    padded up to it and the result cropped back."""
    multiple = pipe.vae_scale_factor
    if kind == "x2":
        levels = 2 ** (len(pipe.unet.config.down_block_types) - 1)
        multiple = math.lcm(multiple, max(1, pipe.vae_scale_factor * levels // 2))
    return multiple


def resolved(upscale: dict, kind: str) -> dict:
    """The upscale settings with the kind's defaults filled in (noise_level only for x4): what the pixels depend on."""
    values = {**DEFAULTS[kind], **{k: upscale[k] for k in ("steps", "guidance", "noise_level") if k in upscale}}
    if kind != "x4":
        values.pop("noise_level", None)
    return {"model": upscale["model"].strip(), "kind": kind, **values}


def frame_prompt(record: dict) -> tuple[str, str]:
    """The frame's highest-weight prompt (the first of equals) and its negative, as plain text: composable parts
    ('a | b :0.5') joined by commas, since the upscalers encode one plain text."""
    from .prompts import parse_composable

    best = max(record["prompts"], key=lambda p: p["weight"])
    try:
        text = ", ".join(part for part, _ in parse_composable(best["text"]))
    except ValueError:
        text = best["text"]
    return text, best.get("negative", "")


def upscale_hash(source_hash: str, values: dict, record: dict) -> str:
    text, negative = frame_prompt(record)
    data = {"source": source_hash, "upscale": values, "prompt": text, "negative": negative, "seed": record["seed"]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def run_pass(
    load: Callable[[], Any],
    settings: dict,
    records: list[dict],
    hashes: dict[int, str],
    main: FrameStore,
    emit: Emit,
    cancel: threading.Event,
    kind: str,
) -> dict:
    """Upscale the frames of `records` whose main frame in `main` is current (by `hashes`), skipping those already
    upscaled from the same source and settings. `load()` gives the pipeline, called only when there is work.
    Returns {"upscaled", "upscale_skipped", "upscale_missing", "upscale_dir", "cancelled"}."""
    values = resolved(settings["upscale"], kind)
    check_upscale_folder(settings)
    store = FrameStore(settings["upscale"]["output_dir"])
    with store.rendering():  # the upscaled frames' folder is held like a render's (a second pass is refused)
        return _run_pass(load, settings, records, hashes, main, emit, cancel, kind, values, store)


def _run_pass(load: Callable[[], Any], settings: dict, records: list[dict], hashes: dict[int, str], main: FrameStore,
              emit: Emit, cancel: threading.Event, kind: str, values: dict, store: FrameStore) -> dict:
    present = [r for r in records if main.is_current(r["frame"], hashes[r["frame"]])]
    have = {r["frame"] for r in present}
    missing = [r["frame"] for r in records if r["frame"] not in have]
    own = {r["frame"]: upscale_hash(hashes[r["frame"]], values, r) for r in present}
    todo = [r for r in present if not store.is_current(r["frame"], own[r["frame"]])]
    emit(events.upscale_start([r["frame"] for r in present], [r["frame"] for r in todo], missing, store.folder))
    total, done = len(present), len(present) - len(todo)
    waiting = {r["frame"] for r in todo}
    for r in present:
        if r["frame"] not in waiting:
            emit(events.upscaled(r["frame"], store.path(r["frame"]), True, done, total))
    upscaled, cancelled = 0, False
    store.expect(len(todo))
    if todo and cancel.is_set():
        cancelled = True
    elif todo:
        pipe = load()
        # The plan's memory switches hold here too; tiling matters most: the x4 decoder works at 4x the frame's size.
        pipe.vae.enable_tiling() if settings.get("vae_tiling") else pipe.vae.disable_tiling()
        pipe.vae.enable_slicing() if settings.get("vae_slicing") else pipe.vae.disable_slicing()
        batch_size = batch_frames(settings, kind)
        try:
            for start in range(0, len(todo), batch_size):
                if cancel.is_set():
                    raise Cancelled()
                batch = todo[start:start + batch_size]
                images = _upscale(pipe, kind, values, batch, main, emit, cancel, done + upscaled, total)
                for record, image in zip(batch, images):
                    frame = record["frame"]
                    path = store.write(frame, image, own[frame], _params(values, record, image, main.path(frame)))
                    upscaled += 1
                    emit(events.upscaled(frame, path, False, done + upscaled, total))
        except Cancelled:
            cancelled = True
        finally:
            store.compact()
    return {"upscaled": upscaled, "upscale_skipped": done, "upscale_missing": len(missing),
            "upscale_dir": store.folder, "cancelled": cancelled}


def _upscale(pipe, kind: str, values: dict, batch: list[dict], main: FrameStore, emit: Emit,
             cancel: threading.Event, done: int, total: int) -> list:
    import torch
    from PIL import Image

    frames = [r["frame"] for r in batch]
    sources = []
    for frame in frames:
        with Image.open(main.path(frame)) as im:
            sources.append(im.convert("RGB"))
    prompts = [frame_prompt(r) for r in batch]
    multiple = side_multiple(pipe, kind)

    def on_step(step: int, timestep, latents) -> None:
        if cancel.is_set():
            raise Cancelled()
        emit(events.progress(frames, step + 1, values["steps"], done, total, upscale=True))

    # PIL in: each pipeline's own image processor scales pixels to -1..1 (and the latent upscaler encodes them).
    kwargs: dict[str, Any] = dict(
        prompt=[p for p, _ in prompts], negative_prompt=[n for _, n in prompts],
        image=[_pad(source, multiple) for source in sources],
        num_inference_steps=values["steps"], guidance_scale=values["guidance"],
        generator=[torch.Generator("cpu").manual_seed(r["seed"]) for r in batch],
        callback=on_step, callback_steps=1, output_type="pil")
    if kind == "x4":
        kwargs["noise_level"] = values["noise_level"]
    images = pipe(**kwargs).images
    factor = FACTORS[kind]
    cropped = []
    for source, image in zip(sources, images):
        padded = [side + -side % multiple for side in source.size]
        if image.size != (padded[0] * factor, padded[1] * factor):
            raise ModelError(f"upscaler '{values['model']}' made a {image.width}x{image.height} frame from a "
                             f"{padded[0]}x{padded[1]} one, not {factor}x that: its autoencoder does not scale like "
                             "the model it claims to be")
        cropped.append(image.crop((0, 0, source.width * factor, source.height * factor)))
    return cropped


def _pad(image, multiple: int):
    """The frame with its last column and row repeated up to sides that are multiples of `multiple`."""
    import numpy as np
    from PIL import Image

    right, bottom = -image.width % multiple, -image.height % multiple
    if not right and not bottom:
        return image
    return Image.fromarray(np.pad(np.asarray(image), ((0, bottom), (0, right), (0, 0)), mode="edge"))


def _params(values: dict, record: dict, image, source: str) -> dict:
    """What an upscaled frame was made from, for its PNG text chunks and the manifest."""
    text, negative = frame_prompt(record)
    return {"mode": "UPSCALE", "model": values["model"], "upscaler": values["kind"], "frame": record["frame"],
            "seed": record["seed"], "steps": values["steps"], "guidance": values["guidance"],
            **({"noise_level": values["noise_level"]} if "noise_level" in values else {}),
            "prompts": [{"text": text, "negative": negative, "weight": 1.0}],
            "width": image.width, "height": image.height, "source": source}
