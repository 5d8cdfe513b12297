"""Video models for shot mode: one file per family, each a `VideoModel` registered for the diffusers pipeline
classes it runs (Wan 2.x T2V, I2V and VACE; LTX-Video T2V and condition).

Shot mode (engine/modes/shot.py) never branches on a family's name. It cuts a shot into windows and hands each
window to the family as a `Window`: the frame count the model renders, the size, the steps, the window's text
conditioning (already blended from the keyed prompts), its pinned pictures at their indices, and its control
pictures. The family turns that into its pipeline's keyword arguments (`condition_kwargs`) and says what it can take:

- `pins`: "none" (text-to-video), "first_last" (Wan I2V / FLF2V: a picture at a window's first and last frames
  only), "first" (LTX image-to-video) or "any" (VACE masks, LTX conditions: any number, at any frame);
- `control`: whether it takes a control video (VACE: depth, flow, layout or the scene render);
- `video_condition`: whether it takes a video at a strength (LTX conditions: the scene render, video to video).

Frames carried over from an earlier window or shot are pins too (at strength 1), so joining windows and chaining
shots needs nothing from a family beyond its pins.

Adding a family: a new file here with a `VideoModel` subclass decorated with `@register`; `CLASSES` below names its
pipeline classes for the model check (which must not import torch).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ModelError

# Pipeline class -> family, read without importing torch (the plan check and the model check use it).
CLASSES: dict[str, str] = {
    "WanPipeline": "wan-t2v",
    "WanImageToVideoPipeline": "wan-i2v",
    "WanVACEPipeline": "wan-vace",
    "LTXPipeline": "ltx-t2v",
    "LTXConditionPipeline": "ltx-condition",
}
EXAMPLES = ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Wan-AI/Wan2.1-FLF2V-14B-720P-Diffusers, Wan-AI/Wan2.1-VACE-1.3B-diffusers, "
            "Lightricks/LTX-Video-0.9.7-dev (LTXConditionPipeline)")
StepCallback = Callable[[int, int], None]  # (step, steps): may raise Cancelled


@dataclass
class Pin:
    """A picture the window's frame at `index` is held to (a pinned picture, or a frame carried over)."""

    index: int
    image: np.ndarray  # H x W x 3 uint8, the window's size
    strength: float = 1.0
    carried: bool = False


@dataclass
class Window:
    """One call of the video model (see the module doc)."""

    count: int  # frames the model renders (a count it takes)
    width: int
    height: int
    steps: int
    guidance: float
    seed: int
    embeds: dict  # the pipeline's prompt_embeds, negative_prompt_embeds (and attention masks) keyword arguments
    pins: list[Pin] = field(default_factory=list)
    control: list[np.ndarray] | None = None  # `count` control pictures (VACE)
    control_scale: float = 1.0
    render: list[np.ndarray] | None = None  # the scene render's frames, a video condition (LTX)
    render_strength: float = 0.0
    fps: float = 24.0


