"""Extension preferences: which Python runs the engine, what the engine may do (download, unpickle), and the Models
box (what the engine finds in the Hugging Face cache and the models folder)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty


class KD_Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Engine Python",
        description="Python interpreter that runs the engine (empty: Blender's own Python with the bundled wheels)",
        subtype="FILE_PATH",
        default="",
    )
    venv_dir: StringProperty(
        name="Environment Folder",
        description="Where Create Engine Environment makes the engine's virtual environment (empty: the "
        "extension's user folder)",
        subtype="DIR_PATH",
        default="",
    )
    venv_wheels_dir: StringProperty(
        name="Install From Wheels",
        description="Install the engine requirements offline from this folder of wheels, e.g. a full build's "
        "wheels (empty: download them from PyPI, which needs Blender's online access)",
        subtype="DIR_PATH",
        default="",
    )
    venv_torch_index: StringProperty(
        name="Torch Index",
        description="Extra package index for torch, e.g. https://download.pytorch.org/whl/cpu (CPU only) or "
        "https://download.pytorch.org/whl/cu128 (CUDA 12.8); empty: PyPI's torch",
        default="",
    )
    allow_downloads: BoolProperty(
        name="Allow Model Downloads",
        description="Let the engine download missing models from Hugging Face (also needs Blender's online access)",
        default=False,
    )
    allow_unsafe_weights: BoolProperty(
        name="Allow Pickle Weights",
        description="Load .bin/.ckpt weights, which can run code when loaded. Only for models you trust",
        default=False,
    )

    models_folder: StringProperty(
        name="Models Folder",
        description="Folder where your checkpoints, LoRAs and diffusers model folders live (searched 3 levels deep)",
        subtype="DIR_PATH",
        default="",
    )
    download_repo: StringProperty(
        name="Hugging Face Model",
        description="Model id to download into the Hugging Face cache, e.g. stabilityai/sd-turbo",
        default="",
    )

    def draw(self, context):
        from .operators.engine_check import last_lines

        layout = self.layout
        row = layout.row(align=True)
        row.prop(self, "python_path")
        row.operator("keyframe_diffusion.check_engine", icon="CHECKMARK")
        if last_lines:
            box = layout.box().column(align=True)
            for line in last_lines:
                box.label(text=line, icon="ERROR" if line.startswith("Problem:") else "NONE")
        self.draw_environment(layout.box())
        layout.prop(self, "allow_downloads")
        if self.allow_downloads and not bpy.app.online_access:
            layout.label(text="Blender's online access is off: downloads stay disabled", icon="ERROR")
        layout.prop(self, "allow_unsafe_weights")
        self.draw_models(layout.box())

    def draw_environment(self, box):
        from .operators import engine_env

        box.label(text="Engine Environment", icon="CONSOLE")
        col = box.column()
        col.enabled = not engine_env.running()  # the running installation keeps the settings it started with
        col.prop(self, "venv_dir")
        col.prop(self, "venv_wheels_dir")
        col.prop(self, "venv_torch_index")
        state = engine_env.state
        if engine_env.running():
            row = box.split(factor=0.8, align=True)
            if hasattr(row, "progress"):  # UILayout.progress is Blender 4.0+
                row.progress(factor=state["progress"], type="BAR", text=state["message"] or "Installing")
            else:
                row.label(text=state["message"] or "Installing")
            row.operator("keyframe_diffusion.engine_venv_cancel", icon="CANCEL")
            return
        blocker = engine_env.blocker(self)
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
        from .operators import models

        row = box.row(align=True)
        row.prop(self, "models_folder")
        row.operator("keyframe_diffusion.models_refresh", icon="FILE_REFRESH")
        for line in models.warnings:
            box.label(text=line, icon="ERROR")
        for kind, entries in models.grouped():
            col = box.column(align=True)
            col.label(text=f"{models.KIND_LABELS[kind]} ({len(entries)})")
            for entry in entries:
                _draw_model(col.row(align=True), entry, models.KIND_ICONS[kind])
        blocker = models.download_blocker(self)
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


def get(context=None) -> KD_Preferences | None:
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def register() -> None:
    bpy.utils.register_class(KD_Preferences)


def unregister() -> None:
    bpy.utils.unregister_class(KD_Preferences)
