"""Sidebar panels in the Sequencer (N panel, tab 'Diffusion')."""

import bpy

from . import sequencer

classes = sequencer.classes


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
