"""Clip mode on tiny random-weight video models (AnimateDiff motion adapter on the tiny SD model, a tiny UNet3D
text-to-video model): frames, context windows, prompt travel, FreeNoise, resume per clip, motion LoRAs, errors,
cancel and the command line."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

from engine import plan as plan_mod
from engine.__main__ import main as engine_main
from engine.clip_pipeline import load_motion_adapter
from engine.distributed import units
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.models.options import LoadOptions
from engine.modes import clip
from engine.prompts import PromptEncoder
from engine.renderer import Renderer, plan_work
from engine.tiny_video import make_tiny_motion_adapter, make_tiny_motion_lora, make_tiny_text_to_video_model

from common import write_plan
from test_fast_paths import _tiny_decoder
from test_models import fake_hub  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir) -> dict:
    folder = tmp_path_factory.mktemp("clip-models")
    return {"sd": tiny_model_dir,
            "adapter": make_tiny_motion_adapter(str(folder / "adapter")),
            "t2v": make_tiny_text_to_video_model(str(folder / "t2v")),
            "lora": make_tiny_motion_lora(str(folder / "motion_lora.safetensors"))}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def clip_plan(out, models: dict, kind: str = "animatediff", frames: int = 6, steps: int = 2, size=(32, 32),
              prompts=None, restarts=(), **settings) -> dict:
    """A validated clip plan: frames 1..N, the first half keyed to one prompt, the rest to another (or prompts(i))."""
    records = []
    for i in range(frames):
        items = prompts(i) if prompts else [{"text": "a red circle" if i < frames // 2 else "a blue square",
                                             "negative": "blurry", "weight": 1.0}]
        record = {"frame": i + 1, "seed": 100 + i, "steps": steps, "guidance": 5.0, "prompts": items}
        if i + 1 in restarts:
            record["restart"] = True
        records.append(record)
    base = {"mode": "CLIP", "width": size[0], "height": size[1], "output_dir": str(out),
            "context_length": 4, "context_overlap": 2}
    if kind == "animatediff":
        base.update(model=models["sd"], motion_adapter=models["adapter"])
    else:
        base.update(model=models["t2v"])
    return plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
                              "settings": {**base, **settings}, "frames": records})


def render(renderer, plan, frame_range=None):
    events = []
    return renderer.render(plan, frame_range, events.append), events


def rendered(events) -> list[int]:
    return [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]]


def read_frames(plan) -> dict[int, np.ndarray]:
    store = FrameStore(plan["settings"]["output_dir"])
    return {r["frame"]: store.read(r["frame"]) for r in plan["frames"]}


class UNetCalls:
    """A forward pre-hook on the clip pipeline's UNet recording each call's timestep, sample shape and text
    conditioning."""

    def __init__(self, unet):
        self.calls: list[dict] = []
        self.handle = unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, _module, args, kwargs):
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        self.calls.append({"t": float(timestep), "shape": tuple(args[0].shape),
                           "text": kwargs["encoder_hidden_states"].detach().clone()})

    def close(self):
        self.handle.remove()


def test_context_windows_cover_every_frame():
    windows = clip.context_windows(40, 16, 4)
    assert windows == [list(range(0, 16)), list(range(12, 28)), list(range(24, 40))]
    assert set().union(*map(set, windows)) == set(range(40))
    # Uneven: the last window is aligned to the end, still `length` frames, and neighbours overlap.
    windows = clip.context_windows(23, 8, 2)
    assert [w[0] for w in windows] == [0, 6, 12, 15] and windows[-1][-1] == 22
    assert all(len(w) == 8 and w == list(range(w[0], w[0] + 8)) for w in windows)
    assert all(len(set(a) & set(b)) >= 2 for a, b in zip(windows, windows[1:]))
    assert clip.context_windows(5, 16, 4) == [[0, 1, 2, 3, 4]]  # shorter than the context: one window
    assert clip.context_windows(20, 16, 0) == [list(range(16)), list(range(4, 20))]
    weights = clip.window_weights(7)
    assert (weights > 0).all() and torch.equal(weights, weights.flip(0)) and weights.argmax() == 3
    assert weights[0] < weights[1] < weights[3]


def test_free_noise_windows_reuse_the_first_windows_noise():
    records = [{"frame": i, "seed": 7 + i} for i in range(10)]
    shape = (4, 2, 2)
    plain = clip.initial_noise(records, shape, 4, 2, free_noise=False)
    free = clip.initial_noise(records, shape, 4, 2, free_noise=True)
    assert torch.equal(free, clip.initial_noise(records, shape, 4, 2, free_noise=True))  # deterministic
    assert torch.equal(free[:4], plain[:4])  # the first window: the frames' own seeds
    first = sorted(tuple(n.flatten().tolist()) for n in free[:4])
    for window in clip.context_windows(10, 4, 2):  # every window starts from a shuffle of the same noises
        assert sorted(tuple(free[i].flatten().tolist()) for i in window) == first
    assert not torch.equal(free[4:], plain[4:])
    # A later block is a shuffle, not a copy in order.
    assert any(not torch.equal(free[4 + j], free[j]) for j in range(2))


@pytest.mark.parametrize("kind", ["animatediff", "t2v"])
def test_frames_come_out_in_order_with_the_plan_size(tmp_path, models, renderer, kind):
    plan = clip_plan(tmp_path, models, kind, frames=6, size=(64, 32))
    summary, events = render(renderer, plan)
    assert summary["rendered"] == 6 and not summary["cancelled"]
    assert rendered(events) == [1, 2, 3, 4, 5, 6]
    # One clip: every progress event covers all its frames, once per step.
    progress = [e for e in events if e["event"] == "progress"]
    assert [(e["frames"], e["step"], e["steps"]) for e in progress] == [([1, 2, 3, 4, 5, 6], s, 2) for s in (1, 2)]
    frames = read_frames(plan)
    assert all(f.shape == (32, 64, 3) and f.dtype == np.uint8 for f in frames.values())
    assert len({f.tobytes() for f in frames.values()}) == 6


def test_every_frame_of_a_40_frame_shot_is_denoised_at_every_step(tmp_path, models, renderer):
    """Each frame has its own prompt, so the text conditioning a UNet call receives names the frames it denoised."""
    plan = clip_plan(tmp_path, models, frames=40, prompts=lambda i: [{"text": f"shot {i}", "weight": 1.0}],
                     context_length=16, context_overlap=4)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    encoder = PromptEncoder(pipe)
    table = torch.stack([encoder.frame(r["prompts"]).positive[0] for r in plan["frames"]])  # (40, seq, dim)
    negative = encoder.frame(plan["frames"][0]["prompts"]).negative
    hook = UNetCalls(pipe.unet)
    try:
        summary, _ = render(renderer, plan)
    finally:
        hook.close()
    assert summary["rendered"] == 40
    seen: dict[float, list[set[int]]] = {}
    for call in hook.calls:
        batch, _, count = call["shape"][:3]  # (negative + prompt, C, frames of the window, h, w)
        assert batch == 2 and call["text"].shape[0] == batch * count
        assert torch.allclose(call["text"][:count], negative.expand(count, *negative.shape))
        positives = call["text"][count:]
        distance = (positives[:, None].float() - table[None].float()).abs().flatten(2).amax(-1)  # (count, 40)
        best = distance.argmin(1)
        assert torch.all(distance[torch.arange(count), best] < 1e-5), "a UNet call got conditioning of no frame"
        seen.setdefault(call["t"], []).append(set(best.tolist()))
    assert len(seen) == 2  # two steps
    for windows in seen.values():
        assert [len(w) for w in windows] == [16, 16, 16]
        assert set().union(*windows) == set(range(40))


def _conditioning_and_calls(renderer, plan):
    """Each frame's PromptEncoder conditioning, and the UNet calls of rendering the plan."""
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    encoder = PromptEncoder(pipe)
    conds = [encoder.frame(r["prompts"]) for r in plan["frames"]]
    hook = UNetCalls(pipe.unet)
    try:
        render(renderer, plan)
    finally:
        hook.close()
    return conds, hook


