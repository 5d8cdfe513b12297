"""The Sequencer sidebar: prompts, settings (hover and press I to keyframe), generate with progress."""

from __future__ import annotations

import bpy

from ..engine import vocabulary as vocab
from ..engine.models.examples import examples_for
from ..operators.messages import draw_fixes, draw_wrapped, panel_width
from ..operators.models import recommended_differs
from ..operators.presets import KD_PT_presets
from ..run.estimate import duration_text, estimate
from ..settings import compat
from ..settings.properties import pin_marker
from ..timeline.frame_range import describe_range
from .compositor import draw_compositor
from .progress import draw_running


class _Panel:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Diffusion"


class KD_UL_prompts(bpy.types.UIList):
    """A key's frame and prompt, the text taking the row. The weight is animated (a later key is at 0 before its
    frame), so the row shows whether the prompt is in the picture at the current frame, not a 0.00 that reads as
    "disabled"; the weight slider is below the list."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        split = row.split(factor=0.2, align=True)
        split.label(text=f"{item.frame}", icon="KEYFRAME_HLT" if item.weight > 0 else "KEYFRAME")
        split.prop(item, "text", text="", emboss=False)


class KD_UL_audio_links(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        source = item.strip or bpy.path.basename(item.filepath) or "?"
        target = item.data_path + (f"[{item.index}]" if item.index else "")
        layout.label(text=f"{source} \u2192 {target}", icon="SOUND")


class KD_PT_main(_Panel, bpy.types.Panel):
    """What a first render needs: the model, the mode, the frames, Generate; the rest is in closed sub-panels."""

    bl_label = "Keyframe Diffusion"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        status = context.window_manager.keyframe_diffusion_status
        if status.running:
            draw_running(layout, context)
            return
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        row = col.row(align=True)
        row.prop(settings, "model")
        row.menu("KD_MT_model_picker", text="", icon="DOWNARROW_HLT")
        hint = recommended_differs(settings)
        if hint:
            box = col.box()
            draw_wrapped(box, hint, panel_width(context), icon="INFO")
            box.operator("keyframe_diffusion.model_recommended")
        col.prop(settings, "mode")
        col.prop(settings, "frame_range")
        if settings.frame_range == "CUSTOM":
            sub = col.column(align=True)
            sub.prop(settings, "frame_custom_start", text="Start")
            sub.prop(settings, "frame_custom_end", text="End")
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("keyframe_diffusion.generate", icon="RENDER_ANIMATION")
        op = row.operator("keyframe_diffusion.generate", text="This Frame", icon="RENDER_STILL")
        op.current_frame = True
        col = layout.column(align=True)
        col.label(text=describe_range(context.scene), icon="PREVIEW_RANGE")
        est = estimate(context.scene)
        took = duration_text(est.seconds) if est.seconds is not None else "time known after the first frames"
        col.label(text=f"{est.steps[1]} steps per frame, {took}", icon="TIME")
        _draw_outcome(layout, context, status)


def _draw_outcome(layout, context, status) -> None:
    """How the last Generate ended: the whole message, wrapped, and the buttons that fix its cause."""
    if status.error:
        box = layout.box()
        draw_wrapped(box, status.error, panel_width(context), icon="ERROR")
        draw_fixes(box.column(align=True), status.error)
    elif status.message:
        draw_wrapped(layout, status.message, panel_width(context), icon="CHECKMARK")


class KD_PT_prompts(_Panel, bpy.types.Panel):
    bl_label = "Prompts"
    bl_parent_id = "KD_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        layout.prop(settings, "prompt_source", expand=True)
        if settings.prompt_source == "TEXT_STRIPS":
            row = layout.row(align=True)
            row.prop(settings, "prompt_channel")
            row.prop(settings, "prompt_channels")
            draw_wrapped(layout, "A text strip holds its prompt; strips overlapping on neighbouring channels "
                         "crossfade. Mute the channel to keep the text out of the render.",
                         panel_width(context), icon="INFO")
            return
        if not len(settings.prompts):
            _draw_first_step(layout, context, settings)
        row = layout.row()
        row.template_list("KD_UL_prompts", "", settings, "prompts", settings, "active_prompt", rows=3)
        col = row.column(align=True)
        col.operator("keyframe_diffusion.prompt_add", icon="ADD", text="")
        col.operator("keyframe_diffusion.prompt_remove", icon="REMOVE", text="")
        col.separator()
        col.operator("keyframe_diffusion.inspire", icon="LIGHT", text="")
        if 0 <= settings.active_prompt < len(settings.prompts):
            item = settings.prompts[settings.active_prompt]
            col = layout.column()
            col.prop(item, "text", text="")
            col.use_property_split = True
            col.use_property_decorate = False
            col.prop(item, "weight", slider=True)
            col.prop(item, "negative", text="Avoid")


def _draw_first_step(layout, context, settings) -> None:
    """An empty prompt list says what to do, with prompts the current model knows."""
    examples = examples_for(settings.model)
    box = layout.box()
    width = panel_width(context)
    draw_wrapped(box, "Add a prompt at a frame (+): the frames show it there and crossfade to the next prompt.",
                 width, icon="HELP")
    if examples.knows:
        draw_wrapped(box, examples.knows + ".", width)
    box.operator("keyframe_diffusion.prompt_examples", icon="ADD")


class KD_PT_prompt_options(_Panel, bpy.types.Panel):
    bl_label = "Crossfades and Import"
    bl_parent_id = "KD_PT_prompts"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.prompt_source == "KEYS"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        col = layout.column(align=True)
        col.operator("keyframe_diffusion.prompt_transitions", icon="IPO_EASE_IN_OUT")
        col.operator("keyframe_diffusion.prompts_import", icon="IMPORT")
        if 0 <= settings.active_prompt < len(settings.prompts):
            col = layout.column()
            col.use_property_split = True
            col.prop(settings.prompts[settings.active_prompt], "seed", text="Key Seed")


class KD_PT_settings(_Panel, bpy.types.Panel):
    bl_label = "Settings"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header_preset(self, context):
        KD_PT_presets.draw_panel_header(self.layout)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        col = layout.column(align=True)
        col.prop(settings, "width", text="Size X")
        col.prop(settings, "height", text="Y")
        layout.prop(settings, "steps")
        layout.prop(settings, "guidance")
        if settings.mode in STRENGTH_MODES:
            layout.prop(settings, "strength")
        layout.prop(settings, "seed")
        layout.prop(settings, "negative_prompt", text="Avoid")


# Where Strength acts here: feedback starts each frame from the last one; video has Strength in its Input panel, and
# interpolate and clip diffuse from noise.
STRENGTH_MODES = ("FEEDBACK",)


class KD_PT_advanced(_Panel, bpy.types.Panel):
    bl_label = "Advanced"
    bl_parent_id = "KD_PT_settings"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        if settings.mode != "SHOT":  # a video model denoises with its own flow-matching scheduler
            layout.prop(settings, "scheduler")
            if settings.scheduler == vocab.SCHEDULER_OTHER:
                layout.prop(settings, "scheduler_class")
        layout.prop(settings, "guidance_rescale")
        col = layout.column(align=True)
        col.prop(settings, "seed_behavior")
        if settings.seed_behavior == "ITER":
            col.prop(settings, "seed_iter_n")
        if settings.mode == "INTERPOLATE":
            layout.prop(settings, "latent_source")
            layout.prop(settings, "pace")
        layout.prop(settings, "batch_size")
        layout.prop(settings, "device")


class KD_PT_output(_Panel, bpy.types.Panel):
    bl_label = "Output"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "output_dir", text="Folder")
        sub = col.column(align=True)
        sub.prop(settings, "strip_name", text="Strip")
        sub.prop(settings, "strip_channel")
        col.prop(settings, "generate_before_render")
        col.prop(settings, "live_preview")
        col = layout.column(align=True)
        col.operator("keyframe_diffusion.export", text="Export Video", icon="EXPORT")
        col.operator("keyframe_diffusion.bake", text="Save Plan File", icon="FILE_TICK")
        col.operator("keyframe_diffusion.release", text="Free Engine Memory", icon="UNLINKED")


class KD_PT_compositor(_Panel, bpy.types.Panel):
    bl_label = "Compositor"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_compositor(self.layout, context.scene)


class KD_PT_ray(_Panel, bpy.types.Panel):
    bl_label = "Render Farm (Ray)"
    bl_parent_id = "KD_PT_output"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.prop(context.scene.keyframe_diffusion, "use_ray", text="")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.active = settings.use_ray
        layout.prop(settings, "ray_address")
        layout.prop(settings, "ray_workers")


class KD_PT_motion(_Panel, bpy.types.Panel):
    bl_label = "Motion"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.mode == "FEEDBACK"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.prop(settings, "motion_mode")
        col = layout.column(align=True)
        if settings.motion_mode == "2D":
            for name in ("zoom", "angle", "translation_x", "translation_y", "transform_center_x",
                         "transform_center_y"):
                col.prop(settings, name)
            layout.prop(settings, "border")
        else:
            layout.prop(settings, "camera_source")
            if settings.camera_source == "SCENE":
                layout.prop(settings, "depth_source")
            if settings.camera_source == "SCENE":
                layout.prop(settings, "plane_distance")
                layout.prop(settings, "flow_guide")
            if settings.camera_source == "MOTION":
                for name in ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
                             "rotation_3d_z", "fov"):
                    col.prop(settings, name)
            layout.prop(settings, "border")
        layout.prop(settings, "cadence")
        layout.prop(settings, "init_image")
        layout.prop(settings, "restart_chain")
        col = layout.column(align=True)
        for name in ("noise", "contrast"):
            col.prop(settings, name)
        layout.prop(settings, "color_coherence")
        if settings.color_coherence != "NONE":
            layout.prop(settings, "color_coherence_amount")
            layout.prop(settings, "color_reference")
        col = layout.column(align=True)
        col.prop(settings, "coherence_scale")
        col.prop(settings, "coherence_alpha")
        col.prop(settings, "coherence_every")


class KD_PT_input(_Panel, bpy.types.Panel):
    bl_label = "Video Input"
    bl_parent_id = "KD_PT_main"

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.mode == "VIDEO"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.prop(settings, "init_source", expand=True)
        if settings.init_source == "STRIP":
            _strip_field(layout, context.scene, settings, "init_strip")
        else:
            layout.label(text="Renders the scene with its own engine at each frame", icon="SCENE")
        layout.prop(settings, "strength")
        layout.prop(settings, "flow_guide")
        col = layout.column()
        col.active = settings.flow_guide
        # Cadence here is the true-flow cadence: keys diffused, in-betweens moved from them along the flow.
        for name in ("guide", "warp_noise", "fusion", "anchor_attention", "cadence"):
            col.prop(settings, name)


def _strip_field(layout, scene, owner, prop: str) -> None:
    editor = scene.sequence_editor
    if editor is not None:
        layout.prop_search(owner, prop, editor, compat.STRIPS_ALL)
    else:
        layout.prop(owner, prop)


class KD_PT_clip(_Panel, bpy.types.Panel):
    bl_label = "Clip"
    bl_parent_id = "KD_PT_main"

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.mode == "CLIP"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "motion_adapter")
        layout.label(text="Motion LoRAs")
        row = layout.row()
        row.template_list("UI_UL_list", "kd_motion_loras", settings, "motion_loras", settings, "active_motion_lora",
                          rows=2)
        sub = row.column(align=True)
        sub.operator("keyframe_diffusion.item_add", icon="ADD", text="").kind = "MOTION_LORA"
        sub.operator("keyframe_diffusion.item_remove", icon="REMOVE", text="").kind = "MOTION_LORA"
        if 0 <= settings.active_motion_lora < len(settings.motion_loras):
            lora = settings.motion_loras[settings.active_motion_lora]
            sub = layout.column(align=True)
            sub.prop(lora, "path")
            sub.prop(lora, "scale")
        col = layout.column(align=True)
        col.use_property_split = True
        col.prop(settings, "context_length")
        col.prop(settings, "context_overlap")
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "free_noise")
        col.prop(settings, "cpu_offload")


class KD_UL_pins(bpy.types.UIList):
    """A pin's frame (its marker's), label, source and strength; a pin whose marker is gone shows a warning icon."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        frame = row.row(align=True)
        frame.ui_units_x = 3.4  # a pin icon and five digits
        frame.label(text=f"{item.frame}", icon="PINNED" if pin_marker(item) is not None else "ERROR")
        row.prop(item, "name", text="", emboss=False)
        row.label(text="", icon=PIN_SOURCE_ICONS.get(item.source, "QUESTION"))
        strength = row.row(align=True)
        strength.ui_units_x = 3.5
        strength.prop(item, "strength", text="", slider=True)


