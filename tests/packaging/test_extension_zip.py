"""The extension's zip as scripts/build_extension.py builds it (the root conftest's `built_zip`): what goes in, what
stays out. Installing it in Blender: tests/blender."""

import zipfile


def test_zip_holds_the_extension_and_nothing_else(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "engine/worker.py" in names
    assert not [n for n in names if n.startswith(("tests/", ".venv", "scripts/", ".git", "requirements/dev"))]
    assert "requirements/engine.txt" in names  # the engine check reads it and names it in its fix
    # The embedded default model ships inside: a first run needs no download.
    for part in ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json",
                 "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert "engine/shapes/model/" + part in names, part
