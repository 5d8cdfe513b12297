"""Flow-warped noise (engine/noise_warp.py and guided video mode's warp_noise): the noise moves with the flow by whole
latent cells, takes fresh noise where nothing was visible, really replaces the pipeline's seeded noise, and a guided
chain with it resumes to the same frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_guided import FRAMES, frames_in, inputs, video_plan  # noqa: F401 (inputs is a fixture)

from engine import plan as plan_mod
from engine.latents import seeded_noise
from engine.modes.diffuse import Job, diffuse
from engine.noise_warp import given_noise, warp_noise
from engine.models.derive import derive
from engine.renderer import Renderer


def _translation(height: int, width: int, dx: float, dy: float = 0.0) -> np.ndarray:
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_noise_moves_with_the_picture_by_whole_cells():
    previous, fresh = seeded_noise(1, (4, 6, 8)), seeded_noise(2, (4, 6, 8))
    # Content moved 16 pixels right and 8 down: each cell of frame t was 2 cells left and 1 up in frame t-1.
    moved = warp_noise(previous, _translation(48, 64, -16.0, -8.0), np.ones((48, 64), bool), fresh)
    assert torch.equal(moved[:, 1:, 2:], previous[:, :-1, :-2])
    # What came in from the left and the top edge is fresh noise, not a smear of the edge.
    assert torch.equal(moved[:, :, :2], fresh[:, :, :2]) and torch.equal(moved[:, :1], fresh[:, :1])


def test_a_sub_cell_motion_rounds_and_keeps_gaussian_values():
    previous, fresh = seeded_noise(3, (4, 6, 8)), seeded_noise(4, (4, 6, 8))
    moved = warp_noise(previous, _translation(48, 64, -3.0), np.ones((48, 64), bool), fresh)
    assert torch.equal(moved, previous)  # 3 pixels is less than half a cell of 8: the noise stays
    moved = warp_noise(previous, _translation(48, 64, -5.0), np.ones((48, 64), bool), fresh)
    assert torch.equal(moved[:, :, 1:], previous[:, :, :-1])
    assert set(moved.flatten().tolist()) <= set(previous.flatten().tolist()) | set(fresh.flatten().tolist())


def test_cells_not_visible_before_take_fresh_noise():
    previous, fresh = seeded_noise(5, (4, 6, 8)), seeded_noise(6, (4, 6, 8))
    visible = np.ones((48, 64), bool)
    visible[16:32, 24:40] = False  # revealed background behind a moving object
    moved = warp_noise(previous, _translation(48, 64, 0.0), visible, fresh)
    assert torch.equal(moved[:, 2:4, 3:5], fresh[:, 2:4, 3:5])
    assert torch.equal(moved[:, :2], previous[:, :2])


def _job(pipe) -> Job:
    settings = {"width": 64, "height": 64, "mode": "VIDEO"}
    return Job(pipe, settings, lambda *a: None)


def _record(seed: int) -> dict:
    return {"frame": 1, "seed": seed, "steps": 4, "guidance": 5.0, "strength": 0.6,
            "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}]}


@pytest.fixture(scope="module")
def pipe():
    return Renderer().pipeline("embedded:tiny", "auto", lambda e: None)


def test_given_noise_replaces_the_seeded_noise(pipe):
    init = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    shape = (pipe.vae.config.latent_channels, 64 // pipe.vae_scale_factor, 64 // pipe.vae_scale_factor)
    noise = seeded_noise(11, shape)
    job = _job(pipe)
    # The frame's seed no longer matters: the noise (and the VAE's mean, not a sample) decide the frame.
    a = diffuse(job, [_record(1)], [init], noises=[noise])[0]
    b = diffuse(job, [_record(2)], [init], noises=[noise])[0]
    assert np.array_equal(a, b)
    c = diffuse(job, [_record(1)], [init], noises=[seeded_noise(12, shape)])[0]
    assert np.abs(a.astype(int) - c).mean() > 1.0
    img2img = derive(pipe, "img2img")  # the pipeline the call went through (cached on the base)
    assert "prepare_latents" not in img2img.__dict__  # it is itself again after the call
    with given_noise(img2img, [noise]):
        assert "prepare_latents" in img2img.__dict__
    assert "prepare_latents" not in img2img.__dict__


def _warped_plan(out, paths) -> dict:
    plan = video_plan(out, paths)
    plan["settings"]["warp_noise"] = True
    return plan_mod.validate(plan)


def test_warp_noise_is_hashed_and_its_chain_resumes(inputs, tmp_path):  # noqa: F811
    plain = video_plan(tmp_path, inputs)
    warped = _warped_plan(tmp_path, inputs)
    before = plan_mod.frame_hashes(plain["settings"], plain["frames"])
    after = plan_mod.frame_hashes(warped["settings"], warped["frames"])
    assert all(before[f] != after[f] for f in before)

    renderer = Renderer()
    renderer.render(_warped_plan(tmp_path / "whole", inputs), None, lambda e: None)
    parts = _warped_plan(tmp_path / "parts", inputs)
    renderer.render(parts, (1, 3), lambda e: None)  # as a render killed after frame 3 left it
    rest = renderer.render(parts, None, lambda e: None)
    assert rest["rendered"] == FRAMES - 3
    for a, b in zip(frames_in(tmp_path / "whole"), frames_in(tmp_path / "parts")):
        assert np.array_equal(a, b)
    renderer.render(video_plan(tmp_path / "unwarped", inputs), None, lambda e: None)
    # Frames after the first differ from the seeded-noise chain: the noise really moved.
    differs = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames_in(tmp_path / "whole"),
                                                                frames_in(tmp_path / "unwarped"))]
    assert all(d > 0.5 for d in differs[1:]), differs


def test_fusion_pulls_visible_cells_to_the_target_noised_to_the_step(pipe):
    from engine.fusion import fusion_pull, latent_mask

    scheduler = pipe.scheduler
    scheduler.set_timesteps(10)
    targets, noises, latents = (seeded_noise(s, (1, 4, 8, 8)) for s in (1, 2, 3))
    visible = np.ones((32, 32), bool)
    visible[:, :12] = False  # cells 0-1 fully hidden, cell 2 half hidden: all three are new
    mask = latent_mask(visible, (8, 8))
    assert mask[:, :3].sum() == 0 and mask[:, 3:].min() == 1
    full = fusion_pull(pipe, targets, mask[None, None], torch.tensor([1.0]), noises)
    # After the last step the goal is the clean target; before it, the target noised to the next timestep.
    last = full(latents, scheduler.timesteps[-1])
    assert torch.allclose(last[..., 3:], targets[..., 3:]) and torch.equal(last[..., :3], latents[..., :3])
    half = fusion_pull(pipe, targets, mask[None, None], torch.tensor([0.5]), noises)(latents, scheduler.timesteps[-1])
    assert torch.allclose(half[..., 3:], (latents[..., 3:] + targets[..., 3:]) / 2)
    early = full(latents, scheduler.timesteps[0])
    assert not torch.allclose(early[..., 3:], targets[..., 3:])  # still noisy: not the clean target yet
    assert torch.allclose(early[..., 3:],
                          scheduler.add_noise(targets, noises, scheduler.timesteps[1:2])[..., 3:], atol=1e-5)


def test_fusion_lowers_the_flicker_of_a_guided_chain(inputs, tmp_path):  # noqa: F811
    renderer = Renderer()
    figures = {}
    for fusion in (0.0, 0.8):
        plan = video_plan(tmp_path / str(fusion), inputs, model="embedded:shapes", steps=10)
        plan["settings"].update(warp_noise=True, fusion=fusion)
        figures[fusion] = renderer.render(plan_mod.validate(plan), None, lambda e: None)["flicker"]["warping_error"]
    assert figures[0.8] < 0.8 * figures[0.0], figures
    hashes = [plan_mod.frame_hashes(p["settings"], p["frames"]) for p in
              (video_plan(tmp_path, inputs), plan_mod.validate({**video_plan(tmp_path, inputs), "settings": {
                  **video_plan(tmp_path, inputs)["settings"], "fusion": 0.5}}))]
    assert all(hashes[0][f] != hashes[1][f] for f in hashes[0])


def test_anchor_attention_attends_to_the_first_frame_and_resumes(inputs, tmp_path):  # noqa: F811
    from engine.anchor_attention import AnchorAttention

    renderer = Renderer()

    def anchored(out, anchor: bool = True) -> dict:
        plan = video_plan(out, inputs)
        plan["settings"]["anchor_attention"] = anchor
        return plan_mod.validate(plan)

    renderer.render(anchored(tmp_path / "whole"), None, lambda e: None)
    renderer.render(anchored(tmp_path / "plain", anchor=False), None, lambda e: None)
    whole, plain = frames_in(tmp_path / "whole"), frames_in(tmp_path / "plain")
    assert np.array_equal(whole[0], plain[0])  # the anchor itself is made as without
    differs = [np.abs(a.astype(int) - b).mean() for a, b in zip(whole[1:], plain[1:])]
    # Small on random weights (their attention is nearly uniform), but every later frame changes.
    assert all(d > 0.005 for d in differs), differs
    # Resumed after frame 3: the first frame is diffused again to record its features; the same frames follow.
    parts = anchored(tmp_path / "parts")
    renderer.render(parts, (1, 3), lambda e: None)
    renderer.render(parts, None, lambda e: None)
    assert all(np.array_equal(a, b) for a, b in zip(whole, frames_in(tmp_path / "parts")))
    # The UNet is itself again afterwards, and every self-attention layer was wrapped while it ran.
    pipe = renderer.pipeline("embedded:tiny", "auto", lambda e: None)
    assert not any("Anchor" in type(p).__name__ for p in pipe.unet.attn_processors.values())
    anchor = AnchorAttention()
    with anchor.installed(pipe.unet, recording=True):
        assert all("Anchor" in type(p).__name__ for p in pipe.unet.attn_processors.values())
        diffuse(_job(pipe), [_record(1)], [np.zeros((64, 64, 3), np.uint8)])
    # Every self-attention layer's features at every step run (0.6 of 4 steps: 2).
    self_attention = [name for name in pipe.unet.attn_processors if ".attn1." in name]
    assert self_attention and len(anchor.state.features) == 2 * len(self_attention)
    assert {name for name, _step in anchor.state.features} == set(self_attention)
    hashes = [plan_mod.frame_hashes(p["settings"], p["frames"])
              for p in (anchored(tmp_path), anchored(tmp_path, False))]
    assert all(hashes[0][f] != hashes[1][f] for f in hashes[0])