PIN_SOURCE_ICONS = {"FILE": "FILE_IMAGE", "STRIP": "SEQUENCE", "RENDER": "SCENE", "GENERATED": "RENDER_RESULT"}
VIDEO_MODEL_HINT = ("Model: a Wan 2.x (text-to-video, image-to-video, VACE) or LTX-Video diffusers folder or Hugging "
                    "Face id, e.g. Wan-AI/Wan2.1-VACE-1.3B-diffusers or Lightricks/LTX-Video")


def looks_like_video_model(model: str) -> bool:
    """A name that says Wan or LTX (the hint is shown otherwise; the engine checks the real class)."""
    name = model.lower()
    return "wan" in name or "ltx" in name


class KD_PT_shot(_Panel, bpy.types.Panel):
    """Shot mode: the pins (pictures at frames, shown as timeline markers), the control video, windows and memory."""

    bl_label = "Shot"
    bl_parent_id = "KD_PT_main"

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.mode == "SHOT"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        if not looks_like_video_model(settings.model):
            draw_wrapped(layout.box(), VIDEO_MODEL_HINT, panel_width(context), icon="INFO")
        _draw_pins(layout, context, settings)
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        col.prop(settings, "video_control")
        if settings.video_control != "NONE":
            col.prop(settings, "control_scale")
        if settings.video_control == "RENDER":
            col.prop(settings, "strength")  # animatable: how much of each frame's render is diffused again
        sub = col.column(align=True)
        sub.prop(settings, "shot_window")
        sub.prop(settings, "shot_overlap")
        col.prop(settings, "chain_shots")
        col.prop(settings, "memory_mode")
        row = col.row()
        row.active = settings.memory_mode == "AUTO"
        row.prop(settings, "memory_limit_gb", text="Limit GB")
        col.prop(settings, "video_cache")


