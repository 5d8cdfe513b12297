"""Flow-guided video mode (engine/modes/guided.py): the init blend, hashes that chain, resume from the frames on disk,
and less flicker than unguided frames at the same strength with the embedded model. Inputs pan a texture 2 pixels a
frame (tests/engine/test_flicker.py's pictures), so the motion is known and the input itself does not flicker."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from test_flicker import H, W, panned, texture

from engine import plan as plan_mod
from engine.modes.guided import guided_init
from engine.renderer import Renderer

FRAMES = 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("inputs")
    picture = texture(8)
    paths = []
    for t in range(FRAMES):
        paths.append(str(folder / f"in_{t}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(panned(picture, 2 * t), cv2.COLOR_RGB2BGR))
    return paths


def video_plan(out, inits: list[str], guided: bool = True, strength: float = 0.5, guide: float = 0.8,
               model: str = "embedded:tiny", steps: int = 4) -> dict:
    records = [{"frame": 1 + i, "seed": 7, "steps": steps, "guidance": 5.0, "strength": strength, "guide": guide,
                "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}], "init": {"path": path}}
               for i, path in enumerate(inits)]
    return plan_mod.validate({
        "schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
        "settings": {"mode": "VIDEO", "model": model, "width": W, "height": H, "output_dir": str(out),
                     "batch_size": 3, "flow_guide": guided},
        "frames": records})


def frames_in(folder) -> list[np.ndarray]:
    return [cv2.imread(os.path.join(str(folder), f"frame_{n:06d}.png")) for n in range(1, FRAMES + 1)]


def test_init_blends_the_warped_previous_output_where_visible():
    current = np.full((H, W, 3), 100, np.uint8)
    previous = np.full((H, W, 3), 200, np.uint8)
    previous[:, :10] = 0  # a dark band, which moves 4 pixels right with the content
    backward = np.zeros((H, W, 2), np.float32)
    backward[..., 0] = -4.0
    forward = -backward
    init = guided_init(current, previous, backward, forward, 0.25)
    # Visible: 0.75 * input + 0.25 * the previous output from 4 pixels to the left.
    assert (init[:, 14:] == 125).all() and (init[:, 4:10] == 75).all()
    # The 4 columns that came from outside the picture are the input alone.
    assert (init[:, :4] == 100).all()


def test_guided_frames_chain_their_hashes(inputs, tmp_path):
    plan = video_plan(tmp_path, inputs)
    hashes = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    plan["frames"][2]["guide"] = 0.3
    changed = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    assert [hashes[f] == changed[f] for f in range(1, FRAMES + 1)] == [True, True, False, False, False, False]
    unguided = video_plan(tmp_path, inputs, guided=False)
    before = plan_mod.frame_hashes(unguided["settings"], unguided["frames"])
    unguided["frames"][2]["guide"] = 0.3  # unused without flow_guide: nothing is out of date
    assert plan_mod.frame_hashes(unguided["settings"], unguided["frames"]) == before


def test_resume_continues_from_the_frames_on_disk(inputs, tmp_path):
    renderer = Renderer()
    whole = renderer.render(video_plan(tmp_path / "whole", inputs), None, lambda e: None)
    assert whole["rendered"] == FRAMES
    parts = video_plan(tmp_path / "parts", inputs)
    first = renderer.render(parts, (1, 3), lambda e: None)  # as a render killed after frame 3 left it
    assert first["rendered"] == 3
    events = []
    rest = renderer.render(parts, None, events.append)
    assert rest["rendered"] == 3 and rest["skipped"] == 3
    assert [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]] == [4, 5, 6]
    for a, b in zip(frames_in(tmp_path / "whole"), frames_in(tmp_path / "parts")):
        assert np.array_equal(a, b)
    # A range in the middle of a chain takes on the missing frames before it.
    middle = renderer.render(video_plan(tmp_path / "middle", inputs), (4, 5), lambda e: None)
    assert middle["rendered"] == 5


def test_guidance_halves_the_flicker_of_the_embedded_model(inputs, tmp_path):
    renderer = Renderer()
    figures = {}
    for guided in (False, True):
        plan = video_plan(tmp_path / str(guided), inputs, guided=guided, model="embedded:shapes", steps=10)
        figures[guided] = renderer.render(plan, None, lambda e: None)["flicker"]
    assert figures[True]["reference"]["warping_error"] < 0.001  # the input only pans
    assert figures[True]["warping_error"] < 0.6 * figures[False]["warping_error"], figures