def test_prompt_travel_follows_the_baked_weights(tmp_path, models, renderer):
    def crossfade(i):
        t = i / 3
        return [p for p in ({"text": "a red circle", "negative": "dark", "weight": 1 - t},
                            {"text": "a blue square", "negative": "", "weight": t}) if p["weight"] > 0]

    # AnimateDiff: every frame's own conditioning, exactly PromptEncoder.frame of its prompts.
    plan = clip_plan(tmp_path / "ad", models, frames=4, prompts=crossfade, context_length=4)
    conds, hook = _conditioning_and_calls(renderer, plan)
    first = hook.calls[0]["text"]
    for i, cond in enumerate(conds):
        assert torch.allclose(first[i], cond.negative, atol=1e-6)
        assert torch.allclose(first[4 + i], cond.positive[0], atol=1e-6)
    assert not torch.allclose(first[4], first[7])  # frames keyed to different prompts differ
    assert not torch.allclose(first[5], first[4]) and not torch.allclose(first[5], first[7])  # a blend in between
    # UNet3D: one conditioning per window, the mean of its frames' embeddings.
    plan = clip_plan(tmp_path / "t2v", models, "t2v", frames=4, prompts=crossfade, context_length=2,
                     context_overlap=0)
    conds, hook = _conditioning_and_calls(renderer, plan)
    for call, window in zip(hook.calls[:2], clip.context_windows(4, 2, 0)):
        expected = torch.stack([conds[i].positive[0] for i in window]).mean(0)
        assert call["shape"][2] == 2 and torch.allclose(call["text"][1], expected, atol=1e-6)
    assert not torch.allclose(hook.calls[0]["text"][1], hook.calls[1]["text"][1])


