"""What the user sees: the Sequencer sidebar panels (N panel, tab 'Diffusion') and the preference screen. Panels
draw properties and call operators by their ids; they may import operators (for menus), never the other way."""

import bpy

from . import compositor, preferences, sequencer

classes = (preferences.KD_Preferences, *sequencer.classes, *compositor.classes)


register, unregister = bpy.utils.register_classes_factory(classes)
