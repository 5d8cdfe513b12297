"""The preferences' Models box: list the models the engine finds (`python -m engine models`), use one as the scene's
model or LoRA, and download a Hugging Face model when the user allows downloads."""

from __future__ import annotations

import json
import os

import bpy
from bpy.props import StringProperty

from .. import jobs, preferences
from ..worker_client import WorkerError

# The last refresh's entries (dicts from engine/model_index.py) and warnings, shown in the preferences until Blender
# restarts (not saved).
entries: list[dict] = []
warnings: list[str] = []

KIND_LABELS = {"pipeline": "Pipelines", "checkpoint": "Checkpoints", "lora": "LoRAs", "controlnet": "ControlNets",
               "motion_adapter": "Motion Adapters", "vae": "VAEs", "other": "Other"}
KIND_ICONS = {"pipeline": "PACKAGE", "checkpoint": "FILE", "lora": "MODIFIER", "controlnet": "CONSTRAINT",
              "motion_adapter": "ANIM", "vae": "IMAGE_DATA", "other": "QUESTION"}
DOWNLOAD_TIMEOUT = 6 * 3600  # a large model on a slow line; the command itself stops on network errors


def models_folder(context=None) -> str:
    prefs = preferences.get(context)
    folder = prefs.models_folder.strip() if prefs else ""
    return bpy.path.abspath(folder) if folder else ""


def refresh(context=None) -> None:
    """Ask the engine Python what models it finds; raises WorkerError with a message for the user."""
    args = ["models"]
    folder = models_folder(context)
    if folder:
        args += ["--folder", folder]
    output = jobs.make_client(context).run_command(args, timeout=300)
    try:
        result = json.loads(output)
    except json.JSONDecodeError as e:
        raise WorkerError("the engine Python did not answer the models listing (see the console)") from e
    entries[:] = result["models"]
    warnings[:] = result.get("warnings", [])


def grouped() -> list[tuple[str, list[dict]]]:
    """The entries by kind, in the engine's kind order (it sorts them so)."""
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(entry["kind"], []).append(entry)
    return list(groups.items())


def _redraw(context) -> None:
    for area in context.screen.areas if context.screen else ():
        area.tag_redraw()


class KD_OT_models_refresh(bpy.types.Operator):
    """List the models in the Hugging Face cache and the Models Folder, by kind"""

    bl_idname = "keyframe_diffusion.models_refresh"
    bl_label = "Refresh Models"

    def execute(self, context):
        try:
            refresh(context)
        except WorkerError as e:
            self.report({"ERROR"}, f"Could not list models: {e}")
            return {"CANCELLED"}
        _redraw(context)
        for line in warnings:
            self.report({"WARNING"}, line)
        self.report({"INFO"}, f"{len(entries)} models found")
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


def download_blocker(prefs) -> str:
    """Why downloads are off, or '' when they are allowed."""
    if not (prefs and prefs.allow_downloads):
        return "Downloads are off: enable Allow Model Downloads in the Keyframe Diffusion preferences"
    if not bpy.app.online_access:
        return "Blender's online access is off (Preferences > System > Network): downloads stay disabled"
    return ""


class KD_OT_model_download(bpy.types.Operator):
    """Download a Hugging Face model (configs and safetensors weights) into the Hugging Face cache. Blender waits
    until it is done; needs Allow Model Downloads and Blender's online access"""

    bl_idname = "keyframe_diffusion.model_download"
    bl_label = "Download"

    repo_id: StringProperty(name="Repository", description="Hugging Face model id (empty: the preferences' one)")

    def execute(self, context):
        prefs = preferences.get(context)
        repo_id = (self.repo_id or (prefs.download_repo if prefs else "")).strip()
        blocker = download_blocker(prefs)
        if blocker:
            self.report({"ERROR"}, blocker)
            return {"CANCELLED"}
        if not repo_id:
            self.report({"ERROR"}, "Type a Hugging Face model id to download, e.g. stabilityai/sd-turbo")
            return {"CANCELLED"}
        args = ["download", repo_id, "--allow-download"] + (["--allow-unsafe"] if prefs.allow_unsafe_weights else [])
        try:
            result = json.loads(jobs.make_client(context).run_command(args, timeout=DOWNLOAD_TIMEOUT))
        except (WorkerError, json.JSONDecodeError) as e:
            self.report({"ERROR"}, f"Download of {repo_id} failed: {e}")
            return {"CANCELLED"}
        try:
            refresh(context)  # the new model shows in the list at once
        except WorkerError as e:
            self.report({"WARNING"}, f"Could not list models: {e}")
        _redraw(context)
        self.report({"INFO"}, f"Downloaded {repo_id} ({result['files']} files) to {result['path']}")
        return {"FINISHED"}


classes = (KD_OT_models_refresh, KD_OT_model_use, KD_OT_model_add_lora, KD_OT_model_download)
