"""Wan 2.x (Wan-AI, diffusers' WanPipeline family): text to video, first/last frame to video, and VACE.

All three share the UMT5 text encoding and the sizes: frame counts 1 + 4k (the VAE's temporal compression), widths and
heights in multiples of the VAE's spatial factor times the transformer's patch (16).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from . import VideoModel, Window, register, to_pil


class _Wan(VideoModel):
    default_window = 81  # Wan 2.1's training length (5 s at 16 fps)
    max_sequence_length = 512

    def frame_step(self, pipe) -> int:
        return int(pipe.vae_scale_factor_temporal)

    def size_step(self, pipe) -> int:
        return int(pipe.vae_scale_factor_spatial) * int(pipe.transformer.config.patch_size[1])

    def encode(self, pipe, texts: list[str], device) -> dict:
        embeds, _ = pipe.encode_prompt(prompt=texts, do_classifier_free_guidance=False,
                                       max_sequence_length=self.max_sequence_length, device=device)
        return {"embeds": embeds}


@register
class WanTextToVideo(_Wan):
    name = "wan-t2v"
    label = "Wan text-to-video"
    classes = ("WanPipeline",)


@register
class WanFirstLastFrame(_Wan):
    """WanImageToVideoPipeline: a picture at the window's first frame, and optionally at its last (FLF2V models)."""

    name = "wan-i2v"
    label = "Wan image-to-video (first/last frame)"
    classes = ("WanImageToVideoPipeline",)
    pins = "first_last"

    def condition_kwargs(self, pipe, window: Window) -> dict:
        by_index = {pin.index: pin for pin in window.pins}
        if 0 not in by_index:
            raise ModelError(f"{self.label} needs a picture at the shot's first frame: pin one there (a file, a strip, "
                             "Blender's render or a generated frame), or use a text-to-video, VACE or LTX model")
        kwargs = {"image": to_pil(by_index[0].image)}
        last = by_index.get(window.count - 1)
        one_picture = pipe.image_encoder is not None and not getattr(pipe.transformer.config, "pos_embed_seq_len",
                                                                      None)
        if last is not None and one_picture:
            # Wan 2.1 I2V (480P/720P) embeds one picture; its last_image path fails inside diffusers.
            raise ModelError(f"this {self.label} model (Wan 2.1 I2V) takes one picture, at the shot's first frame; "
                             "for a picture at the last frame too use a first-last-frame model (Wan2.1-FLF2V, "
                             "Wan 2.2 I2V) or a VACE or LTX condition model")
        if last is not None:
            kwargs["last_image"] = to_pil(last.image)
        elif getattr(pipe.transformer.config, "pos_embed_seq_len", None):
            # FLF2V models embed the first and the last picture together: they can't run with one.
            raise ModelError(f"this {self.label} model is a first-last-frame model (FLF2V): it needs a picture at "
                             "each shot's (and each window's) last frame too; pin one there, or use an I2V model "
                             "(one picture) or a VACE or LTX condition model")
        return kwargs


GRAY = 127  # VACE's "make this" picture: mid gray where the mask is white


@register
class WanVace(_Wan):
    """WanVACEPipeline: a control video with a mask. Frames to make get the control picture (or gray) under a white
    mask; pinned frames get their picture under a black mask (gray for a strength below 1)."""

    name = "wan-vace"
    label = "Wan VACE (control video, pinned frames)"
    classes = ("WanVACEPipeline",)
    pins = "any"
    control = True

    def condition_kwargs(self, pipe, window: Window) -> dict:
        if not window.pins and window.control is None:
            return {}
        video, mask = vace_inputs(window)
        return {"video": [to_pil(v) for v in video], "mask": [to_pil(m) for m in mask],
                "conditioning_scale": float(window.control_scale)}


def vace_inputs(window: Window) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The VACE video and mask (count frames each): control or gray under white, pins under black."""
    shape = (window.height, window.width)
    video = list(window.control) if window.control is not None else [np.full((*shape, 3), GRAY, np.uint8)] * window.count
    mask = [np.full(shape, 255, np.uint8)] * window.count
    for pin in window.pins:
        video[pin.index] = pin.image
        mask[pin.index] = np.full(shape, int(round(255 * (1.0 - pin.strength))), np.uint8)
    return video, mask
