"""Messages a user reads in full: wrapped to the panel or the report popup (a long line is cut in the middle by the
sidebar and runs off the screen in a report), and the fix-it buttons an error offers where a fix exists."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

import bpy

from ..settings.preferences import ADDON_PACKAGE

REPORT_WIDTH = 90  # characters per line of a report popup


def wrap(text: str, width: int) -> list[str]:
    """The text's lines, each broken at spaces to at most `width` characters (long words kept whole)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width, break_long_words=False, break_on_hyphens=False) or [""])
    return lines


def panel_width(context, fallback: int = 48) -> int:
    """Characters that fit on a line of the region drawing now (a rough average glyph width)."""
    region = getattr(context, "region", None)
    if region is None or region.width <= 1:
        return fallback
    scale = context.preferences.system.ui_scale if context.preferences else 1.0
    return max(20, int((region.width - 40 * scale) / (7 * scale)))


def draw_wrapped(layout, text: str, width: int, icon: str = "NONE") -> None:
    """The text as labels, the icon on the first line only."""
    col = layout.column(align=True)
    for index, line in enumerate(wrap(text, width)):
        col.label(text=line, icon=icon if index == 0 else "BLANK1" if icon != "NONE" else "NONE")


def report(op, level: str, text: str) -> None:
    """self.report with the text wrapped into lines the popup can show."""
    op.report({level}, "\n".join(wrap(text, REPORT_WIDTH)))


@dataclass(frozen=True)
class Fix:
    """A button that fixes an error's cause: an operator and its arguments."""

    operator: str
    text: str
    icon: str
    props: dict = field(default_factory=dict)


# The engine's own messages (engine/models/locate.py, engine_link/worker_client.py); tests/blender/test_sidebar.py
# holds these patterns against the real messages.
_NOT_DOWNLOADED = re.compile(r"'([^']+)' is not in the Hugging Face cache")
_NO_ENGINE = re.compile(r"engine Python '[^']*' does not exist|can't start the engine|No module named '(?:torch|"
                        r"diffusers|transformers)'")


def fixes_for(error: str) -> list[Fix]:
    """The fix-it buttons for an error message (none when no button can fix it)."""
    fixes: list[Fix] = []
    missing = _NOT_DOWNLOADED.search(error)
    if missing:
        fixes.append(Fix("keyframe_diffusion.model_download", f"Download {missing.group(1)}", "IMPORT",
                         {"repo_id": missing.group(1)}))
        fixes.append(Fix("keyframe_diffusion.allow_downloads", "Allow Downloads", "WORLD"))
    if _NO_ENGINE.search(error):
        fixes.append(Fix("keyframe_diffusion.engine_venv_create", "Create Engine Environment", "PACKAGE"))
        fixes.append(Fix("keyframe_diffusion.open_preferences", "Engine Preferences", "PREFERENCES"))
    return fixes


def draw_fixes(layout, error: str) -> None:
    for fix in fixes_for(error):
        op = layout.operator(fix.operator, text=fix.text, icon=fix.icon)
        for name, value in fix.props.items():
            setattr(op, name, value)


class KD_OT_allow_downloads(bpy.types.Operator):
    """Let the engine download models from Hugging Face (the extension's Allow Model Downloads preference)"""

    bl_idname = "keyframe_diffusion.allow_downloads"
    bl_label = "Allow Model Downloads"

    def execute(self, context):
        addon = context.preferences.addons.get(ADDON_PACKAGE)
        if addon is None:
            self.report({"ERROR"}, "The extension's preferences are not available")
            return {"CANCELLED"}
        addon.preferences.allow_downloads = True
        context.preferences.is_dirty = True  # saved with the preferences (auto-save, or Save Preferences)
        if not bpy.app.online_access:
            report(self, "WARNING", "Model downloads allowed, but Blender's online access is off: turn on Allow "
                   "Online Access in Preferences > System > Network, then Generate again")
            return {"FINISHED"}
        self.report({"INFO"}, "Model downloads allowed: Generate again to download the model first")
        return {"FINISHED"}


class KD_OT_open_preferences(bpy.types.Operator):
    """Open the extension's preferences (engine Python, engine environment, models)"""

    bl_idname = "keyframe_diffusion.open_preferences"
    bl_label = "Open Preferences"

    def execute(self, context):
        bpy.ops.preferences.addon_show(module=ADDON_PACKAGE)
        return {"FINISHED"}


classes = (KD_OT_allow_downloads, KD_OT_open_preferences)
