"""Choosing a model: the preferences' Models box (list the models the engine finds, `python -m engine models`; use one
as the scene's model or LoRA; download a Hugging Face model when the user allows downloads), the sidebar's model
picker, and each model's recommended settings (engine/models/recommend.py) offered and applied."""

from __future__ import annotations

import math
import os

import bpy
from bpy.props import BoolProperty, StringProperty

from ..engine.errors import ModelError
from ..engine.models.recommend import Recommended, recommended
from ..engine.plan import EMBEDDED_MODEL
from ..engine_link import session
from ..engine_link.worker_client import WorkerError
from ..settings import compat, preferences

# The models every install has, as the picker and the Models box list them. The random tiny model (embedded:tiny) is
# left out: its frames are noise, it is for tests; the Model field still takes it.
EMBEDDED_MODELS = ((EMBEDDED_MODEL, "Shapes (built in, 64x64: a COLOUR SHAPE on a COLOUR background)"),)
EMPTY_LIST = "No downloaded models found: Refresh, or set a Models Folder in the preferences"
EMPTY_LIST_HERE = "No downloaded models found: set a Models Folder above, or download one below, then Refresh"
NOT_LISTED = "Refresh to list the models in the Hugging Face cache and your Models Folder"
KIND_ICONS = {"pipeline": "PACKAGE", "checkpoint": "FILE"}
# What Use Recommended Settings sets: property -> label in reports.
RECOMMENDED_PROPS = (("steps", "Steps"), ("guidance", "Guidance"), ("width", "Width"), ("height", "Height"),
                     ("scheduler", "Scheduler"))


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
        forget_recommended()
        _redraw(context)
        for line in session.state.model_warnings:
            self.report({"WARNING"}, line)
        self.report({"INFO"}, f"{len(session.state.models)} models found")
        return {"FINISHED"}


class KD_OT_model_use(bpy.types.Operator):
    """Use this model in the current scene (its Model field) with its recommended steps, guidance, size and
    scheduler, where known (keyframed settings keep their keys)"""

    bl_idname = "keyframe_diffusion.model_use"
    bl_label = "Use"
    bl_options = {"REGISTER", "UNDO"}

    ref: StringProperty(name="Model", description="Hugging Face id or path, as the Model field takes it")
    apply_recommended: BoolProperty(name="Recommended Settings", default=True,
                                    description="Also set the model's recommended steps, guidance, size and "
                                    "scheduler, where they are known")

    def execute(self, context):
        if not self.ref.strip():
            self.report({"ERROR"}, "No model given")
            return {"CANCELLED"}
        settings = context.scene.keyframe_diffusion
        settings.model = self.ref
        message = f"Scene '{context.scene.name}' now uses {self.ref}"
        found = scene_recommended(settings) if self.apply_recommended else None
        if found is not None:
            message += "; " + describe_applied(found, *apply_recommended(context.scene, found))
        self.report({"INFO"}, message)
        return {"FINISHED"}


class KD_OT_model_recommended(bpy.types.Operator):
    """Set steps, guidance, size and scheduler to what the scene's model is meant to run at (from its card or its
    family's model card). Keyframed settings keep their keys"""

    bl_idname = "keyframe_diffusion.model_recommended"
    bl_label = "Use Recommended Settings"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        try:
            found = recommended_for(settings)
        except ModelError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if found is None:
            self.report({"INFO"}, f"No recommended settings are known for {settings.model}: nothing changed")
            return {"CANCELLED"}
        self.report({"INFO"}, describe_applied(found, *apply_recommended(context.scene, found)))
        return {"FINISHED"}


class KD_MT_model_picker(bpy.types.Menu):
    """Choose the scene's model: the built-in ones and those the last Refresh found"""

    bl_idname = "KD_MT_model_picker"
    bl_label = "Choose Model"

    def draw(self, context):
        layout = self.layout
        current = context.scene.keyframe_diffusion.model.strip()
        layout.label(text="Built In")
        for ref, text in EMBEDDED_MODELS:
            _use_item(layout, ref, text, "CHECKMARK" if ref == current else "BLANK1")
        layout.separator()
        layout.label(text="On This Machine")
        entries = [e for e in session.state.models if e["kind"] in KIND_ICONS]
        for entry in entries:
            _use_item(layout, entry["ref"], entry["name"],
                      "CHECKMARK" if entry["ref"] == current else KIND_ICONS[entry["kind"]])
        if not entries:
            layout.label(text=EMPTY_LIST if session.state.models_listed else NOT_LISTED, icon="INFO")
        layout.separator()
        layout.operator("keyframe_diffusion.models_refresh", text="Refresh", icon="FILE_REFRESH")


