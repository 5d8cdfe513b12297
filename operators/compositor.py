"""Use Frames in Compositor: the generated frames as a node group in the scene's compositor (run/compositor.py),
from the Sequencer sidebar, the compositor's sidebar and its Add menu."""

from __future__ import annotations

import bpy

from ..run import compositor
from .messages import report


class KD_OT_compositor_use(bpy.types.Operator):
    bl_idname = "keyframe_diffusion.compositor_use"
    bl_label = "Use Frames in Compositor"
    bl_description = ("Put the generated frames into the scene's compositor: a \"Keyframe Diffusion\" node group "
                      "beside Render Layers that mixes them over the render as Mix says. Run it again to update the "
                      "group (never a second one)")
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            said = compositor.use_frames(context.scene)
        except compositor.CompositorError as e:
            report(self, "ERROR", f"Can't use the frames in the compositor: {e}")
            return {"CANCELLED"}
        report(self, "INFO", said)
        return {"FINISHED"}


def add_menu(self, context) -> None:
    """The compositor's Add menu: the operator, where the editor shows a compositor tree."""
    if getattr(context.space_data, "tree_type", "") == "CompositorNodeTree":
        self.layout.separator()
        self.layout.operator(KD_OT_compositor_use.bl_idname, icon="NODE_COMPOSITING")


classes = (KD_OT_compositor_use,)
