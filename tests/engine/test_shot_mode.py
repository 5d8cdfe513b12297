"""Shot mode on tiny random-weight Wan (T2V, I2V, VACE) and LTX (condition) models built from small configs and
loaded back through from_pretrained: frames, pins reaching the pipeline at their frame index (checked on the
tensors the pipeline's own stages receive), shot hashes, two shots, window joins, chained shots, cancel, resume
after a killed worker, and the errors."""

from __future__ import annotations

import inspect
import os
import signal
import threading

import numpy as np
import pytest
from PIL import Image

from engine import plan as plan_mod
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.modes import get as get_mode
from engine.modes import shot
from engine.renderer import Renderer
from engine.tiny_video_models import (make_tiny_ltx_condition, make_tiny_wan_i2v, make_tiny_wan_t2v,
                                      make_tiny_wan_vace)
from engine.video_models import family as family_of

from common import write_plan

MAKERS = {"wan-t2v": make_tiny_wan_t2v, "wan-i2v": make_tiny_wan_i2v, "wan-vace": make_tiny_wan_vace,
          "ltx-condition": make_tiny_ltx_condition}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("video-models")
    return {kind: make(str(folder / kind)) for kind, make in MAKERS.items()}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, str]:
    """Flat pictures to pin: each one colour, so the tensors the pipeline gets can be told apart."""
    folder = tmp_path_factory.mktemp("pins")
    out = {}
    for name, colour in (("red", (230, 20, 20)), ("green", (20, 230, 20)), ("blue", (20, 20, 230))):
        path = str(folder / f"{name}.png")
        Image.new("RGB", (64, 64), colour).save(path)
        out[name] = path
    return out


def shot_plan(out, model: str, frames: int = 6, steps: int = 2, size=(32, 32), pins=(), restarts=(), prompts=None,
              **settings) -> dict:
    records = []
    for i in range(frames):
        items = prompts(i) if prompts else [{"text": "a red circle" if i < frames // 2 else "a blue square",
                                             "negative": "blurry", "weight": 1.0}]
        record = {"frame": i + 1, "seed": 100 + i, "steps": steps, "guidance": 5.0, "prompts": items}
        if i + 1 in restarts:
            record["restart"] = True
        records.append(record)
    base = {"mode": "SHOT", "model": model, "width": size[0], "height": size[1], "output_dir": str(out),
            "pins": [{"frame": f, "path": p} for f, p in pins]}
    return plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
                              "settings": {**base, **settings}, "frames": records})


def render(renderer, plan, frame_range=None, cancel=None):
    events = []
    return renderer.render(plan, frame_range, events.append, cancel), events


def rendered(events) -> list[int]:
    return [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]]


class Calls:
    """Every window the family renders: its Window and its output (wraps the family's call on the instance)."""

    def __init__(self, pipe):
        self.family = family_of(pipe)
        self.windows, self.outputs = [], []
        original = self.family.call

        def call(p, window, on_step):
            out = original(p, window, on_step)
            self.windows.append(window)
            self.outputs.append(out)
            return out

        self.family.call = call

    def close(self):
        del self.family.call


class Stage:
    """Records what one of the pipeline's own stages (prepare_latents, prepare_masks...) receives."""

    def __init__(self, pipe, name: str):
        self.pipe, self.name, self.calls = pipe, name, []
        original = getattr(pipe, name)
        signature = inspect.signature(original)

        def stage(*args, **kwargs):
            self.calls.append(signature.bind(*args, **kwargs).arguments)  # by parameter name
            return original(*args, **kwargs)

        setattr(pipe, name, stage)

    def close(self):
        delattr(self.pipe, self.name)


def stage_calls(renderer, plan: dict, name: str) -> list[dict]:
    """Render `plan` and return what the pipeline's stage `name` received in each call (by parameter name)."""
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    stage = Stage(pipe, name)
    try:
        render(renderer, plan)
    finally:
        stage.close()
    return stage.calls


def colour_of(tensor) -> np.ndarray:
    """The mean RGB (0-255) of a preprocessed picture tensor in -1..1 (C, H, W)."""
    values = tensor.float().reshape(3, -1).mean(1).numpy()
    return (values + 1.0) * 127.5


