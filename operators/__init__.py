"""Operators (ids start with keyframe_diffusion.). Names are an API: scripts rely on them."""

import bpy

from . import export, generate, inspire, presets, prompts, schedules

classes = (*prompts.classes, *generate.classes, *export.classes, *schedules.classes, *presets.classes,
           *inspire.classes)


register, unregister = bpy.utils.register_classes_factory(classes)
