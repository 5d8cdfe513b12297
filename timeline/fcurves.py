"""Writing keys in bulk: imported schedules and transition shapes become ordinary F-curve keys the user can edit."""

from __future__ import annotations

from typing import Sequence

import bpy

from ..settings import compat

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


def id_fcurve(id_data, data_path: str, index: int = 0):
    """The F-curve of `id_data`'s `data_path[index]`, created with a key at the current value if missing."""
    fc = compat.find_fcurve(id_data, data_path, index)
    if fc is None:
        value = id_data.path_resolve(data_path)
        is_array = hasattr(value, "__len__") and not isinstance(value, str)
        id_data.keyframe_insert(data_path, index=index if is_array else -1, frame=0)
        fc = compat.find_fcurve(id_data, data_path, index)
        fc.keyframe_points.clear()
    return fc


def splice_keys(fc, keys: Sequence[tuple[float, float]], first: float, last: float,
                interpolation: str = "LINEAR") -> None:
    """Replace the keys of `fc` between frames first..last (inclusive) with `keys`; keys outside stay as they are."""
    points = fc.keyframe_points
    n = len(points)
    co, interp, easing = [0.0] * (2 * n), [0] * n, [0] * n
    points.foreach_get("co", co)
    points.foreach_get("interpolation", interp)
    points.foreach_get("easing", easing)
    kept = [(co[2 * i], co[2 * i + 1], interp[i], easing[i]) for i in range(n) if not first <= co[2 * i] <= last]
    mode, auto = _enum_value("interpolation", interpolation), _enum_value("easing", "AUTO")
    merged = sorted(kept + [(float(f), float(v), mode, auto) for f, v in keys])
    points.clear()
    points.add(len(merged))
    points.foreach_set("co", [c for m in merged for c in m[:2]])
    points.foreach_set("interpolation", [m[2] for m in merged])
    points.foreach_set("easing", [m[3] for m in merged])
    for side in ("handle_left_type", "handle_right_type"):
        points.foreach_set(side, [_enum_value(side, "AUTO_CLAMPED")] * len(merged))
    fc.update()
