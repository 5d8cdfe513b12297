"""Audio operators: link a sound strip (or file) to any animatable property, re-apply links, beats to markers."""

from __future__ import annotations

from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..engine.schedule import ScheduleError
from ..settings import compat
from ..settings.properties import AUDIO_FEATURES, AUDIO_PARTS, AUDIO_SHAPES
from ..timeline import audio_keys
from ..timeline.fcurves import TRANSITION_ITEMS


def _draw_source(layout, context, op) -> None:
    """The sound strip to use, or (without one) the audio file."""
    editor = context.scene.sequence_editor
    if editor is not None:
        layout.prop_search(op, "strip", editor, compat.STRIPS)
    else:
        layout.prop(op, "strip")
    if not op.strip:
        layout.prop(op, "filepath")


def _report_error(op, e: Exception) -> set:
    op.report({"ERROR"}, f"Audio: {e}")
    return {"CANCELLED"}


class KD_OT_audio_link_add(bpy.types.Operator):
    """Let a sound strip (or an audio file) drive a property: its analysis becomes ordinary keys, re-applied
    when the strip moves"""

    bl_idname = "keyframe_diffusion.audio_link_add"
    bl_label = "Drive from Audio"
    bl_options = {"REGISTER", "UNDO"}

    strip: StringProperty(name="Sound Strip", description="Name of the sound strip (empty: use the file)")
    filepath: StringProperty(name="Audio File", subtype="FILE_PATH",
                             description="Audio file to analyse (used when no sound strip is named)")
    id_type: StringProperty(name="Data", default="scenes", description="bpy.data collection of the animated ID")
    id_name: StringProperty(name="ID", description="Empty: this scene")
    data_path: StringProperty(name="Property", default="keyframe_diffusion.zoom",
                              description="Path from the ID, e.g. keyframe_diffusion.prompts[1].weight")
    index: IntProperty(name="Index", default=0, min=0,
                       description="Component of a vector property (0 for a single value)")
    feature: EnumProperty(name="Feature", items=AUDIO_FEATURES, default="onset",
                          description="What of the sound drives the value")
    part: EnumProperty(name="Part", items=AUDIO_PARTS, default="full",
                       description="Which part of the sound is analysed: all of it, or its drums or tones alone")
    shape: EnumProperty(name="Shape", items=AUDIO_SHAPES, default="pulse",
                        description="How the analysed sound becomes the curve of keys")
    low: FloatProperty(name="Low", default=0.0, description="Value at silence (ramp: at the start)")
    high: FloatProperty(name="High", default=1.0, description="Value at the loudest frame (ramp: at the end)")

    def invoke(self, context, event):
        if not self.strip:
            strips = audio_keys.sound_strips(context.scene)
            self.strip = strips[0].name if strips else ""
        return context.window_manager.invoke_props_dialog(self, width=420)

    def draw(self, context):
        layout = self.layout
        _draw_source(layout, context, self)
        col = layout.column(align=True)
        col.prop(self, "id_name")
        col.prop(self, "data_path")
        col.prop(self, "index")
        layout.prop(self, "feature")
        layout.prop(self, "part")
        layout.prop(self, "shape")
        row = layout.row(align=True)
        row.prop(self, "low")
        row.prop(self, "high")

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        link = settings.audio_links.add()
        for name in ("strip", "filepath", "id_type", "id_name", "data_path", "index", "feature", "part", "shape",
                     "low", "high"):
            setattr(link, name, getattr(self, name))
        settings.active_audio_link = len(settings.audio_links) - 1
        try:
            result = audio_keys.apply_link(context.scene, link, context)
        except audio_keys.AudioError as e:
            settings.audio_links.remove(len(settings.audio_links) - 1)
            return _report_error(self, e)
        context.scene.frame_set(context.scene.frame_current)
        for warning in result.get("warnings", []):
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"{self.data_path}: {len(result['values'])} frames keyed from audio")
        return {"FINISHED"}


class KD_OT_audio_apply(bpy.types.Operator):
    """Analyse again and rewrite the keys of the active audio link (or of all links, or only of the links whose strip
    moved or was trimmed or whose settings changed, as Generate does first)"""

    bl_idname = "keyframe_diffusion.audio_apply"
    bl_label = "Apply Audio"
    bl_options = {"REGISTER", "UNDO"}

    all: BoolProperty(name="All Links", default=False,
                      description="Re-apply every audio link, not only the active one")
    changed_only: BoolProperty(name="Only Changed", description="With All Links: only the links whose strip moved or "
                               "was trimmed, or whose settings changed", default=False)

    def execute(self, context):
        scene = context.scene
        settings = scene.keyframe_diffusion
        try:
            if self.all:
                count = audio_keys.refresh(scene, only_changed=self.changed_only, context=context)
                self.report({"INFO"}, f"{count} audio links applied")
            elif 0 <= settings.active_audio_link < len(settings.audio_links):
                audio_keys.apply_link(scene, settings.audio_links[settings.active_audio_link], context)
                scene.frame_set(scene.frame_current)
            else:
                self.report({"ERROR"}, "No audio link selected")
                return {"CANCELLED"}
        except audio_keys.AudioError as e:
            return _report_error(self, e)
        return {"FINISHED"}


