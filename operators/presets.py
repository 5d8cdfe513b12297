"""Presets of the generation settings through Blender's own preset menus (files in the user's presets folder)."""

from __future__ import annotations

import bpy
from bl_operators.presets import AddPresetBase
from bl_ui.utils import PresetPanel

from ..settings.properties import FRAME_PARAMS

PRESET_SUBDIR = "keyframe_diffusion"
# What a preset holds: how to generate, not what (prompts) or where (output folder, strip). Animated settings are
# stored at their current value; their F-curves stay in the .blend.
PRESET_PROPS = ("mode", "model", "width", "height", "seed", "seed_behavior", "seed_iter_n", "latent_source",
                "scheduler", "scheduler_class", "negative_prompt", "batch_size", "decoder", "precision", "channels_last",
                "vae_slicing", "vae_tiling", "compile", "background_writes", "stream_batch", "overlap_decode", "device", "motion_mode", "border",
                "cadence", "color_coherence", *FRAME_PARAMS)


class KD_PT_presets(PresetPanel, bpy.types.Panel):
    bl_label = "Keyframe Diffusion Presets"
    preset_subdir = PRESET_SUBDIR
    preset_operator = "script.execute_preset"
    preset_add_operator = "keyframe_diffusion.preset_add"


class KD_MT_presets(bpy.types.Menu):
    bl_label = "Keyframe Diffusion Presets"
    preset_subdir = PRESET_SUBDIR
    preset_operator = "script.execute_preset"
    draw = bpy.types.Menu.draw_preset


class KD_OT_preset_add(AddPresetBase, bpy.types.Operator):
    """Save the generation settings as a preset, or remove one"""

    bl_idname = "keyframe_diffusion.preset_add"
    bl_label = "Add Keyframe Diffusion Preset"
    preset_menu = "KD_MT_presets"
    preset_defines = ["settings = bpy.context.scene.keyframe_diffusion"]
    preset_values = [f"settings.{name}" for name in PRESET_PROPS]
    preset_subdir = PRESET_SUBDIR


classes = (KD_MT_presets, KD_PT_presets, KD_OT_preset_add)
