"""Writing keys in bulk: imported schedules and transition shapes become ordinary F-curve keys the user can edit."""

from __future__ import annotations

from typing import Sequence

import bpy

from . import compat

# Transition shapes offered for prompt crossfades: id -> (label, Blender interpolation, easing, description).
# Giffusion's two schedules can't be one key pair; they are written as a key per frame (see prompt_keys.py).
TRANSITIONS = {
    "LINEAR": ("Linear", "LINEAR", "AUTO", "Even crossfade"),
    "BEZIER": ("Bezier", "BEZIER", "AUTO", "Smooth keys with auto-clamped handles (edit them in the Graph Editor)"),
    "EASE_IN_OUT": ("Ease In/Out", "CUBIC", "EASE_IN_OUT", "Slow at both keys, fast between"),
    "EASE_IN": ("Ease In", "CUBIC", "EASE_IN", "Starts slow, ends fast"),
    "EASE_OUT": ("Ease Out", "CUBIC", "EASE_OUT", "Starts fast, ends slow"),
    "SINE": ("Sine", "SINE", "EASE_IN_OUT", "Sinusoidal ease in and out"),
    "CONSTANT": ("Hard Cut", "CONSTANT", "AUTO", "Switch at the key, no crossfade"),
}
GIFFUSION_TRANSITIONS = {
    "GIFFUSION_SINE": ("Giffusion Sine", "sin²(π·f·x) summed over the frequencies: to the next prompt and back"),
    "GIFFUSION_CURVE": ("Giffusion Curve", "A Deforum-format curve (0-1) gives the mix towards the next prompt"),
}
TRANSITION_ITEMS = [(k, v[0], v[3]) for k, v in TRANSITIONS.items()] + [
    (k, v[0], v[1]) for k, v in GIFFUSION_TRANSITIONS.items()
]


def _enum_value(prop: str, identifier: str) -> int:
    return bpy.types.Keyframe.bl_rna.properties[prop].enum_items[identifier].value


def fcurve_for(struct, prop: str):
    """The F-curve of `struct.prop`, created (with one key at the current value) if the property isn't animated."""
    path = struct.path_from_id(prop)
    fc = compat.find_fcurve(struct.id_data, path)
    if fc is None:
        compat.keyframe_insert(struct, prop, 0)
        fc = compat.find_fcurve(struct.id_data, path)
    return fc


def replace_keys(struct, prop: str, keys: Sequence[tuple[float, float]], interpolation: str = "LINEAR",
                 easing: str = "AUTO") -> None:
    """Make `keys` (frame, value) the only keys of `struct.prop`, all with one interpolation and easing."""
    fc = fcurve_for(struct, prop)
    points = fc.keyframe_points
    points.clear()
    points.add(len(keys))
    points.foreach_set("co", [c for key in keys for c in (float(key[0]), float(key[1]))])
    points.foreach_set("interpolation", [_enum_value("interpolation", interpolation)] * len(keys))
    points.foreach_set("easing", [_enum_value("easing", easing)] * len(keys))
    # Bezier keys get handles from their neighbours; update() sorts keys and recalculates them.
    points.foreach_set("handle_left_type", [_enum_value("handle_left_type", "AUTO_CLAMPED")] * len(keys))
    points.foreach_set("handle_right_type", [_enum_value("handle_right_type", "AUTO_CLAMPED")] * len(keys))
    fc.update()


def clear_animation(struct, prop: str) -> None:
    fc = compat.find_fcurve(struct.id_data, struct.path_from_id(prop))
    if fc is not None:
        compat.remove_fcurve(struct.id_data, fc)
