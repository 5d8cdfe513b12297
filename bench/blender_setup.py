"""The extension in the bpy wheel for benchmarks: built with Blender's tool and installed from its zip into a private
Blender user folder, exactly as a user's install (and the tests) do."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def install_extension(tmp: str):
    """Build and install the extension into `tmp`; returns its package module. Call before bpy is imported."""
    os.environ["BLENDER_USER_RESOURCES"] = os.path.join(tmp, "user")
    built = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_extension.py"), "--output-dir",
                            os.path.join(tmp, "build")], capture_output=True, text=True, check=True)
    import bpy

    bpy.ops.extensions.package_install_files(filepath=built.stdout.strip().splitlines()[-1], repo="user_default",
                                             enable_on_install=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    return importlib.import_module("bl_ext.user_default.keyframe_diffusion")
