"""Add and remove ControlNet units and LoRAs (collections of the scene settings)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty


class _CollectionEdit:
    bl_options = {"REGISTER", "UNDO"}


class KD_OT_collection_add(_CollectionEdit, bpy.types.Operator):
    bl_idname = "keyframe_diffusion.item_add"
    bl_label = "Add"
    bl_description = "Add a ControlNet unit or a LoRA"

    kind: EnumProperty(items=[("CONTROLNET", "ControlNet Unit", ""), ("LORA", "LoRA", "")])

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        if self.kind == "CONTROLNET":
            item = settings.controlnets.add()
            item.name = f"Unit {len(settings.controlnets)}"
            settings.active_controlnet = len(settings.controlnets) - 1
        else:
            settings.loras.add()
            settings.active_lora = len(settings.loras) - 1
        return {"FINISHED"}


class KD_OT_collection_remove(_CollectionEdit, bpy.types.Operator):
    bl_idname = "keyframe_diffusion.item_remove"
    bl_label = "Remove"
    bl_description = "Remove the active ControlNet unit or LoRA"

    kind: EnumProperty(items=[("CONTROLNET", "ControlNet Unit", ""), ("LORA", "LoRA", "")])

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        collection, active = (("controlnets", "active_controlnet") if self.kind == "CONTROLNET"
                              else ("loras", "active_lora"))
        items = getattr(settings, collection)
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
    from .. import compat

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
