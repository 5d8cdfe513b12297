"""Progress with elapsed time and an estimate (engine/progress.py, events.describe), the terminal's progress lines
(events.line_printer) and the live preview (engine/preview.py): on fake clocks where time matters, and in real
renders of the tiny and the embedded shapes model."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import pytest
import torch
from common import make_plan, write_plan
from PIL import Image
from test_events import check

from engine import events, preview
from engine import plan as plan_mod
from engine.frames import FrameStore, sweep_temporary
from engine.progress import Pace
from engine.renderer import Renderer


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- elapsed and estimate ---------------------------------------------------------------------------------------


def test_the_estimate_comes_from_the_steps_done_and_holds_on_a_steady_render():
    """4 frames of 10 steps, 2 per batch, 1 s a step after 5 s of loading: no estimate before a rate is known, then
    the true time left (the loading and the first step's warm-up don't count against the frames to do)."""
    clock = Clock()
    pace = Pace([1, 2, 3, 4], clock)
    clock.now += 5.0  # loading the model
    assert pace.timing() == {"elapsed": 5.0, "eta": None}
    seen = []
    for batch in ([1, 2], [3, 4]):
        for step in range(1, 11):
            clock.now += 1.0
            pace.step(batch, step, 10)
            seen.append((clock.now - 100.0, pace.eta()))
        for frame in batch:
            pace.frame(frame)
    assert seen[0] == (6.0, None)  # one report is no rate
    for elapsed, eta in seen[1:]:
        true_left = 25.0 - elapsed
        assert eta == pytest.approx(true_left, abs=1e-6), (elapsed, eta)
    assert pace.timing() == {"elapsed": 25.0, "eta": 0.0}


def test_the_estimate_follows_a_change_of_pace_and_ignores_frames_not_to_render():
    clock = Clock()
    pace = Pace([5, 6], clock)
    pace.step([4, 5], 1, 4)  # frame 4 is in the clip but current already: it doesn't count
    clock.now += 2.0
    pace.step([4, 5], 2, 4)
    assert pace.share() == pytest.approx(0.25)  # frame 5 half done, frame 6 not started
    assert pace.eta() == pytest.approx(2.0 * 0.75 / 0.125)
    pace.frame(4)  # a frame that isn't ours changes nothing
    assert pace.share() == pytest.approx(0.25)
    clock.now += 10.0  # a slow spell: the estimate grows with it
    pace.step([4, 5], 3, 4)
    assert pace.eta() == pytest.approx(12.0 * 0.625 / 0.25)


DESCRIBED = [
    (events.progress([13, 14, 15, 16], 3, 30, 12, 48, timing={"elapsed": 42.0, "eta": 130.0}),
     "12/48 done, frames 13-16: step 3/30 \u00b7 0:42 elapsed, about 2:10 left"),
    (events.progress([13], 1, 30, 12, 48, timing={"elapsed": 3725.4, "eta": None}),
     "12/48 done, frame 13: step 1/30 \u00b7 1:02:05 elapsed"),
    (events.frame(13, "/out/frame_000013.png", False, 13, 48, timing={"elapsed": 61.0, "eta": 7322.0}),
     "[13/48] frame 13 -> /out/frame_000013.png \u00b7 1:01 elapsed, about 2:02:02 left"),
    (events.preview(13, 12, 30, "/out/manifest.preview.png"), ""),
]


@pytest.mark.parametrize("event, text", DESCRIBED, ids=[e["event"] for e, _ in DESCRIBED])
def test_describe_says_elapsed_and_left(event, text):
    assert events.describe(check(event)) == text


def test_timing_texts():
    assert events.timing(42, 130) == "0:42 elapsed, about 2:10 left"
    assert events.timing(42, None) == events.timing(42, -1.0) == "0:42 elapsed"  # Blender's status keeps -1
    assert events.timing(0.0, 5.0) == events.timing(None, None) == ""
    assert events.clock(59.6) == "1:00" and events.clock(3600) == "1:00:00"


# -- the terminal's lines ---------------------------------------------------------------------------------------


def test_the_terminal_gets_a_line_per_frame_and_a_step_line_only_after_a_quiet_spell():
    clock, lines = Clock(), []
    say = events.line_printer(lines.append, leave=("finished",), quiet=10.0, clock=clock)
    say(events.start([1, 2], [1, 2]))
    for step in range(1, 31):  # a long first frame: 30 steps of 1 s
        clock.now += 1.0
        say(events.progress([1], step, 30, 0, 2, timing={"elapsed": step, "eta": None}))
        say(events.preview(1, step, 30, "/out/manifest.preview.png"))
    say(events.frame(1, "/out/frame_000001.png", False, 1, 2, timing={"elapsed": 31.0, "eta": 30.0}))
    clock.now += 1.0
    say(events.progress([2], 1, 30, 1, 2, timing={"elapsed": 32.0, "eta": 29.0}))  # not quiet long enough
    say(events.finished(2, 0, False, "/out"))
    assert lines == ["2 of 2 frames to render",
                     "0/2 done, frame 1: step 10/30 \u00b7 0:10 elapsed",
                     "0/2 done, frame 1: step 20/30 \u00b7 0:20 elapsed",
                     "0/2 done, frame 1: step 30/30 \u00b7 0:30 elapsed",
                     "[1/2] frame 1 -> /out/frame_000001.png \u00b7 0:31 elapsed, about 0:30 left"]


def test_the_engine_command_line_prints_frame_lines_with_elapsed(tiny_model_dir, tmp_path, capsys):
    from engine.__main__ import main

    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=2, model=tiny_model_dir))
    assert main(["render", plan]) == 0
    err = capsys.readouterr().err.splitlines()
    frames = [line for line in err if line.startswith("[")]
    assert [line.split(" -> ")[0] for line in frames] == ["[1/2] frame 1", "[2/2] frame 2"]
    assert all(" elapsed" in line for line in frames), frames
    assert "about" in frames[-1]  # by the last frame the rate is known
    assert not any(line.startswith("0/2 done") for line in err)  # a render this short has no step lines


# -- the live preview -------------------------------------------------------------------------------------------


def test_a_render_with_previews_sends_them_before_each_frame_lands(tiny_model_dir, tmp_path):
    plan = plan_mod.validate(make_plan(str(tmp_path / "out"), frames=3, steps=4, model=tiny_model_dir,
                                       batch_size=1, width=64, height=48))
    seen, shots = [], []

    def emit(event):
        seen.append(check(event))
        if event["event"] == "preview":
            shots.append(np.asarray(Image.open(event["path"])))  # readable when the event comes

    Renderer().render(plan, None, emit, preview=0.0)  # no interval: as often as the time budget allows
    kinds = [(e["event"], e.get("frame")) for e in seen]
    previews = [e for e in seen if e["event"] == "preview"]
    assert previews and previews[0] == events.preview(1, 1, 4, os.path.join(str(tmp_path / "out"),
                                                                             preview.FILENAME))
    for e in previews:  # each preview comes while its frame denoises: before the frame is written
        assert kinds.index(("preview", e["frame"])) < kinds.index(("frame", e["frame"]))
    assert all(shot.shape == (48, 64, 3) for shot in shots)  # the frame's size (under 256 pixels: not shrunk)
    # The folder stays ours: the preview is neither a frame nor a stranger's file.
    store = FrameStore(str(tmp_path / "out"))
    assert store.finished_frames() == [1, 2, 3]
    assert os.path.isfile(os.path.join(str(tmp_path / "out"), preview.FILENAME))


def test_no_preview_unless_asked(tiny_model_dir, tmp_path):
    seen = []
    Renderer().render(plan_mod.validate(make_plan(str(tmp_path / "out"), frames=1, model=tiny_model_dir)), None,
                      seen.append)
    assert not any(e["event"] == "preview" for e in seen)
    assert not os.path.exists(os.path.join(str(tmp_path / "out"), preview.FILENAME))


def test_the_worker_sends_previews_when_the_command_asks(tiny_model_dir, tmp_path):
    import io
    import time

    from engine.worker import serve

    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=1, model=tiny_model_dir))
    out = io.StringIO()

    def stdin():
        yield json.dumps({"cmd": "render", "plan": plan, "preview": True}) + "\n"
        deadline = time.time() + 300
        while '"finished"' not in out.getvalue() and time.time() < deadline:
            time.sleep(0.05)

    assert serve(Renderer().options, stdin(), out) == 0
    sent = [check(json.loads(line)) for line in out.getvalue().splitlines()]
    kinds = [e["event"] for e in sent]
    assert "preview" in kinds and kinds.index("preview") < kinds.index("frame")


def _pipe(tiny_model_dir):
    from engine.models.load import load_pipeline
    from engine.models.options import LoadOptions

    return load_pipeline(tiny_model_dir, LoadOptions(device="cpu"))


def test_previews_are_throttled_by_interval_and_by_their_own_cost(tiny_model_dir, tmp_path):
    pipe = _pipe(tiny_model_dir)
    settings = {"width": 64, "height": 64}
    latents = torch.randn(2, pipe.vae.config.latent_channels, 8, 8)
    clock, sent = Clock(), []
    shots = preview.Previewer(pipe, settings, str(tmp_path), sent.append, interval=0.5, clock=clock)
    for step in range(1, 25):  # 3 s of steps, 1/8 s apart, previews free: one per half second
        clock.now += 0.125
        shots.offer([7, 8], step, 24, latents)
    assert [e["step"] for e in sent] == [1, 5, 9, 13, 17, 21]
    assert all(e["frame"] == 7 for e in sent)  # a batch shows its first frame

    # Previews that cost 0.3 s each (a VAE decode on a slow CPU): with a 3% budget, one per 10 s.
    clock, sent = Clock(), []
    shots = preview.Previewer(pipe, settings, str(tmp_path), sent.append, interval=0.5, clock=clock)
    write = shots._write

    def costly(latents):
        write(latents)
        clock.now += 0.3

    shots._write = costly
    for step in range(1, 201):  # 20 s of steps 0.1 s apart
        clock.now += 0.1
        shots.offer([1], step, 200, latents[:1])
    assert sent[0]["step"] == 1 and sent[1]["step"] in (98, 99)  # 0.1 + 0.3 + 97 x 0.1 = 10 s later (rounding)
    assert shots.cost <= preview.BUDGET * (clock.now - 100.0) + 0.3  # the last one's window is still open


def test_a_preview_that_cannot_be_made_stops_previews_not_the_render(tiny_model_dir, tmp_path, capsys):
    pipe = _pipe(tiny_model_dir)
    sent = []
    shots = preview.Previewer(pipe, {"width": 64, "height": 64}, str(tmp_path), sent.append, interval=0.0)
    shots.offer([1], 1, 4, torch.randn(1, 3, 8, 8))  # channels the map doesn't take
    shots.offer([1], 2, 4, torch.randn(1, pipe.vae.config.latent_channels, 8, 8))
    assert sent == [] and "live preview stopped" in capsys.readouterr().err


def test_the_preview_size_keeps_the_aspect_within_256_pixels():
    assert preview.preview_size(1920, 1080) == (256, 144)
    assert preview.preview_size(512, 768) == (171, 256)
    assert preview.preview_size(64, 48) == (64, 48)


def test_stable_diffusion_autoencoders_get_the_published_factors():
    def vae(name, scaling, blocks=(128, 256, 512, 512)):
        config = types.SimpleNamespace(latent_channels=4, scaling_factor=scaling, block_out_channels=list(blocks))
        return type(name, (), {"config": config})()

    assert preview.known_factors(vae("AutoencoderKL", 0.18215)) == (preview.SD_FACTORS, preview.SD_BIAS)
    assert preview.known_factors(vae("AutoencoderKL", 0.13025)) == (preview.SDXL_FACTORS, preview.SDXL_BIAS)
    assert preview.known_factors(vae("AutoencoderKL", 0.18215, (32, 64))) is None  # a small test VAE: fitted
    assert preview.known_factors(vae("AutoencoderTiny", 1.0)) is None


class LinearVAE:
    """An autoencoder whose latents are a known linear function of each 4x4 patch's colour (and a shift)."""

    device, dtype = torch.device("cpu"), torch.float32

    def __init__(self):
        self.config = types.SimpleNamespace(scaling_factor=0.7, latent_channels=4, shift_factor=0.1)
        generator = torch.Generator().manual_seed(3)
        self.matrix, self.offset = torch.randn(3, 4, generator=generator), torch.randn(4, generator=generator)

    def encode(self, pictures: torch.Tensor):
        patches = torch.nn.functional.avg_pool2d(pictures, 4)
        return types.SimpleNamespace(latents=torch.einsum("nrhw,rc->nchw", patches, self.matrix)
                                     + self.offset.view(1, 4, 1, 1))


