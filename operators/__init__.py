"""Operators (ids start with keyframe_diffusion.). Names are an API: scripts rely on them."""

import bpy

from . import export, generate, prompts

classes = (*prompts.classes, *generate.classes, *export.classes)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
