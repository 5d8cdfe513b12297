"""The upscaling pass: tiny random-weight x4 and latent x2 upscalers loaded through from_pretrained, their frames in
their own folder, resume, the command line, errors and cancel."""

import json
import os
import threading

import numpy as np
import pytest
import torch
from common import make_plan, write_plan
from PIL import Image

from engine import plan as plan_mod
from engine.__main__ import main
from engine.errors import ModelError
from engine.frames import FrameStore
from engine.renderer import Renderer
from engine.tiny_model import make_tiny_upscaler


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


@pytest.fixture(scope="module")
def upscalers(tmp_path_factory):
    root = tmp_path_factory.mktemp("upscalers")
    return {kind: make_tiny_upscaler(str(root / kind), kind=kind) for kind in ("x4", "x2")}


def upscale_plan(out, model, upscale_dir, frames=3, **settings):
    plan = make_plan(str(out), frames=frames, model=model, **settings)
    plan["settings"]["upscale"] = {"model": upscale_dir[0], "steps": 2, "output_dir": str(upscale_dir[1])}
    for i, record in enumerate(plan["frames"]):
        record["seed"] = 10 + i  # distinct seeds: the pass must seed each frame from its own
    return plan


def render(renderer, plan, frames=None, cancel=None, on_event=None):
    events = []

    def emit(event):
        events.append(event)
        if on_event:
            on_event(event)

    summary = renderer.render(plan_mod.validate(plan), frames, emit, cancel)
    return summary, events


def upscaled(events, skipped=False):
    return [e["frame"] for e in events if e["event"] == "upscaled" and e["skipped"] == skipped]


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_x4_pass_follows_the_render_and_resumes(renderer, tiny_model_dir, upscalers, tmp_path):
    up = tmp_path / "up"
    plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (upscalers["x4"], up))
    summary, events = render(renderer, plan)
    kinds = [e["event"] for e in events]
    # The pass comes after the last main frame and before the summary.
    assert kinds.index("upscale_start") > max(i for i, k in enumerate(kinds) if k == "frame")
    assert kinds[-1] == "finished"
    start = events[kinds.index("upscale_start")]
    assert start["frames"] == start["todo"] == [1, 2, 3] and start["missing"] == []
    assert upscaled(events) == [1, 2, 3]
    assert summary["upscaled"] == 3 and summary["upscale_dir"] == str(up) and not summary["cancelled"]
    # Frames are batched (batch size 2) and progress says which pass it belongs to.
    steps = [(e["frames"], e["step"]) for e in events if e["event"] == "progress" and e.get("pass") == "upscale"]
    assert steps == [([1, 2], 1), ([1, 2], 2), ([3], 1), ([3], 2)]
    store = FrameStore(str(up))
    assert store.finished_frames() == [1, 2, 3]
    for f in (1, 2, 3):
        assert Image.open(store.path(f)).size == (256, 256)  # 64x64 frames, 4x
    assert "a red circle" in Image.open(store.path(1)).text["parameters"]

    # Everything current: nothing rendered, nothing upscaled, files untouched.
    mtimes = {f: os.path.getmtime(store.path(f)) for f in (1, 2, 3)}
    summary, events = render(renderer, plan)
    assert summary["rendered"] == 0 and summary["upscaled"] == 0 and summary["upscale_skipped"] == 3
    assert upscaled(events, skipped=True) == [1, 2, 3] and upscaled(events) == []
    assert not any(e["event"] == "loading" for e in events)

    # One frame's prompt changes: that frame is rendered and upscaled again, and only that one.
    before = pixels(store.path(2))
    plan["frames"][1]["prompts"] = [{"text": "a green triangle", "negative": "", "weight": 1.0}]
    summary, events = render(renderer, plan)
    assert summary["rendered"] == 1 and upscaled(events) == [2] and upscaled(events, skipped=True) == [1, 3]
    assert not np.array_equal(before, pixels(store.path(2)))
    assert all(os.path.getmtime(store.path(f)) == mtimes[f] for f in (1, 3))
    # A source frame that changes under the same prompt (its guidance) is upscaled again too.
    plan["frames"][2]["guidance"] = 9.0
    summary, events = render(renderer, plan)
    assert summary["rendered"] == 1 and upscaled(events) == [3]

    # Other upscale settings re-upscale every frame; the main frames stay.
    plan["settings"]["upscale"]["noise_level"] = 50
    summary, events = render(renderer, plan)
    assert summary["rendered"] == 0 and upscaled(events) == [1, 2, 3]


