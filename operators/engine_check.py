"""Check Engine (the preferences' button): run `python -m engine check` with the chosen Engine Python and show what it
says: versions, the device and its free memory, what is missing and the command that installs it."""

from __future__ import annotations

import json

import bpy

from .. import jobs
from ..worker_client import WorkerError

# The last report's lines, shown under the button until Blender restarts (not saved in the preferences).
last_lines: list[str] = []


def check(context=None) -> tuple[bool, list[str]]:
    """(ready, lines) for the Engine Python the preferences name; a wrong interpreter path is a line, not a crash."""
    from ..engine.environment import summary_lines

    client = jobs.make_client(context)
    try:
        report = json.loads(client.run_command(["check"], timeout=120))
    except WorkerError as e:
        return False, [f"Problem: {e}"]
    except json.JSONDecodeError:
        return False, [f"Problem: the engine Python ({client.python}) did not answer the check"]
    return report["ok"], summary_lines(report)


class KD_OT_check_engine(bpy.types.Operator):
    """Report the engine Python's version, torch and diffusers, the device it will use and what is missing"""

    bl_idname = "keyframe_diffusion.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        ready, lines = check(context)
        last_lines[:] = lines
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if ready:
            self.report({"INFO"}, "Engine ready: " + " | ".join(lines[:3]))
            return {"FINISHED"}
        self.report({"ERROR"}, next(line for line in lines if line.startswith("Problem:")))
        return {"CANCELLED"}


classes = (KD_OT_check_engine,)
