"""Operators (ids start with keyframe_diffusion.). Names are an API: scripts rely on them."""

import bpy

from . import (audio, compositor, engine_check, engine_env, export, generate, inspire, messages, models, pins,
               presets, prompts, schedules, units)

classes = (*prompts.classes, *generate.classes, *export.classes, *schedules.classes, *presets.classes,
           *inspire.classes, *audio.classes, *units.classes, *engine_check.classes, *engine_env.classes,
           *models.classes, *messages.classes, *compositor.classes, *pins.classes)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    _register_classes()
    bpy.types.UI_MT_button_context_menu.append(audio.context_menu)
    bpy.types.NODE_MT_add.append(compositor.add_menu)


def unregister() -> None:
    bpy.types.NODE_MT_add.remove(compositor.add_menu)
    bpy.types.UI_MT_button_context_menu.remove(audio.context_menu)
    _unregister_classes()
