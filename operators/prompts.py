"""Prompt key operators: add (keys the crossfade with the neighbours), remove (re-links them), transitions."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ..engine.models.examples import examples_for
from ..engine.schedule import ScheduleError
from ..timeline.fcurves import TRANSITION_ITEMS, TRANSITIONS
from ..timeline.prompt_keys import add_prompt_key, remove_prompt_key, set_transitions
from .messages import draw_wrapped

def draw_transition(layout, op) -> None:
    """The transition choice and, for Giffusion's shapes, their argument (operators with those three props)."""
    layout.prop(op, "transition")
    if op.transition == "GIFFUSION_SINE":
        layout.prop(op, "frequencies")
    elif op.transition == "GIFFUSION_CURVE":
        layout.prop(op, "curve")


class TransitionOptions:
    """The crossfade choice of the operators that rewrite every prompt's transition (mixin: Blender collects
    inherited annotations); drawn by draw_transition."""

    transition: EnumProperty(name="Transition", items=TRANSITION_ITEMS, default="LINEAR",
                             description="Shape of the crossfade between neighbouring prompts")
    frequencies: StringProperty(name="Frequencies", default="1.0",
                                description="Giffusion Sine: comma-separated frequencies, e.g. 1.0, 2.0")
    curve: StringProperty(name="Curve", default="0:(0), 10:(1)",
                          description="Giffusion Curve: Deforum-format keys of the mix (0-1), frames from 0")


# Shapes one key pair can have (Giffusion's schedules need all keys at once: the transitions operator).
KEY_TRANSITIONS = [item for item in TRANSITION_ITEMS if item[0] in TRANSITIONS]


class KD_OT_prompt_add(bpy.types.Operator):
    """Add a prompt key at a frame, crossfading with the prompts before and after it"""

    bl_idname = "keyframe_diffusion.prompt_add"
    bl_label = "Add Prompt"
    bl_options = {"REGISTER", "UNDO"}

    text: StringProperty(name="Prompt", default="", description="What the frames show at this key, e.g. "
                         "'a lighthouse on a cliff at sunset, oil painting'")
    negative: StringProperty(name="Negative", default="",
                             description="What to keep out of the picture at this key (empty: the scene's Negative "
                             "Prompt)")
    frame: IntProperty(name="Frame", description="Frame of the key (default: the current frame)", default=-(2**30))
    transition: EnumProperty(name="Transition", items=KEY_TRANSITIONS,
                             default="LINEAR", description="Shape of the crossfade with the neighbouring prompts")

    def invoke(self, context, event):
        if self.frame == -(2**30):
            self.frame = context.scene.frame_current
        return context.window_manager.invoke_props_dialog(self, width=420)

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "text")
        examples = examples_for(context.scene.keyframe_diffusion.model)
        col = layout.column(align=True)
        col.scale_y = 0.8
        col.label(text=f"e.g. {examples.prompts[0]}", icon="INFO")
        if examples.knows:
            draw_wrapped(col, examples.knows, 64)
        layout.prop(self, "negative")
        layout.prop(self, "frame")
        layout.prop(self, "transition")

    def execute(self, context):
        if not self.text.strip():
            self.report({"ERROR"}, "Type a prompt: what the frames should show at this key")
            return {"CANCELLED"}
        frame = context.scene.frame_current if self.frame == -(2**30) else self.frame
        add_prompt_key(context.scene, self.text, self.negative, frame, self.transition)
        return {"FINISHED"}


class KD_OT_prompt_examples(bpy.types.Operator):
    """Key the model's two example prompts: one at the scene's first frame, one 23 frames later (a one-second
    crossfade at 24 fps)"""

    bl_idname = "keyframe_diffusion.prompt_examples"
    bl_label = "Add Example Prompts"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        first, last = examples_for(scene.keyframe_diffusion.model).prompts
        start = scene.frame_start
        add_prompt_key(scene, first, "", start)
        add_prompt_key(scene, last, "", start + 23)
        self.report({"INFO"}, f"Keyed '{first}' at frame {start} and '{last}' at frame {start + 23}")
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


class KD_OT_prompt_transitions(TransitionOptions, bpy.types.Operator):
    """Rewrite every prompt's crossfade with one shape (Blender easing, or Giffusion's sine and curve schedules)"""

    bl_idname = "keyframe_diffusion.prompt_transitions"
    bl_label = "Set Transitions"
    bl_options = {"REGISTER", "UNDO"}


    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context):
        draw_transition(self.layout, self)

    def execute(self, context):
        if len(context.scene.keyframe_diffusion.prompts) < 2:
            self.report({"ERROR"}, "Transitions need at least two prompt keys")
            return {"CANCELLED"}
        try:
            set_transitions(context.scene, self.transition, self.frequencies, self.curve)
        except (ScheduleError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (KD_OT_prompt_add, KD_OT_prompt_examples, KD_OT_prompt_remove, KD_OT_prompt_transitions)