def test_pass_runs_after_an_all_skipped_render(renderer, tiny_model_dir, upscalers, tmp_path):
    plan = make_plan(str(tmp_path / "frames"), frames=3, model=tiny_model_dir)
    summary, _ = render(renderer, plan)
    assert summary["rendered"] == 3 and "upscaled" not in summary  # no pass without upscale settings
    plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (upscalers["x2"], tmp_path / "up"))
    plan["frames"] = make_plan("x", frames=3)["frames"]  # the frames as rendered (seed 0)
    summary, events = render(renderer, plan, frames=(2, 3))
    assert summary["rendered"] == 0 and summary["skipped"] == 2
    assert upscaled(events) == [2, 3] and summary["upscaled"] == 2
    store = FrameStore(str(tmp_path / "up"))
    assert store.finished_frames() == [2, 3]
    assert Image.open(store.path(2)).size == (128, 128)  # the latent upscaler: 2x


@pytest.mark.parametrize("kind", ["x4", "x2"])
def test_each_upscaled_frame_is_the_upscaler_run_on_its_own_frame(renderer, tiny_model_dir, upscalers, tmp_path,
                                                                   kind):
    """With random weights an upscaled frame does not resemble its source: measured, the correlation of a
    downscaled output with its own source and with any other frame is the same (about 0 +- 0.1), so such a check
    could pass or fail by chance. What can fail for real is the plumbing: each frame must be the upscaler's output
    for that frame's pixels (given as diffusers documents, -1..1 tensors), its prompt and its seed, in batches as
    alone. A frame routed to another frame's source, seed or prompt, or pixels scaled wrongly, fails this."""
    import diffusers

    up = tmp_path / "up"
    plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (upscalers[kind], up))
    plan["settings"]["upscale"]["guidance"] = 5.0  # the prompt takes part (the latent upscaler's default is 0)
    render(renderer, plan)
    main, store = FrameStore(str(tmp_path / "frames")), FrameStore(str(up))
    cls = diffusers.StableDiffusionUpscalePipeline if kind == "x4" else diffusers.StableDiffusionLatentUpscalePipeline
    pipe = cls.from_pretrained(upscalers[kind])
    pipe.set_progress_bar_config(disable=True)

    def reference(source_frame, record):
        image = torch.from_numpy(pixels(main.path(source_frame)).astype(np.float32) / 127.5 - 1.0)
        extra = {"noise_level": 20} if kind == "x4" else {}
        top = max(record["prompts"], key=lambda p: p["weight"])
        out = pipe(prompt=[top["text"]], negative_prompt=[top["negative"]], image=image.permute(2, 0, 1)[None],
                   num_inference_steps=2, guidance_scale=5.0, output_type="np",
                   generator=[torch.Generator().manual_seed(record["seed"])], **extra).images[0]
        return np.round(out * 255).astype(np.int16)

    for record in plan["frames"]:
        own = np.abs(pixels(store.path(record["frame"])) - reference(record["frame"], record))
        assert own.max() <= 2 and own.mean() < 0.01
    # The check tells frames apart: another frame's source, seed or prompt is off by levels on average (measured: 2.5
    # at least, for the latent upscaler's source, which its random UNet weighs least).
    first, other = plan["frames"][0], plan["frames"][1]
    got = pixels(store.path(1))
    assert np.abs(got - reference(other["frame"], first)).mean() > 1
    assert np.abs(got - reference(1, {**first, "seed": other["seed"]})).mean() > 1
    tree = [{"text": "a tree", "negative": "", "weight": 1}]
    assert np.abs(got - reference(1, {**first, "prompts": tree})).mean() > 1


