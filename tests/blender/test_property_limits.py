"""Blender's hard limits of every numeric setting lie inside the plan's range for its field (engine/plan.py), so a
value a user can type or key is never one the engine refuses at render time (a guidance of 1e308 rendered black frames
recorded as done; a zoom of 0 failed in the warp)."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from engine import plan as plan_mod  # noqa: E402


def _ranges(extension) -> dict[tuple[str, str], plan_mod.Range]:
    """(property group, property) -> the plan's range for the field it bakes into."""
    by_group = {None: plan_mod.FRAME_RANGES, "motion": plan_mod.MOTION_RANGES, "image": plan_mod.IMAGE_RANGES}
    ranges = {("KD_Settings", prop): by_group[group][key]
              for prop, (group, key) in extension.settings.properties.FRAME_PARAMS.items()}
    ranges.update({
        ("KD_Settings", "seed"): plan_mod.FRAME_RANGES["seed"],
        ("KD_PromptKey", "seed"): plan_mod.PROMPT_RANGES["seed"],
        ("KD_PromptKey", "weight"): plan_mod.PROMPT_RANGES["weight"],
        ("KD_ControlUnit", "scale"): plan_mod.CONTROL_RANGES["scale"],
        ("KD_ControlUnit", "start"): plan_mod.CONTROL_RANGES["start"],
        ("KD_ControlUnit", "end"): plan_mod.CONTROL_RANGES["end"],
        ("KD_Lora", "scale"): plan_mod.LORA_RANGES["scale"],
        ("KD_Settings", "upscale_steps"): plan_mod.UPSCALE_RANGES["steps"],
        ("KD_Settings", "upscale_guidance"): plan_mod.UPSCALE_RANGES["guidance"],
        ("KD_Settings", "upscale_noise_level"): plan_mod.UPSCALE_RANGES["noise_level"],
        ("KD_Settings", "mask_blur"): plan_mod.MASK_RANGES["blur"],
        ("KD_Settings", "width"): plan_mod.Range(8, plan_mod.DEFAULT_MAX_SIDE),
        ("KD_Settings", "height"): plan_mod.Range(8, plan_mod.DEFAULT_MAX_SIDE),
        ("KD_Pin", "strength"): plan_mod.PIN_RANGES["strength"],
        ("KD_Pin", "frame"): plan_mod.PIN_RANGES["frame"],
        ("KD_Pin", "stored_frame"): plan_mod.PIN_RANGES["frame"],
    })
    for name in ("batch_size", "cadence", "context_length", "context_overlap", "shot_window", "shot_overlap",
                 "memory_limit_gb", "control_scale"):
        ranges[("KD_Settings", name)] = plan_mod.SETTINGS_RANGES[name]
    return ranges


def test_every_setting_blender_accepts_is_one_the_plan_accepts(extension):
    checked, outside = 0, []
    for (group, name), limits in _ranges(extension).items():
        prop = getattr(extension.settings.properties, group).bl_rna.properties[name]  # a renamed property fails here, not silently
        low, high = prop.hard_min, prop.hard_max
        if prop.type == "FLOAT":
            # Blender's float limits are single precision: compare at that precision.
            low, high = float(f"{low:.6g}"), float(f"{high:.6g}")
        if not (limits.holds(low) and limits.holds(high)):
            outside.append(f"{group}.{name}: Blender {low}..{high}, plan {limits.text()}")
        checked += 1
    assert outside == []
    assert checked >= 30


def test_a_value_above_the_plans_range_is_clamped_by_blender(scene):
    settings = scene.keyframe_diffusion
    settings.guidance = 1e308
    settings.zoom = 0.0
    settings.angle = -1e30
    assert settings.guidance == plan_mod.FRAME_RANGES["guidance"].high
    assert plan_mod.MOTION_RANGES["zoom"].holds(settings.zoom)
    assert settings.angle == plan_mod.MOTION_RANGES["angle"].low
