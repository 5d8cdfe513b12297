"""Schedule operators: Deforum/Giffusion strings, prompt schedules and settings files in and out of the scene."""

from __future__ import annotations

import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..engine import deforum, schedule
from ..settings.properties import ANIMATABLE
from ..timeline import schedules
from ..timeline.fcurves import TRANSITION_ITEMS
from .prompts import TransitionOptions, draw_transition

_PROP_ITEMS = [(p, p.replace("_", " ").title(), f"scene.keyframe_diffusion.{p}") for p in ANIMATABLE]


def _report_lines(op, kind: set, lines: list[str], limit: int = 8) -> None:
    for line in lines[:limit]:
        op.report(kind, line)
    if len(lines) > limit:
        op.report(kind, f"... and {len(lines) - limit} more (see the console)")
        print("\n".join(lines))


class KD_OT_schedule_import(bpy.types.Operator):
    """Key a setting from a Deforum/Giffusion keyframe string such as 0:(1.0), 30:(1.04), 60:(1+0.02*sin(t/5))"""

    bl_idname = "keyframe_diffusion.schedule_import"
    bl_label = "Import Schedule"
    bl_options = {"REGISTER", "UNDO"}

    prop: EnumProperty(name="Setting", items=_PROP_ITEMS, description="The animatable setting the schedule keys")
    text: StringProperty(name="Schedule", description="Deforum keyframe string; frame 0 is the scene's first frame")
    seed: IntProperty(name="Seed (s)", default=-1, min=-1,
                      description="Value of 's' in expressions (-1: the scene's seed)")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self, width=500)

    def execute(self, context):
        try:
            warnings = schedules.import_schedule(context.scene, self.prop, self.text,
                                                 None if self.seed < 0 else self.seed)
        except (schedule.ScheduleError, ValueError) as e:
            self.report({"ERROR"}, f"{self.prop}: {e}")
            return {"CANCELLED"}
        _report_lines(self, {"WARNING"}, warnings)
        return {"FINISHED"}


class KD_OT_schedule_export(bpy.types.Operator):
    """Copy a setting's animation as a Deforum keyframe string to the clipboard"""

    bl_idname = "keyframe_diffusion.schedule_export"
    bl_label = "Copy as Schedule"

    prop: EnumProperty(name="Setting", items=_PROP_ITEMS, description="The animatable setting the schedule keys")

    def execute(self, context):
        text = schedules.export_schedules(context.scene, [self.prop])[self.prop]
        context.window_manager.clipboard = text
        self.report({"INFO"}, f"{self.prop}: {text[:200]}")
        return {"FINISHED"}


class KD_OT_prompts_import(TransitionOptions, bpy.types.Operator):
    """Replace the prompt keys with a Deforum prompt schedule ({"0": "...", "30": "... --neg ..."}) or Giffusion
    prompt lines ("0: a corgi"), from a Text datablock or a string"""

    bl_idname = "keyframe_diffusion.prompts_import"
    bl_label = "Import Prompts"
    bl_options = {"REGISTER", "UNDO"}

    source_format: EnumProperty(name="Format", items=[
        ("AUTO", "Auto", "JSON is Deforum, lines are Giffusion"),
        ("DEFORUM", "Deforum", 'JSON object {"frame": "prompt --neg negative"}'),
        ("GIFFUSION", "Giffusion", "One 'frame: prompt' per line"),
    ], default="AUTO", description="How the schedule text is written")
    text_name: StringProperty(name="Text", description="Text datablock holding the schedule (Text Editor)")
    text: StringProperty(name="Schedule", description="The schedule itself, when no Text datablock is named")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self, width=500)

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "source_format")
        layout.prop_search(self, "text_name", bpy.data, "texts")
        if not self.text_name:
            layout.prop(self, "text")
        draw_transition(layout, self)

    def execute(self, context):
        if self.text_name:
            block = bpy.data.texts.get(self.text_name)
            if block is None:
                self.report({"ERROR"}, f"No Text datablock named '{self.text_name}'")
                return {"CANCELLED"}
            source = block.as_string()
        else:
            source = self.text
        fmt = self.source_format
        if fmt == "AUTO":
            fmt = "DEFORUM" if source.lstrip().startswith("{") else "GIFFUSION"
        try:
            if fmt == "DEFORUM":
                keys = schedule.parse_deforum_prompts(source, schedules.frame_count(context.scene))
            else:
                keys = schedule.parse_giffusion_prompts(source)
            warnings = schedules.import_prompts(context.scene, keys, self.transition, self.frequencies, self.curve)
        except (schedule.ScheduleError, ValueError) as e:
            self.report({"ERROR"}, f"Prompts: {e}")
            return {"CANCELLED"}
        _report_lines(self, {"WARNING"}, warnings)
        self.report({"INFO"}, f"{len(keys)} prompt keys imported")
        return {"FINISHED"}


class KD_OT_deforum_import(bpy.types.Operator, ImportHelper):
    """Import a Deforum settings file (.txt/.json): schedules become F-curves, prompts become prompt keys"""

    bl_idname = "keyframe_diffusion.deforum_import"
    bl_label = "Import Deforum Settings"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.txt;*.json", options={"HIDDEN"})
    prompt_transition: EnumProperty(name="Prompt Transition", items=TRANSITION_ITEMS, default="CONSTANT",
                                    description="Deforum switches prompts at their frames (Hard Cut)")

    def execute(self, context):
        try:
            ignored, warnings = schedules.apply_settings_file(context.scene, self.filepath, self.prompt_transition)
        except (deforum.DeforumError, schedule.ScheduleError, ValueError, OSError) as e:
            self.report({"ERROR"}, f"{os.path.basename(self.filepath)}: {e}")
            return {"CANCELLED"}
        _report_lines(self, {"WARNING"}, warnings)
        if ignored:
            self.report({"INFO"}, f"Not imported (no counterpart here): {', '.join(ignored)}")
        self.report({"INFO"}, f"Imported {os.path.basename(self.filepath)}")
        return {"FINISHED"}


class KD_OT_deforum_export(bpy.types.Operator, ExportHelper):
    """Write the scene's settings, animated parameters and prompts as a Deforum settings file"""

    bl_idname = "keyframe_diffusion.deforum_export"
    bl_label = "Export Deforum Settings"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json;*.txt", options={"HIDDEN"})

    def execute(self, context):
        try:
            notes = schedules.write_settings_file(context.scene, self.filepath)
        except OSError as e:
            self.report({"ERROR"}, f"Can't write {self.filepath}: {e.strerror}")
            return {"CANCELLED"}
        _report_lines(self, {"WARNING"}, [f"Not exported: {note}" for note in notes])
        self.report({"INFO"}, f"Wrote {self.filepath}")
        return {"FINISHED"}


classes = (KD_OT_schedule_import, KD_OT_schedule_export, KD_OT_prompts_import, KD_OT_deforum_import,
           KD_OT_deforum_export)
