"""The compositor settings, drawn in the Sequencer sidebar (Diffusion > Compositor) and in the compositor's own
sidebar (tab Diffusion): the mix, its mask, which frames, the button, and the group node's amounts (hover and press I
to keyframe them)."""

from __future__ import annotations

import bpy

from ..operators.compositor import KD_OT_compositor_use
from ..run import compositor, compositor_group


def draw_compositor(layout, scene) -> None:
    settings = scene.keyframe_diffusion
    col = layout.column()
    col.use_property_split = True
    col.prop(settings, "compositor_mix")
    if settings.compositor_mix == "MASK":
        col.prop(settings, "compositor_mask")
    elif settings.compositor_mix == "IMAGE":
        col.prop(settings, "compositor_mask_image")
    col.prop(settings, "compositor_source")
    node = compositor.group_node(scene)
    text = "Update Compositor" if node is not None else KD_OT_compositor_use.bl_label
    layout.operator(KD_OT_compositor_use.bl_idname, icon="NODE_COMPOSITING", text=text)
    if node is None:
        return
    built = node.node_tree.get(compositor_group.MARK)
    if built != settings.compositor_mix:
        layout.label(text="Update Compositor to apply the new mix", icon="INFO")
    col = layout.column(align=True)
    col.use_property_split = True
    for name in compositor_group.CONTROLS.get(built, ()):
        col.prop(node.inputs[name], "default_value", text=name)


class KD_PT_node_compositor(bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Diffusion"
    bl_label = "Keyframe Diffusion"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"

    def draw(self, context):
        draw_compositor(self.layout, context.scene)


classes = (KD_PT_node_compositor,)
