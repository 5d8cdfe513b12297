"""The engine without Blender: tiny real diffusers pipeline, frames on disk, resume, errors."""

import os
import threading

import numpy as np
import pytest
import torch
from common import make_plan
from PIL import Image

from engine import plan as plan_mod
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.latents import blend, seeded_noise, slerp
from engine.models.locate import resolve
from engine.renderer import Renderer


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def render(renderer, plan, frames=None, cancel=None):
    events = []
    summary = renderer.render(plan_mod.validate(plan), frames, events.append, cancel)
    return summary, events


def rendered_frames(events):
    return [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]]


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_slerp_and_blend():
    a, b = seeded_noise(1, (4, 8, 8)), seeded_noise(2, (4, 8, 8))
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    # Slerp between independent Gaussians keeps the norm; a plain lerp would shrink it by about 1/sqrt(2).
    assert abs(mid.norm() / a.norm() - 1) < 0.05
    assert torch.allclose(blend([a, b], [0.5, 0.5]), mid)
    assert torch.equal(blend([a, b, seeded_noise(3, (4, 8, 8))], [1.0, 0.0, 0.0]), a)
    assert torch.equal(seeded_noise(5, (2, 2)), seeded_noise(5, (2, 2)))


def test_render_resume_and_partial_rerender(renderer, tiny_model_dir, tmp_path):
    out = str(tmp_path / "frames")
    plan = make_plan(out, frames=4, model=tiny_model_dir)
    summary, events = render(renderer, plan)
    assert rendered_frames(events) == [1, 2, 3, 4] and summary["rendered"] == 4
    store = FrameStore(out)
    for f in range(1, 5):
        img = Image.open(store.path(f))
        assert img.size == (64, 64)
    # Progress arrives per denoising step of each batch (batch size 2, 2 steps).
    steps = [(e["frames"], e["step"]) for e in events if e["event"] == "progress"]
    assert steps == [([1, 2], 1), ([1, 2], 2), ([3, 4], 1), ([3, 4], 2)]

    summary, events = render(renderer, plan)
    assert summary["rendered"] == 0 and summary["skipped"] == 4

    before = {f: pixels(store.path(f)) for f in range(1, 5)}
    mtimes = {f: os.path.getmtime(store.path(f)) for f in range(1, 5)}
    plan["frames"][2]["guidance"] = 9.0
    summary, events = render(renderer, plan)
    assert rendered_frames(events) == [3]
    assert not np.array_equal(before[3], pixels(store.path(3)))
    assert all(os.path.getmtime(store.path(f)) == mtimes[f] for f in (1, 2, 4))

    # A truncated frame and a deleted frame are rendered again; the rest stay.
    with open(store.path(2), "r+b") as f:
        f.truncate(100)
    os.remove(store.path(4))
    summary, events = render(renderer, plan)
    assert rendered_frames(events) == [2, 4]
    assert np.array_equal(pixels(store.path(2)), before[2])  # deterministic per frame


def test_frame_range_and_batching_do_not_change_pixels(renderer, tiny_model_dir, tmp_path):
    a = make_plan(str(tmp_path / "a"), frames=3, model=tiny_model_dir, batch_size=3)
    b = make_plan(str(tmp_path / "b"), frames=3, model=tiny_model_dir, batch_size=1)
    render(renderer, a)
    _, events = render(renderer, b, frames=(2, 3))
    assert rendered_frames(events) == [2, 3]
    assert not os.path.exists(FrameStore(str(tmp_path / "b")).path(1))
    for f in (2, 3):
        diff = np.abs(pixels(FrameStore(str(tmp_path / "a")).path(f)) - pixels(FrameStore(str(tmp_path / "b")).path(f)))
        assert diff.max() <= 2


def test_interpolation_moves_between_prompts(renderer, tiny_model_dir, tmp_path):
    plan = make_plan(str(tmp_path / "i"), frames=5, model=tiny_model_dir, batch_size=5)
    render(renderer, plan)
    store = FrameStore(str(tmp_path / "i"))
    imgs = [pixels(store.path(f)).astype(float) for f in range(1, 6)]
    dist_to_first = [np.abs(img - imgs[0]).mean() for img in imgs]
    dist_to_last = [np.abs(img - imgs[-1]).mean() for img in imgs]
    assert dist_to_first[0] == 0 and dist_to_first[-1] > 0
    # The middle frame lies between the endpoints: closer to each than they are to each other.
    assert dist_to_first[2] < dist_to_first[-1] and dist_to_last[2] < dist_to_last[0]


