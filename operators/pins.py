"""Shot mode's pins: add one at the current frame (with its timeline marker), remove one (and its marker), jump to
one, give one whose marker was deleted a new marker."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..settings.properties import PATH_OPTIONS, PIN_SOURCES, pin_marker
from ..timeline import pins

_CURRENT = -(2**30)  # "the current frame" / "the active pin"


def _pin_index(context, index: int) -> int | None:
    settings = context.scene.keyframe_diffusion
    index = settings.active_pin if index == _CURRENT else index
    return index if 0 <= index < len(settings.pins) else None


def _active_strip(scene) -> str:
    """The Sequencer's active strip when it is an image or movie strip (what a Strip pin most likely means)."""
    editor = scene.sequence_editor
    strip = editor.active_strip if editor is not None else None
    return strip.name if strip is not None and strip.type in ("IMAGE", "MOVIE") else ""


class KD_OT_pin_add(bpy.types.Operator):
    """Pin a picture at the current frame: shot mode holds the shot to it there (a timeline marker shows the pin;
    move the marker to move the pin)"""

    bl_idname = "keyframe_diffusion.pin_add"
    bl_label = "Add Pin"
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(name="Source", items=PIN_SOURCES, default="RENDER",
                         description="Where the pinned picture comes from")
    frame: IntProperty(name="Frame", default=_CURRENT, description="Frame of the pin (default: the current frame)")
    filepath: StringProperty(name="Image", subtype="FILE_PATH", default="", options=PATH_OPTIONS,
                             description="Image File: the picture to pin")
    strip: StringProperty(name="Strip", default="", description="Strip: the image or movie strip (default: the "
                          "Sequencer's active strip)")
    label: StringProperty(name="Label", default="", description="The pin's name (default: from its source)")
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        if self.source == "FILE" and not self.filepath:
            context.window_manager.fileselect_add(self)  # pick the picture, then execute()
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context):
        scene = context.scene
        strip = self.strip or (_active_strip(scene) if self.source == "STRIP" else "")
        frame = scene.frame_current if self.frame == _CURRENT else self.frame
        try:
            pin = pins.add_pin(scene, self.source, frame, self.label, self.filepath, strip)
        except pins.PinError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Pinned '{pin.name}' at frame {frame}")
        return {"FINISHED"}


class KD_OT_pin_remove(bpy.types.Operator):
    """Remove a pin and its timeline marker"""

    bl_idname = "keyframe_diffusion.pin_remove"
    bl_label = "Remove Pin"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Pin", default=_CURRENT, description="Which pin (default: the active one)")

    def execute(self, context):
        index = _pin_index(context, self.index)
        if index is None:
            self.report({"WARNING"}, "No pin selected to remove")
            return {"CANCELLED"}
        pins.remove_pin(context.scene, index)
        return {"FINISHED"}


class KD_OT_pin_jump(bpy.types.Operator):
    """Move the playhead to a pin's frame"""

    bl_idname = "keyframe_diffusion.pin_jump"
    bl_label = "Jump to Pin"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Pin", default=_CURRENT, description="Which pin (default: the active one)")

    def execute(self, context):
        index = _pin_index(context, self.index)
        if index is None:
            self.report({"WARNING"}, "No pin selected")
            return {"CANCELLED"}
        scene = context.scene
        scene.frame_set(scene.keyframe_diffusion.pins[index].frame)
        return {"FINISHED"}


class KD_OT_pin_restore_marker(bpy.types.Operator):
    """Give the pin a timeline marker again, at the frame it kept"""

    bl_idname = "keyframe_diffusion.pin_restore_marker"
    bl_label = "Restore Marker"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Pin", default=_CURRENT, description="Which pin (default: the active one)")

    def execute(self, context):
        index = _pin_index(context, self.index)
        if index is None:
            return {"CANCELLED"}
        pin = context.scene.keyframe_diffusion.pins[index]
        if pin_marker(pin) is None:
            pins.restore_marker(context.scene, pin)
        return {"FINISHED"}


classes = (KD_OT_pin_add, KD_OT_pin_remove, KD_OT_pin_jump, KD_OT_pin_restore_marker)
