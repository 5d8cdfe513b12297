"""Add and remove ControlNet units, LoRAs and motion LoRAs (collections of the scene settings)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty

from ..settings import compat

KINDS = [("CONTROLNET", "ControlNet Unit", ""), ("LORA", "LoRA", ""), ("MOTION_LORA", "Motion LoRA", "")]
COLLECTIONS = {"CONTROLNET": ("controlnets", "active_controlnet"), "LORA": ("loras", "active_lora"),
               "MOTION_LORA": ("motion_loras", "active_motion_lora")}


class _CollectionEdit:
    bl_options = {"REGISTER", "UNDO"}

    kind: EnumProperty(items=KINDS, name="Kind", description="Which list the item is added to or removed from")

    def collection(self, context) -> tuple:
        """(scene settings, the kind's collection, the name of its active-index property)."""
        settings = context.scene.keyframe_diffusion
        name, active = COLLECTIONS[self.kind]
        return settings, getattr(settings, name), active


class KD_OT_collection_add(_CollectionEdit, bpy.types.Operator):
    bl_idname = "keyframe_diffusion.item_add"
    bl_label = "Add"
    bl_description = "Add a ControlNet unit, a LoRA or a motion LoRA"

    def execute(self, context):
        settings, items, active = self.collection(context)
        item = items.add()
        if self.kind == "CONTROLNET":
            item.name = f"Unit {len(items)}"
        setattr(settings, active, len(items) - 1)
        return {"FINISHED"}


class KD_OT_collection_remove(_CollectionEdit, bpy.types.Operator):
    bl_idname = "keyframe_diffusion.item_remove"
    bl_label = "Remove"
    bl_description = "Remove the active ControlNet unit, LoRA or motion LoRA"

    def execute(self, context):
        settings, items, active = self.collection(context)
        index = getattr(settings, active)
        if not 0 <= index < len(items):
            self.report({"WARNING"}, "Nothing selected to remove")
            return {"CANCELLED"}
        if self.kind == "CONTROLNET":
            _remove_unit_animation(context.scene, index, len(items))
        items.remove(index)
        setattr(settings, active, max(0, min(index, len(items) - 1)))
        return {"FINISHED"}


def _remove_unit_animation(scene, index: int, count: int) -> None:
    """Keys of the removed unit go with it, and later units' keys follow their units down one index."""
    prefix = "keyframe_diffusion.controlnets["
    for fcurve in list(compat.action_fcurves(scene)):
        path = fcurve.data_path
        if not path.startswith(prefix):
            continue
        number = int(path[len(prefix):path.index("]")])
        if number == index:
            compat.remove_fcurve(scene, fcurve)
        elif number > index:
            fcurve.data_path = f"{prefix}{number - 1}{path[path.index(']'):]}"


classes = (KD_OT_collection_add, KD_OT_collection_remove)