def test_a_fitted_map_is_exact_where_the_autoencoder_is_linear():
    vae = LinearVAE()
    weights, bias = preview.fit_factors(vae, 4)
    pictures = preview.fit_pictures(count=4, seed=5)
    latents = preview.scaled_latents(vae, pictures)  # scaled and shifted as the denoising loop holds them
    made = preview.to_rgb(latents[3], torch.tensor(weights, dtype=torch.float32),
                          torch.tensor(bias, dtype=torch.float32))
    truth = pictures[3].reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))
    assert np.abs(made / 255.0 - truth).max() < 1.5 / 255


def test_a_fitted_map_knows_the_shapes_models_colours():
    """The shapes model's autoencoder is far from linear (so its previews decode): a map fitted to it is rough, but
    on pictures it was not fitted on it knows the colours: well under the error of the best guess without the
    latents (their mean colour)."""
    from engine.models.load import load_pipeline
    from engine.models.options import LoadOptions

    pipe = load_pipeline("embedded:shapes", LoadOptions(device="cpu"))
    assert preview.uses_decoder(pipe)  # a tiny autoencoder: previews decode
    vae, factor = pipe.vae, pipe.vae_scale_factor
    weights, bias = preview.fit_factors(vae, factor)
    pictures = preview.fit_pictures(count=8, seed=1)  # other pictures than the fit's
    latents = preview.scaled_latents(vae, pictures)
    made = np.stack([preview.to_rgb(l, torch.tensor(weights, dtype=torch.float32),
                                    torch.tensor(bias, dtype=torch.float32)) for l in latents]) / 255.0
    n, h, w = made.shape[:3]
    truth = pictures.reshape(n, h, factor, w, factor, 3).mean(axis=(2, 4))
    error, guess = np.abs(made - truth).mean(), np.abs(truth - truth.mean(axis=(0, 1, 2))).mean()
    assert error < 0.6 * guess, (error, guess)  # 0.11 against 0.21


def test_the_sweep_knows_the_previews_temporary_file(tmp_path):
    left = tmp_path / f"{preview.FILENAME}.123.456.tmp"
    left.write_bytes(b"half a png")
    (tmp_path / preview.FILENAME).write_bytes(b"the last preview")
    assert sweep_temporary(str(tmp_path)) == [left.name]
    assert (tmp_path / preview.FILENAME).exists()
    FrameStore(str(tmp_path))  # a folder holding a preview is still ours to write in
