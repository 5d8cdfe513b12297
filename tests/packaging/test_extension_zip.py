"""The extension's zip as scripts/build_extension.py builds it (the root conftest's `built_zip`): what goes in, what
stays out. Installing it in Blender: tests/blender."""

import subprocess
import zipfile

from common import ROOT


def test_zip_holds_the_extension_and_nothing_else(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "engine/worker.py" in names
    assert not [n for n in names if n.startswith(("tests/", ".venv", "scripts/", ".git", "requirements/dev"))]
    assert "requirements/engine.txt" in names  # the engine check reads it and names it in its fix
    # The embedded default model ships inside: a first run needs no download.
    for part in ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json",
                 "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert "engine/shapes/model/" + part in names, part


def test_zip_holds_only_files_the_repository_tracks(built_zip):
    # A checkout gathers untracked things (the wheel cache, hypothesis' database, venvs, test output): none may ship,
    # so a zip built on a developer's machine holds what one built on a clean clone holds.
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.splitlines())
    names = [n for n in zipfile.ZipFile(built_zip).namelist() if not n.endswith("/")]
    assert [n for n in names if n not in tracked] == []
    assert not [n for n in names if n.startswith("requirements/bpy") or n.startswith("requirements/bench")]


def test_zip_holds_the_shipped_presets(built_zip):
    # The Settings panel's preset menu lists them from the installed extension's folder (operators/presets.py).
    names = zipfile.ZipFile(built_zip).namelist()
    for preset in ("Preview", "Final", "Turbo", "Mode_Interpolate", "Mode_Feedback", "Mode_Video", "Mode_Clip",
                   "Mode_Shot"):
        assert f"presets/keyframe_diffusion/{preset}.py" in names, preset
