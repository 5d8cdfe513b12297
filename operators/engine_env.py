"""Create Engine Environment (the preferences' Engine Environment box): make a virtual environment from Blender's own
Python, pip-install the engine requirements into it and point Engine Python at it. Modal in the UI (progress, Esc or
Cancel stops it), blocking from scripts and in background mode; pip only runs when Blender's online access allows
it, or offline from a folder of wheels."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..engine_link import session
from ..engine_link.venv_installer import VenvInstaller
from ..settings import preferences


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
        prefs = preferences.get(context)
        props = self.properties
        # Set on the operator (even to ''), a value overrides the preferences'.
        find_links = self.find_links if props.is_property_set("find_links") else (
            prefs.venv_wheels_dir if prefs else "")
        torch_index = self.torch_index if props.is_property_set("torch_index") else (
            prefs.venv_torch_index if prefs else "")
        find_links = bpy.path.abspath(find_links.strip()) if find_links.strip() else ""
        requirements = bpy.path.abspath(self.requirements) if self.requirements.strip() else ""
        try:
            return session.new_installer(prefs, requirements, find_links, torch_index.strip())
        except ValueError as e:
            self.report({"ERROR"}, str(e))
            return None

    def execute(self, context):
        installer = self._make_installer(context)
        if installer is None:
            return {"CANCELLED"}
        try:
            installer.run_blocking()
        except KeyboardInterrupt:  # Ctrl+C in a terminal: stop pip, remove the half environment
            installer.cancel()
            installer.wait()
        finally:
            session.follow_installer()
            installer.poll()
        return self._finish(context, installer)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        installer = self._make_installer(context)
        if installer is None:
            return {"CANCELLED"}
        installer.start()
        session.follow_installer()
        wm = context.window_manager
        wm.progress_begin(0.0, 1.0)
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        _redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        installer = session.state.installer
        if event.type == "ESC" and event.value == "PRESS":
            installer.cancel()
            return {"RUNNING_MODAL"}  # Esc is ours while installing
        if event.type == "TIMER":
            installer.poll()
            session.follow_installer()
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
        if session.state.installer is not None:
            session.state.installer.cancel()
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        session.state.install.update(running=False, message="Engine environment: cancelled")

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
        session.check(context)  # what the new environment can do (torch and the device)
        _redraw(context)
        self.report({"INFO"}, f"Engine environment ready: {installer.python}")
        return {"FINISHED"}


class KD_OT_engine_venv_cancel(bpy.types.Operator):
    """Stop creating the engine environment (the half-made environment is removed)"""

    bl_idname = "keyframe_diffusion.engine_venv_cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if not session.installing():
            return {"CANCELLED"}
        session.state.installer.cancel()
        session.follow_installer()
        _redraw(context)
        return {"FINISHED"}


classes = (KD_OT_engine_venv_create, KD_OT_engine_venv_cancel)
