"""A ControlNet unit fed by Blender's Normal pass, through Generate, on the bpy 5.0 wheel (in process) and on the bpy 4.2
LTS wheel (its own venv, tests/blender/normal_pass_check.py, with the engine in this Python).

Blender writes the pass as an EXR with channels A, X, Y, Z (5.0) or X, Y, Z (4.2); OpenCV reads only R, G, B, A and Y,
so every Generate failed with "normal must be HxWx3" before the engine read EXR channels by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common import ROOT

bpy = pytest.importorskip("bpy")

BPY42_PYTHON = os.environ.get("KD_BPY42_PYTHON", os.path.join(ROOT, ".venv-bpy42", "bin", "python"))


@pytest.fixture(scope="module")
def tiny_controlnet(tmp_path_factory):
    from engine.tiny_model import make_tiny_controlnet

    return make_tiny_controlnet(str(tmp_path_factory.mktemp("controlnet") / "cn"))


def _check_normals(paths: list[str]) -> None:
    """The pass holds world-space unit normals: the cube's face towards the camera (-Y) in the middle, the floor (+Z)
    at the bottom."""
    from engine.image_ops import read_float_image

    for path in paths:
        assert path.endswith(".exr") and os.path.isfile(path)
        normals = read_float_image(path)
        assert normals.shape[:2] == (64, 64) and normals.shape[2] in (3, 4)
        np.testing.assert_allclose(normals[32, 32, :3], [0.0, -1.0, 0.0], atol=1e-3)
        np.testing.assert_allclose(normals[62, 32, :3], [0.0, 0.0, 1.0], atol=1e-3)


def test_normal_controlnet_generates_on_bpy_5(scene, tiny_controlnet):
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location, camera.rotation_euler = (0.0, -8.0, 4.0), (1.1, 0.0, 0.0)
    scene.render.engine = "CYCLES"
    scene.frame_end = 3
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    settings = scene.keyframe_diffusion
    settings.mode, settings.init_source, settings.strength = "VIDEO", "SCENE", 0.5
    bpy.ops.keyframe_diffusion.item_add(kind="CONTROLNET")
    unit = settings.controlnets[0]
    unit.model, unit.source = tiny_controlnet, "NORMAL"  # one scale for every frame: they batch together
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    folder = bpy.path.abspath(settings.output_dir)
    with open(os.path.join(folder, "plan.json")) as f:
        plan = json.load(f)
    assert plan["settings"]["controlnets"][0]["preprocessor"] == "NORMAL"
    _check_normals([r["control"][0]["image"] for r in plan["frames"]])
    assert all(os.path.isfile(os.path.join(folder, f"frame_{n:06d}.png")) for n in (1, 2, 3))


def test_normal_controlnet_generates_on_bpy_4_2(built_zip, tmp_path, tiny_controlnet):
    assert os.path.isfile(BPY42_PYTHON), "the bpy 4.2 venv is missing: run `make setup`"
    out = str(tmp_path / "out")
    env = dict(os.environ)
    env.pop("BLENDER_USER_RESOURCES", None)
    done = subprocess.run([BPY42_PYTHON, os.path.join(ROOT, "tests", "blender", "normal_pass_check.py"), built_zip,
                           sys.executable, out, tiny_controlnet], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert result["blender"].startswith("4.2") and result["installed"] == ["FINISHED"]
    assert result["generate"] == ["FINISHED"], result["generate"]
    assert result["frames"] == ["frame_000001.png", "frame_000002.png"]
    _check_normals(result["normals"])
