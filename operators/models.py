"""The preferences' Models box: list the models the engine finds (`python -m engine models`), use one as the scene's
model or LoRA, and download a Hugging Face model when the user allows downloads."""

from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from ..engine_link import session
from ..engine_link.worker_client import WorkerError
from ..settings import preferences


def _redraw(context) -> None:
    for area in context.screen.areas if context.screen else ():
        area.tag_redraw()


class KD_OT_models_refresh(bpy.types.Operator):
    """List the models in the Hugging Face cache and the Models Folder, by kind"""

    bl_idname = "keyframe_diffusion.models_refresh"
    bl_label = "Refresh Models"

    def execute(self, context):
        try:
            session.refresh_models(context)
        except WorkerError as e:
            self.report({"ERROR"}, f"Could not list models: {e}")
            return {"CANCELLED"}
        _redraw(context)
        for line in session.state.model_warnings:
            self.report({"WARNING"}, line)
        self.report({"INFO"}, f"{len(session.state.models)} models found")
        return {"FINISHED"}


class KD_OT_model_use(bpy.types.Operator):
    """Use this model in the current scene (its Model field)"""

    bl_idname = "keyframe_diffusion.model_use"
    bl_label = "Use"
    bl_options = {"REGISTER", "UNDO"}

    ref: StringProperty(name="Model", description="Hugging Face id or path, as the Model field takes it")

    def execute(self, context):
        if not self.ref.strip():
            self.report({"ERROR"}, "No model given")
            return {"CANCELLED"}
        context.scene.keyframe_diffusion.model = self.ref
        self.report({"INFO"}, f"Scene '{context.scene.name}' now uses {self.ref}")
        return {"FINISHED"}


class KD_OT_model_add_lora(bpy.types.Operator):
    """Add this LoRA to the current scene's LoRAs"""

    bl_idname = "keyframe_diffusion.model_add_lora"
    bl_label = "Add LoRA"
    bl_options = {"REGISTER", "UNDO"}

    path: StringProperty(name="LoRA", description="LoRA weights file", subtype="FILE_PATH")

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        wanted = os.path.abspath(self.path)
        if any(os.path.abspath(bpy.path.abspath(lora.path)) == wanted for lora in settings.loras):
            self.report({"INFO"}, f"{os.path.basename(self.path)} is already among the scene's LoRAs")
            return {"CANCELLED"}
        lora = settings.loras.add()
        lora.path = self.path
        settings.active_lora = len(settings.loras) - 1
        self.report({"INFO"}, f"Added LoRA {os.path.basename(self.path)} to scene '{context.scene.name}'")
        return {"FINISHED"}


class KD_OT_model_download(bpy.types.Operator):
    """Download a Hugging Face model (configs and safetensors weights) into the Hugging Face cache. Blender waits
    until it is done; needs Allow Model Downloads and Blender's online access"""

    bl_idname = "keyframe_diffusion.model_download"
    bl_label = "Download"

    repo_id: StringProperty(name="Repository", description="Hugging Face model id (empty: the preferences' one)")

    def execute(self, context):
        prefs = preferences.get(context)
        repo_id = (self.repo_id or (prefs.download_repo if prefs else "")).strip()
        blocker = session.download_blocker(prefs)
        if blocker:
            self.report({"ERROR"}, blocker)
            return {"CANCELLED"}
        if not repo_id:
            self.report({"ERROR"}, "Type a Hugging Face model id to download, e.g. stabilityai/sd-turbo")
            return {"CANCELLED"}
        try:
            result = session.download(context, repo_id, prefs.allow_unsafe_weights)
        except WorkerError as e:
            self.report({"ERROR"}, f"Download of {repo_id} failed: {e}")
            return {"CANCELLED"}
        try:
            session.refresh_models(context)  # the new model shows in the list at once
        except WorkerError as e:
            self.report({"WARNING"}, f"Could not list models: {e}")
        _redraw(context)
        self.report({"INFO"}, f"Downloaded {repo_id} ({result['files']} files) to {result['path']}")
        return {"FINISHED"}


classes = (KD_OT_models_refresh, KD_OT_model_use, KD_OT_model_add_lora, KD_OT_model_download)
