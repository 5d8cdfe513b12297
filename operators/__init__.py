"""Operators (ids start with keyframe_diffusion.). Names are an API: scripts rely on them."""

import bpy

from . import export, generate, prompts

classes = (*prompts.classes, *generate.classes, *export.classes)


register, unregister = bpy.utils.register_classes_factory(classes)
