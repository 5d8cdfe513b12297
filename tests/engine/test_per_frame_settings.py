"""Settings that became per frame (keyable in Blender) are honoured per frame by the engine: the plane distance of 3D
feedback, the latent coherence pull's every-N and the mask feather; the plan validates them with field and frame."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine import image_ops
from engine import plan as plan_mod
from engine.modes.diffuse import _blur, _coherence_callback
from engine.modes.feedback import Motion

CAMERA = {"name": "Camera", "matrix_world": np.eye(4).tolist(), "type": "PERSP", "lens": 50.0, "sensor_width": 36.0,
          "sensor_height": 24.0, "sensor_fit": "AUTO", "shift_x": 0.0, "shift_y": 0.0, "clip_start": 0.1,
          "clip_end": 100.0}


def test_the_background_plane_is_each_frames_own(tmp_path):
    depth = str(tmp_path / "empty.npy")
    image_ops.write_depth(depth, np.full((8, 8), 1e10, np.float32))  # nothing hit: the plane stands in everywhere
    settings = {"width": 8, "height": 8, "motion_mode": "3D", "border": "REPLICATE", "camera_source": "SCENE",
                "depth_source": "SCENE", "plane_distance": 10.0}
    records = [{"frame": f, "camera": CAMERA, "depth": depth, "motion": {"plane_distance": d}}
               for f, d in ((1, 5.0), (2, 9.0))]
    motion = Motion(settings, records)
    assert motion._depth(0).max() == 5.0 and motion._depth(1).min() == 9.0
    del records[1]["motion"]["plane_distance"]  # a plan without per-frame values: the settings' value
    assert motion._depth(1).max() == 10.0


def test_coherence_pulls_each_frame_on_its_own_steps():
    job = SimpleNamespace(settings={"coherence_every": 1})
    # alpha 0: the reference stays where it is, so each pull moves the latents further towards it.
    records = [{"frame": 1, "image": {"coherence_scale": 1.0, "coherence_alpha": 0.0, "coherence_every": 1}},
               {"frame": 2, "image": {"coherence_scale": 1.0, "coherence_alpha": 0.0, "coherence_every": 2}}]
    reference = torch.zeros(2, 4, 2, 2)
    pull = _coherence_callback(job, records, reference)
    latents = torch.ones(2, 4, 2, 2)
    first = pull(latents, 0)  # step 1: frame 1 is due, frame 2 (every 2nd step) is not
    assert torch.all(first[0] < 1.0) and torch.equal(first[1], latents[1])
    second = pull(first, 1)  # step 2: both are due
    assert torch.all(second[0] < first[0]) and torch.all(second[1] < 1.0)
    same = _coherence_callback(SimpleNamespace(settings={"coherence_every": 2}),
                               [{"frame": 1, "image": {"coherence_scale": 50.0}}], torch.zeros(1, 4, 2, 2))
    assert torch.equal(same(torch.ones(1, 4, 2, 2), 0), torch.ones(1, 4, 2, 2))  # the plan's value without one


def test_mask_feather_is_the_frames():
    assert _blur({"mask": {"path": "m.png", "blur": 9}}, {"mask_blur": 4}) == 9
    assert _blur({"mask": {"path": "m.png"}}, {"mask_blur": 4}) == 4


@pytest.mark.parametrize("where, value, message", [
    ("motion", {"plane_distance": 0.0}, "'motion.plane_distance' 0 is out of range above 0"),
    ("image", {"coherence_every": 0}, "'image.coherence_every' 0 is out of range 1..1000"),
])
def test_per_frame_values_are_validated_with_field_and_frame(tmp_path, where, value, message):
    plan = {"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
            "settings": {"mode": "FEEDBACK", "model": "embedded:tiny", "width": 64, "height": 64,
                         "output_dir": str(tmp_path)},
            "frames": [{"frame": 4, "prompts": [{"text": "a", "weight": 1.0}], "seed": 0, "steps": 2,
                        "guidance": 5.0, where: value}]}
    with pytest.raises(plan_mod.PlanError, match=r"frames\[0\] \(frame 4\).*" + message.replace(".", r"\.")):
        plan_mod.validate(plan)
    plan["frames"][0].pop(where)
    plan["frames"][0]["mask"] = {"path": "m.png", "blur": 5000}
    with pytest.raises(plan_mod.PlanError, match=r"frame 4\) mask: 'blur' 5000 is out of range 0\.\.1024"):
        plan_mod.validate(plan)