@pytest.mark.parametrize("kind", ["wan-t2v", "wan-i2v", "wan-vace", "ltx-condition"])
def test_frames_come_out_in_order_with_the_plan_size(tmp_path, models, renderer, pictures, kind):
    pins = [(1, pictures["red"]), (7, pictures["blue"])] if kind == "wan-i2v" else []
    plan = shot_plan(tmp_path, models[kind], frames=7, pins=pins)
    summary, events = render(renderer, plan)
    assert summary["rendered"] == 7 and rendered(events) == list(range(1, 8))
    store = FrameStore(str(tmp_path))
    frames = [store.read(f) for f in range(1, 8)]
    assert all(f.shape == (32, 32, 3) for f in frames)
    assert len({f.tobytes() for f in frames}) > 1  # a video, not one picture repeated
    assert summary["flicker"]["frames"] == 7  # the flicker figure covers shot frames as any others


def test_vace_pins_reach_the_pipeline_at_their_frame_index(tmp_path, models, renderer, pictures):
    plan = shot_plan(tmp_path, models["wan-vace"], frames=9, pins=[(1, pictures["red"]), (6, pictures["blue"])])
    call, = stage_calls(renderer, plan, "prepare_masks")
    mask = call["mask"][0, 0].float()  # (F, H, W): 1 makes, 0 keeps
    kept = [i for i in range(mask.shape[0]) if float(mask[i].max()) < 0.5]
    assert kept == [0, 5]  # frames 1 and 6 of a shot starting at 1
    call, = stage_calls(renderer, shot_plan(tmp_path / "b", models["wan-vace"], frames=9,
                                            pins=[(1, pictures["red"]), (6, pictures["blue"])]),
                        "prepare_video_latents")
    frames = call["video"][0]  # (C, F, H, W) in -1..1
    assert np.allclose(colour_of(frames[:, 0]), (230, 20, 20), atol=3)
    assert np.allclose(colour_of(frames[:, 5]), (20, 20, 230), atol=3)
    assert np.allclose(colour_of(frames[:, 2]), (127, 127, 127), atol=3)  # VACE's "make this" gray


def test_first_and_last_frame_pins_reach_wan_i2v(tmp_path, models, renderer, pictures):
    # 8 frames: the model renders 9, so the 8 are spread over them and the last pin stays the last frame.
    plan = shot_plan(tmp_path, models["wan-i2v"], frames=8, pins=[(1, pictures["red"]), (8, pictures["green"])])
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    latents = Stage(pipe, "prepare_latents")
    calls = Calls(pipe)
    try:
        render(renderer, plan)
    finally:
        latents.close()
        calls.close()
    call, = latents.calls
    image, last = call["image"], call.get("last_image")
    assert np.allclose(colour_of(image[0, :, 0] if image.ndim == 5 else image[0]), (230, 20, 20), atol=3)
    assert last is not None
    assert np.allclose(colour_of(last[0, :, 0] if last.ndim == 5 else last[0]), (20, 230, 20), atol=3)
    assert calls.windows[0].count == 9
    assert shot.positions(8, 9, True)[-1] == 8 and shot.positions(8, 9, True)[0] == 0


def test_ltx_conditions_carry_pins_at_their_frame_index(tmp_path, models, renderer, pictures):
    plan = shot_plan(tmp_path, models["ltx-condition"], frames=9, pins=[(1, pictures["red"]), (7, pictures["blue"])])
    call, = stage_calls(renderer, plan, "prepare_latents")
    conditions = call["conditions"]
    assert call["condition_frame_index"] == [0, 6]
    assert call["condition_strength"] == [1.0, 1.0]
    assert np.allclose(colour_of(conditions[0][0, :, 0]), (230, 20, 20), atol=3)
    assert np.allclose(colour_of(conditions[1][0, :, 0]), (20, 20, 230), atol=3)


def test_a_moved_pin_changes_only_its_shots_hash(tmp_path, pictures):
    def hashes(pins):
        plan = shot_plan(tmp_path, "x", frames=12, restarts=(7,), pins=pins)
        return plan_mod.frame_hashes(plan["settings"], plan["frames"])

    before = hashes([(1, pictures["red"]), (8, pictures["blue"])])
    moved = hashes([(1, pictures["red"]), (10, pictures["blue"])])
    assert all(before[f] == moved[f] for f in range(1, 7))
    assert all(before[f] != moved[f] for f in range(7, 13))
    across = hashes([(3, pictures["red"]), (8, pictures["blue"])])  # within shot 1
    assert all(before[f] != across[f] for f in range(1, 7)) and all(before[f] == across[f] for f in range(7, 13))
    chained = shot_plan(tmp_path, "x", frames=12, restarts=(7,), pins=[(10, pictures["blue"])], chain_shots=True)
    chained_moved = shot_plan(tmp_path, "x", frames=12, restarts=(7,), pins=[(10, pictures["blue"])],
                              chain_shots=True, shot_overlap=2)
    a = plan_mod.frame_hashes(chained["settings"], chained["frames"])
    b = plan_mod.frame_hashes(chained_moved["settings"], chained_moved["frames"])
    assert a != b


