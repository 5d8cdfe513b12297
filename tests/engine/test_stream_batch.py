"""Stream batching in video mode: frames at different denoising steps share UNet calls, and each frame is what the
plain path makes of it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from engine import plan as plan_mod
from engine.frames import FrameStore
from engine.renderer import Renderer

SIZE = 64


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


@pytest.fixture(scope="module")
def inits(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("inits")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        path = str(folder / f"init{i}.png")
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
        paths.append({"path": path})
    return paths


def keyed_plan(out, inits, stream: bool, scheduler: str = "default", batch_size: int = 4, **settings) -> dict:
    """Strength, guidance and steps keyed so that no two neighbouring frames agree: plain batches are of one."""
    records = [{"frame": 1 + i, "seed": i, "steps": (4, 5)[i % 2], "guidance": 3.0 + 0.5 * i,
                "strength": 0.5 + 0.05 * i, "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}],
                "init": init} for i, init in enumerate(inits)]
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "VIDEO", "model": "embedded:tiny", "width": SIZE, "height": SIZE, "output_dir": str(out),
                     "batch_size": batch_size, "scheduler": scheduler, "stream_batch": stream, **settings},
        "frames": records,
    })


def render(renderer, plan, cancel=None):
    """(frames as int arrays, UNet batch sizes, the distinct timesteps of each UNet call, events)."""
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    calls = []

    def hook(_module, args, kwargs):
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        calls.append((args[0].shape[0], sorted({float(t) for t in timestep.reshape(-1)})))

    handle = pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    events = []
    try:
        renderer.render(plan, None, events.append, cancel)
    finally:
        handle.remove()
    store = FrameStore(plan["settings"]["output_dir"])
    frames = {f: store.read(f).astype(int) for f in store.finished_frames()}
    return frames, [c[0] for c in calls], [c[1] for c in calls], events


@pytest.mark.parametrize("scheduler", ["default", "dpm++", "euler_a", "heun"])
def test_stream_frames_equal_the_plain_frames_in_fewer_unet_calls(renderer, inits, tmp_path, scheduler):
    plain, plain_batches, _, _ = render(renderer, keyed_plan(tmp_path / "plain", inits, False, scheduler))
    stream, stream_batches, timesteps, events = render(renderer, keyed_plan(tmp_path / "stream", inits, True,
                                                                            scheduler))
    assert sorted(stream) == sorted(plain) == list(range(1, 9))
    # Each frame is its own img2img (its seed's encoder sample and noise, its scheduler): equal but for float noise
    # of batching.
    assert max(int(np.abs(stream[f] - plain[f]).max()) for f in plain) <= 2
    # The same denoising work in full batches: every frame keyed differently leaves the plain path batches of one
    # (two rows with CFG); the stream keeps 4 frames (8 rows) in each call until the frames run out.
    assert set(plain_batches) == {2} and sum(stream_batches) == sum(plain_batches)
    assert len(stream_batches) < len(plain_batches) / 2 and stream_batches[0] == 8
    # Frames at different denoising steps share a call.
    assert any(len(t) > 1 for t in timesteps)
    # Frames arrive in frame order though later ones (fewer steps) can finish first.
    assert [e["frame"] for e in events if e["event"] == "frame"] == list(range(1, 9))


def test_a_frame_that_finishes_early_leaves_the_pool_and_the_next_one_joins(renderer, inits, tmp_path):
    plan = keyed_plan(tmp_path / "s", inits[:3], True, batch_size=2)
    plan["frames"][0]["steps"], plan["frames"][0]["strength"] = 10, 1.0  # 10 steps
    plan["frames"][1]["steps"], plan["frames"][1]["strength"] = 2, 1.0  # 2 steps: frame 3 takes its place
    plan["frames"][2]["steps"], plan["frames"][2]["strength"] = 2, 1.0
    _, batches, _, events = render(renderer, plan)
    assert batches == [4] * 4 + [2] * 6  # frames 1+2, 1+3, then frame 1 alone (CFG doubles the rows)
    progress = [(e["frames"], e["step"], e["steps"]) for e in events if e["event"] == "progress"]
    assert progress[:4] == [([1], 1, 10), ([2], 1, 2), ([1], 2, 10), ([2], 2, 2)]
    assert [e["frame"] for e in events if e["event"] == "frame"] == [1, 2, 3]


def test_masked_frames_and_frames_without_steps_keep_their_place(renderer, inits, tmp_path):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:48, 16:48] = 255
    mask_path = str(tmp_path / "mask.png")
    Image.fromarray(mask).save(mask_path)
    plans = [keyed_plan(tmp_path / name, inits[:5], stream) for name, stream in (("plain", False), ("stream", True))]
    for plan in plans:
        plan["frames"][2]["mask"] = {"path": mask_path}  # inpainted through the plain path
        plan["frames"][3]["strength"] = 0.1  # less than one step: the frame is its init
    plain, _, _, _ = render(renderer, plans[0])
    stream, _, _, events = render(renderer, plans[1])
    assert [e["frame"] for e in events if e["event"] == "frame"] == [1, 2, 3, 4, 5]
    assert max(int(np.abs(stream[f] - plain[f]).max()) for f in plain) <= 2
    assert np.array_equal(stream[4], np.asarray(Image.open(inits[3]["path"])).astype(int))
    assert np.array_equal(stream[3][:8, :8], np.asarray(Image.open(inits[2]["path"])).astype(int)[:8, :8])


def test_composable_prompts_and_guidance_free_frames_in_one_pool(renderer, inits, tmp_path):
    plans = [keyed_plan(tmp_path / name, inits[:4], stream) for name, stream in (("plain", False), ("stream", True))]
    for plan in plans:
        plan["frames"][1]["prompts"][0]["text"] = "a red circle :0.7 | a blue square :0.3"
        plan["frames"][2]["guidance"] = 1.0  # no unconditional half for this one in diffusers
    plain, _, _, _ = render(renderer, plans[0])
    stream, _, _, _ = render(renderer, plans[1])
    assert max(int(np.abs(stream[f] - plain[f]).max()) for f in plain) <= 2


def test_cancel_stops_the_pool_within_one_step_and_keeps_finished_frames(renderer, inits, tmp_path):
    plan = keyed_plan(tmp_path / "c", inits[:4], True, batch_size=2)
    cancel = threading.Event()
    seen = []

    def emit(event):
        seen.append(event)
        if event["event"] == "frame":
            cancel.set()

    summary = renderer.render(plan, None, emit, cancel)
    assert summary["cancelled"]
    first = next(i for i, e in enumerate(seen) if e["event"] == "frame")
    assert not [e for e in seen[first + 1:] if e["event"] == "progress"]
    assert FrameStore(str(tmp_path / "c")).finished_frames() == [e["frame"] for e in seen if e["event"] == "frame"]


def test_sdxl_frames_stream_with_their_pooled_embeddings_and_size_conditioning(renderer, inits, tmp_path):
    from engine.tiny_model import make_tiny_model

    sdxl = make_tiny_model(str(tmp_path / "sdxl"), kind="sdxl")
    plain, plain_batches, _, _ = render(renderer, keyed_plan(tmp_path / "plain", inits[:4], False, model=sdxl))
    stream, stream_batches, _, _ = render(renderer, keyed_plan(tmp_path / "stream", inits[:4], True, model=sdxl))
    assert set(plain_batches) == {2} and stream_batches[0] == 8
    assert max(int(np.abs(stream[f] - plain[f]).max()) for f in plain) <= 2


def test_models_the_stream_cannot_take_fall_back_to_plain_batches_with_a_warning(renderer, inits, tmp_path, capfd):
    from engine.tiny_model import make_tiny_model

    depth = make_tiny_model(str(tmp_path / "depth"), kind="sd-depth")
    plan = keyed_plan(tmp_path / "x", inits[:2], True, model=depth)
    depth_file = str(tmp_path / "depth.npy")
    np.save(depth_file, np.linspace(1, 5, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE))
    for record in plan["frames"]:
        record["depth"] = depth_file
    frames, batches, _, _ = render(renderer, plan)
    assert sorted(frames) == [1, 2] and set(batches) == {2}
    assert "stream batching is not available for sd-depth models" in capfd.readouterr().err


def test_stream_batch_must_be_true_or_false(inits, tmp_path):
    plan = keyed_plan(tmp_path, inits[:1], True)
    plan["settings"]["stream_batch"] = "yes"
    with pytest.raises(plan_mod.PlanError, match="stream_batch"):
        plan_mod.validate(plan)


def test_cfg_rescale_applies_per_frame_in_the_stream(renderer, inits, tmp_path):
    plain, _, _, _ = render(renderer, keyed_plan(tmp_path / "plain", inits[:2], True))
    plan = keyed_plan(tmp_path / "rescaled", inits[:2], True)
    plan["frames"][1]["guidance_rescale"] = 0.9  # frame 2 only; SD's img2img pipeline has no rescale, this loop does
    rescaled, _, _, _ = render(renderer, plan)
    assert np.array_equal(rescaled[1], plain[1]) and np.abs(rescaled[2] - plain[2]).max() > 2