class KD_OT_audio_link_remove(bpy.types.Operator):
    """Forget the active audio link (its keys stay: they are ordinary keys)"""

    bl_idname = "keyframe_diffusion.audio_link_remove"
    bl_label = "Remove Audio Link"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.keyframe_diffusion
        if not 0 <= settings.active_audio_link < len(settings.audio_links):
            return {"CANCELLED"}
        settings.audio_links.remove(settings.active_audio_link)
        settings.active_audio_link = max(0, settings.active_audio_link - 1)
        return {"FINISHED"}


class KD_OT_audio_markers(bpy.types.Operator):
    """Put timeline markers on the audio's onsets or beats; optionally move the prompt keys onto them"""

    bl_idname = "keyframe_diffusion.audio_markers"
    bl_label = "Beats to Markers"
    bl_options = {"REGISTER", "UNDO"}

    strip: StringProperty(name="Sound Strip", description="Name of the sound strip (empty: use the file)")
    filepath: StringProperty(name="Audio File", subtype="FILE_PATH",
                             description="Audio file to analyse (used when no sound strip is named)")
    events: EnumProperty(name="Events", description="Which moments of the sound become markers",
                         items=[("onsets", "Onsets", "Every detected hit"),
                                ("beats", "Beats", "The beat grid of the tempo tracker")],
                         default="onsets")
    part: EnumProperty(name="Part", items=AUDIO_PARTS, default="percussive",
                       description="Which part of the sound is analysed: all of it, or its drums or tones alone")
    fmin: FloatProperty(name="Low Hz", default=0.0, min=0.0, description="Band low edge (0: from 0 Hz)")
    fmax: FloatProperty(name="High Hz", default=0.0, min=0.0, description="Band high edge (0: up to Nyquist)")
    prompts_every: IntProperty(name="Prompt Keys Every", default=0, min=0,
                               description="Move the prompt keys onto every Nth event (0: leave them)")
    transition: EnumProperty(name="Transition", items=TRANSITION_ITEMS, default="LINEAR",
                             description="Shape of the crossfade between neighbouring prompts")

    def invoke(self, context, event):
        if not self.strip:
            strips = audio_keys.sound_strips(context.scene)
            self.strip = strips[0].name if strips else ""
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context):
        layout = self.layout
        _draw_source(layout, context, self)
        for name in ("events", "part", "fmin", "fmax", "prompts_every"):
            layout.prop(self, name)
        if self.prompts_every:
            layout.prop(self, "transition")

    def execute(self, context):
        scene = context.scene
        link = SimpleNamespace(**{**audio_keys.LINK_DEFAULTS, "strip": self.strip, "filepath": self.filepath,
                                  "part": self.part, "fmin": self.fmin, "fmax": self.fmax})
        try:
            path, first, audio_start, count, _state = audio_keys.window(scene, link)
            result = audio_keys.analyse(scene, link, path, audio_start, count, context)
            frames = [first + f - audio_start for f in result[self.events]]
            audio_keys.place_markers(scene, frames, self.events[:-1])
            if self.prompts_every:
                audio_keys.retime_prompts(scene, frames, self.prompts_every, self.transition)
        except (audio_keys.AudioError, ScheduleError, ValueError) as e:
            return _report_error(self, e)
        self.report({"INFO"}, f"{len(frames)} {self.events} marked")
        return {"FINISHED"}


def context_menu(self, context):
    """'Drive from Audio...' in the right-click menu of any animatable number property."""
    pointer, prop = getattr(context, "button_pointer", None), getattr(context, "button_prop", None)
    if pointer is None or prop is None or prop.type not in {"FLOAT", "INT"} or not prop.is_animatable:
        return
    id_data = getattr(pointer, "id_data", None)
    collection = audio_keys.ID_COLLECTIONS.get(getattr(id_data, "id_type", ""))
    if collection is None:
        return
    try:
        path = pointer.path_from_id(prop.identifier)
    except ValueError:
        return
    owner_path_index = getattr(context, "property", None)  # (owner, path, index) of the button, Blender 3.0+
    index = owner_path_index[2] if owner_path_index else -1
    self.layout.separator()
    op = self.layout.operator(KD_OT_audio_link_add.bl_idname, text="Drive from Audio...", icon="SOUND")
    op.id_type, op.id_name, op.data_path, op.index = collection, id_data.name, path, max(0, index or 0)


classes = (KD_OT_audio_link_add, KD_OT_audio_apply, KD_OT_audio_link_remove, KD_OT_audio_markers)