def test_composable_prompts_compose_per_frame(tmp_path, models, renderer):
    plan = clip_plan(tmp_path / "a", models, frames=4,
                     prompts=lambda i: [{"text": "a red circle :1 | a blue square :1" if i >= 2 else "a red circle",
                                         "weight": 1.0}])
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    hook = UNetCalls(pipe.unet)
    try:
        summary, _ = render(renderer, plan)
    finally:
        hook.close()
    assert summary["rendered"] == 4
    # Negative, part 1 and part 2 of every frame in one batch (frames with one part repeat it at weight 0).
    assert hook.calls[0]["shape"][0] == 3
    plain = clip_plan(tmp_path / "b", models, frames=4, prompts=lambda i: [{"text": "a red circle", "weight": 1.0}])
    render(renderer, plain)
    plain, composed = read_frames(plain), read_frames(plan)
    assert not np.array_equal(plain[4], composed[4])


def test_free_noise_changes_long_clips_and_both_are_deterministic(tmp_path, models, renderer):
    outputs = {}
    for free in (True, False):
        for run in (1, 2):
            plan = clip_plan(tmp_path / f"{free}-{run}", models, frames=6, free_noise=free)
            render(renderer, plan)
            outputs[free, run] = read_frames(plan)
    for free in (True, False):
        assert all(np.array_equal(outputs[free, 1][f], outputs[free, 2][f]) for f in range(1, 7))
    assert not np.array_equal(outputs[True, 1][6], outputs[False, 1][6])


def test_resume_skips_current_clips_and_a_change_rerenders_only_its_clip(tmp_path, models, renderer):
    plan = clip_plan(tmp_path, models, kind="t2v", frames=8, restarts={5})
    summary, _ = render(renderer, plan)
    assert summary["rendered"] == 8
    before = read_frames(plan)

    summary, events = render(renderer, plan)
    assert summary["rendered"] == 0 and summary["skipped"] == 8
    assert not [e for e in events if e["event"] in ("progress", "loading")]

    # A lost frame: its clip is denoised whole again, only that frame is written, and it comes out the same.
    os.remove(FrameStore(str(tmp_path)).path(3))
    summary, events = render(renderer, plan)
    assert rendered(events) == [3] and summary["skipped"] == 7
    assert {tuple(e["frames"]) for e in events if e["event"] == "progress"} == {(1, 2, 3, 4)}
    assert np.array_equal(read_frames(plan)[3], before[3])

    # A range inside the second clip re-renders nothing either (the clip is current) ...
    assert render(renderer, plan, frame_range=(6, 6))[0]["rendered"] == 0
    # ... and one changed frame re-renders its whole clip (frames are denoised together), not the other clip.
    plan["frames"][1]["prompts"][0]["text"] = "a green triangle"
    summary, events = render(renderer, plan)
    assert rendered(events) == [1, 2, 3, 4] and summary["skipped"] == 4
    assert {tuple(e["frames"]) for e in events if e["event"] == "progress"} == {(1, 2, 3, 4)}
    after = read_frames(plan)
    assert all(np.array_equal(before[f], after[f]) for f in (5, 6, 7, 8))
    assert not np.array_equal(before[1], after[1])  # frame 1's prompt is the same, its clip changed

    # Distributed rendering: one unit per clip with frames to do.
    plan["frames"][6]["guidance"] = 7.0
    work = plan_work(plan, None, FrameStore(str(tmp_path)))
    assert [u.frames for u in units(plan, work.todo, work.records)] == [[5, 6, 7, 8]]