def _draw_pins(layout, context, settings) -> None:
    layout.label(text="Pinned Pictures")
    row = layout.row()
    row.template_list("KD_UL_pins", "", settings, "pins", settings, "active_pin", rows=3)
    col = row.column(align=True)
    col.operator_menu_enum("keyframe_diffusion.pin_add", "source", icon="ADD", text="")
    col.operator("keyframe_diffusion.pin_remove", icon="REMOVE", text="")
    col.separator()
    col.operator("keyframe_diffusion.pin_jump", icon="PLAY", text="")
    if not 0 <= settings.active_pin < len(settings.pins):
        if not len(settings.pins):
            draw_wrapped(layout, "Pin a picture at the current frame (+): the shot passes through it there. Its "
                         "marker in the timeline is the pin: move it to move the pin.", panel_width(context),
                         icon="HELP")
        return
    pin = settings.pins[settings.active_pin]
    col = layout.column()
    col.use_property_split = True
    col.use_property_decorate = False
    col.prop(pin, "source")
    if pin.source == "FILE":
        col.prop(pin, "filepath")
    elif pin.source == "STRIP":
        _strip_field(col, context.scene, pin, "strip")
    col.prop(pin, "frame")
    col.prop(pin, "strength")
    if pin_marker(pin) is None:
        box = layout.box()
        draw_wrapped(box, f"Its marker was deleted or renamed: the pin stays at frame {pin.stored_frame}.",
                     panel_width(context), icon="ERROR")
        box.operator("keyframe_diffusion.pin_restore_marker", icon="MARKER_HLT")


