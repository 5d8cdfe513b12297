"""What every test layer needs (tests/engine, tests/blender, tests/packaging): the environment that must be set before
bpy is imported anywhere in this process, and the built extension zip. Layer fixtures live in each layer's
conftest.py; plain helpers (ROOT, PACKAGE, SESSION_TMP, make_plan, write_plan) in common.py.

KD_BLOCK_BPY=1 (`make test-engine`) makes bpy impossible to import in this process, proving the engine tests need
no Blender at all."""

from __future__ import annotations

import importlib.abc
import os
import subprocess
import sys

import pytest
from common import ROOT, SESSION_TMP, download_wheels, small_requirements

# Must be set before bpy is imported anywhere in this process.
os.environ["BLENDER_USER_RESOURCES"] = os.path.join(SESSION_TMP, "blender-user")
# The embedded tiny model is built once per session into this cache and shared by every worker process.
os.environ["KEYFRAME_DIFFUSION_CACHE"] = os.path.join(SESSION_TMP, "cache")

# No test may reach the network for a model.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Blender's modules: bpy and what only exists alongside it.
_BLENDER_MODULES = ("bpy", "_bpy", "bpy_extras", "bpy_types", "mathutils", "bmesh", "bl_ext", "addon_utils")


class _BlockBlender(importlib.abc.MetaPathFinder):
    """Refuses every Blender module, so a test that reaches for bpy fails instead of quietly using the wheel."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLENDER_MODULES:
            raise ImportError(f"{name} is blocked: KD_BLOCK_BPY is set, these tests must run without Blender")
        return None


if os.environ.get("KD_BLOCK_BPY", "") not in ("", "0"):
    if any(m.split(".")[0] in _BLENDER_MODULES for m in sys.modules):
        raise RuntimeError("KD_BLOCK_BPY is set but a Blender module was imported before the tests started")
    sys.meta_path.insert(0, _BlockBlender())


@pytest.fixture(scope="session")
def built_zip() -> str:
    """The extension's zip, built once per session by scripts/build_extension.py (the Blender and packaging tests)."""
    out = os.path.join(SESSION_TMP, "build")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_extension.py"), "--output-dir", out],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    path = done.stdout.strip().splitlines()[-1]
    assert path.endswith(".zip") and os.path.isfile(path)
    return path


# The engine environment's installer (tests/engine) and its operator (tests/blender) install the same small set.
@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> str:
    return download_wheels(str(tmp_path_factory.mktemp("wheels")))


@pytest.fixture
def requirements(tmp_path) -> str:
    """numexpr and numpy, one of them through a `-r` include, among comments."""
    return small_requirements(tmp_path)