def test_two_shots_render_separately_and_resume_skips_a_current_shot(tmp_path, models, renderer, pictures):
    plan = shot_plan(tmp_path, models["wan-vace"], frames=10, restarts=(6,),
                     pins=[(1, pictures["red"]), (8, pictures["blue"])])
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    calls = Calls(pipe)
    try:
        summary, events = render(renderer, plan)
        assert summary["rendered"] == 10 and rendered(events) == list(range(1, 11))
        assert [w.count for w in calls.windows] == [5, 5]
        assert [[p.index for p in w.pins] for w in calls.windows] == [[0], [2]]
        again = shot_plan(tmp_path, models["wan-vace"], frames=10, restarts=(6,),
                          pins=[(1, pictures["red"]), (9, pictures["blue"])])
        summary, events = render(renderer, again)
        assert rendered(events) == [6, 7, 8, 9, 10] and summary["skipped"] == 5
        assert [[p.index for p in w.pins] for w in calls.windows[2:]] == [[3]]
    finally:
        calls.close()


def test_a_long_shot_joins_its_windows_through_the_shared_frames(tmp_path, models, renderer):
    plan = shot_plan(tmp_path, models["wan-vace"], frames=13, shot_window=9, shot_overlap=4)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    calls = Calls(pipe)
    try:
        summary, events = render(renderer, plan)
    finally:
        calls.close()
    assert summary["rendered"] == 13 and rendered(events) == list(range(1, 14))
    first, second = calls.windows
    assert first.count == second.count == 9
    # The last window ends with the shot: frames 5-13. It holds to the 5 frames it shares with the first (5-9), at
    # its indices 0-4.
    assert [(p.index, p.carried) for p in second.pins] == [(i, True) for i in range(5)]
    assert all(np.array_equal(p.image, calls.outputs[0][4 + p.index]) for p in second.pins)
    store = FrameStore(str(tmp_path))
    for n, frame in enumerate((5, 6, 7, 8, 9)):  # shared frames fade from the first window's to the second's
        t = (n + 1) / 6
        expected = np.round(calls.outputs[0][frame - 1] * (1 - t) + calls.outputs[1][frame - 5] * t)
        assert np.abs(store.read(frame).astype(float) - expected).max() <= 1
    assert np.array_equal(store.read(13), calls.outputs[1][8])
    assert np.array_equal(store.read(2), calls.outputs[0][1])


def test_chained_shots_start_from_the_last_frames_before_them(tmp_path, models, renderer):
    plan = shot_plan(tmp_path, models["ltx-condition"], frames=14, restarts=(6,), chain_shots=True, shot_overlap=2)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    calls = Calls(pipe)
    try:
        summary, _ = render(renderer, plan)
        assert summary["rendered"] == 14
        second = calls.windows[1]
        # Shot 2 (frames 6-14, 9 frames) is rendered after the 2 last frames of shot 1: 11 frames -> 17 rendered.
        assert second.count == 17
        assert [(p.index, p.carried) for p in second.pins] == [(0, True), (1, True)]
        store = FrameStore(str(tmp_path))
        assert all(np.array_equal(p.image, store.read(4 + p.index)) for p in second.pins)
        # A frame of shot 2 lost: the shot is made again (only the lost frame is written, the others are current),
        # from shot 1's frames read back from the folder.
        os.remove(store.path(10))
        summary, events = render(renderer, plan, (6, 14))
        assert rendered(events) == [10] and len(calls.windows) == 3
        assert all(np.array_equal(p.image, store.read(4 + p.index)) for p in calls.windows[2].pins)
    finally:
        calls.close()


