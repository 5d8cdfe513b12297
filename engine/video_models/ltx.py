"""LTX-Video (Lightricks, diffusers' LTXPipeline and LTXConditionPipeline): frame counts 1 + 8k, sizes in multiples
of 32, T5 text encoding with an attention mask. The condition pipeline takes pictures at any frame index and videos
at a strength (LTXVideoCondition): pins, frames carried from the window before, and the scene render."""

from __future__ import annotations

from . import Pin, VideoModel, Window, register, to_pil


class _Ltx(VideoModel):
    default_window = 121  # about 5 s at 24 fps (LTX-Video 0.9.x renders up to 257)
    max_sequence_length = 256

    def frame_step(self, pipe) -> int:
        return int(pipe.vae_temporal_compression_ratio)

    def size_step(self, pipe) -> int:
        return int(pipe.vae_spatial_compression_ratio) * int(pipe.transformer_spatial_patch_size)

    def encode(self, pipe, texts: list[str], device) -> dict:
        embeds, mask, _, _ = pipe.encode_prompt(prompt=texts, do_classifier_free_guidance=False,
                                                max_sequence_length=self.max_sequence_length, device=device)
        return {"embeds": embeds, "mask": mask}


@register
class LtxTextToVideo(_Ltx):
    name = "ltx-t2v"
    label = "LTX-Video text-to-video"
    classes = ("LTXPipeline",)


@register
class LtxCondition(_Ltx):
    name = "ltx-condition"
    label = "LTX-Video conditions (pictures at any frame, video to video)"
    classes = ("LTXConditionPipeline",)
    pins = "any"
    video_condition = True

    def condition_kwargs(self, pipe, window: Window) -> dict:
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        conditions = []
        carried = sorted((p for p in window.pins if p.carried), key=lambda p: p.index)
        run = _leading_run(carried)
        if len(run) >= 1 + self.frame_step(pipe):
            # A carried run from the first frame goes in as one video (its latents, not one token set per frame).
            usable = (len(run) - 1) // self.frame_step(pipe) * self.frame_step(pipe) + 1
            conditions.append(LTXVideoCondition(video=[to_pil(p.image) for p in run[:usable]], frame_index=0,
                                                strength=1.0))
            run = run[:usable]
        else:
            run = []
        taken = {p.index for p in run}
        conditions += [LTXVideoCondition(image=to_pil(p.image), frame_index=p.index, strength=float(p.strength))
                       for p in sorted(window.pins, key=lambda p: p.index) if p.index not in taken]
        if window.render is not None and window.render_strength > 0:
            conditions.append(LTXVideoCondition(video=[to_pil(v) for v in window.render], frame_index=0,
                                                strength=float(window.render_strength)))
        return {"conditions": conditions} if conditions else {}


def _leading_run(pins: list[Pin]) -> list[Pin]:
    """The pins at indices 0, 1, 2... without a gap."""
    run = []
    for pin in pins:
        if pin.index != len(run):
            break
        run.append(pin)
    return run
