"""Speed settings: a tiny autoencoder (AutoencoderTiny, TAESD-type) in place of the model's VAE."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image

from engine import plan as plan_mod
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.renderer import Renderer

from common import make_plan
from test_modes import feedback_plan


def _tiny_decoder(folder, blocks=(16, 16), latent_channels=4) -> str:
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(encoder_block_out_channels=blocks, decoder_block_out_channels=blocks,
                    num_encoder_blocks=(1,) * len(blocks), num_decoder_blocks=(1,) * len(blocks),
                    latent_channels=latent_channels).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> str:
    # Two blocks: pictures at twice the latents, like embedded:tiny's own autoencoder.
    return _tiny_decoder(tmp_path_factory.mktemp("decoder"))


def _render(renderer, plan) -> tuple[dict, dict]:
    plan = plan_mod.validate(plan)
    summary = renderer.render(plan, None, lambda e: None)
    store = FrameStore(plan["settings"]["output_dir"])
    return summary, {r["frame"]: store.read(r["frame"]) for r in plan["frames"]}


def test_tiny_decoder_stands_in_for_the_vae_and_steps_back_out(tmp_path, decoder):
    from diffusers import AutoencoderKL, AutoencoderTiny

    renderer = Renderer()
    out = str(tmp_path / "out")
    _, own = _render(renderer, make_plan(out))
    pipe = renderer.pipeline("embedded:tiny", "auto", lambda e: None)
    assert isinstance(pipe.vae, AutoencoderKL)

    # The decoder is part of what makes a frame: setting it re-renders every frame, and the frames change.
    summary, fast = _render(renderer, make_plan(out, decoder=decoder))
    assert summary["rendered"] == 3 and summary["skipped"] == 0
    assert isinstance(pipe.vae, AutoencoderTiny)
    for frame in own:
        assert fast[frame].shape == own[frame].shape == (64, 64, 3)
        assert np.abs(fast[frame].astype(int) - own[frame].astype(int)).mean() > 5

    # Cleared again: the model's own VAE is back and the frames are the first ones, bit for bit.
    summary, back = _render(renderer, make_plan(out))
    assert summary["rendered"] == 3
    assert isinstance(pipe.vae, AutoencoderKL)
    for frame in own:
        np.testing.assert_array_equal(back[frame], own[frame])


def test_tiny_decoder_in_feedback_mode_encodes_and_decodes(tmp_path, decoder):
    from diffusers import AutoencoderTiny

    renderer = Renderer()
    plan = feedback_plan(tmp_path / "fb", frames=4, steps=4, motion={"zoom": 1.05}, decoder=decoder)
    summary, frames = _render(renderer, plan)
    assert summary["rendered"] == 4
    assert all(image.shape == (64, 64, 3) for image in frames.values())
    # img2img pipelines derived from the base use the same stand-in.
    from engine.models.derive import derive
    assert isinstance(derive(renderer.pipeline("embedded:tiny", "auto", lambda e: None), "img2img").vae,
                      AutoencoderTiny)


def test_decoder_follows_the_models_precision(tmp_path, decoder):
    import torch

    renderer = Renderer()
    _render(renderer, make_plan(str(tmp_path / "fp32"), decoder=decoder))
    summary, frames = _render(renderer, make_plan(str(tmp_path / "bf16"), decoder=decoder, precision="bf16"))
    assert summary["rendered"] == 3
    pipe = renderer.pipeline("embedded:tiny", "auto", lambda e: None, "bf16")
    assert pipe.vae.dtype == pipe.unet.dtype == torch.bfloat16


def test_decoder_errors_name_the_decoder(tmp_path):
    renderer = Renderer()
    missing = str(tmp_path / "no-such-decoder")
    with pytest.raises(ModelError, match="no-such-decoder"):
        _render(renderer, make_plan(str(tmp_path / "a"), decoder=missing))
    # A decoder for another latent size or scale is refused before anything renders.
    wrong_scale = _tiny_decoder(tmp_path / "x8", blocks=(16, 16, 16, 16))
    with pytest.raises(ModelError, match="scales pictures by 8 but the model's autoencoder by 2"):
        _render(renderer, make_plan(str(tmp_path / "b"), decoder=wrong_scale))
    wrong_channels = _tiny_decoder(tmp_path / "c16", latent_channels=16)
    with pytest.raises(ModelError, match="16 latent channels"):
        _render(renderer, make_plan(str(tmp_path / "c"), decoder=wrong_channels))
    assert not [p for name in "abc" for p in (tmp_path / name).glob("*.png")]


def _conv_weight(module):
    import torch

    return next(m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d))


def test_speed_switches_take_effect_and_turn_back_off(tmp_path):
    import torch

    renderer = Renderer()
    _, plain = _render(renderer, make_plan(str(tmp_path / "plain")))
    pipe = renderer.pipeline("embedded:tiny", "auto", lambda e: None)
    summary, fast = _render(renderer, make_plan(str(tmp_path / "fast"), channels_last=True, vae_slicing=True,
                                                vae_tiling=True))
    assert summary["rendered"] == 3
    assert _conv_weight(pipe.unet).is_contiguous(memory_format=torch.channels_last)
    assert not _conv_weight(pipe.unet).is_contiguous()
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    for frame in plain:  # layout and slicing change the arithmetic's order, not the picture
        assert np.abs(fast[frame].astype(int) - plain[frame].astype(int)).max() <= 2

    _render(renderer, make_plan(str(tmp_path / "again")))
    assert _conv_weight(pipe.unet).is_contiguous()
    assert not pipe.vae.use_slicing and not pipe.vae.use_tiling


def test_precision_loads_the_weights_in_that_dtype(tmp_path):
    import torch

    renderer = Renderer()
    _, full = _render(renderer, make_plan(str(tmp_path / "fp32"), precision="fp32"))
    assert renderer.pipeline("embedded:tiny", "auto", lambda e: None, "fp32").unet.dtype == torch.float32
    summary, half = _render(renderer, make_plan(str(tmp_path / "bf16"), precision="bf16"))
    assert summary["rendered"] == 3
    assert renderer.pipeline("embedded:tiny", "auto", lambda e: None, "bf16").unet.dtype == torch.bfloat16
    for frame in full:  # the same picture within bfloat16's rounding
        assert full[frame].shape == half[frame].shape
        assert np.abs(half[frame].astype(int) - full[frame].astype(int)).mean() < 8
    with pytest.raises(plan_mod.PlanError, match="precision"):
        plan_mod.validate(make_plan(str(tmp_path / "x"), precision="fp8"))


@pytest.mark.parametrize("guidance, doubled", [(0.0, False), (1.0, False), (5.0, True)])
def test_guidance_free_models_do_not_double_the_batch(tmp_path, guidance, doubled):
    # Turbo and LCM models run at guidance 0-1: no unconditional half, so one UNet row per frame.
    renderer = Renderer()
    plan = make_plan(str(tmp_path / "out"), frames=2)
    for record in plan["frames"]:
        record["guidance"] = guidance
    pipe = renderer.pipeline("embedded:tiny", "auto", lambda e: None)
    rows = []
    handle = pipe.unet.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    try:
        _render(renderer, plan)
    finally:
        handle.remove()
    assert rows and set(rows) == {4 if doubled else 2}


def test_compiled_unet_renders_the_same_frames_and_is_reused(tmp_path):
    renderer = Renderer()
    _, plain = _render(renderer, make_plan(str(tmp_path / "plain")))
    pipe = renderer.pipeline("embedded:tiny", "auto", lambda e: None)
    own = pipe.unet
    _, compiled = _render(renderer, make_plan(str(tmp_path / "compiled"), compile=True))
    first = pipe.unet
    assert first is not own and getattr(first, "_orig_mod", None) is own
    for frame in plain:
        assert np.abs(compiled[frame].astype(int) - plain[frame].astype(int)).max() <= 2
    _render(renderer, make_plan(str(tmp_path / "again"), compile=True))
    assert pipe.unet is first  # compiled once, reused by the next render
    _render(renderer, make_plan(str(tmp_path / "off")))
    assert pipe.unet is own


def test_background_writes_give_the_same_frames_and_events_in_order(tmp_path):
    renderer = Renderer()
    _, inline = _render(renderer, make_plan(str(tmp_path / "inline"), frames=5))
    events = []
    plan = plan_mod.validate(make_plan(str(tmp_path / "bg"), frames=5, background_writes=True))
    summary = renderer.render(plan, None, events.append)
    assert summary["rendered"] == 5 and not summary["cancelled"]
    frames = [e for e in events if e["event"] == "frame"]
    assert [e["frame"] for e in frames] == [1, 2, 3, 4, 5] and [e["done"] for e in frames] == [1, 2, 3, 4, 5]
    assert events[-1]["event"] == "finished"
    store = FrameStore(str(tmp_path / "bg"))
    assert store.finished_frames() == [1, 2, 3, 4, 5]
    for frame, image in inline.items():
        np.testing.assert_array_equal(store.read(frame), image)


def test_background_writes_keep_every_made_frame_on_cancel(tmp_path):
    import threading

    renderer = Renderer()
    plan = plan_mod.validate(make_plan(str(tmp_path / "bg"), frames=6, batch_size=1, background_writes=True))
    cancel = threading.Event()
    written = []

    def emit(event):
        if event["event"] == "frame":
            written.append(event["frame"])
            cancel.set()

    summary = renderer.render(plan, None, emit, cancel)
    assert summary["cancelled"] and 1 <= summary["rendered"] < 6
    assert FrameStore(str(tmp_path / "bg")).finished_frames() == written == list(range(1, summary["rendered"] + 1))
    again = renderer.render(plan, None, lambda e: None)
    assert again["rendered"] == 6 - summary["rendered"]


def test_a_failing_background_write_stops_the_render_with_its_error(tmp_path, monkeypatch):
    renderer = Renderer()
    original = FrameStore.write

    def write(self, frame, *args, **kwargs):
        if frame == 2:
            raise OSError("disk full writing frame 2")
        return original(self, frame, *args, **kwargs)

    monkeypatch.setattr(FrameStore, "write", write)
    plan = plan_mod.validate(make_plan(str(tmp_path / "bg"), frames=4, batch_size=1, background_writes=True))
    with pytest.raises(OSError, match="disk full writing frame 2"):
        renderer.render(plan, None, lambda e: None)
    assert FrameStore(str(tmp_path / "bg")).finished_frames() == [1]


# -- decoding while the next batch denoises ----------------------------------------------------------------------

def _video_plan(out, frames: int, **settings) -> dict:
    from test_modes import _colour_frame

    os.makedirs(out, exist_ok=True)
    records = []
    for i in range(frames):
        path = os.path.join(out, f"init{i}.png")
        Image.fromarray(_colour_frame(i)).save(path)
        records.append({"frame": i + 1, "seed": i, "steps": 4, "guidance": 5.0, "strength": 0.6,
                        "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}], "init": {"path": path}})
    return {"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
            "settings": {"mode": "VIDEO", "model": "embedded:tiny", "width": 64, "height": 64,
                         "output_dir": os.path.join(out, "frames"), "batch_size": 2, **settings},
            "frames": records}


@pytest.mark.parametrize("mode", ["INTERPOLATE", "VIDEO"])
def test_overlap_decode_decodes_on_a_thread_and_gives_the_same_frames(tmp_path, monkeypatch, mode, decoder):
    from engine.modes import overlap

    def plan(name, **settings):
        if mode == "VIDEO":
            return _video_plan(str(tmp_path / name), 6, **settings)
        return make_plan(str(tmp_path / name), frames=6, **settings)

    renderer = Renderer()
    threads = []
    decode = overlap.decode
    monkeypatch.setattr(overlap, "decode", lambda *a: (threads.append(threading.current_thread().name), decode(*a))[1])
    for extra in ({}, {"decoder": decoder}):
        _, inline = _render(renderer, plan(f"inline{len(extra)}", **extra))
        assert threads == []
        _, overlapped = _render(renderer, plan(f"overlap{len(extra)}", overlap_decode=True, **extra))
        assert len(threads) == 3 and all(t.startswith("kd-decode") for t in threads)  # 3 batches of 2
        threads.clear()
        for frame, image in inline.items():
            assert np.abs(overlapped[frame].astype(int) - image.astype(int)).max() <= 1, frame


def test_overlap_decode_keeps_the_batch_being_decoded_on_cancel(tmp_path):
    renderer = Renderer()
    plan = plan_mod.validate(make_plan(str(tmp_path / "o"), frames=6, batch_size=2, overlap_decode=True, steps=3))
    cancel = threading.Event()
    events = []

    def emit(event):
        events.append(event)
        # Cancel during batch 2's denoising: batch 1 is on the decoding thread then, and must still be written.
        if event["event"] == "progress" and event["frames"] == [3, 4] and event["step"] == 1:
            cancel.set()

    summary = renderer.render(plan, None, emit, cancel)
    assert summary["cancelled"]
    assert FrameStore(str(tmp_path / "o")).finished_frames() == [1, 2]
    assert not [e for e in events if e["event"] == "progress" and e["frames"] == [3, 4] and e["step"] > 1]


def test_prefetch_reads_ahead_in_order():
    from engine.modes.overlap import prefetch

    names = []
    reads = prefetch([1, 2, 3], lambda i: (names.append(threading.current_thread().name), i * 10)[1])
    assert list(reads) == [10, 20, 30] and all(n.startswith("kd-prefetch") for n in names)
