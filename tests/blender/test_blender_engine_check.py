"""The preferences' Check Engine button: a wrong interpreter path is a clear message, a Python without the engine
libraries says what is missing, Blender's own Python is ready (the check itself: tests/engine/test_environment.py)."""

import sys

import pytest

BASE_PYTHON = getattr(sys, "_base_executable", None)


def test_check_engine_button_in_blender(extension):
    bpy = pytest.importorskip("bpy")

    session = extension.engine_link.session
    prefs = extension.settings.preferences.get()
    try:
        prefs.python_path = "/nowhere/python3"
        with pytest.raises(RuntimeError, match="'/nowhere/python3' does not exist"):  # the operator's ERROR report
            bpy.ops.keyframe_diffusion.check_engine()
        assert session.state.check_lines == ["Problem: engine Python '/nowhere/python3' does not exist; fix it in the "
                                    "extension preferences"]
        prefs.python_path = BASE_PYTHON
        ready, lines = session.check()
        assert not ready and any(line.startswith("Problem: missing: torch") for line in lines)
        prefs.python_path = ""  # Blender's own Python (here the test venv's) with what it has
        assert bpy.ops.keyframe_diffusion.check_engine() == {"FINISHED"}
        assert session.state.check_lines[-1] == "Ready" and session.state.check_lines[0].startswith("Python 3.11")
    finally:
        prefs.python_path = ""
