"""The preference screen: the extension's preferences (properties in settings/preferences.py) with what the engine
link found about the engine: the Check Engine report, the environment being created, the models."""

from __future__ import annotations

import bpy

from ..engine_link import session
from ..operators import models
from ..settings.preferences import ADDON_PACKAGE, PreferenceProperties

KIND_LABELS = {"pipeline": "Pipelines", "checkpoint": "Checkpoints", "lora": "LoRAs", "controlnet": "ControlNets",
               "motion_adapter": "Motion Adapters", "vae": "VAEs", "other": "Other"}
KIND_ICONS = {"pipeline": "PACKAGE", "checkpoint": "FILE", "lora": "MODIFIER", "controlnet": "CONSTRAINT",
              "motion_adapter": "ANIM", "vae": "IMAGE_DATA", "other": "QUESTION"}


class KD_Preferences(PreferenceProperties, bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.prop(self, "python_path")
        row.operator("keyframe_diffusion.check_engine", icon="CHECKMARK")
        if session.state.check_lines:
            box = layout.box().column(align=True)
            for line in session.state.check_lines:
                box.label(text=line, icon="ERROR" if line.startswith("Problem:") else "NONE")
        self.draw_environment(layout.box())
        layout.prop(self, "allow_downloads")
        if self.allow_downloads and not bpy.app.online_access:
            layout.label(text="Blender's online access is off: downloads stay disabled", icon="ERROR")
        layout.prop(self, "allow_unsafe_weights")
        self.draw_models(layout.box())

    def draw_environment(self, box):
        box.label(text="Engine Environment", icon="CONSOLE")
        col = box.column()
        col.enabled = not session.installing()  # the running installation keeps the settings it started with
        col.prop(self, "venv_dir")
        col.prop(self, "venv_wheels_dir")
        col.prop(self, "venv_torch_index")
        state = session.state.install
        if session.installing():
            row = box.split(factor=0.8, align=True)
            row.progress(factor=state["progress"], type="BAR", text=state["message"] or "Installing")
            row.operator("keyframe_diffusion.engine_venv_cancel", icon="CANCEL")
            return
        blocker = session.install_blocker(self, session.PREFERENCES)
        row = box.row()
        row.enabled = not blocker
        row.operator("keyframe_diffusion.engine_venv_create", icon="PACKAGE")
        if blocker:
            box.label(text=blocker, icon="INFO")
        if state["error"]:
            for line in state["error"].splitlines()[-3:]:
                box.label(text=line, icon="ERROR")
        elif state["message"]:
            box.label(text=state["message"])

    def draw_models(self, box):
        row = box.row(align=True)
        row.prop(self, "models_folder")
        row.operator("keyframe_diffusion.models_refresh", icon="FILE_REFRESH")
        for line in session.state.model_warnings:
            box.label(text=line, icon="ERROR")
        col = box.column(align=True)
        col.label(text=f"Built In ({len(models.EMBEDDED_MODELS)})")
        for ref, text in models.EMBEDDED_MODELS:
            split = col.row(align=True).split(factor=0.8)
            split.label(text=text, icon="PACKAGE")
            split.operator("keyframe_diffusion.model_use", text="Use").ref = ref
        groups = session.grouped_models()
        for kind, entries in groups:
            col = box.column(align=True)
            col.label(text=f"{KIND_LABELS[kind]} ({len(entries)})")
            for entry in entries:
                _draw_model(col.row(align=True), entry, KIND_ICONS[kind])
        if not groups:
            box.label(text=models.EMPTY_LIST_HERE if session.state.models_listed else models.NOT_LISTED, icon="INFO")
        blocker = session.download_blocker(self, session.PREFERENCES)
        row = box.row(align=True)
        row.enabled = not blocker
        row.prop(self, "download_repo")
        row.operator("keyframe_diffusion.model_download", icon="IMPORT")
        if blocker:
            box.label(text=blocker, icon="INFO")


def _draw_model(row, entry: dict, icon: str) -> None:
    split = row.split(factor=0.45)
    split.label(text=entry["name"], icon=icon)
    split = split.split(factor=0.75)
    split.label(text=f"{entry['detail']}  ({_size_text(entry['size_mb'])})")
    if entry["kind"] in ("pipeline", "checkpoint"):
        split.operator("keyframe_diffusion.model_use", text="Use").ref = entry["ref"]
    elif entry["kind"] == "lora":
        split.operator("keyframe_diffusion.model_add_lora", text="Add").path = entry["ref"]
    else:
        split.label(text="")


def _size_text(mb: float) -> str:
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb:.0f} MB" if mb >= 1 else "< 1 MB"