def test_motion_lora_changes_frames_and_removing_it_restores_them(tmp_path, models, renderer):
    def run(name, loras):
        plan = clip_plan(tmp_path / name, models, frames=4, **({"motion_loras": loras} if loras is not None else {}))
        render(renderer, plan)
        return read_frames(plan)

    original = run("none", None)
    full = run("full", [{"path": models["lora"], "scale": 1.0}])
    zero = run("zero", [{"path": models["lora"], "scale": 0.0}])
    again = run("again", None)
    assert not np.array_equal(original[2], full[2])
    for f in range(1, 5):
        assert np.array_equal(original[f], zero[f]), f"scale 0 changed frame {f}"
        assert np.array_equal(original[f], again[f]), f"frame {f} differs after the LoRA was removed"


def test_image_loras_and_switching_modes_leave_the_base_model_clean(tmp_path, models):
    from common import make_plan
    from test_models import make_lora

    lora = make_lora(str(tmp_path / "lora"), 1)
    renderer = Renderer()

    def frames(plan, with_renderer):
        plan = plan_mod.validate(plan)
        assert with_renderer.render(plan, None, lambda e: None)["rendered"] == len(plan["frames"])
        return read_frames(plan)

    frames(make_plan(str(tmp_path / "i1"), frames=2, model=models["sd"], loras=[{"path": lora, "scale": 1.0}]),
           renderer)
    # The motion UNet is built from the model's own weights, not the LoRA-carrying UNet of the last render.
    clean = frames(clip_plan(tmp_path / "c1", models, frames=4), renderer)
    assert all(np.array_equal(clean[f], v) for f, v in frames(clip_plan(tmp_path / "c2", models, frames=4),
                                                             Renderer()).items())
    with_lora = frames(clip_plan(tmp_path / "c3", models, frames=4, loras=[{"path": lora, "scale": 1.0}]), renderer)
    assert not np.array_equal(clean[1], with_lora[1])  # image LoRAs work in clip mode too
    # Back in another mode, the base model is its own again.
    after = frames(make_plan(str(tmp_path / "i2"), frames=2, model=models["sd"]), renderer)
    fresh = frames(make_plan(str(tmp_path / "i3"), frames=2, model=models["sd"]), Renderer())
    assert all(np.array_equal(after[f], fresh[f]) for f in (1, 2))


def test_animatediff_default_scheduler_is_the_recommended_ddim(tmp_path, models, renderer):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    pipe, _ = renderer.prepare(clip_plan(tmp_path, models)["settings"], lambda e: None)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    config = pipe.scheduler.config
    assert (config.beta_schedule, config.clip_sample, config.timestep_spacing, config.steps_offset) == (
        "linear", False, "linspace", 1)
    pipe, _ = renderer.prepare(clip_plan(tmp_path, models, scheduler="euler")["settings"], lambda e: None)
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"  # other names: from the model's own config
    pipe, _ = renderer.prepare(clip_plan(tmp_path, models, "t2v")["settings"], lambda e: None)
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.scheduler.config.beta_schedule == "scaled_linear"


def test_decoder_stands_in_for_the_vae(tmp_path, models, renderer):
    from diffusers import AutoencoderKL, AutoencoderTiny

    decoder = _tiny_decoder(tmp_path / "decoder")
    plan = clip_plan(tmp_path / "tiny", models, frames=4, decoder=decoder, vae_slicing=True)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    assert isinstance(pipe.vae, AutoencoderTiny)
    summary, _ = render(renderer, plan)
    assert summary["rendered"] == 4
    with_decoder = read_frames(plan)
    plan = clip_plan(tmp_path / "vae", models, frames=4)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    assert isinstance(pipe.vae, AutoencoderKL)
    render(renderer, plan)
    assert not np.array_equal(with_decoder[1], read_frames(plan)[1])


