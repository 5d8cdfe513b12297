"""Presets of the generation settings through Blender's own preset menus: the presets the extension ships
(presets/keyframe_diffusion: Preview, Final, Turbo, one per mode) and the user's own (the user's presets folder)."""

from __future__ import annotations

import os

import bpy
from bl_operators.presets import AddPresetBase
from bl_ui.utils import PresetPanel

from ..settings.preferences import EXTENSION_DIR
from ..settings.properties import FRAME_PARAMS

PRESET_SUBDIR = "keyframe_diffusion"
# Blender's preset menus read bpy.utils.preset_paths(), the user and system script folders, which an extension's own
# folder is not among. The shipped presets are listed from here rather than copied into the user's folder: nothing is
# written outside the extension's user folder, an update of the extension updates them, and they can't be removed
# by mistake (only the user's own presets get a remove button).
SHIPPED_PRESETS = os.path.join(EXTENSION_DIR, "presets", PRESET_SUBDIR)


def draw_presets(self, context) -> None:
    """A preset menu's or popover's body: the shipped presets, then the user's own with the row that saves one."""
    options = dict(filter_ext=lambda ext: ext.lower() == ".py",
                   display_name=lambda path: bpy.path.display_name(os.path.basename(path), title_case=False))
    bpy.types.Menu.path_menu(self, [SHIPPED_PRESETS], self.preset_operator, **options)
    self.layout.separator()
    user = bpy.utils.preset_paths(PRESET_SUBDIR)
    # Before the first saved preset the user's folder doesn't exist: path_menu gets a folder with every file
    # filtered out, so it draws only the row that saves a preset (an empty list would draw "* Missing Paths *").
    bpy.types.Menu.path_menu(self, user or [SHIPPED_PRESETS], self.preset_operator,
                             add_operator=getattr(self, "preset_add_operator", None),
                             **(options if user else {**options, "filter_path": lambda name: False}))
# What a preset holds: how to generate, not what (prompts) or where (output folder, strip). Animated settings are
# stored at their current value; their F-curves stay in the .blend.
PRESET_PROPS = ("mode", "model", "width", "height", "seed", "seed_behavior", "seed_iter_n", "latent_source", "pace",
                "scheduler", "scheduler_class", "negative_prompt", "batch_size", "decoder", "precision", "channels_last",
                "vae_slicing", "vae_tiling", "compile", "feature_reuse", "background_writes", "stream_batch",
                "overlap_decode", "device", "motion_mode", "border", "cadence", "color_coherence", "flow_guide",
                "warp_noise", "fusion", "anchor_attention", "shot_window", "shot_overlap", "chain_shots", "memory_mode",
                "memory_limit_gb", "video_cache", "video_control", "control_scale", *FRAME_PARAMS)


class KD_PT_presets(PresetPanel, bpy.types.Panel):
    bl_label = "Keyframe Diffusion Presets"
    preset_subdir = PRESET_SUBDIR
    preset_operator = "script.execute_preset"
    preset_add_operator = "keyframe_diffusion.preset_add"

    def draw(self, context):
        layout = self.layout
        layout.emboss = "PULLDOWN_MENU"
        layout.operator_context = "EXEC_DEFAULT"
        draw_presets(self, context)


class KD_MT_presets(bpy.types.Menu):
    bl_label = "Keyframe Diffusion Presets"
    preset_subdir = PRESET_SUBDIR
    preset_operator = "script.execute_preset"
    draw = draw_presets


class KD_OT_preset_add(AddPresetBase, bpy.types.Operator):
    """Save the generation settings as a preset, or remove one"""

    bl_idname = "keyframe_diffusion.preset_add"
    bl_label = "Add Keyframe Diffusion Preset"
    preset_menu = "KD_MT_presets"
    preset_defines = ["settings = bpy.context.scene.keyframe_diffusion"]
    preset_values = [f"settings.{name}" for name in PRESET_PROPS]
    preset_subdir = PRESET_SUBDIR


classes = (KD_MT_presets, KD_PT_presets, KD_OT_preset_add)