def test_upscale_command_counts_missing_frames(renderer, tiny_model_dir, upscalers, tmp_path, capsys):
    plan = make_plan(str(tmp_path / "frames"), frames=3, model=tiny_model_dir)
    render(renderer, plan, frames=(1, 2))
    plan["settings"]["upscale"] = {"model": upscalers["x2"], "steps": 1, "output_dir": "up"}  # next to the plan
    path = write_plan(tmp_path / "plan.json", plan)
    assert main(["upscale", path, "--frames", "1-3"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["pass"] == "upscale" and summary["upscaled"] == 2 and summary["upscale_missing"] == 1
    assert summary["upscale_dir"] == str(tmp_path / "up")
    assert "1 frames skipped: no current main frame on disk" in err
    assert FrameStore(str(tmp_path / "up")).finished_frames() == [1, 2]
    # Again: all current.
    assert main(["upscale", path]) == 0
    assert json.loads(capsys.readouterr()[0].strip().splitlines()[-1])["upscale_skipped"] == 2

    del plan["settings"]["upscale"]
    path = write_plan(tmp_path / "plain.json", plan)
    assert main(["upscale", path]) == 2
    assert "no 'upscale' settings" in capsys.readouterr()[1]


def test_wrong_or_missing_upscaler_fails_before_any_frame(renderer, tiny_model_dir, tmp_path):
    plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (tiny_model_dir, tmp_path / "up"))
    with pytest.raises(ModelError, match="is a StableDiffusionPipeline .*StableDiffusionUpscalePipeline.*"
                                         "StableDiffusionLatentUpscalePipeline"):
        render(renderer, plan)
    plan["settings"]["upscale"]["model"] = "someone/no-upscaler"
    with pytest.raises(ModelError, match="'someone/no-upscaler' is not in the Hugging Face cache"):
        render(renderer, plan)
    with pytest.raises(ModelError, match="someone/no-upscaler"):
        renderer.upscale(plan_mod.validate(plan), None, lambda e: None)
    assert FrameStore(str(tmp_path / "frames")).finished_frames() == []


def test_cancel_keeps_finished_upscaled_frames(renderer, tiny_model_dir, upscalers, tmp_path):
    up = tmp_path / "up"
    plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (upscalers["x4"], up), batch_size=1)
    plan["settings"]["upscale"]["steps"] = 3
    cancel = threading.Event()

    def on_event(event):  # cancel during frame 2's first upscaling step
        if event["event"] == "progress" and event.get("pass") == "upscale" and event["frames"] == [2]:
            cancel.set()

    summary, events = render(renderer, plan, cancel=cancel, on_event=on_event)
    assert summary["cancelled"] and summary["rendered"] == 3 and summary["upscaled"] == 1
    assert not [e for e in events if e.get("pass") == "upscale" and e["frames"] == [2] and e["step"] > 1]
    assert FrameStore(str(up)).finished_frames() == [1]
    summary, events = render(renderer, plan)
    assert upscaled(events) == [2, 3] and upscaled(events, skipped=True) == [1] and not summary["cancelled"]


def test_cancelled_render_skips_the_pass(renderer, tiny_model_dir, upscalers, tmp_path):
    plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (upscalers["x2"], tmp_path / "up"), batch_size=1)
    cancel = threading.Event()
    summary, events = render(renderer, plan, cancel=cancel,
                             on_event=lambda e: e["event"] == "frame" and cancel.set())
    assert summary["cancelled"] and summary["rendered"] == 1 and summary["upscaled"] == 0
    assert not [e for e in events if e["event"].startswith("upscale")]
    assert FrameStore(str(tmp_path / "up")).finished_frames() == []


def test_sizes_the_latent_upscaler_cannot_take_are_padded_and_cropped(renderer, tiny_model_dir, upscalers, tmp_path):
    # 72 wide: the tiny latent upscaler's UNet needs multiples of 16 (the real one's 32, so 768x432 frames), and fails
    # on 72 without the padding.
    for kind, factor in (("x2", 2), ("x4", 4)):
        plan = upscale_plan(tmp_path / "frames", tiny_model_dir, (upscalers[kind], tmp_path / kind), frames=2,
                            width=72)
        summary, _ = render(renderer, plan)
        assert summary["upscaled"] == 2
        for f in (1, 2):
            assert Image.open(FrameStore(str(tmp_path / kind)).path(f)).size == (72 * factor, 64 * factor)


def test_batches_stay_within_a_pixel_budget_and_x4_decodes_in_fp32(upscalers):
    from engine.models.options import LoadOptions
    from engine.upscale import batch_frames, load_upscaler

    settings = {"width": 512, "height": 512, "batch_size": 4}
    assert batch_frames(settings, "x4") == 1 and batch_frames(settings, "x2") == 4  # 2048x2048 out vs 1024x1024
    assert batch_frames({**settings, "width": 64, "height": 64, "batch_size": 2}, "x4") == 2
    # Half precision: the x4 decoder stays in fp32 (it overflows in fp16), the rest follows the plan.
    pipe = load_upscaler(upscalers["x4"], LoadOptions(device="cpu", precision="fp16"))
    assert pipe.unet.dtype == torch.float16 and pipe.vae.dtype == torch.float32
    pipe = load_upscaler(upscalers["x2"], LoadOptions(device="cpu", precision="fp16"))
    assert pipe.unet.dtype == torch.float16 and pipe.vae.dtype == torch.float16
