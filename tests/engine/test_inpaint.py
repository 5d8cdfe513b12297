"""Inpainting with per-frame masks from Blender (painted images, mask strips and movies, object/material index passes)
in video and feedback modes, on an ordinary 4-channel model and a 9-channel inpainting model."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from engine import image_ops, masks, plan as plan_mod  # noqa: F401  image_ops first: OpenCV writes EXR then
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.models.derive import check_model_use, derive, model_kind
from engine.models.load import load_pipeline
from engine.models.options import LoadOptions
from engine.renderer import Renderer

import cv2  # noqa: E402  (after image_ops)

SIZE = 64
BLUR = 4
# Beyond the feathered edge of a right-half mask: the left part is kept, the right part repainted.
KEPT = LEFT = np.s_[:, : SIZE // 2 - BLUR - 1]
REPAINTED = RIGHT = np.s_[:, SIZE // 2 + BLUR + 1:]


def _init() -> np.ndarray:
    """A picture with structure everywhere (no model paints it by chance)."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[..., 0] = 200
    image[..., 2] = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :]
    image[20:40, 8:24] = (20, 220, 40)
    image[44:60, 40:56] = (250, 250, 0)
    return image


def _save(path, array) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def _half_mask(path, side: str = "right") -> str:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    if side == "right":
        mask[:, SIZE // 2:] = 255
    else:
        mask[:, : SIZE // 2] = 255
    return _save(path, mask)


def _record(frame: int, seed: int = 3, strength: float = 1.0, steps: int = 3, **extra) -> dict:
    return {"frame": frame, "seed": seed, "steps": steps, "guidance": 5.0, "strength": strength,
            "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}], **extra}


def _plan(out, mode: str, records: list[dict], model: str = "embedded:tiny", **settings) -> dict:
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": mode, "model": model, "width": SIZE, "height": SIZE, "output_dir": str(out),
                     "mask_blur": BLUR, **settings},
        "frames": records,
    })


def render(renderer, plan) -> list[dict]:
    events = []
    renderer.render(plan, None, events.append, threading.Event())
    return events


def frames_of(folder, frames) -> dict[int, np.ndarray]:
    store = FrameStore(str(folder))
    return {f: store.read(f) for f in frames}


def _mean_diff(a, b) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


@pytest.fixture(scope="module")
def inpaint_model(tmp_path_factory) -> str:
    from engine.tiny_model import make_tiny_model

    return make_tiny_model(str(tmp_path_factory.mktemp("inpaint") / "tiny-inpaint"), kind="sd-inpaint")


@pytest.fixture
def calls(monkeypatch):
    """The keyword arguments of every inpainting pipeline call (the class's own __call__, wrapped)."""
    from diffusers import StableDiffusionInpaintPipeline

    seen = []
    original = StableDiffusionInpaintPipeline.__call__

    @functools.wraps(original)
    def wrapped(self, *args, **kwargs):
        seen.append({"unet_channels": self.unet.config.in_channels, **kwargs})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionInpaintPipeline, "__call__", wrapped)
    return seen


# --- reading masks -------------------------------------------------------------------------------------------------

