"""Check Engine (the preferences' button): run `python -m engine check` with the chosen Engine Python and show what it
says: versions, the device and its free memory, what is missing and the command that installs it."""

from __future__ import annotations

import bpy

from ..engine_link import session


class KD_OT_check_engine(bpy.types.Operator):
    """Report the engine Python's version, torch and diffusers, the device it will use and what is missing"""

    bl_idname = "keyframe_diffusion.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        ready, lines = session.check(context)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if ready:
            self.report({"INFO"}, "Engine ready: " + " | ".join(lines[:3]))
            return {"FINISHED"}
        self.report({"ERROR"}, next(line for line in lines if line.startswith("Problem:")))
        return {"CANCELLED"}


classes = (KD_OT_check_engine,)
