"""Plain helpers shared by every test layer (engine, blender, packaging): import them as `from common import ...`
(pytest.ini puts tests/ on the path). No fixtures here and no bpy: fixtures live in the conftest.py of the layer that
needs them, and this module must stay importable where bpy cannot be (`make test-engine`)."""

from __future__ import annotations

import json
import os
import tempfile

# The repository root (also the extension's package folder): tests/common.py -> tests -> root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Test data shared by the layers.
DATA = os.path.join(ROOT, "tests", "data")
# One temporary folder for the whole test session (Blender's user resources, the model cache, builds).
SESSION_TMP = tempfile.mkdtemp(prefix="kd-tests-")

PACKAGE = "bl_ext.user_default.keyframe_diffusion"


def make_plan(output_dir: str, frames: int = 3, steps: int = 2, model: str = "embedded:tiny", **settings) -> dict:
    """A small valid interpolate plan crossfading two prompts."""
    records = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        prompts = [{"text": "a red circle", "negative": "", "weight": 1 - t, "seed": 1},
                   {"text": "a blue square", "negative": "", "weight": t, "seed": 2}]
        records.append({"frame": i + 1, "prompts": [p for p in prompts if p["weight"] > 0], "seed": 0,
                        "steps": steps, "guidance": 5.0, "strength": 0.5, "camera": None})
    return {
        "schema": "keyframe_diffusion.plan",
        "version": 1,
        "settings": {"mode": "INTERPOLATE", "model": model, "width": 64, "height": 64, "output_dir": output_dir,
                     "batch_size": 2, **settings},
        "frames": records,
    }


def write_plan(path, plan: dict) -> str:
    with open(path, "w") as f:
        json.dump(plan, f)
    return str(path)
