"""The built zip on the other supported bpy wheels, each in its own venv (one Python holds one bpy), with the engine in
an external Python: 4.2 LTS and 4.5 LTS (Python 3.11), 5.2 LTS (Python 3.13). One script (blender_version_check.py)
checks them all; this test reads what it printed."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from common import ROOT

from engine.frames import frame_filename

VENVS = {"4.2": ".venv-bpy42", "4.5": ".venv-bpy45", "5.2": ".venv-bpy52"}


def bpy_python(version: str) -> str:
    variable = "KD_BPY" + version.replace(".", "") + "_PYTHON"
    return os.environ.get(variable, os.path.join(ROOT, VENVS[version], "bin", "python"))


def python313() -> str | None:
    """Python 3.13 as the Makefile finds it: $PYTHON313, pyenv's 3.13.0, or python3.13 on the PATH."""
    if os.environ.get("PYTHON313"):
        return os.environ["PYTHON313"]
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "prefix", "3.13.0"], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            return os.path.join(found.stdout.strip(), "bin", "python3.13")
    return shutil.which("python3.13")


def run_check(version: str, built_zip: str, out: str, script: str = "blender_version_check.py",
              engine: bool = True) -> dict:
    """Run a check script beside this file in the bpy wheel of `version` (5.0: this Python, which has it) with the
    built zip, the engine Python (when `engine`) and `out`; return the JSON it printed last, with its stderr."""
    python = sys.executable if version == "5.0" else bpy_python(version)
    if not os.path.isfile(python):
        if version == "5.2" and python313() is None:
            pytest.skip("bpy 5.2 needs Python 3.13, and this machine has none (set PYTHON313, or install it with "
                        "pyenv or as python3.13 on the PATH, then `make setup`)")
        pytest.fail(f"the bpy {version} venv is missing ({python}): run `make setup`")
    env = dict(os.environ)
    env.pop("BLENDER_USER_RESOURCES", None)
    args = [built_zip, sys.executable, out] if engine else [built_zip, out]
    here = os.path.join(ROOT, "tests", "blender")
    done = subprocess.run([python, os.path.join(here, script), *args], capture_output=True, text=True, timeout=900,
                          env=env, cwd=here)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Blender may print memory statistics at exit after the result line.
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    result["stderr"] = done.stderr
    return result


@pytest.mark.parametrize("version", list(VENVS))
def test_extension_installs_bakes_and_generates_on_other_blenders(version, built_zip, tmp_path):
    out = str(tmp_path / "out")
    result = run_check(version, built_zip, out)
    assert result["blender"].startswith(version)
    assert result["installed"] == ["FINISHED"] and result["enabled"]
    # Nothing the extension does is deprecated in this Blender (5.2 deprecated the frame_final_* strip timing), and
    # its path properties register without a warning (4.5 knows blend-relative paths).
    assert [line for line in result["deprecations"] if "keyframe_diffusion" in line] == []
    assert "blend relative" not in result["stderr"]
    assert result["weights_at_2"] == [round(2 / 3, 4), round(1 / 3, 4)]
    assert result["bake"] == ["FINISHED"] and result["generate"] == ["FINISHED"]
    assert result["strip"]["start"] == 1 and result["strip"]["duration"] == 4
    assert result["strip"]["files"] == [frame_filename(f) for f in range(1, 5)]
    assert all(os.path.isfile(os.path.join(out, frame_filename(f))) for f in range(1, 5))
    # The Sequencer's render is the generated frame: the first strip set the factory AgX view to Standard.
    assert result["view"] == ["Standard", "AgX"]
    assert result["render_difference"] <= 2
    # Frames fill the picture: the first Generate set the render size to the frames' (once); a size of another shape
    # the user picks afterwards stays, and the strip fits its height with bars at the sides.
    assert result["render_size"] == [64, 64, [1920, 1080]]
    fit = result["fit"]
    assert fit["size"] == [128, 96] and fit["transform"] == [1.5, 1.5, 0, 0, 0, 0.5, 0.5]
    assert abs(fit["picture_minus_frame"]) < 3 and fit["bars"] < 1
    # A longer, then a shorter range: the strip is updated in place, the effect on it and its opacity stay.
    longer, shorter = result["regenerated"]
    for state, (first, last) in ((longer, (1, 6)), (shorter, (2, 3))):
        assert state["done"] == ["FINISHED"] and state["alpha"] == 0.5 and state["effect_input"] == "Keyframe Diffusion"
        assert (state["start"], state["duration"]) == (first, last - first + 1)
        assert state["files"] == [frame_filename(f) for f in range(first, last + 1)]
        assert state["effect"] == [first, last + 1]
    # Timeline features: schedules into F-curves, Giffusion transitions, text strips, Deforum files, presets.
    assert result["schedule"] == result["steps_schedule"] == result["transitions"] == ["FINISHED"]
    assert result["zoom"] == [1.0, 1.1, 1.2, 1.3] and result["steps"] == [2, 2, 3, 4]  # Deforum truncates
    assert result["strip_prompts"] == [{"a corgi": 1.0}, {"a corgi": 1.0}, {"a corgi": 0.5, "a lion": 0.5},
                                       {"a lion": 1.0}]
    assert result["deforum"] == ["FINISHED"] and result["deforum_prompts"] == [[1, "a"], [3, "b"]]
    assert result["preset"] == ["FINISHED"]
    # Audio: 4.2's wheel has none (a clear message for strips); 4.5 and 5.2 key from a sound strip. Files work on all.
    assert result["audio_support"] is (version != "4.2")
    if result["audio_support"]:
        assert result["strip_link"] == "FINISHED"
        assert max(range(4), key=lambda i: result["audio_guidance"][i]) == 1 and result["audio_guidance"][1] == 2.0
    else:
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
    # Shot mode: pins as markers, a Scene Render pin and the depth control video.
    assert result["shot"] == {"pins": [[1, True], [4, True]], "markers": ["Pin: Render", "Pin: Render 2"],
                              "controls": [True] * 4}