def test_cancel_stops_within_a_step_and_keeps_finished_frames(renderer, tiny_model_dir, tmp_path):
    plan = make_plan(str(tmp_path / "c"), frames=4, steps=3, model=tiny_model_dir, batch_size=1)
    cancel = threading.Event()
    events = []

    def emit(event):
        events.append(event)
        if event["event"] == "frame" and event["frame"] == 1:
            cancel.set()

    summary = renderer.render(plan_mod.validate(plan), None, emit, cancel)
    assert summary["cancelled"] and summary["rendered"] == 1
    # No denoising step of frame 2 ran after the cancel.
    assert not [e for e in events if e["event"] == "progress" and e["frames"] == [2] and e["step"] > 1]
    assert FrameStore(str(tmp_path / "c")).finished_frames() == [1]
    summary, events = render(renderer, plan)
    assert rendered_frames(events) == [2, 3, 4]


def test_missing_models_are_named(tmp_path):
    with pytest.raises(ModelError, match=r"'someone/not-here' is not in the Hugging Face cache.*hf download someone/not-here"):
        resolve("someone/not-here", allow_download=False)
    with pytest.raises(ModelError, match="no such folder"):
        resolve(str(tmp_path / "nothing" / "here"), allow_download=False)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="is a single file"):
        resolve(str(tmp_path / "model.safetensors"), allow_download=False)
    with pytest.raises(ModelError, match="neither a folder nor a Hugging Face id"):
        resolve("just words", allow_download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no model_index.json"):
        resolve(str(tmp_path / "empty"), allow_download=False)


def test_renderer_reports_missing_model_before_touching_frames(tmp_path):
    plan = make_plan(str(tmp_path / "m"), model="someone/not-here")
    with pytest.raises(ModelError, match="someone/not-here"):
        Renderer().render(plan_mod.validate(plan), None, lambda e: None)
    assert FrameStore(str(tmp_path / "m")).finished_frames() == []


def test_cfg_rescale_reaches_the_pipeline(renderer, tiny_model_dir, tmp_path):
    images = []
    for rescale in (0.0, 0.9):
        plan = make_plan(str(tmp_path / f"r{rescale}"), frames=1, model=tiny_model_dir)
        plan["frames"][0]["guidance_rescale"] = rescale
        summary, _ = render(renderer, plan)
        assert summary["rendered"] == 1
        images.append(pixels(FrameStore(plan["settings"]["output_dir"]).path(1)))
    assert np.abs(images[0] - images[1]).max() > 0


def test_slerp_keeps_a_standard_normal_latents_std_and_hits_the_keys():
    from engine.modes.interpolate import frame_latent

    shape = (4, 32, 32)
    a, b = seeded_noise(7, shape), seeded_noise(8, shape)
    settings = {"latent_source": "PROMPT_SEEDS"}
    stds, lerp_stds = [], []
    for t in (0.25, 0.5, 0.75):
        record = {"seed": 0, "prompts": [{"text": "x", "weight": 1 - t, "seed": 7}, {"text": "y", "weight": t, "seed": 8}]}
        stds.append(float(frame_latent(record, settings, shape).std()))
        lerp_stds.append(float(torch.lerp(a, b, t).std()))
    assert all(abs(s - 1.0) < 0.03 for s in stds), stds
    assert abs(lerp_stds[1] - 2 ** -0.5) < 0.03  # lerp halfway loses about 30% of the std: the washed-out look
    # At a key frame the latent is exactly that key's seeded noise.
    for weights, expected in (((1.0, 0.0), a), ((0.0, 1.0), b)):
        record = {"seed": 0, "prompts": [{"text": "x", "weight": weights[0], "seed": 7},
                                         {"text": "y", "weight": weights[1], "seed": 8}]}
        assert torch.equal(frame_latent(record, settings, shape), expected)