def test_units_are_shots(models, tmp_path):
    plan = shot_plan(tmp_path, "x", frames=12, restarts=(5, 9))
    mode = get_mode("SHOT")
    assert mode.units(plan, plan["frames"], plan["frames"]) == [([1, 2, 3, 4], None), ([5, 6, 7, 8], None),
                                                               ([9, 10, 11, 12], None)]
    chained = shot_plan(tmp_path, "x", frames=12, restarts=(5, 9), chain_shots=True)
    todo = [r for r in chained["frames"] if r["frame"] >= 5]
    assert mode.units(chained, todo, todo) == [(list(range(1, 13)), (5, 12))]


def test_cancel_stops_within_a_denoising_step(tmp_path, models, renderer):
    plan = shot_plan(tmp_path, models["wan-t2v"], frames=5, steps=4)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    cancel = threading.Event()
    forwards = []

    def during_step(*_):
        forwards.append(1)
        cancel.set()  # the user cancels while the first step runs

    stop = pipe.transformer.register_forward_pre_hook(during_step)
    try:
        summary, events = render(renderer, plan, cancel=cancel)
    finally:
        stop.remove()
    assert summary["cancelled"] and summary["rendered"] == 0
    assert len(forwards) == 2  # the first step's two passes (text and unconditional), nothing after
    summary, _ = render(renderer, plan)
    assert summary["rendered"] == 5


def test_resume_after_a_killed_worker_renders_only_the_unfinished_shot(tmp_path, models):
    from engine_link.worker_client import WorkerClient

    from common import ROOT
    from test_worker import wait_for

    out = tmp_path / "out"
    plan = shot_plan(out, models["wan-t2v"], frames=10, steps=30, restarts=(6,))
    path = write_plan(tmp_path / "plan.json", plan)
    client = WorkerClient(ROOT)
    client.start()
    try:
        client.render(path)
        landed = []
        while len(landed) < 5:  # shot 1 is on disk; shot 2 is being denoised
            landed += [e["frame"] for e in wait_for(client, {"frame"}, timeout=300) if e["event"] == "frame"]
        os.kill(client.process.pid, signal.SIGKILL)
        wait_for(client, {"exit"})
    finally:
        client.stop()
    assert landed == [1, 2, 3, 4, 5]
    summary, events = render(Renderer(), plan)
    assert rendered(events) == [6, 7, 8, 9, 10] and summary["skipped"] == 5


def test_errors_say_what_and_where(tmp_path, models, renderer, pictures, tiny_model_dir):
    with pytest.raises(ModelError, match="not a video model shot mode runs"):
        renderer.render(shot_plan(tmp_path, tiny_model_dir), None, lambda e: None)
    video_in_image_mode = {**shot_plan(tmp_path, models["wan-t2v"]), }
    video_in_image_mode["settings"] = {**video_in_image_mode["settings"], "mode": "INTERPOLATE", "pins": []}
    with pytest.raises(ModelError, match="is a video model .* set the Mode to Shot"):
        renderer.render(plan_mod.validate(video_in_image_mode), None, lambda e: None)
    with pytest.raises(plan_mod.PlanError, match=r"pinned at frame 9 .* outside every shot \(the shots are frames "
                                                 r"1-6\)"):
        shot_plan(tmp_path, models["wan-vace"], pins=[(9, pictures["red"])])
    with pytest.raises(ModelError, match="multiples of 16; width 40 is not: the nearest size it takes is 48x32"):
        renderer.render(shot_plan(tmp_path, models["wan-vace"], size=(40, 32)), None, lambda e: None)
    with pytest.raises(ModelError, match="multiples of 32; .* nearest size it takes is 32x64"):
        renderer.render(shot_plan(tmp_path, models["ltx-condition"], size=(32, 48)), None, lambda e: None)
    with pytest.raises(ModelError, match="first and last frames only \\(1 and 6\\), not at frame 3"):
        renderer.render(shot_plan(tmp_path, models["wan-i2v"], pins=[(1, pictures["red"]), (3, pictures["blue"])]),
                        None, lambda e: None)
    with pytest.raises(ModelError, match="takes no pinned pictures"):
        renderer.render(shot_plan(tmp_path, models["wan-t2v"], pins=[(2, pictures["red"])]), None, lambda e: None)
    with pytest.raises(ModelError, match="needs a picture at the shot's first frame"):
        renderer.render(shot_plan(tmp_path, models["wan-i2v"]), None, lambda e: None)
    with pytest.raises(ModelError, match=r"first-last-frame model \(FLF2V\): it needs a picture at each shot's"):
        renderer.render(shot_plan(tmp_path, models["wan-i2v"], pins=[(1, pictures["red"])]), None, lambda e: None)
    with pytest.raises(ModelError, match="with Chain Shots the shot 4-6 starts from the last frame of the shot before"):
        renderer.render(shot_plan(tmp_path, models["wan-i2v"], restarts=(4,), chain_shots=True,
                                  pins=[(1, pictures["red"]), (3, pictures["blue"]), (4, pictures["green"]),
                                        (6, pictures["red"])]), None, lambda e: None)
    with pytest.raises(ModelError, match="a depth control video needs a Wan VACE model"):
        plan = shot_plan(tmp_path, models["ltx-condition"])
        renderer.render(_with_controls(plan, "DEPTH", {f: pictures["red"] for f in range(1, 7)}), None,
                        lambda e: None)
    assert not os.listdir(tmp_path) or not FrameStore(str(tmp_path)).finished_frames()


