"""The Sequencer sidebar: prompts, settings (hover and press I to keyframe), generate with progress."""

from __future__ import annotations

import bpy


class _Panel:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Diffusion"


class KD_UL_prompts(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=f"{item.frame}", icon="KEYFRAME")
        row.prop(item, "text", text="", emboss=False)
        row.prop(item, "weight", text="", slider=True)


class KD_PT_main(_Panel, bpy.types.Panel):
    bl_label = "Keyframe Diffusion"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        status = context.window_manager.keyframe_diffusion_status
        if status.running:
            layout.progress(factor=status.progress, type="BAR", text=status.message or "Generating")
            layout.operator("keyframe_diffusion.cancel", icon="CANCEL")
        else:
            row = layout.row(align=True)
            row.scale_y = 1.4
            row.operator("keyframe_diffusion.generate", icon="RENDER_ANIMATION")
            op = row.operator("keyframe_diffusion.generate", text="Frame", icon="RENDER_STILL")
            op.current_frame = True
            if status.message:
                layout.label(text=status.message)
        layout.prop(settings, "model")
        layout.prop(settings, "output_dir")
        row = layout.row(align=True)
        row.operator("keyframe_diffusion.bake", icon="FILE_TICK")
        row.operator("keyframe_diffusion.export", icon="EXPORT")
        row.operator("keyframe_diffusion.release", text="", icon="X")


class KD_PT_prompts(_Panel, bpy.types.Panel):
    bl_label = "Prompts"
    bl_parent_id = "KD_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keyframe_diffusion
        row = layout.row()
        row.template_list("KD_UL_prompts", "", settings, "prompts", settings, "active_prompt", rows=3)
        col = row.column(align=True)
        col.operator("keyframe_diffusion.prompt_add", icon="ADD", text="")
        col.operator("keyframe_diffusion.prompt_remove", icon="REMOVE", text="")
        if 0 <= settings.active_prompt < len(settings.prompts):
            item = settings.prompts[settings.active_prompt]
            col = layout.column()
            col.prop(item, "text")
            col.prop(item, "negative")
            col.prop(item, "weight")
            col.prop(item, "seed")
        layout.prop(settings, "negative_prompt")


class KD_PT_settings(_Panel, bpy.types.Panel):
    bl_label = "Settings"
    bl_parent_id = "KD_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.keyframe_diffusion
        layout.prop(settings, "mode")
        col = layout.column(align=True)
        col.prop(settings, "width")
        col.prop(settings, "height")
        for name in ("steps", "guidance", "strength", "seed"):
            layout.prop(settings, name)
        layout.prop(settings, "latent_source")
        layout.prop(settings, "scheduler")
        layout.prop(settings, "batch_size")
        layout.prop(settings, "device")
        col = layout.column(align=True)
        col.prop(settings, "strip_name")
        col.prop(settings, "strip_channel")
        layout.prop(settings, "generate_before_render")


classes = (KD_UL_prompts, KD_PT_main, KD_PT_prompts, KD_PT_settings)
