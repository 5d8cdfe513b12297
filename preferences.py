"""Extension preferences: which Python runs the engine, and what the engine may do (download, unpickle)."""

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
        layout.prop(self, "allow_downloads")
        if self.allow_downloads and not bpy.app.online_access:
            layout.label(text="Blender's online access is off: downloads stay disabled", icon="ERROR")
        layout.prop(self, "allow_unsafe_weights")


def get(context=None) -> KD_Preferences | None:
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def register() -> None:
    bpy.utils.register_class(KD_Preferences)


def unregister() -> None:
    bpy.utils.unregister_class(KD_Preferences)
