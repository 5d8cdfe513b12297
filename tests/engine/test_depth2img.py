"""Depth-to-image with Blender's depth pass: what reaches the depth model is the frame's own depth as relative inverse
depth (never an estimate), in video and feedback modes, and what can't be combined with it is refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from engine import image_ops, plan as plan_mod  # image_ops first: it lets OpenCV write EXR
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.modes.diffuse import DEPTH_HINT
from engine.renderer import Renderer

import cv2  # noqa: E402  (after image_ops)

SIZE = 64


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory) -> str:
    from engine.tiny_model import make_tiny_model

    return make_tiny_model(str(tmp_path_factory.mktemp("depth") / "tiny-depth"), kind="sd-depth")


@pytest.fixture
def depth_calls(monkeypatch):
    """Per depth-to-image call: its keyword arguments, the depth_map prepare_depth_map got and what it made of it."""
    from diffusers import StableDiffusionDepth2ImgPipeline

    seen = []
    call, prepare = StableDiffusionDepth2ImgPipeline.__call__, StableDiffusionDepth2ImgPipeline.prepare_depth_map

    def wrapped_call(self, *args, **kwargs):
        seen.append({"kwargs": kwargs})
        return call(self, *args, **kwargs)

    def wrapped_prepare(self, image, depth_map, *args, **kwargs):
        normalised = prepare(self, image, depth_map, *args, **kwargs)
        seen[-1].update(depth_map=depth_map.clone(), normalised=normalised.clone())
        return normalised

    monkeypatch.setattr(StableDiffusionDepth2ImgPipeline, "__call__", wrapped_call)
    monkeypatch.setattr(StableDiffusionDepth2ImgPipeline, "prepare_depth_map", wrapped_prepare)
    return seen


def _blender_depth() -> np.ndarray:
    """A Z pass at twice the frame size: a near wall (2 m) on the left, a far one (8 m) on the right, and sky (inf
    and Blender's 1e10 for no hit) in the top-left corner."""
    depth = np.full((2 * SIZE, 2 * SIZE), 8.0, np.float32)
    depth[:, :SIZE] = 2.0
    depth[:32, :32] = np.inf
    depth[:32, 32:48] = 1e10
    return depth


def _record(frame: int, **extra) -> dict:
    return {"frame": frame, "seed": frame, "steps": 2, "guidance": 5.0, "strength": 0.8,
            "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}], **extra}


def _plan(out, mode: str, records: list[dict], model: str, **settings) -> dict:
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": mode, "model": model, "width": SIZE, "height": SIZE, "output_dir": str(out),
                     **settings},
        "frames": records,
    })


def render(renderer, plan) -> list[dict]:
    events = []
    renderer.render(plan, None, events.append, threading.Event())
    return events


def _init(path) -> str:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[..., 1] = np.linspace(0, 255, SIZE, dtype=np.uint8)[:, None]
    Image.fromarray(image).save(path)
    return str(path)


