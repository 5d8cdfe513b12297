"""Create Engine Environment in Blender: the operator refuses to go online when Blender's online access is off,
installs offline from a folder of wheels and points Engine Python at the result; Cancel stops a running one. Real venv,
real pip, offline from a local wheels folder (the installer itself: tests/engine/test_engine_venv.py)."""

from __future__ import annotations

import os
import platform
import shutil
import sys

import pytest
from common import PACKAGE

from engine_link.venv_installer import VenvInstaller, venv_python, venv_ready


def test_create_engine_environment_operator(extension, tmp_path, wheels, requirements):
    import bpy
    from test_panels import Layout

    session = extension.engine_link.session
    prefs = extension.settings.preferences.get()
    assert bpy.app.online_access is False  # the bpy module runs offline
    target = bpy.utils.extension_path_user(PACKAGE, path="engine-venv")
    try:
        with pytest.raises(RuntimeError, match="online access is off"):
            bpy.ops.keyframe_diffusion.engine_venv_create(requirements=requirements)
        calls: list = []
        prefs.draw_environment(Layout(calls))
        assert ("operator", "keyframe_diffusion.engine_venv_create") in calls
        assert ("label", session.OFFLINE_HERE) in calls

        # Invoked as from the button: with no window (background) it runs blocking.
        assert bpy.ops.keyframe_diffusion.engine_venv_create("INVOKE_DEFAULT", requirements=requirements,
                                                             find_links=wheels) == {"FINISHED"}
        assert prefs.python_path == venv_python(target) and venv_ready(target)
        assert session.state.install["progress"] == 1.0 and not session.state.install["running"]
        lines = session.state.check_lines
        assert lines and lines[0] == f"Python {platform.python_version()} ({venv_python(target)})"
        assert "torch missing" in lines[1] and any(line.startswith("Problem: missing: torch") for line in lines)

        # One installation at a time; Cancel stops the running one and leaves Engine Python alone.
        other = str(tmp_path / "other-venv")
        running = VenvInstaller(other, sys.executable, [requirements], find_links=wheels)
        session.state.installer = running
        running.start()
        with pytest.raises(RuntimeError, match="already being created"):
            bpy.ops.keyframe_diffusion.engine_venv_create(requirements=requirements, find_links=wheels)
        session.state.install["running"] = True
        calls = []
        prefs.draw_environment(Layout(calls))
        assert ("progress", "") in calls and ("operator", "keyframe_diffusion.engine_venv_cancel") in calls
        assert bpy.ops.keyframe_diffusion.engine_venv_cancel() == {"FINISHED"}
        assert running.wait(30) and running.cancelled and not os.path.exists(other)
        assert bpy.ops.keyframe_diffusion.engine_venv_cancel() == {"CANCELLED"}  # nothing left to cancel
        assert prefs.python_path == venv_python(target)
    finally:
        prefs.python_path = ""
        session.state.installer = None
        session.state.install.update(running=False, progress=0.0, message="", error="")
        session.state.check_lines.clear()
        shutil.rmtree(target, ignore_errors=True)