class KD_PT_inpaint(_Panel, bpy.types.Panel):
    bl_label = "Inpaint and Depth"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.mode in ("VIDEO", "FEEDBACK")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.prop(settings, "mask_source")
        if settings.mask_source in ("OBJECT_INDEX", "MATERIAL_INDEX"):
            layout.prop(settings, "mask_index")
        elif settings.mask_source == "STRIP":
            _strip_field(layout, context.scene, settings, "mask_strip")
        elif settings.mask_source == "IMAGE":
            layout.template_ID(settings, "mask_image", new="image.new", open="image.open")
        if settings.mask_source != "NONE":
            layout.prop(settings, "mask_invert")
            layout.prop(settings, "mask_blur")
        layout.prop(settings, "use_scene_depth")


class KD_PT_upscale(_Panel, bpy.types.Panel):
    bl_label = "Upscale"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.prop(context.scene.keyframe_diffusion, "use_upscale", text="")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.active = settings.use_upscale
        layout.prop(settings, "upscale_model")
        col = layout.column(align=True)
        col.prop(settings, "upscale_steps")
        col.prop(settings, "upscale_guidance")
        col.prop(settings, "upscale_noise_level")


class KD_UL_controlnets(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.prop(item, "name", text="", emboss=False)
        row.label(text=item.source.title())
        row.prop(item, "scale", text="", slider=True)


class KD_PT_controlnet(_Panel, bpy.types.Panel):
    bl_label = "ControlNet"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.scene.keyframe_diffusion.mode not in ("CLIP", "SHOT")  # the video models take no ControlNet

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        row = layout.row()
        row.template_list("KD_UL_controlnets", "", settings, "controlnets", settings, "active_controlnet", rows=2)
        col = row.column(align=True)
        col.operator("keyframe_diffusion.item_add", icon="ADD", text="").kind = "CONTROLNET"
        col.operator("keyframe_diffusion.item_remove", icon="REMOVE", text="").kind = "CONTROLNET"
        if 0 <= settings.active_controlnet < len(settings.controlnets):
            unit = settings.controlnets[settings.active_controlnet]
            col = layout.column()
            col.use_property_split = True
            col.prop(unit, "model")
            col.prop(unit, "source")
            if unit.source == "STRIP":
                _strip_field(col, context.scene, unit, "strip")
            if unit.source in ("RENDER", "INIT", "STRIP"):
                col.prop(unit, "preprocessor")
            sub = col.column(align=True)
            sub.prop(unit, "scale")
            sub.prop(unit, "start")
            sub.prop(unit, "end")


class KD_PT_model(_Panel, bpy.types.Panel):
    bl_label = "Model Options"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        if settings.mode != "SHOT":  # shot mode loads no LoRAs (bake/scene.py _shot_settings)
            _draw_loras(layout, settings)
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "scheduler_kwargs")
        col.prop(settings, "pipeline_kwargs")


