"""Prompt keys: adding one at a frame keys the crossfade with its neighbours; removing one re-links them."""

from __future__ import annotations

import re

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from .. import compat

INTERPOLATIONS = [
    ("LINEAR", "Linear", "Even crossfade"),
    ("BEZIER", "Ease", "Ease in and out (Blender's Bezier keys)"),
    ("SINE", "Sine", "Sinusoidal easing"),
    ("CONSTANT", "Hard Cut", "Switch at the key, no crossfade"),
]


def _weight_fcurve(scene, item):
    return compat.find_fcurve(scene, item.path_from_id("weight"))


def _key(scene, item, frame: int, value: float, interpolation: str) -> None:
    item.weight = value
    compat.keyframe_insert(item, "weight", frame)
    fc = _weight_fcurve(scene, item)
    for point in fc.keyframe_points:
        if round(point.co[0]) == frame:
            point.interpolation = interpolation
            if interpolation == "SINE":
                point.easing = "EASE_IN_OUT"


def add_prompt_key(scene, text: str, negative: str = "", frame: int | None = None,
                   interpolation: str = "LINEAR"):
    """Add a prompt at `frame` with weight 1 there and 0 at its neighbours' frames; neighbours get 0 at `frame`."""
    settings = scene.keyframe_diffusion
    frame = scene.frame_current if frame is None else frame
    others = list(settings.prompts)
    earlier = [p.frame for p in others if p.frame < frame]
    later = [p.frame for p in others if p.frame > frame]
    item = settings.prompts.add()
    item.text, item.negative, item.frame = text, negative, frame
    item.seed = max((p.seed for p in others), default=-1) + 1  # distinct noise per key
    for other in others:
        if other.frame != frame:
            _key(scene, other, frame, 0.0, interpolation)
    if earlier:
        _key(scene, item, max(earlier), 0.0, interpolation)
    if later:
        _key(scene, item, min(later), 0.0, interpolation)
    _key(scene, item, frame, 1.0, interpolation)
    settings.active_prompt = len(settings.prompts) - 1
    scene.frame_set(scene.frame_current)  # re-evaluate so properties show the animated values
    return item


def remove_prompt_key(scene, index: int) -> None:
    """Remove a prompt, its weight curve, and the zero keys it put on others; keep later curves on their items."""
    settings = scene.keyframe_diffusion
    item = settings.prompts[index]
    frame = item.frame
    fc = _weight_fcurve(scene, item)
    if fc is not None:
        compat.remove_fcurve(scene, fc)
    for other in settings.prompts:
        if other.frame != frame and other != item:
            curve = _weight_fcurve(scene, other)
            if curve is not None:
                for point in [p for p in curve.keyframe_points if round(p.co[0]) == frame]:
                    curve.keyframe_points.remove(point)
    # Curves address items by index: move those of later items down by one.
    pattern = re.compile(r"^keyframe_diffusion\.prompts\[(\d+)\]")
    for curve in sorted(compat.action_fcurves(scene), key=lambda c: c.data_path):
        m = pattern.match(curve.data_path)
        if m and int(m.group(1)) > index:
            curve.data_path = pattern.sub(f"keyframe_diffusion.prompts[{int(m.group(1)) - 1}]", curve.data_path)
    settings.prompts.remove(index)
    # Re-link the neighbours that the removed key stood between.
    keys = sorted(settings.prompts, key=lambda p: p.frame)
    for a, b in zip(keys, keys[1:]):
        if a.frame < frame < b.frame:
            _key(scene, a, b.frame, 0.0, "LINEAR")
            _key(scene, b, a.frame, 0.0, "LINEAR")
    settings.active_prompt = min(settings.active_prompt, max(0, len(settings.prompts) - 1))
    scene.frame_set(scene.frame_current)


class KD_OT_prompt_add(bpy.types.Operator):
    """Add a prompt key at a frame, crossfading with the prompts before and after it"""

    bl_idname = "keyframe_diffusion.prompt_add"
    bl_label = "Add Prompt"
    bl_options = {"REGISTER", "UNDO"}

    text: StringProperty(name="Prompt", default="")
    negative: StringProperty(name="Negative", default="")
    frame: IntProperty(name="Frame", description="Frame of the key (default: the current frame)", default=-(2**30))
    interpolation: EnumProperty(name="Transition", items=INTERPOLATIONS, default="LINEAR")

    def invoke(self, context, event):
        if self.frame == -(2**30):
            self.frame = context.scene.frame_current
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        frame = context.scene.frame_current if self.frame == -(2**30) else self.frame
        add_prompt_key(context.scene, self.text, self.negative, frame, self.interpolation)
        return {"FINISHED"}


class KD_OT_prompt_remove(bpy.types.Operator):
    """Remove the active prompt key and re-link its neighbours' crossfade"""

    bl_idname = "keyframe_diffusion.prompt_remove"
    bl_label = "Remove Prompt"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Index", default=-1, description="Prompt to remove (-1: the active one)")

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        index = settings.active_prompt if self.index < 0 else self.index
        if not 0 <= index < len(settings.prompts):
            self.report({"ERROR"}, f"No prompt at index {index}")
            return {"CANCELLED"}
        remove_prompt_key(context.scene, index)
        return {"FINISHED"}


classes = (KD_OT_prompt_add, KD_OT_prompt_remove)
