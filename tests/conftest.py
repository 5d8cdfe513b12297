"""Shared fixtures. Blender tests use the real bpy wheel with the extension installed from its built zip, in a
throwaway user-resources folder, exactly as a user install does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SESSION_TMP = tempfile.mkdtemp(prefix="kd-tests-")
# Must be set before bpy is imported anywhere in this process.
os.environ["BLENDER_USER_RESOURCES"] = os.path.join(_SESSION_TMP, "blender-user")
# The embedded tiny model is built once per session into this cache and shared by every worker process.
os.environ["KEYFRAME_DIFFUSION_CACHE"] = os.path.join(_SESSION_TMP, "cache")

# No test may reach the network for a model.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PACKAGE = "bl_ext.user_default.keyframe_diffusion"


@pytest.fixture(scope="session")
def built_zip() -> str:
    out = os.path.join(_SESSION_TMP, "build")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_extension.py"), "--output-dir", out],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    path = done.stdout.strip().splitlines()[-1]
    assert path.endswith(".zip") and os.path.isfile(path)
    return path


@pytest.fixture(scope="session")
def extension(built_zip):
    """The extension installed and enabled through Blender's own installer; returns its package module."""
    import importlib

    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=built_zip, repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    assert PACKAGE in bpy.context.preferences.addons
    return importlib.import_module(PACKAGE)


@pytest.fixture
def scene(extension, tmp_path):
    """A fresh empty scene with frames 1-6, writing into a test folder."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 6
    scene.frame_set(1)
    settings = scene.keyframe_diffusion
    # Plumbing tests use the random tiny model, which the tiny ControlNets and LoRAs are built for; the default (the
    # trained shapes model) has its own tests.
    settings.model = "embedded:tiny"
    settings.output_dir = str(tmp_path / "out")
    settings.batch_size = 3
    settings.steps = 2
    yield scene
    extension.jobs.release_worker()


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    from engine.tiny_model import make_tiny_model

    return make_tiny_model(os.path.join(_SESSION_TMP, "tiny-model"))


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
