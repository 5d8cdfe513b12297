"""Feedback 3D with Follow Motion (engine/modes/feedback.py): the previous frame moves along each frame's Vector pass
(objects that move by themselves), forwards along the backward flows and back along the forward flows, a cadence's
in-betweens come from both keys along them, and the flow files are part of the frames' hashes."""

from __future__ import annotations

import os

import numpy as np
from test_image_ops import _write_exr

from engine import plan as plan_mod
from engine.modes.feedback import Motion
from engine.renderer import Renderer

W, H, FRAMES, STEP = 64, 48, 5, 4  # the picture moves STEP pixels right per frame


def _vector_pass(path, dx: float) -> str:
    """A Vector pass in Blender's convention for content moving dx pixels right every frame: X, Y = position in the
    previous frame minus now (y up), Z, W = now minus the next frame."""
    x = np.full((H, W), -dx)
    zero = np.zeros((H, W))
    return _write_exr(path, {"R": x, "G": zero, "B": x, "A": zero})


def _records(tmp_path) -> list[dict]:
    return [{"frame": 1 + i, "seed": 3, "steps": 4, "guidance": 5.0, "strength": 0.5,
             "prompts": [{"text": "a red circle", "negative": "", "weight": 1.0}],
             "flow": _vector_pass(tmp_path / f"vector_{i}.exr", STEP)} for i in range(FRAMES)]


def _settings(tmp_path, flow_guide: bool = True, cadence: int = 1) -> dict:
    return {"mode": "FEEDBACK", "model": "embedded:tiny", "width": W, "height": H, "output_dir": str(tmp_path / "out"),
            "motion_mode": "3D", "camera_source": "SCENE", "flow_guide": flow_guide, "cadence": cadence}


def _square(x: int) -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    image[16:32, x:x + 12] = 255
    return image


def _left_edge(image: np.ndarray) -> int:
    return int(np.argmax(image[24, :, 0] > 127))


def test_the_previous_frame_moves_along_the_vector_pass_both_ways(tmp_path):
    settings = plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
                                  "settings": _settings(tmp_path), "frames": _records(tmp_path)})["settings"]
    motion = Motion(settings, _records(tmp_path))
    assert motion.flows
    assert _left_edge(motion.step(_square(10), 1)) == 10 + STEP
    assert _left_edge(motion.between(_square(10), 0, 3)) == 10 + 3 * STEP
    assert _left_edge(motion.between(_square(30), 3, 1)) == 30 - 2 * STEP  # back along the forward flows
    # Without Follow Motion the scene camera (none here: a still one) moves nothing.
    still = Motion({**settings, "flow_guide": False}, _records(tmp_path))
    assert not still.flows and _left_edge(still.step(_square(10), 1)) == 10


def test_a_feedback_chain_follows_the_vector_pass_and_hashes_it(tmp_path):
    records = _records(tmp_path)
    plan = plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
                              "settings": _settings(tmp_path, cadence=2), "frames": records})
    summary = Renderer().render(plan, None, lambda e: None)
    assert summary["rendered"] == FRAMES
    assert all(os.path.isfile(os.path.join(str(tmp_path / "out"), f"frame_{n:06d}.png")) for n in range(1, 6))
    hashes = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    _vector_pass(tmp_path / "vector_2.exr", STEP + 1)  # frame 3's motion re-rendered: it and what follows change
    os.utime(tmp_path / "vector_2.exr", ns=(1, 1))
    changed = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    # Frame 2 is an in-between of keys 1 and 3, so it depends on frame 3 too.
    assert [hashes[f] == changed[f] for f in range(1, 6)] == [True, False, False, False, False]
    unguided = plan_mod.validate({**plan, "settings": _settings(tmp_path, flow_guide=False, cadence=2)})
    assert plan_mod.frame_hashes(unguided["settings"], unguided["frames"]) != hashes