def _with_controls(plan: dict, kind: str, paths: dict[int, str], **settings) -> dict:
    frames = [{**r, "control_frame": {"path": paths[r["frame"]]}} for r in plan["frames"]]
    return plan_mod.validate({**plan, "settings": {**plan["settings"], "video_control": kind, **settings},
                              "frames": frames})


def test_depth_control_video_reaches_vace_around_the_pins(tmp_path, models, renderer, pictures):
    from engine.image_ops import depth_to_control

    depths = {}
    for f in range(1, 10):  # a plane stepping away frame by frame, nearer at the left
        depth = np.tile(np.linspace(1.0, 2.0 + f, 32, dtype=np.float32), (32, 1))
        depths[f] = str(tmp_path / f"depth_{f}.npy")
        np.save(depths[f], depth)
    plan = _with_controls(shot_plan(tmp_path / "out", models["wan-vace"], frames=9, pins=[(4, pictures["red"])]),
                          "DEPTH", depths, control_scale=0.5)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    video = Stage(pipe, "prepare_video_latents")
    latents = Stage(pipe, "prepare_latents")
    try:
        summary, _ = render(renderer, plan)
    finally:
        video.close()
        latents.close()
    assert summary["rendered"] == 9
    frames = video.calls[0]["video"][0]  # (C, F, H, W) in -1..1
    for f in (1, 2, 9):
        expected = depth_to_control(np.load(depths[f]), (32, 32)).astype(np.float32)
        got = (frames[:, f - 1].permute(1, 2, 0).float().numpy() + 1.0) * 127.5
        assert np.abs(got - expected).max() < 2.5, f
    assert np.allclose(colour_of(frames[:, 3]), (230, 20, 20), atol=3)  # the pin, not its depth picture


def test_flow_and_index_passes_become_control_pictures(tmp_path):
    import OpenEXR

    from engine.video_inputs import control_picture

    vector = str(tmp_path / "vector.exr")
    still = np.zeros((16, 16), np.float32)
    moving = np.full((16, 16), -3.0, np.float32)  # Z = now - next: moving right 3 px a frame
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"R": still, "G": still, "B": moving, "A": still}).write(vector)
    flow = control_picture({"path": vector}, "FLOW", (16, 16))
    assert flow.shape == (16, 16, 3) and flow.max() == 255
    assert np.all(flow[..., 0] == 255) and np.all(flow[..., 1] == 0)  # rightwards: hue 0, red
    index = np.zeros((16, 16), np.float32)
    index[:, 8:] = 2.0
    path = str(tmp_path / "index.npy")
    np.save(path, index)
    layout = control_picture({"path": path}, "INDEX", (16, 16))
    assert np.all(layout[:, :8] == 0) and len({tuple(p) for p in layout[:, 8:].reshape(-1, 3)}) == 1
    assert layout[:, 8:].max() >= 40


def test_the_scene_render_is_an_ltx_video_condition_at_the_frames_strength(tmp_path, models, renderer, pictures):
    renders = {}
    for f in range(1, 10):
        renders[f] = str(tmp_path / f"render_{f}.png")
        Image.new("RGB", (32, 32), (20 * f, 100, 200)).save(renders[f])
    plan = shot_plan(tmp_path / "out", models["ltx-condition"], frames=9, pins=[(5, pictures["red"])])
    plan["frames"] = [{**r, "strength": 0.2 + 0.05 * i} for i, r in enumerate(plan["frames"])]
    plan = _with_controls(plan, "RENDER", renders)
    call, = stage_calls(renderer, plan, "prepare_latents")
    assert call["condition_frame_index"] == [4, 0]
    assert call["condition_strength"][0] == 1.0 and call["condition_strength"][1] == pytest.approx(0.4)
    video = call["conditions"][1][0]  # (C, F, H, W): the render's 9 frames
    assert video.shape[1] == 9
    assert np.allclose(colour_of(video[:, 0]), (20, 100, 200), atol=3)
    assert np.allclose(colour_of(video[:, 8]), (180, 100, 200), atol=3)