def test_image_masks_threshold_invert_resize_and_feather(tmp_path):
    grey = np.zeros((2 * SIZE, 2 * SIZE), np.uint8)  # twice the frame size: read at the frame's
    grey[:, SIZE:] = 200  # >= 0.5: repaint
    grey[:, 40:48] = 100  # < 0.5: kept
    path = _save(tmp_path / "m.png", grey)
    sharp = masks.read_mask({"path": path}, (SIZE, SIZE))
    assert sharp.dtype == np.float32 and sharp.shape == (SIZE, SIZE)
    assert set(np.unique(sharp)) == {0.0, 1.0}
    assert sharp[:, SIZE // 2:].min() == 1.0 and sharp[:, : SIZE // 2].max() == 0.0
    inverted = masks.read_mask({"path": path, "invert": True}, (SIZE, SIZE))
    np.testing.assert_array_equal(inverted, 1.0 - sharp)
    soft = masks.read_mask({"path": path}, (SIZE, SIZE), blur=3)
    # Exact beyond the feather radius, a ramp across the edge.
    assert soft[:, : SIZE // 2 - 3].max() == 0.0 and soft[:, SIZE // 2 + 3:].min() == 1.0
    ramp = soft[10, SIZE // 2 - 3: SIZE // 2 + 3]
    assert np.all(np.diff(ramp) > 0) and 0.0 < ramp[0] < 0.5 < ramp[-1] < 1.0


def _index_pass() -> np.ndarray:
    index = np.zeros((SIZE, SIZE), np.float32)
    index[8:24, 8:24] = 1.0  # object 1
    index[30:50, 30:60] = 3.0  # object 3
    return index


def test_index_pass_masks_select_pass_indices(tmp_path):
    index = _index_pass()
    one = str(tmp_path / "one.exr")
    assert cv2.imwrite(one, index)
    rgb = str(tmp_path / "rgb.exr")  # Blender's RGB(A) EXR: the index in R, OpenCV writes BGR
    assert cv2.imwrite(rgb, np.stack([index * 0 + 9, index * 0 + 9, index], axis=2))
    npy = str(tmp_path / "index.npy")
    np.save(npy, index)
    for path in (one, rgb, npy):
        got = masks.read_mask({"path": path, "select": [3]}, (SIZE, SIZE))
        np.testing.assert_array_equal(got, (index == 3).astype(np.float32))
    both = masks.read_mask({"path": one, "select": [1, 3], "invert": True}, (SIZE, SIZE))
    np.testing.assert_array_equal(both, (index == 0).astype(np.float32))
    half = masks.read_mask({"path": one, "select": [3]}, (SIZE // 2, SIZE // 2))  # another size, same outline
    assert half.shape == (SIZE // 2, SIZE // 2) and half[20, 20] == 1.0 and half[8, 8] == 0.0
    with pytest.raises(ValueError, match=r"frame 7: the index pass .*one\.exr has none of the selected pass indices "
                                         r"5, 6 \(it has 0, 1, 3\)"):
        masks.read_mask({"path": one, "select": [5, 6]}, (SIZE, SIZE), frame=7)


def test_movie_masks_read_the_indexed_frame(tmp_path):
    movie = str(tmp_path / "mask.avi")
    writer = cv2.VideoWriter(movie, cv2.VideoWriter_fourcc(*"MJPG"), 24, (SIZE, SIZE))
    for i in range(3):
        frame = np.zeros((SIZE, SIZE, 3), np.uint8)
        frame[:, 16 * i: 16 * i + 16] = 255  # a white band moving right
        writer.write(frame)
    writer.release()
    for i in range(3):
        got = masks.read_mask({"path": movie, "index": i}, (SIZE, SIZE))
        assert got[:, 16 * i + 2: 16 * i + 14].min() == 1.0
        assert got.sum() == pytest.approx(16 * SIZE, rel=0.1)


def test_unreadable_masks_name_the_frame_and_the_file(tmp_path, renderer):
    with pytest.raises(FileNotFoundError, match=r"frame 4: mask file not found: .*nothing\.png"):
        masks.read_mask({"path": str(tmp_path / "nothing.png")}, (SIZE, SIZE), frame=4)
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    with pytest.raises(ValueError, match=r"frame 4: can't read mask file .*junk\.png"):
        masks.read_mask({"path": str(tmp_path / "junk.png")}, (SIZE, SIZE), frame=4)
    init = _save(tmp_path / "init.png", _init())
    plan = _plan(tmp_path / "out", "VIDEO", [_record(10, init={"path": init},
                                                     mask={"path": str(tmp_path / "missing.png")})])
    with pytest.raises(FileNotFoundError, match=r"frame 10: mask file not found: .*missing\.png"):
        render(renderer, plan)


# --- video mode ----------------------------------------------------------------------------------------------------

def test_ordinary_model_keeps_the_init_outside_the_mask(tmp_path, renderer, monkeypatch):
    """The trained shapes model (4 channels, a deterministic tiny autoencoder): diffusers' inpaint pipeline itself
    keeps the init's latents outside the mask, so before the paste-back those pixels are the autoencoder's round trip
    of the init; after it they are the init exactly."""
    from engine.modes.diffuse import encode_latents

    init = _init()
    init_path, mask_path = _save(tmp_path / "init.png", init), _half_mask(tmp_path / "mask.png")
    pipe = renderer.pipeline("embedded:shapes", "auto", lambda e: None)
    with torch.no_grad():
        decoded = pipe.vae.decode(encode_latents(pipe, [init]) / pipe.vae.config.scaling_factor).sample
    round_trip = ((decoded.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()[0].astype(np.uint8)
    vae_error = _mean_diff(round_trip[KEPT], init[KEPT])  # measured: 27.5 levels (mean per channel)
    assert vae_error > 5  # so "within the round trip" below is a real bound, not a free pass

    def video(name, **frame):
        plan = _plan(tmp_path / name, "VIDEO", [_record(10, init={"path": init_path}, **frame)],
                     model="embedded:shapes")
        render(renderer, plan)
        return frames_of(tmp_path / name, [10])[10]

    final = video("final", mask={"path": mask_path})
    np.testing.assert_array_equal(final[KEPT], init[KEPT])
    assert _mean_diff(final[REPAINTED], init[REPAINTED]) > vae_error  # repainted: more than the autoencoder's error
    monkeypatch.setattr(masks, "paste_back", lambda generated, init, mask: generated)
    raw = video("raw", mask={"path": mask_path})
    # Without the paste-back: the round trip of the init (not a new picture) where the mask is black...
    assert _mean_diff(raw[KEPT], round_trip[KEPT]) < 0.1 * vae_error
    np.testing.assert_array_equal(raw[REPAINTED], final[REPAINTED])
    # ...which plain image-to-image at the same strength does not give.
    plain = video("plain")
    assert _mean_diff(plain[KEPT], round_trip[KEPT]) > vae_error


def test_video_batch_with_a_mask_per_frame_and_an_unmasked_frame(tmp_path, renderer, calls):
    init = _init()
    init_path = _save(tmp_path / "init.png", init)
    right, left = _half_mask(tmp_path / "right.png"), _half_mask(tmp_path / "left.png", "left")
    records = [_record(10, init={"path": init_path}, mask={"path": right}),
               _record(11, init={"path": init_path}, mask={"path": left}),
               _record(12, init={"path": init_path}, mask={"path": right, "invert": True}),
               _record(13, init={"path": init_path})]
    events = render(renderer, _plan(tmp_path / "out", "VIDEO", records, batch_size=3))
    batches = {tuple(e["frames"]) for e in events if e["event"] == "progress"}
    assert batches == {(10, 11, 12), (13,)}  # masked frames batched, each with its own mask; the other apart
    assert len(calls) == 1 and len(calls[0]["mask_image"]) == 3
    got = frames_of(tmp_path / "out", range(10, 14))
    # Frame 12's mask is frame 10's inverted: the right half kept, like frame 11's.
    for frame, kept, repainted in ((10, LEFT, RIGHT), (11, RIGHT, LEFT), (12, RIGHT, LEFT)):
        np.testing.assert_array_equal(got[frame][kept], init[kept])
        assert _mean_diff(got[frame][repainted], init[repainted]) > 20, frame
    assert _mean_diff(got[13][LEFT], init[LEFT]) > 20  # no mask: image-to-image everywhere


def test_inpainting_model_in_video_mode(tmp_path, renderer, inpaint_model, calls):
    init = _init()
    init_path, mask_path = _save(tmp_path / "init.png", init), _half_mask(tmp_path / "mask.png")
    records = [_record(10, init={"path": init_path}, mask={"path": mask_path}),
               _record(11, init={"path": init_path}, strength=0.7)]
    render(renderer, _plan(tmp_path / "out", "VIDEO", records, model=inpaint_model))
    got = frames_of(tmp_path / "out", [10, 11])
    np.testing.assert_array_equal(got[10][KEPT], init[KEPT])
    assert _mean_diff(got[10][REPAINTED], init[REPAINTED]) > 20
    assert _mean_diff(got[11][KEPT], init[KEPT]) > 20  # no mask: the whole frame repainted
    assert [c["unet_channels"] for c in calls] == [9, 9]
    masked, whole = (np.asarray(c["mask_image"][0]) for c in calls)
    assert masked[:, : SIZE // 2 - BLUR].max() == 0 and masked[:, SIZE // 2:].min() == 255
    assert whole.min() == 255 and calls[1]["strength"] == 0.7


def test_inpainting_with_a_controlnet_unit(tmp_path, renderer, tmp_path_factory):
    from engine.tiny_model import make_tiny_controlnet

    unit = make_tiny_controlnet(str(tmp_path_factory.mktemp("cn") / "cn"))
    init = _init()
    init_path, mask_path = _save(tmp_path / "init.png", init), _half_mask(tmp_path / "mask.png")
    outputs = {}
    for scale in (0.0, 2.0):
        record = _record(10, init={"path": init_path}, mask={"path": mask_path},
                         control=[{"scale": scale}])
        plan = _plan(tmp_path / str(scale), "VIDEO", [record],
                     controlnets=[{"model": unit, "preprocessor": "CANNY"}])
        render(renderer, plan)
        outputs[scale] = frames_of(tmp_path / str(scale), [10])[10]
    base = renderer.pipeline("embedded:tiny", "auto", lambda e: None)
    assert any(type(p).__name__ == "StableDiffusionControlNetInpaintPipeline"
               for p in base.__dict__.get("_kd_derived", {}).values())
    for image in outputs.values():
        np.testing.assert_array_equal(image[KEPT], init[KEPT])
    assert not np.array_equal(outputs[0.0][REPAINTED], outputs[2.0][REPAINTED])  # the unit acts on the repaint


def test_index_pass_mask_in_a_render(tmp_path, renderer):
    init = _init()
    init_path = _save(tmp_path / "init.png", init)
    index = _index_pass()
    path = str(tmp_path / "index.exr")
    assert cv2.imwrite(path, index)
    plan = _plan(tmp_path / "out", "VIDEO", [_record(10, init={"path": init_path},
                                                     mask={"path": path, "select": [3]})], mask_blur=0)
    render(renderer, plan)
    got = frames_of(tmp_path / "out", [10])[10]
    changed = np.any(got != init, axis=2)
    assert not changed[index != 3].any()  # mask_blur 0: exactly the object's pixels may change
    assert changed[index == 3].mean() > 0.9


def test_frame_hash_follows_the_mask_file_and_settings(tmp_path, renderer):
    init_path = _save(tmp_path / "init.png", _init())
    mask_path = _half_mask(tmp_path / "mask.png")
    records = [_record(10, init={"path": init_path}, mask={"path": mask_path}, steps=2),
               _record(11, init={"path": init_path}, mask={"path": str(tmp_path / "other.png")}, steps=2)]
    _half_mask(tmp_path / "other.png", "left")
    plan = _plan(tmp_path / "out", "VIDEO", records)
    settings, record = plan["settings"], plan["frames"][0]
    before = plan_mod.frame_hash(settings, record)
    assert plan_mod.frame_hash(settings, {**record, "mask": {**record["mask"], "invert": True}}) != before
    assert plan_mod.frame_hash({**settings, "mask_blur": 2}, record) != before
    assert plan_mod.frame_hash(settings, {k: v for k, v in record.items() if k != "mask"}) != before
    render(renderer, plan)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:8] = 255  # new content, new size on disk
    _save(tmp_path / "mask.png", mask)
    assert plan_mod.frame_hash(settings, record) != before
    events = render(renderer, plan)
    assert [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]] == [10]


# --- feedback mode -------------------------------------------------------------------------------------------------

def _feedback(out, count: int, mask: dict | None, model: str = "embedded:tiny", **settings) -> dict:
    records = [_record(i + 1, seed=10 + i, strength=0.7, steps=2, motion={},
                       image={"noise": 0.05, "contrast": 1.05}, **({"mask": mask} if mask else {}))
               for i in range(count)]
    return _plan(out, "FEEDBACK", records, model=model, **settings)


def test_feedback_mask_keeps_the_warped_frame_through_the_chain(tmp_path, renderer):
    init = _init()
    init_path, mask_path = _save(tmp_path / "init.png", init), _half_mask(tmp_path / "mask.png")
    plan = _feedback(tmp_path / "out", 3, {"path": mask_path}, init_image=init_path)
    render(renderer, plan)
    got = frames_of(tmp_path / "out", [1, 2, 3])
    for frame in (1, 2, 3):
        # Kept pixels are the (unmoving) previous frame itself: no contrast or noise piles up in them.
        np.testing.assert_array_equal(got[frame][KEPT], init[KEPT])
        assert _mean_diff(got[frame][REPAINTED], init[REPAINTED]) > 20, frame
    assert not np.array_equal(got[2][REPAINTED], got[3][REPAINTED])


def test_feedback_first_frame_without_init_ignores_its_mask_once(tmp_path, renderer, capsys):
    mask_path = _half_mask(tmp_path / "mask.png")
    plan = _feedback(tmp_path / "out", 4, {"path": mask_path})
    plan["frames"][2]["restart"] = True  # two chains, two first frames without an init
    render(renderer, plan)
    assert capsys.readouterr().err.count("can't be inpainted: its mask is ignored") == 1
    got = frames_of(tmp_path / "out", [1, 2, 3, 4])
    np.testing.assert_array_equal(got[2][KEPT], got[1][KEPT])
    np.testing.assert_array_equal(got[4][KEPT], got[3][KEPT])
    assert _mean_diff(got[2][REPAINTED], got[1][REPAINTED]) > 10


def test_inpainting_model_in_feedback_mode_starts_from_grey_noise(tmp_path, renderer, inpaint_model, calls):
    mask_path = _half_mask(tmp_path / "mask.png")
    plan = _feedback(tmp_path / "out", 2, {"path": mask_path}, model=inpaint_model)
    render(renderer, plan)
    got = frames_of(tmp_path / "out", [1, 2])
    first, second = calls
    # Text-to-image on a 9-channel UNet: a grey picture, all of it repainted, from the frame's seeded noise.
    assert np.asarray(first["image"][0]).min() == np.asarray(first["image"][0]).max() == 128
    assert np.asarray(first["mask_image"][0]).min() == 255 and first["strength"] == 1.0
    from engine.latents import seeded_noise

    assert torch.equal(first["latents"][0].cpu(), seeded_noise(10, (4, SIZE // 2, SIZE // 2)))
    assert "latents" not in second and second["strength"] == 0.7
    np.testing.assert_array_equal(got[2][KEPT], got[1][KEPT])
    assert _mean_diff(got[2][REPAINTED], got[1][REPAINTED]) > 10


# --- models --------------------------------------------------------------------------------------------------------

def test_inpaint_pipelines_derived_from_the_loaded_model(tmp_path, inpaint_model):
    from engine.modes.diffuse import Job, diffuse
    from engine.tiny_model import build_tiny_controlnet, make_tiny_model

    options = LoadOptions(device="cpu")
    sd = load_pipeline("embedded:tiny", options)
    assert type(derive(sd, "inpaint")).__name__ == "StableDiffusionInpaintPipeline"
    assert derive(sd, "inpaint").unet is sd.unet
    unit = build_tiny_controlnet()
    assert type(derive(sd, "inpaint", [unit])).__name__ == "StableDiffusionControlNetInpaintPipeline"
    inpainting = load_pipeline(inpaint_model, options)
    assert model_kind(inpainting) == "sd-inpaint" and derive(inpainting, "inpaint") is inpainting
    with pytest.raises(ModelError, match="an inpainting model has no img2img pipeline"):
        derive(inpainting, "img2img")
    with pytest.raises(ModelError, match="is an inpainting model: it works in feedback and video modes"):
        check_model_use(inpainting, {"mode": "INTERPOLATE", "model": inpaint_model})
    # SDXL: its inpaint pipeline runs a masked batch through diffuse.
    sdxl = load_pipeline(make_tiny_model(str(tmp_path / "sdxl"), kind="sdxl"), options)
    assert type(derive(sdxl, "inpaint")).__name__ == "StableDiffusionXLInpaintPipeline"
    init = _init()
    mask_path = _half_mask(tmp_path / "mask.png")
    settings = _plan(tmp_path / "out", "VIDEO", [_record(1, init={"path": "x"})])["settings"]
    records = [_record(1, strength=0.8, steps=2, mask={"path": mask_path}),
               _record(2, strength=0.8, steps=2, mask={"path": mask_path})]
    images = diffuse(Job(sdxl, settings, lambda *a: None), records, [init, init])
    for image in images:
        np.testing.assert_array_equal(image[KEPT], init[KEPT])
        assert _mean_diff(image[REPAINTED], init[REPAINTED]) > 10
