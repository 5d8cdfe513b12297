"""Create Engine Environment (the preferences' Engine Environment box): make a virtual environment from Blender's own
Python, pip-install the engine requirements into it and point Engine Python at it. Modal in the UI (progress, Esc or
Cancel stops it), blocking from scripts and in background mode; pip only runs when Blender's online access allows
it, or offline from a folder of wheels."""

from __future__ import annotations

import os
import sys

import bpy
from bpy.props import StringProperty

from .. import preferences
from ..venv_installer import VenvInstaller
from . import engine_check

EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE_REQUIREMENTS = os.path.join(EXTENSION_DIR, "requirements", "engine.txt")
OFFLINE = "Blender's online access is off (Preferences > System > Network): allow it, or give a folder of wheels to " \
          "install from"

_installer: VenvInstaller | None = None
# What the preferences draw while and after an installation runs (not saved; gone when Blender restarts).
state = {"running": False, "progress": 0.0, "message": "", "error": ""}


def running() -> bool:
    return _installer is not None and not _installer.finished


def blocker(prefs) -> str:
    """Why Create Engine Environment can't run now, or ''."""
    if not bpy.app.online_access and not (prefs and prefs.venv_wheels_dir.strip()):
        return OFFLINE
    return ""


def target_folder(prefs) -> str:
    folder = prefs.venv_dir.strip() if prefs else ""
    if folder:
        return bpy.path.abspath(folder)
    return bpy.utils.extension_path_user(preferences.__package__, path="engine-venv", create=True)


def _update_state(installer: VenvInstaller) -> None:
    state.update(running=not installer.finished, progress=installer.progress, message=installer.message,
                 error=installer.error)


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


class KD_OT_engine_venv_create(bpy.types.Operator):
    """Create a virtual environment for the engine from Blender's Python, install the engine requirements into it
    (from PyPI, or from a folder of wheels) and use it as Engine Python"""

    bl_idname = "keyframe_diffusion.engine_venv_create"
    bl_label = "Create Engine Environment"

    # For scripts and tests; the UI takes them from the preferences.
    requirements: StringProperty(name="Requirements", description="Requirements file (default: the extension's "
                                 "requirements/engine.txt)", default="", options={"HIDDEN", "SKIP_SAVE"})
    find_links: StringProperty(name="Wheels Folder", description="Install offline from this folder of wheels "
                               "(default: the preferences' Install From Wheels)", default="",
                               options={"HIDDEN", "SKIP_SAVE"})
    torch_index: StringProperty(name="Torch Index", description="Extra package index for torch (default: the "
                                "preferences' Torch Index)", default="", options={"HIDDEN", "SKIP_SAVE"})

    _timer = None

    def _make_installer(self, context) -> VenvInstaller | None:
        """The installer for these settings, or None after reporting why it can't run."""
        if running():
            self.report({"ERROR"}, "An engine environment is already being created (Esc or Cancel stops it)")
            return None
        prefs = preferences.get(context)
        props = self.properties
        # Set on the operator (even to ''), a value overrides the preferences'.
        find_links = self.find_links if props.is_property_set("find_links") else (
            prefs.venv_wheels_dir if prefs else "")
        torch_index = self.torch_index if props.is_property_set("torch_index") else (
            prefs.venv_torch_index if prefs else "")
        find_links = bpy.path.abspath(find_links.strip()) if find_links.strip() else ""
        if not bpy.app.online_access and not find_links:
            self.report({"ERROR"}, OFFLINE)
            return None
        if find_links and not os.path.isdir(find_links):
            self.report({"ERROR"}, f"The wheels folder {find_links} does not exist")
            return None
        requirements = bpy.path.abspath(self.requirements) if self.requirements.strip() else ENGINE_REQUIREMENTS
        if not os.path.isfile(requirements):
            self.report({"ERROR"}, f"The requirements file {requirements} does not exist")
            return None
        return VenvInstaller(target_folder(prefs), sys.executable, [requirements], find_links=find_links,
                             torch_index=torch_index.strip())

    def execute(self, context):
        global _installer
        installer = self._make_installer(context)
        if installer is None:
            return {"CANCELLED"}
        _installer = installer
        try:
            installer.run_blocking()
        except KeyboardInterrupt:  # Ctrl+C in a terminal: stop pip, remove the half environment
            installer.cancel()
            installer.wait()
        finally:
            _update_state(installer)
            installer.poll()
        return self._finish(context, installer)

    def invoke(self, context, event):
        global _installer
        if bpy.app.background or context.window is None:
            return self.execute(context)
        installer = self._make_installer(context)
        if installer is None:
            return {"CANCELLED"}
        _installer = installer
        installer.start()
        _update_state(installer)
        wm = context.window_manager
        wm.progress_begin(0.0, 1.0)
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        _redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        installer = _installer
        if event.type == "ESC" and event.value == "PRESS":
            installer.cancel()
            return {"RUNNING_MODAL"}  # Esc is ours while installing
        if event.type == "TIMER":
            installer.poll()
            _update_state(installer)
            context.window_manager.progress_update(installer.progress)
            _redraw(context)
            if installer.finished:
                wm = context.window_manager
                wm.event_timer_remove(self._timer)
                wm.progress_end()
                return self._finish(context, installer)
        return {"PASS_THROUGH"}

    def cancel(self, context):
        # Blender ends a modal operator this way when its window closes or a file loads: stop pip with it.
        if _installer is not None:
            _installer.cancel()
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        state.update(running=False, message="Engine environment: cancelled")

    def _finish(self, context, installer: VenvInstaller):
        _redraw(context)
        if installer.cancelled:
            self.report({"WARNING"}, "Engine environment: cancelled")
            return {"CANCELLED"}
        if installer.error:
            self.report({"ERROR"}, installer.error)
            return {"CANCELLED"}
        prefs = preferences.get(context)
        prefs.python_path = installer.python
        _, lines = engine_check.check(context)  # what the new environment can do (torch and the device)
        engine_check.last_lines[:] = lines
        _redraw(context)
        self.report({"INFO"}, f"Engine environment ready: {installer.python}")
        return {"FINISHED"}


class KD_OT_engine_venv_cancel(bpy.types.Operator):
    """Stop creating the engine environment (the half-made environment is removed)"""

    bl_idname = "keyframe_diffusion.engine_venv_cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if not running():
            return {"CANCELLED"}
        _installer.cancel()
        _update_state(_installer)
        _redraw(context)
        return {"FINISHED"}


classes = (KD_OT_engine_venv_create, KD_OT_engine_venv_cancel)
