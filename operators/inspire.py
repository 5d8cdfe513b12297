"""Inspiration: suggest prompts from subjects, with a local prompt-generator model or the built-in vocabulary."""

from __future__ import annotations

import json

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ..engine import inspire
from ..engine.schedule import PromptKey
from ..engine_link.worker_client import WorkerError
from ..engine_link.workers import make_client
from ..timeline import schedules

TEXT_NAME = "Keyframe Diffusion Inspiration"


def _from_model(context, subjects: list[str], count: int, seed: int, model: str) -> list[str]:
    # Models need torch/transformers: run them in the engine's Python, as the worker does.
    client = make_client(context)
    args = ["inspire", "\n".join(subjects), "--count", str(count), "--seed", str(seed), "--model", model]
    if client.allow_download:
        args.append("--allow-download")
    return json.loads(client.run_command(args, timeout=300))["suggestions"]


class KD_OT_inspire(bpy.types.Operator):
    """Suggest prompts for one or more subjects (never goes online unless Blender's online access and the
    extension's preference allow it)"""

    bl_idname = "keyframe_diffusion.inspire"
    bl_label = "Inspiration"
    bl_options = {"REGISTER", "UNDO"}

    subjects: StringProperty(name="Subjects", description="One or more subjects, comma-separated: a corgi, a lion")
    count: IntProperty(name="Count", default=4, min=1, max=inspire.MAX_COUNT,
                       description="How many prompt suggestions to make")
    seed: IntProperty(name="Seed", default=0, min=0, description="Seed of the suggestions: another seed, other ideas")
    model: StringProperty(name="Model", description="A local prompt-generator model (Hugging Face id or folder); "
                          "empty: the built-in vocabulary of styles, media, lighting and painters")
    apply: BoolProperty(name="Use as Prompt Keys", default=True,
                        description="Replace the prompt keys with the suggestions, spread over the scene")

    def invoke(self, context, event):
        if not self.model:
            local = inspire.find_local_models()
            self.model = local[0] if local else ""
        return context.window_manager.invoke_props_dialog(self, width=450)

    def execute(self, context):
        scene = context.scene
        try:
            subjects = inspire.parse_subjects(self.subjects)
            if self.model.strip():
                found = _from_model(context, subjects, self.count, self.seed, self.model.strip())
            else:
                found = inspire.suggest(subjects, self.count, self.seed)
        except (inspire.InspireError, WorkerError, ValueError) as e:
            self.report({"ERROR"}, f"Inspiration: {e}")
            return {"CANCELLED"}
        span = schedules.frame_count(scene)
        step = max(1, span // len(found))
        keys = [PromptKey(i * step, text, "") for i, text in enumerate(found)]
        # The suggestions also go into a Text datablock as Giffusion lines, to edit and import again.
        block = bpy.data.texts.get(TEXT_NAME) or bpy.data.texts.new(TEXT_NAME)
        block.from_string("\n".join(f"{k.frame}: {k.text}" for k in keys) + "\n")
        if self.apply:
            schedules.import_prompts(scene, keys, "LINEAR")
        for text in found:
            self.report({"INFO"}, text)
        return {"FINISHED"}


classes = (KD_OT_inspire,)
