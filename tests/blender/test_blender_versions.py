"""The built zip on the bpy 4.2 LTS wheel (its own venv), with the engine in an external Python."""

import json
import os
import subprocess
import sys

import pytest

from common import ROOT

from engine.frames import frame_filename

BPY42_PYTHON = os.environ.get("KD_BPY42_PYTHON", os.path.join(ROOT, ".venv-bpy42", "bin", "python"))


def test_extension_installs_bakes_and_generates_on_bpy_4_2(built_zip, tmp_path):
    assert os.path.isfile(BPY42_PYTHON), "the bpy 4.2 venv is missing: run `make setup`"
    out = str(tmp_path / "out")
    env = dict(os.environ)
    env.pop("BLENDER_USER_RESOURCES", None)
    done = subprocess.run([BPY42_PYTHON, os.path.join(ROOT, "tests", "blender", "blender_version_check.py"), built_zip,
                           sys.executable, out], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # Blender may print memory statistics at exit after the result line.
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert result["blender"].startswith("4.2")
    assert result["installed"] == ["FINISHED"] and result["enabled"]
    assert result["weights_at_2"] == [round(2 / 3, 4), round(1 / 3, 4)]
    assert result["bake"] == ["FINISHED"] and result["generate"] == ["FINISHED"]
    assert result["strip"]["start"] == 1 and result["strip"]["duration"] == 4
    assert result["strip"]["files"] == [frame_filename(f) for f in range(1, 5)]
    assert all(os.path.isfile(os.path.join(out, frame_filename(f))) for f in range(1, 5))
    # Timeline features on 4.2: schedules into F-curves, Giffusion transitions, text strips, Deforum files, presets.
    assert result["schedule"] == result["steps_schedule"] == result["transitions"] == ["FINISHED"]
    assert result["zoom"] == [1.0, 1.1, 1.2, 1.3] and result["steps"] == [2, 2, 3, 4]  # Deforum truncates
    assert result["strip_prompts"] == [{"a corgi": 1.0}, {"a corgi": 1.0}, {"a corgi": 0.5, "a lion": 0.5},
                                       {"a lion": 1.0}]
    assert result["deforum"] == ["FINISHED"] and result["deforum_prompts"] == [[1, "a"], [3, "b"]]
    assert result["preset"] == ["FINISHED"]
    # Audio on a build without audio support: a clear message for strips, files still drive keys.
    assert result["audio_support"] is False
    assert "no audio support" in result["strip_link"] and "use the audio file" in result["strip_link"]
    assert result["file_link"] == ["FINISHED"]
    assert max(range(4), key=lambda i: result["audio_zoom"][i]) == 1 and result["audio_zoom"][1] == 2.0
    assert result["depth_files"] == [True] * 4 and result["engine_restored"] == "CYCLES"
    # Masks: the cube's object index pass and the mask strip's square, both in the middle of the frame.
    from engine.image_ops import read_depth

    assert result["index_mask"]["select"] == [3]
    index = read_depth(result["index_mask"]["path"])
    assert index[32, 32] == 3 and index[0, 0] == 0
    assert read_depth(result["depth_path"])[32, 32] == pytest.approx(6.0, rel=0.01)  # the plane, straight ahead
    square = read_depth(result["strip_mask"]["path"])
    assert "select" not in result["strip_mask"] and square.shape == (64, 64)
    assert square[32, 32] > 0.9 and square[2, 2] < 0.1
