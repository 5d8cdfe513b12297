"""The extension's preferences: which Python runs the engine, where its environment and models live, and what the
engine may do (download, unpickle). The properties live here; the preference screen that draws them (with what the
engine link found) is panels/preferences.py, which registers them as the AddonPreferences."""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, StringProperty


# The extension's own package (bl_ext.<repo>.keyframe_diffusion): the preferences' and user folders' key.
ADDON_PACKAGE = __package__.rpartition(".")[0]
EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PreferenceProperties:
    """The preferences' properties, a mixin for the AddonPreferences class (Blender collects inherited annotations,
    as it does for ExportHelper's filepath)."""

    python_path: StringProperty(
        name="Engine Python",
        description="Python interpreter that runs the engine (empty: Blender's own Python with the bundled wheels)",
        subtype="FILE_PATH",
        default="",
    )
    venv_dir: StringProperty(
        name="Environment Folder",
        description="Where Create Engine Environment makes the engine's virtual environment (empty: the "
        "extension's user folder)",
        subtype="DIR_PATH",
        default="",
    )
    venv_wheels_dir: StringProperty(
        name="Install From Wheels",
        description="Install the engine requirements offline from this folder of wheels, e.g. a full build's "
        "wheels (empty: download them from PyPI, which needs Blender's online access)",
        subtype="DIR_PATH",
        default="",
    )
    venv_torch_index: StringProperty(
        name="Torch Index",
        description="Extra package index for torch, e.g. https://download.pytorch.org/whl/cpu (CPU only) or "
        "https://download.pytorch.org/whl/cu128 (CUDA 12.8); empty: PyPI's torch",
        default="",
    )
    allow_downloads: BoolProperty(
        name="Allow Model Downloads",
        description="Let the engine download missing models from Hugging Face (also needs Blender's online access)",
        default=False,
    )
    allow_unsafe_weights: BoolProperty(
        name="Allow Pickle Weights",
        description="Load .bin/.ckpt weights, which can run code when loaded. Only for models you trust",
        default=False,
    )

    models_folder: StringProperty(
        name="Models Folder",
        description="Folder where your checkpoints, LoRAs and diffusers model folders live (searched 3 levels deep)",
        subtype="DIR_PATH",
        default="",
    )
    download_repo: StringProperty(
        name="Hugging Face Model",
        description="Model id to download into the Hugging Face cache, e.g. stabilityai/sd-turbo",
        default="",
    )


def get(context=None):
    """The extension's preferences, or None when it is not enabled (e.g. imported by a test)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon else None
