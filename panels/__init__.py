"""Sidebar panels in the Sequencer (N panel, tab 'Diffusion')."""

import bpy

from . import sequencer

classes = sequencer.classes


register, unregister = bpy.utils.register_classes_factory(classes)