def test_bad_inputs_are_clear_errors(tmp_path, models, renderer):
    plan = clip_plan(tmp_path, models, motion_adapter="")
    with pytest.raises(ModelError, match="clip mode needs a motion adapter"):
        render(renderer, plan)
    with pytest.raises(ModelError, match="is a single file"):
        render(renderer, clip_plan(tmp_path, models, motion_adapter=models["lora"]))
    from diffusers import MotionAdapter

    MotionAdapter(block_out_channels=(32, 64, 64), motion_layers_per_block=1, motion_num_attention_heads=4,
                  motion_max_seq_length=32).save_pretrained(str(tmp_path / "three-blocks"))
    with pytest.raises(ModelError, match="three-blocks' does not fit model"):
        render(renderer, clip_plan(tmp_path, models, motion_adapter=str(tmp_path / "three-blocks")))
    missing = str(tmp_path / "no-such-adapter")
    with pytest.raises(ModelError, match="no-such-adapter"):
        render(renderer, clip_plan(tmp_path, models, motion_adapter=missing))
    with pytest.raises(ModelError, match="not a MotionAdapter"):  # a folder of something else
        render(renderer, clip_plan(tmp_path, models, motion_adapter=os.path.join(models["sd"], "unet")))
    with pytest.raises(ModelError, match="text-to-video model"):
        render(renderer, clip_plan(tmp_path, models, "t2v", motion_adapter=models["adapter"]))
    with pytest.raises(ModelError, match="motion LoRAs"):
        render(renderer, clip_plan(tmp_path, models, "t2v", motion_loras=[{"path": models["lora"], "scale": 1.0}]))
    with pytest.raises(ModelError, match="clip mode only"):
        render(renderer, plan_mod.validate({**clip_plan(tmp_path, models, "t2v"),
                                            "settings": {**clip_plan(tmp_path, models, "t2v")["settings"],
                                                         "mode": "INTERPOLATE"}}))
    with pytest.raises(plan_mod.PlanError, match="at most 32 frames"):
        render(renderer, clip_plan(tmp_path, models, frames=34, context_length=33))
    # Steps must be shared within a clip (frames 5 and 6 of the second clip differ), not across clips; the error
    # comes before any clip is denoised.
    plan = clip_plan(tmp_path / "steps", models, frames=8, restarts={4})
    for record in plan["frames"][4:6]:
        record["steps"] = 3
    events = []
    with pytest.raises(plan_mod.PlanError, match=r"frames 4-8: .*share one step count.*frames 5, 6 differ"):
        renderer.render(plan, None, events.append)
    assert not [e for e in events if e["event"] in ("progress", "frame")]
    plan = clip_plan(tmp_path / "ok", models, frames=6, restarts={5})
    for record in plan["frames"][4:]:
        record["steps"] = 3
    assert render(renderer, plan)[0]["rendered"] == 6


def test_motion_adapter_by_hugging_face_id(models, fake_hub):
    from diffusers import MotionAdapter

    fake_hub("kd-test/tiny-adapter", models["adapter"])
    adapter = load_motion_adapter("kd-test/tiny-adapter", LoadOptions(), "cpu")
    assert isinstance(adapter, MotionAdapter) and adapter.config.motion_max_seq_length == 32
    with pytest.raises(ModelError, match=r"'kd-test/missing-adapter' is not in the Hugging Face cache.*hf download"):
        load_motion_adapter("kd-test/missing-adapter", LoadOptions(), "cpu")
    fake_hub("kd-test/a-unet", os.path.join(models["sd"], "unet"))
    with pytest.raises(ModelError, match="is a UNet2DConditionModel, not a MotionAdapter"):
        load_motion_adapter("kd-test/a-unet", LoadOptions(), "cpu")


def test_cancel_stops_within_a_step(tmp_path, models, renderer):
    plan = clip_plan(tmp_path, models, frames=6, steps=4)
    pipe, _ = renderer.prepare(plan["settings"], lambda e: None)
    cancel = threading.Event()
    hook = UNetCalls(pipe.unet)
    stop = pipe.unet.register_forward_pre_hook(lambda *_: cancel.set())  # the user cancels during the first step
    events = []
    try:
        summary = renderer.render(plan, None, events.append, cancel)
    finally:
        stop.remove()
        hook.close()
    assert summary["cancelled"] and summary["rendered"] == 0
    assert not [e for e in events if e["event"] == "progress"]
    assert len(hook.calls) == len(clip.context_windows(6, 4, 2))  # the step in flight's windows, nothing after
    summary, _ = render(renderer, plan)  # and the clip renders whole afterwards
    assert summary["rendered"] == 6


def test_command_line_renders_a_clip_plan(tmp_path, models, capsys):
    plan = clip_plan("out", models, "t2v", frames=3, cpu_offload=True)
    path = write_plan(tmp_path / "plan.json", plan)
    assert engine_main(["render", path]) == 0
    captured = capsys.readouterr()
    assert '"rendered": 3' in captured.out
    assert captured.err.count("CPU offload needs a CUDA GPU") == 1  # on the CPU: said once, then ignored
    store = FrameStore(str(tmp_path / "out"))
    assert all(store.read(f).shape == (32, 32, 3) for f in (1, 2, 3))