def test_video_frames_get_blenders_depth_as_inverse_depth(tmp_path, renderer, depth_model, depth_calls):
    depth = _blender_depth()
    exr = str(tmp_path / "z.exr")
    assert cv2.imwrite(exr, depth)
    flipped = str(tmp_path / "z.npy")
    image_ops.write_depth(flipped, depth[:, ::-1].copy())  # the near wall on the right: a frame of its own
    init = _init(tmp_path / "init.png")
    records = [_record(10, init={"path": init}, depth=exr), _record(11, init={"path": init}, depth=flipped)]
    events = render(renderer, _plan(tmp_path / "out", "VIDEO", records, depth_model, batch_size=2))
    assert {tuple(e["frames"]) for e in events if e["event"] == "progress"} == {(10, 11)}
    (call,) = depth_calls
    given = call["depth_map"].numpy()
    assert given.shape == (2, SIZE, SIZE)  # the frame's size; diffusers resizes it to the latents'
    # 1/z, nothing hit = 0 (infinitely far), area-averaged to the frame size.
    inverse = np.where(np.isfinite(depth) & (depth < 1e9), 1.0 / depth, 0.0).astype(np.float32)
    expected = cv2.resize(inverse, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(given[0], expected, rtol=1e-6)
    np.testing.assert_allclose(given[1], expected[:, ::-1], rtol=1e-6)
    assert given[0, 40, 10] == pytest.approx(0.5) and given[0, 40, 50] == pytest.approx(0.125)
    assert given[0, 5, 5] == 0.0 and given[0, 5, 20] == 0.0
    # What the UNet gets after diffusers' resize to the latents and normalisation to -1..1 per image: near is high.
    normalised = call["normalised"]
    assert normalised.shape[-2:] == (SIZE // 2, SIZE // 2)
    near, far, sky = normalised[0, 0, 25, 5], normalised[0, 0, 25, 25], normalised[0, 0, 2, 2]
    assert near > 0.5 > far > sky and sky < -0.5
    assert call["kwargs"]["strength"] == 0.8
    assert np.asarray(call["kwargs"]["image"][0]).tolist() == np.asarray(Image.open(init)).tolist()
    got = FrameStore(str(tmp_path / "out")).read(10)
    assert got.std() > 0  # a real picture, not NaN turned black


def test_a_frame_without_depth_says_to_turn_on_scene_depth(tmp_path, renderer, depth_model):
    init = _init(tmp_path / "init.png")
    depth = str(tmp_path / "z.npy")
    image_ops.write_depth(depth, _blender_depth())
    plan = _plan(tmp_path / "out", "VIDEO", [_record(10, init={"path": init}, depth=depth),
                                             _record(11, init={"path": init})], depth_model)
    with pytest.raises(ValueError, match=f"frame 11: the model is a depth-to-image model and the frame has no depth: "
                                         f"{DEPTH_HINT}"):
        render(renderer, plan)
    assert "Scene Depth" in DEPTH_HINT and "depth pass" in DEPTH_HINT


def test_feedback_first_frame_is_depth_to_image_of_grey(tmp_path, renderer, depth_model, depth_calls):
    records = []
    for i in range(2):
        depth = np.full((SIZE, SIZE), 5.0 + i, np.float32)
        depth[:, : SIZE // 3] = 1.5  # something near on the left
        path = str(tmp_path / f"z{i}.npy")
        image_ops.write_depth(path, depth)
        records.append(_record(i + 1, depth=path, motion={}, image={}))
    render(renderer, _plan(tmp_path / "out", "FEEDBACK", records, depth_model))
    first, second = depth_calls
    grey = np.asarray(first["kwargs"]["image"][0])
    assert grey.min() == grey.max() == 128 and first["kwargs"]["strength"] == 1.0
    assert first["depth_map"][0, 10, 5] == pytest.approx(1 / 1.5)
    assert second["depth_map"][0, 10, 60] == pytest.approx(1 / 6.0)  # each frame its own depth
    frame1 = FrameStore(str(tmp_path / "out")).read(1)
    assert np.asarray(second["kwargs"]["image"][0]).tolist() == frame1.tolist()  # then the previous frame
    assert second["kwargs"]["strength"] == 0.8


def test_flat_depth_is_the_middle_of_the_range_not_nan(tmp_path, renderer, depth_model, depth_calls):
    flat = str(tmp_path / "flat.npy")
    image_ops.write_depth(flat, np.full((SIZE, SIZE), np.inf, np.float32))  # nothing but sky
    init = _init(tmp_path / "init.png")
    render(renderer, _plan(tmp_path / "out", "VIDEO", [_record(10, init={"path": init}, depth=flat)], depth_model))
    (call,) = depth_calls
    assert torch.isnan(call["normalised"]).all()  # what diffusers makes of a flat map...
    pipe = renderer.pipeline(depth_model, "auto", lambda e: None)
    image, depth_map = [Image.open(init)], torch.zeros(1, SIZE, SIZE)
    fixed = pipe.prepare_depth_map(image, depth_map, 1, False, torch.float32, torch.device("cpu"))
    assert torch.equal(fixed, torch.zeros_like(fixed))  # ...and what reaches the UNet
    assert FrameStore(str(tmp_path / "out")).read(10).std() > 0


def test_depth_to_image_with_a_mask_or_controlnet_is_refused(tmp_path, renderer, depth_model):
    init = _init(tmp_path / "init.png")
    depth = str(tmp_path / "z.npy")
    image_ops.write_depth(depth, _blender_depth())
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    record = _record(10, init={"path": init}, depth=depth, mask={"path": str(tmp_path / "mask.png")})
    with pytest.raises(ValueError, match="frame 10: .*depth-to-image and inpainting masks are not supported together"):
        render(renderer, _plan(tmp_path / "a", "VIDEO", [record], depth_model))
    units = [{"model": str(tmp_path / "no-controlnet-needed"), "preprocessor": "NONE"}]
    record = _record(10, init={"path": init}, depth=depth, control=[{"scale": 1.0}])
    with pytest.raises(ModelError, match="depth-to-image and ControlNet units are not supported together"):
        render(renderer, _plan(tmp_path / "b", "VIDEO", [record], depth_model, controlnets=units))
    with pytest.raises(ModelError, match="is a depth-to-image model: it works in feedback and video modes, not "
                                         "interpolate mode"):
        plan = _plan(tmp_path / "c", "INTERPOLATE", [_record(1)], depth_model)
        render(renderer, plan)


def test_video_frame_hash_follows_its_depth_file(tmp_path):
    depth = str(tmp_path / "z.npy")
    image_ops.write_depth(depth, _blender_depth())
    plan = _plan(tmp_path / "out", "VIDEO", [_record(10, init={"path": "in.png"}, depth=depth)], "m")
    before = plan_mod.frame_hash(plan["settings"], plan["frames"][0])
    image_ops.write_depth(depth, np.full((SIZE, SIZE), 3.0, np.float32))  # re-rendered (here: another size)
    assert plan_mod.frame_hash(plan["settings"], plan["frames"][0]) != before