class VideoModel:
    """A family of video pipelines; see the module doc."""

    name = ""
    label = ""
    classes: tuple[str, ...] = ()
    pins = "none"
    control = False
    video_condition = False
    default_window = 81
    max_sequence_length = 512

    def frame_step(self, pipe) -> int:
        """Frame counts the model takes are 1 + a multiple of this (its VAE's temporal compression)."""
        raise NotImplementedError

    def size_step(self, pipe) -> int:
        """Widths and heights the model takes are multiples of this."""
        raise NotImplementedError

    def encode(self, pipe, texts: list[str], device) -> dict:
        """{"embeds": (n, seq, dim)[, "mask": (n, seq)]} for the texts."""
        raise NotImplementedError

    def embed_kwargs(self, positive: dict, negative: dict) -> dict:
        """The pipeline's keyword arguments for a blended positive and negative encoding."""
        kwargs = {"prompt_embeds": positive["embeds"], "negative_prompt_embeds": negative["embeds"]}
        if "mask" in positive:
            kwargs.update(prompt_attention_mask=positive["mask"], negative_prompt_attention_mask=negative["mask"])
        return kwargs

    def condition_kwargs(self, pipe, window: Window) -> dict:
        """The pipeline's keyword arguments for the window's pins, control and render."""
        return {}

    def call(self, pipe, window: Window, on_step: StepCallback) -> np.ndarray:
        """Render the window: (count, H, W, 3) uint8. `on_step` runs after every denoising step."""
        import torch

        def callback(_pipe, i, _t, _tensors):
            on_step(i + 1, window.steps)
            return {}

        kwargs = dict(height=window.height, width=window.width, num_frames=window.count,
                      num_inference_steps=window.steps, guidance_scale=window.guidance, output_type="np",
                      generator=torch.Generator("cpu").manual_seed(window.seed & 0xFFFF_FFFF_FFFF_FFFF),
                      callback_on_step_end=callback, **window.embeds, **self.condition_kwargs(pipe, window))
        parameters = inspect.signature(pipe.__call__).parameters
        if "max_sequence_length" in parameters:
            kwargs["max_sequence_length"] = self.max_sequence_length
        if "frame_rate" in parameters:  # LTX: the rotary positions of frames are in seconds
            kwargs["frame_rate"] = int(round(window.fps))
        with torch.no_grad():
            frames = pipe(**kwargs).frames[0]
        frames = np.asarray(frames, dtype=np.float32)
        return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def to_pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image)


_FAMILIES: dict[str, VideoModel] = {}
_loaded = False


def register(cls: type[VideoModel]) -> type[VideoModel]:
    if not cls.name or not cls.classes:
        raise TypeError(f"{cls.__name__} needs a name and its pipeline classes")
    _FAMILIES[cls.name] = cls()
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def family(pipe) -> VideoModel:
    """The family of a loaded pipeline; ModelError for anything that is not a video model shot mode runs."""
    _load()
    name = type(pipe).__name__
    for model in _FAMILIES.values():
        if name in model.classes:
            return model
    raise ModelError(not_video_message("this model", name))


def not_video_message(model: str, class_name: str) -> str:
    return (f"model '{model}' is a {class_name or 'pipeline with no _class_name'}, not a video model shot mode "
            f"runs: shot mode takes Wan 2.x (WanPipeline, WanImageToVideoPipeline, WanVACEPipeline) and LTX-Video "
            f"(LTXPipeline, LTXConditionPipeline) models, e.g. {EXAMPLES}; for a Stable Diffusion model use clip "
            "mode (AnimateDiff) or another mode")


def check_class(model: str, class_name: str, mode: str) -> None:
    """A video model only in shot mode, and shot mode only with a video model (read from model_index.json before
    any weights load)."""
    video = class_name in CLASSES
    if mode == "SHOT" and not video:
        raise ModelError(not_video_message(model, class_name))
    if mode != "SHOT" and video:
        raise ModelError(f"model '{model}' is a video model ({class_name}): it renders whole shots in Shot mode; "
                         f"set the Mode to Shot, or pick an image model for {mode.lower()} mode")


def valid_count(count: int, step: int) -> int:
    """The smallest frame count of the form 1 + k*step that holds `count` frames."""
    return 1 + max(0, -(-(count - 1) // step)) * step


def window_length(settings: dict, step: int, default: int) -> int:
    """The frames of a full window: the plan's shot_window (or the model's own length), down to a count it takes."""
    wanted = settings.get("shot_window") or default
    return 1 + max(1, (wanted - 1) // step) * step


def nearest_size(value: int, step: int) -> int:
    """The multiple of `step` nearest `value` (at least `step`; halfway goes up)."""
    return max(step, int(value / step + 0.5) * step)


def check_size(model: str, label: str, width: int, height: int, step: int) -> None:
    bad = [(name, v) for name, v in (("width", width), ("height", height)) if v % step]
    if bad:
        wide, high = nearest_size(width, step), nearest_size(height, step)
        raise ModelError(f"model '{model}' ({label}) takes widths and heights that are multiples of {step}; "
                         f"{' and '.join(f'{n} {v}' for n, v in bad)} is not: the nearest size it takes is "
                         f"{wide}x{high} (set the output size to it)")