def _draw_loras(layout, settings) -> None:
    layout.label(text="LoRAs")
    row = layout.row()
    row.template_list("UI_UL_list", "kd_loras", settings, "loras", settings, "active_lora", rows=2)
    col = row.column(align=True)
    col.operator("keyframe_diffusion.item_add", icon="ADD", text="").kind = "LORA"
    col.operator("keyframe_diffusion.item_remove", icon="REMOVE", text="").kind = "LORA"
    if 0 <= settings.active_lora < len(settings.loras):
        lora = settings.loras[settings.active_lora]
        col = layout.column(align=True)
        col.prop(lora, "path")
        col.prop(lora, "scale")


class KD_PT_speed(_Panel, bpy.types.Panel):
    bl_label = "Speed"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.prop(settings, "precision")
        if settings.mode != "SHOT":  # the video models decode with their own video VAE
            layout.prop(settings, "decoder")
        col = layout.column(heading="Memory")
        col.prop(settings, "vae_slicing")
        col.prop(settings, "vae_tiling")
        col = layout.column(heading="Faster")
        col.prop(settings, "channels_last")
        col.prop(settings, "compile")
        col.prop(settings, "background_writes")
        row = col.row()
        row.active = settings.mode in ("INTERPOLATE", "VIDEO")
        row.prop(settings, "overlap_decode")
        row = col.row()
        row.active = settings.mode == "VIDEO"
        row.prop(settings, "stream_batch")
        # An int field shows no column heading: the hint says what the switches above don't do.
        row = layout.row()
        row.active = settings.mode not in ("CLIP", "SHOT") and not settings.compile
        row.prop(settings, "feature_reuse")
        if settings.feature_reuse >= 2:
            layout.label(text="Changes the pictures a little: use 30+ steps", icon="INFO")