def test_a_window_gets_its_frames_keyed_prompts_averaged(tmp_path, models, renderer):
    def prompts(i):  # frames 1-8: "a red circle" fading out as "a blue square" fades in
        return [{"text": "a red circle", "weight": 1.0 - i / 7}, {"text": "a blue square", "weight": i / 7 + 1e-9}]

    plan = shot_plan(tmp_path, models["wan-t2v"], frames=8, prompts=prompts)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    calls = Calls(pipe)
    try:
        render(renderer, plan)
    finally:
        calls.close()
    family = family_of(pipe)
    import torch
    with torch.no_grad():
        red = family.encode(pipe, ["a red circle"], "cpu")["embeds"]
        blue = family.encode(pipe, ["a blue square"], "cpu")["embeds"]
    embeds = calls.windows[0].embeds["prompt_embeds"]
    assert not embeds.requires_grad
    assert not np.allclose(red.numpy(), blue.numpy())
    assert np.allclose(embeds.numpy(), (0.5 * red + 0.5 * blue).numpy(), atol=1e-5)


def test_the_embedded_tiny_video_models_render_by_name(tmp_path, monkeypatch, renderer):
    monkeypatch.setenv("KEYFRAME_DIFFUSION_CACHE", str(tmp_path / "cache"))
    summary, events = render(renderer, shot_plan(tmp_path / "out", "embedded:tiny-wan-vace", frames=5))
    assert rendered(events) == [1, 2, 3, 4, 5]
    assert os.path.isfile(tmp_path / "cache" / "models" / "tiny-wan-vace" / "model_index.json")
    with pytest.raises(ModelError, match=r"unknown tiny video model 'nope' \(known: wan-t2v"):
        renderer.render(shot_plan(tmp_path / "out2", "embedded:tiny-nope"), None, lambda e: None)


def test_memory_mode_fits_the_limit_and_a_mode_that_does_not_fit_says_which_does(tmp_path, models):
    """On the CPU (FULL and FP8 Storage there): a Memory Limit between the two estimates makes AUTO store the
    transformer in fp8, and FULL an error naming FP8 Storage; lifting the limit loads the model again for FULL."""
    import torch

    from engine import video_memory
    from engine.video_setup import window_frames

    renderer = Renderer()
    plan = shot_plan(tmp_path / "a", models["wan-vace"], frames=5)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    assert window_frames(pipe, family_of(pipe), plan["settings"]) == 81  # no frame range: a full window
    assert window_frames(pipe, family_of(pipe), {**plan["settings"], "frame_start": 1, "frame_end": 24}) == 25
    parts = video_memory.estimate_parts(pipe, 81, 32, 32, 4)
    full, fp8 = video_memory._peak(parts, "FULL"), video_memory._peak(parts, "FP8")
    assert fp8 < full
    limit = (full + fp8) / 2 / 2**30
    with pytest.raises(ModelError, match=r"Memory mode Full needs about .* GB for 81 frames at 32x32, over the .* GB "
                                         r"limit \(the Memory Limit setting\)\. FP8 Storage fits"):
        renderer.render(shot_plan(tmp_path / "b", models["wan-vace"], frames=5, memory_mode="FULL",
                                  memory_limit_gb=limit), None, lambda e: None)
    summary, _ = render(renderer, shot_plan(tmp_path / "c", models["wan-vace"], frames=5, memory_limit_gb=limit))
    pipe, _ = renderer.prepare(plan["settings"] | {"memory_limit_gb": limit}, lambda e: None)
    assert summary["rendered"] == 5 and video_memory.applied(pipe) == "FP8"
    assert any(p.dtype == torch.float8_e4m3fn for p in pipe.transformer.parameters())
    summary, _ = render(renderer, shot_plan(tmp_path / "d", models["wan-vace"], frames=5))
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    assert summary["rendered"] == 5 and video_memory.applied(pipe) == "FULL"
    assert not any(p.dtype == torch.float8_e4m3fn for p in pipe.transformer.parameters())