def _use_item(layout, ref: str, text: str, icon: str) -> None:
    op = layout.operator("keyframe_diffusion.model_use", text=text, icon=icon)
    op.ref = ref


# Recommended settings on the Blender side. Draw code asks on every redraw: answers are kept per model and LoRAs
# until the next Refresh (which may find a model's files changed).
_cache: dict[tuple, Recommended | None] = {}


def recommended_for(settings) -> Recommended | None:
    """The scene's model's recommended settings (with its LoRAs: an LCM-LoRA counts), or None when unknown. The last
    Refresh's answer for the model is used where this Python can't read the model's files itself (a Hugging Face
    id in a cache only the engine Python can look into). Raises ModelError for a broken card file."""
    model = settings.model.strip()
    loras = tuple(bpy.path.abspath(lora.path) for lora in settings.loras if lora.path)
    key = (model, loras, len(session.state.models))
    if key not in _cache:
        found = recommended(model, loras=loras)
        listed = next((e.get("recommended") for e in session.state.models if e["ref"] == model), None)
        if found is None and listed:
            found = Recommended.from_dict(listed)
        _cache[key] = found
    return _cache[key]


def scene_recommended(settings) -> Recommended | None:
    """recommended_for, with a broken card file read as no recommendation (for draw code and Use)."""
    try:
        return recommended_for(settings)
    except ModelError:
        return None


def forget_recommended() -> None:
    _cache.clear()


def _animated(scene, prop: str) -> bool:
    """Whether keys or a driver set the property: then the property's value is theirs, not ours to set."""
    path = f"keyframe_diffusion.{prop}"
    anim = scene.animation_data
    drivers = anim.drivers if anim else ()
    return compat.find_fcurve(scene, path) is not None or any(d.data_path == path for d in drivers)


def _differs(current, wanted) -> bool:
    if isinstance(wanted, float):
        return not math.isclose(current, wanted, abs_tol=1e-4)
    return current != wanted


def recommended_changes(scene, found: Recommended) -> tuple[list[tuple[str, str, object]], list[str]]:
    """([(property, label, value)] that differ from the recommendation and may be set, [labels of keyed ones])."""
    settings = scene.keyframe_diffusion
    changes, keyed = [], []
    for prop, label in RECOMMENDED_PROPS:
        wanted = getattr(found, prop)
        if not _differs(getattr(settings, prop), wanted):
            continue
        if _animated(scene, prop):
            keyed.append(label)
        else:
            changes.append((prop, label, wanted))
    return changes, keyed


def apply_recommended(scene, found: Recommended) -> tuple[list[str], list[str]]:
    """Set what differs from the recommendation, leaving keyed and driven properties (and their F-curves) alone;
    returns ([what changed, as 'Steps 4 -> 30'], [labels of the keyed ones])."""
    settings = scene.keyframe_diffusion
    changes, keyed = recommended_changes(scene, found)
    changed = []
    for prop, label, value in changes:
        changed.append(f"{label} {_shown(getattr(settings, prop))} \u2192 {_shown(value)}")
        setattr(settings, prop, value)
    return changed, keyed


def describe_applied(found: Recommended, changed: list[str], keyed: list[str]) -> str:
    """The report of applying a recommendation: what changed, what was left as keyed."""
    text = f"{found.family}: " + (", ".join(changed) if changed else "already at its recommended settings")
    if keyed:
        text += f"; {' and '.join(keyed)} left as keyed (recommended: {found.summary()})"
    return text


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def recommended_differs(settings) -> str:
    """'Recommended for this model: 30 steps, guidance 6, 64x64' when the scene's (unkeyed) settings differ from
    its model's recommendation, else '' (also for a model with none). For the sidebar, beside a button that runs
    keyframe_diffusion.model_recommended."""
    found = scene_recommended(settings)
    if found is None:
        return ""
    changes, _ = recommended_changes(settings.id_data, found)
    return f"Recommended for this model: {found.summary()}" if changes else ""


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


classes = (KD_OT_models_refresh, KD_OT_model_use, KD_OT_model_recommended, KD_MT_model_picker, KD_OT_model_add_lora,
           KD_OT_model_download)
