"""Blender fixtures. Blender tests use the real bpy wheel with the extension installed from its built zip (the root
conftest's `built_zip`), in a throwaway user-resources folder (set by the root conftest before bpy is imported),
exactly as a user install does."""

from __future__ import annotations

import importlib

import pytest
from common import PACKAGE


@pytest.fixture(scope="session")
def extension(built_zip):
    """The extension installed and enabled through Blender's own installer; returns its package module."""
    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=built_zip, repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    assert PACKAGE in bpy.context.preferences.addons
    return importlib.import_module(PACKAGE)


@pytest.fixture
def scene(extension, tmp_path):
    """A fresh empty scene with frames 1-6, writing into a test folder."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 6
    scene.frame_set(1)
    settings = scene.keyframe_diffusion
    # Plumbing tests use the random tiny model, which the tiny ControlNets and LoRAs are built for; the default (the
    # trained shapes model) has its own tests.
    settings.model = "embedded:tiny"
    # Plumbing tests render the scene's frames 1-6 whatever their prompt keys; the default Frame Range (the prompt
    # keys') has its own tests (test_frame_range.py).
    settings.frame_range = "SCENE"
    settings.output_dir = str(tmp_path / "out")
    settings.batch_size = 3
    settings.steps = 2
    yield scene
    extension.engine_link.workers.release_worker()
