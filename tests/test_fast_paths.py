"""Speed settings: a tiny autoencoder (AutoencoderTiny, TAESD-type) in place of the model's VAE."""

from __future__ import annotations

import numpy as np
import pytest

from engine import plan as plan_mod
from engine.models import ModelError
from engine.frames import FrameStore
from engine.renderer import Renderer

from conftest import make_plan
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
    from engine import models
    assert isinstance(models.derive(renderer.pipeline("embedded:tiny", "auto", lambda e: None), "img2img").vae,
                      AutoencoderTiny)


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
