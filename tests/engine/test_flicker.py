"""engine.flow and engine.flicker: the flow convention against a known motion, occlusion on revealed background, and
error of sequences whose answer is known (moving texture: ~0; independent noise: large), through the command too.

The textures are smoothed random noise (flow estimation needs texture everywhere); motion is made by np.roll of a
larger picture and cropping, so every expected flow is known exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from common import ROOT
from engine import flicker, flow as flows

W, H = 96, 72


def texture(seed: int, width: int = W + 40, height: int = H + 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 0, 255).astype(np.uint8)


def panned(picture: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """The W x H crop of `picture` after its content moved dx right and dy down."""
    moved = np.roll(picture, (dy, dx), axis=(0, 1))
    return np.ascontiguousarray(moved[20:20 + H, 20:20 + W])


def interior(a: np.ndarray, margin: int = 12) -> np.ndarray:
    return a[margin:-margin, margin:-margin]


@pytest.mark.parametrize("method", flows.FLOW_METHODS)
def test_flow_convention_against_a_known_motion(method):
    picture = texture(1)
    previous, current = panned(picture, 0), panned(picture, 3, -2)  # the content moved 3 right and 2 up
    flow = flows.estimate_flow(current, previous, method)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    # Backward flow: the pixel at (x, y) now was at (x - 3, y + 2) before.
    assert np.median(interior(flow[..., 0])) == pytest.approx(-3.0, abs=0.3)
    assert np.median(interior(flow[..., 1])) == pytest.approx(2.0, abs=0.3)
    rebuilt = flows.warp_previous(previous, flow)
    assert np.abs(interior(rebuilt).astype(float) - interior(current)).mean() < 6


def test_an_object_moved_by_n_pixels_has_flow_n_on_its_pixels():
    background = texture(2)[:H, :W]
    square = texture(3)[:36, :36]
    frames = []
    for x in (24, 30):  # a textured square moves 6 pixels right over a still background
        frame = background.copy()
        frame[18:54, x:x + 36] = square
        frames.append(frame)
    flow = flows.estimate_flow(frames[1], frames[0])
    on_square = flow[26:46, 38:58]  # well inside the square at its new place
    assert np.median(on_square[..., 0]) == pytest.approx(-6.0, abs=0.6)
    assert np.median(on_square[..., 1]) == pytest.approx(0.0, abs=0.5)
    assert np.median(np.abs(flow[:12, :])) < 0.3  # the background stays


def test_revealed_background_is_not_visible():
    """The exact flows of a square moving 6 pixels right over a still background: the strip it uncovers in frame t was
    hidden in frame t-1, so it is masked out; the rest is visible."""
    backward = np.zeros((H, W, 2), np.float32)
    backward[26:46, 36:56, 0] = -6.0  # the square now at x 36-55 was 6 to the left
    forward = np.zeros((H, W, 2), np.float32)
    forward[26:46, 30:50, 0] = 6.0  # the square then at x 30-49 goes 6 to the right
    visible = flows.visible_mask(backward, forward)
    revealed = visible[26:46, 30:36]
    assert not revealed.any()
    assert visible[26:46, 37:55].all() and visible[:26].all() and visible[46:].all()
    # Flow that leaves the picture has nothing to compare with.
    out = np.zeros((H, W, 2), np.float32)
    out[..., 0] = -5.0
    assert not flows.visible_mask(out, -out)[:, :4].any()


def test_a_moving_picture_does_not_flicker_and_noise_does():
    picture = texture(4)
    moving = [panned(picture, 2 * t, t) for t in range(6)]
    steady = flicker.flicker(moving)
    assert steady["frames"] == 6 and len(steady["pairs"]) == 5
    assert steady["warping_error"] < 0.003 and steady["visible"] > 0.8
    rng = np.random.default_rng(5)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(6)]
    boiling = flicker.flicker(noise, reference=moving)  # the motion from the reference, the frames unrelated
    assert boiling["warping_error"] > 0.1 > 30 * steady["warping_error"]
    assert boiling["reference"]["warping_error"] == pytest.approx(steady["warping_error"], rel=0.2, abs=1e-4)
    assert boiling["flow"] == "dis from the reference"


def test_errors_say_what_is_wrong():
    frame = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(flicker.FlickerError, match="at least two frames"):
        flicker.flicker([frame])
    with pytest.raises(flicker.FlickerError, match="frames frame 2 is 48x36, the first is 96x72"):
        flicker.flicker([frame, np.zeros((36, 48, 3), np.uint8)])
    with pytest.raises(flows.FlowError, match="unknown flow method 'raft'"):
        flows.estimate_flow(frame, frame, "raft")


def _write(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f"frame_{i + 9:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _command(*args):
    return subprocess.run([sys.executable, "-m", "engine", "flicker", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_command_prints_json_for_frames_and_reference(tmp_path):
    picture = texture(6)
    moving = [panned(picture, 3 * t) for t in range(5)]
    flickering = [np.clip(f.astype(int) + (40 if t % 2 else -40), 0, 255).astype(np.uint8)
                  for t, f in enumerate(moving)]
    _write(tmp_path / "out", flickering)
    _write(tmp_path / "in", moving)
    done = _command(str(tmp_path / "out"), "--reference", str(tmp_path / "in"), "--pairs")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["frames"] == 5 and len(result["pairs"]) == 4
    # Brightness jumping by 80 levels each frame: ~80 per channel where visible; the input itself is steady.
    assert result["mean_difference"] == pytest.approx(80, abs=8)
    assert result["reference"]["mean_difference"] < 6
    missing = _command(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and f"no folder '{tmp_path / 'nowhere'}'" in missing.stderr
    (tmp_path / "short").mkdir()
    _write(tmp_path / "short", moving[:3])
    mismatch = _command(str(tmp_path / "out"), "--reference", str(tmp_path / "short"))
    assert mismatch.returncode == 2 and "has 3 frames" in mismatch.stderr


def _panning_inputs(folder) -> list[str]:
    """Five input frames of a texture panning 2 pixels a frame (PNG paths)."""
    picture = texture(8)
    inits = []
    for t in range(5):
        inits.append(str(folder / f"in_{t}.png"))
        cv2.imwrite(inits[-1], cv2.cvtColor(panned(picture, 2 * t), cv2.COLOR_RGB2BGR))
    return inits


def _video_plan(out, inits: list[str], strength: float) -> dict:
    from engine import plan as plan_mod

    records = [{"frame": 1 + i, "seed": 7, "steps": 4, "guidance": 5.0, "strength": strength,
                "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}], "init": {"path": path}}
               for i, path in enumerate(inits)]
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "VIDEO", "model": "embedded:tiny", "width": W, "height": H, "output_dir": str(out),
                     "batch_size": 3},
        "frames": records})


def test_every_render_reports_its_flicker_beside_its_inputs(tmp_path):
    """A video-mode render over a panning texture: strength 0 keeps the input (its flicker is the input's), strength
    0.8 diffuses each frame on its own (random weights: far more flicker). The finished event carries both figures
    and the status line says them."""
    from engine.events import describe
    from engine.renderer import Renderer

    inits = _panning_inputs(tmp_path)
    renderer = Renderer()
    events = []
    kept = renderer.render(_video_plan(tmp_path / "kept", inits, 0.0), None, events.append)
    boiled = renderer.render(_video_plan(tmp_path / "boiled", inits, 0.8), None, events.append)
    for summary in (kept, boiled):
        figures = summary["flicker"]
        assert figures["frames"] == 5 and figures["flow"] == "dis from the reference"
        assert figures["reference"]["warping_error"] < 0.003  # the input only pans
    assert kept["flicker"]["warping_error"] < 0.005
    assert boiled["flicker"]["warping_error"] > 5 * kept["flicker"]["warping_error"]
    said = describe(boiled)
    assert said.startswith("Done: 5 rendered") and "; flicker 0." in said and "(input 0.00" in said


def test_a_warm_rerun_measures_only_the_pairs_it_changed(tmp_path, monkeypatch):
    """The renderer keeps each folder's measured pairs by the frames' hashes: re-rendering one frame of five measures
    its two pairs again (two flows each), not all four, and the figures equal a measurement from scratch."""
    from engine import plan as plan_mod
    from engine.renderer import Renderer

    inits = _panning_inputs(tmp_path)
    renderer = Renderer()
    plan = _video_plan(tmp_path / "out", inits, 0.8)
    renderer.render(plan, None, lambda e: None)
    flows = []
    estimate = flicker.estimate_flow
    monkeypatch.setattr(flicker, "estimate_flow", lambda *a, **k: flows.append(1) or estimate(*a, **k))
    plan["frames"][2]["seed"] += 1
    summary = renderer.render(plan, None, lambda e: None)
    assert summary["rendered"] == 1 and len(flows) == 4
    flows.clear()
    fresh = flicker.render_figures(str(tmp_path / "out"), plan["frames"], (W, H))  # no cache: all four pairs
    assert summary["flicker"] == fresh and len(flows) == 8
    flows.clear()
    again = renderer.render(plan, None, lambda e: None)
    assert again["rendered"] == 0 and again["flicker"] == fresh and not flows
    assert Renderer().render(plan, None, lambda e: None)["flicker"] == fresh and len(flows) == 8


def test_on_a_gpu_pairs_are_measured_on_a_thread_while_frames_render(tmp_path, monkeypatch):
    """Where the render runs on a GPU (forced here), each pair of frames is measured on the kd-flicker thread as soon
    as both are written, so nothing is left to measure after the last frame; the figures are the same."""
    import threading

    from engine import renderer as renderer_mod

    inits = _panning_inputs(tmp_path)
    monkeypatch.setattr(renderer_mod, "measure_while_rendering", lambda pipe: True)
    threads = []
    estimate = flicker.estimate_flow
    monkeypatch.setattr(flicker, "estimate_flow",
                        lambda *a, **k: threads.append(threading.current_thread().name) or estimate(*a, **k))
    plan = _video_plan(tmp_path / "out", inits, 0.8)
    summary = renderer_mod.Renderer().render(plan, None, lambda e: None)
    assert threads == ["kd-flicker"] * 8  # four pairs, two flows each, none after the render on the main thread
    threads.clear()
    assert summary["flicker"] == flicker.render_figures(str(tmp_path / "out"), plan["frames"], (W, H))


def test_a_file_that_is_not_a_vector_pass_is_refused_by_name(tmp_path):
    """Blender's Vector pass has four channels; a depth pass (one) or an image is said to be something else."""
    import OpenEXR

    depth = str(tmp_path / "depth.exr")
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"Z": np.ones((8, 8), np.float32)}).write(depth)
    with pytest.raises(flows.FlowError, match=r"depth\.exr is not a Vector pass: it has channels Z"):
        flows.read_vector_pass(depth)
    picture = str(tmp_path / "frame.png")
    cv2.imwrite(picture, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="frame.png"):
        flows.read_vector_pass(picture)


def test_renders_measure_large_frames_scaled_down():
    """A render's own figure is taken at most RENDER_SIDE pixels a side (optical flow on full-size frames would add
    about 0.4 s a frame at 1024x1024); smaller frames are measured as they are."""
    assert flicker._shrunk(np.zeros((512, 1024, 3), np.uint8)).shape == (128, 256, 3)
    small = np.zeros((H, W, 3), np.uint8)
    assert flicker._shrunk(small) is small