class KD_PT_audio(_Panel, bpy.types.Panel):
    bl_label = "Audio"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        row = layout.row()
        row.template_list("KD_UL_audio_links", "", settings, "audio_links", settings, "active_audio_link", rows=2)
        col = row.column(align=True)
        col.operator("keyframe_diffusion.audio_link_add", icon="ADD", text="")
        col.operator("keyframe_diffusion.audio_link_remove", icon="REMOVE", text="")
        if 0 <= settings.active_audio_link < len(settings.audio_links):
            link = settings.audio_links[settings.active_audio_link]
            col = layout.column()
            col.use_property_split = True
            col.prop(link, "strip")
            if not link.strip:
                col.prop(link, "filepath")
            col.prop(link, "data_path")
            for name in ("feature", "part", "margin", "reduce", "fmin", "fmax", "shape", "low", "high", "attack",
                         "release", "smooth"):
                if (name == "margin" and link.part == "full") or (name == "reduce" and link.feature != "mel"):
                    continue
                col.prop(link, name)
        row = layout.row(align=True)
        row.operator("keyframe_diffusion.audio_apply", icon="FILE_REFRESH")
        row.operator("keyframe_diffusion.audio_markers", icon="MARKER_HLT")
        layout.label(text="Right-click any value: Drive from Audio...", icon="INFO")


class KD_PT_schedules(_Panel, bpy.types.Panel):
    bl_label = "Schedules"
    bl_parent_id = "KD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        col = layout.column(align=True)
        col.operator("keyframe_diffusion.schedule_import", icon="IMPORT")
        col.operator("keyframe_diffusion.schedule_export", icon="COPYDOWN")
        col = layout.column(align=True)
        col.operator("keyframe_diffusion.deforum_import", icon="IMPORT")
        col.operator("keyframe_diffusion.deforum_export", icon="EXPORT")


# Registration order is the sidebar's order of sub-panels.
classes = (KD_UL_prompts, KD_UL_audio_links, KD_UL_controlnets, KD_UL_pins, KD_PT_main, KD_PT_prompts,
           KD_PT_prompt_options, KD_PT_settings, KD_PT_advanced, KD_PT_input, KD_PT_clip, KD_PT_shot, KD_PT_motion,
           KD_PT_inpaint, KD_PT_controlnet, KD_PT_model, KD_PT_upscale, KD_PT_speed, KD_PT_audio, KD_PT_schedules,
           KD_PT_output, KD_PT_compositor, KD_PT_ray)
