"""The preferences' Models box in Blender: refresh lists a models folder and the Hugging Face cache by kind, Use and
Add LoRA set the scene, downloads need consent and online access (`engine.model_index` and the engine commands:
tests/engine/test_model_manager.py)."""

from __future__ import annotations

import os

import pytest
from common import make_hf_cache, make_models_folder, tiny_model


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory) -> str:
    return make_models_folder(tmp_path_factory.mktemp("my-models"), tiny_model())


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> str:
    """A Hugging Face cache as huggingface_hub lays it out: a diffusers pipeline repo and a LoRA-only repo."""
    return make_hf_cache(tmp_path_factory.mktemp("hub"), tiny_model())


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in entries}


def test_models_box_in_blender(extension, scene, models_folder, hf_cache, monkeypatch):
    bpy = pytest.importorskip("bpy")
    from test_panels import Layout

    session = extension.engine_link.session
    screen = extension.panels.preferences
    monkeypatch.setenv("HF_HUB_CACHE", hf_cache)  # the engine command inherits it
    prefs = extension.settings.preferences.get()
    prefs.models_folder = models_folder
    try:
        assert bpy.ops.keyframe_diffusion.models_refresh() == {"FINISHED"}
        found = by_name(session.state.models)
        assert found["kd-test/tiny-sd"]["kind"] == "pipeline" and found["sd15.safetensors"]["kind"] == "checkpoint"
        assert [kind for kind, _ in session.grouped_models()] == ["pipeline", "checkpoint", "lora", "controlnet",
                                                          "motion_adapter", "other"]

        calls: list = []
        prefs.draw_models(Layout(calls))
        assert calls.count(("operator", "keyframe_diffusion.model_use")) == 6  # built in, 2 pipelines, 3 checkpoints
        assert calls.count(("operator", "keyframe_diffusion.model_add_lora")) == 2
        assert ("prop", "download_repo") in calls and ("label", "LoRAs (2)") in calls
        icons = {i.identifier for i in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items}
        assert set(screen.KIND_ICONS.values()) <= icons

        assert bpy.ops.keyframe_diffusion.model_use(ref="kd-test/tiny-sd") == {"FINISHED"}
        assert scene.keyframe_diffusion.model == "kd-test/tiny-sd"
        lora = found["loras/style.safetensors"]["ref"]
        assert bpy.ops.keyframe_diffusion.model_add_lora(path=lora) == {"FINISHED"}
        assert bpy.ops.keyframe_diffusion.model_add_lora(path=lora) == {"CANCELLED"}  # already there
        assert [item.path for item in scene.keyframe_diffusion.loras] == [lora]

        prefs.allow_downloads, prefs.download_repo = False, "stabilityai/sd-turbo"
        with pytest.raises(RuntimeError, match="Downloads are off: enable Allow Model Downloads"):
            bpy.ops.keyframe_diffusion.model_download()
        prefs.allow_downloads = True
        assert not bpy.app.online_access  # the bpy module runs offline
        with pytest.raises(RuntimeError, match="Blender's online access is off"):
            bpy.ops.keyframe_diffusion.model_download()
        calls = []
        prefs.draw_models(Layout(calls))
        assert ("label", session.download_blocker(prefs, session.PREFERENCES)) in calls
        assert "System > Network in these preferences" in session.download_blocker(prefs, session.PREFERENCES)
        prefs.allow_downloads = False
        calls = []
        prefs.draw_models(Layout(calls))  # inside the preferences the setting is a few lines up
        assert ("label", "Tick Allow Model Downloads above to download") in calls

        prefs.models_folder = os.path.join(models_folder, "nowhere")
        assert bpy.ops.keyframe_diffusion.models_refresh() == {"FINISHED"}  # the warning is reported, not raised
        assert session.state.model_warnings == [f"models folder '{prefs.models_folder}' does not exist"]
    finally:
        prefs.models_folder, prefs.allow_downloads, prefs.download_repo = "", False, ""
        session.state.models.clear()
        session.state.model_warnings.clear()
