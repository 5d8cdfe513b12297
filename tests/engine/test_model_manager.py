"""The model manager: `engine.model_index` lists what is in a models folder and the Hugging Face cache by kind, from
configs and safetensors headers only; `python -m engine models` / `download`; the preferences' Models box."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from common import PACKAGE, ROOT
from safetensors.torch import save_file

from engine import model_index

REV = "0123456789abcdef0123456789abcdef01234567"


class _MakesAFolderWhenUnpickled:
    """A pickle that leaves a trace if anything ever loads it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _tensors(*keys: str, shape=(2, 2)) -> dict:
    return {k: torch.zeros(shape) for k in keys}


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory, tiny_model_dir) -> str:
    root = tmp_path_factory.mktemp("my-models")
    shutil.copytree(tiny_model_dir, root / "tiny-sd")
    (root / "cn").mkdir()
    (root / "cn" / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel",
                                                         "cross_attention_dim": 768}))
    save_file(_tensors("model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.out.2.bias"),
              root / "sd15.safetensors")
    save_file(_tensors("model.diffusion_model.input_blocks.0.0.weight",
                       "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"),
              root / "sdxl.safetensors")
    (root / "loras").mkdir()
    lora = _tensors("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight")
    # The cross-attention key's down projection reads the text width: 768 is SD 1.x.
    lora["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"] = torch.zeros(4, 768)
    save_file(lora, root / "loras" / "style.safetensors")
    (root / "animatediff" / "v3").mkdir(parents=True)
    save_file(_tensors("down_blocks.0.motion_modules.0.temporal_transformer.norm.weight"),
              root / "animatediff" / "v3" / "mm_sd15.safetensors")
    (root / "a" / "b" / "c" / "d").mkdir(parents=True)
    save_file(_tensors("model.diffusion_model.x"), root / "a" / "b" / "c" / "d" / "too-deep.safetensors")
    with open(root / "old.ckpt", "wb") as f:
        pickle.dump(_MakesAFolderWhenUnpickled(str(root / "unpickled")), f)
    (root / "broken.safetensors").write_bytes(os.urandom(256))
    (root / "notes.txt").write_text("not a model")
    return str(root)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, tiny_model_dir) -> str:
    """A Hugging Face cache as huggingface_hub lays it out: a diffusers pipeline repo and a LoRA-only repo."""
    hub = tmp_path_factory.mktemp("hub")

    def snapshot(repo: str):
        folder = hub / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(REV)
        return folder / "snapshots" / REV

    shutil.copytree(tiny_model_dir, snapshot("kd-test/tiny-sd"))
    lora = snapshot("kd-test/lcm-lora")
    lora.mkdir(parents=True)
    save_file(_tensors("unet.down_blocks.0.attentions.0.proj_in.lora_A.weight"),
              lora / "pytorch_lora_weights.safetensors")
    return str(hub)


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in entries}


def test_a_models_folder_is_listed_by_kind(models_folder):
    warnings: list[str] = []
    entries = model_index.scan([models_folder], hf_cache=False, warnings=warnings)
    found = by_name(entries)
    assert warnings == []
    assert set(found) == {"tiny-sd", "cn", "sd15.safetensors", "sdxl.safetensors", "loras/style.safetensors",
                          "animatediff/v3/mm_sd15.safetensors", "old.ckpt", "broken.safetensors"}
    expected = {"tiny-sd": ("pipeline", "StableDiffusionPipeline"), "cn": ("controlnet", "ControlNetModel, SD1.x"),
                "sd15.safetensors": ("checkpoint", "SD1.x/2.x"), "sdxl.safetensors": ("checkpoint", "SDXL"),
                "loras/style.safetensors": ("lora", "LoRA, SD1.x"),
                "animatediff/v3/mm_sd15.safetensors": ("motion_adapter", "AnimateDiff motion module"),
                "old.ckpt": ("checkpoint", "pickle: needs Allow Pickle Weights")}
    for name, (kind, detail) in expected.items():
        assert (found[name]["kind"], found[name]["detail"]) == (kind, detail), name
    broken = found["broken.safetensors"]
    assert broken["kind"] == "other" and broken["detail"].startswith("not a readable safetensors file:")
    assert not os.path.exists(os.path.join(models_folder, "unpickled"))  # the pickle was never loaded
    for entry in entries:
        assert entry["source"] == "folder" and os.path.isabs(entry["ref"]) and os.path.exists(entry["ref"])
        assert entry["size_mb"] >= 0
    assert found["tiny-sd"]["ref"] == os.path.join(models_folder, "tiny-sd") and found["tiny-sd"]["size_mb"] > 0.1
    kinds = [e["kind"] for e in entries]
    assert kinds == sorted(kinds, key=model_index.KINDS.index)  # pipelines first, other last


def test_a_missing_folder_is_a_warning_not_an_error(tmp_path):
    warnings: list[str] = []
    assert model_index.scan([str(tmp_path / "nowhere")], hf_cache=False, warnings=warnings) == []
    assert warnings == [f"models folder '{tmp_path / 'nowhere'}' does not exist"]


def test_a_models_folder_that_is_itself_a_diffusers_folder(tiny_model_dir):
    (entry,) = model_index.scan([tiny_model_dir], hf_cache=False)
    assert entry["kind"] == "pipeline" and entry["ref"] == tiny_model_dir


def run_engine(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def test_models_command_lists_the_cache_and_the_folder(models_folder, hf_cache, tmp_path):
    done = run_engine("models", "--folder", models_folder, HF_HUB_CACHE=hf_cache)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    found = by_name(result["models"])
    assert result["warnings"] == []
    pipeline = found["kd-test/tiny-sd"]
    assert (pipeline["kind"], pipeline["ref"], pipeline["source"]) == ("pipeline", "kd-test/tiny-sd", "hf-cache")
    assert pipeline["detail"] == "StableDiffusionPipeline" and pipeline["size_mb"] > 0.1
    lora = found["kd-test/lcm-lora/pytorch_lora_weights.safetensors"]
    assert lora["kind"] == "lora" and lora["source"] == "hf-cache" and os.path.isfile(lora["ref"])
    assert found["loras/style.safetensors"]["source"] == "folder"

    no_cache = json.loads(run_engine("models", "--folder", models_folder, "--no-hf-cache",
                                     HF_HUB_CACHE=hf_cache).stdout)
    assert {e["source"] for e in no_cache["models"]} == {"folder"}
    # A machine that never downloaded anything: no cache folder at all is an empty list.
    empty = run_engine("models", HF_HUB_CACHE=str(tmp_path / "no-cache"))
    assert empty.returncode == 0 and json.loads(empty.stdout) == {"models": [], "warnings": []}


def test_download_needs_the_users_consent(tmp_path):
    done = run_engine("download", "stabilityai/sd-turbo", HF_HUB_CACHE=str(tmp_path / "hub"))
    assert done.returncode == 2
    assert "--allow-download" in done.stderr and "Allow Model Downloads" in done.stderr
    assert not os.path.exists(tmp_path / "hub")


def test_download_takes_one_copy_of_a_pipeline():
    files = ["README.md", "model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt", "unet/config.json",
             "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
             "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
             "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
             "vae/diffusion_flax_model.msgpack", "safety_checker/pytorch_model.bin"]
    assert model_index.download_files(files) == [
        "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt"]
    # Pickle weights only with consent, and only where no safetensors file does the same job.
    assert "safety_checker/pytorch_model.bin" in model_index.download_files(files, allow_unsafe=True)
    assert "unet/diffusion_pytorch_model.bin" not in model_index.download_files(files, allow_unsafe=True)
    # A repo of single files (a LoRA) keeps its top-level weights.
    assert model_index.download_files(["README.md", "pytorch_lora_weights.safetensors"]) == [
        "pytorch_lora_weights.safetensors"]


def test_models_box_in_blender(extension, scene, models_folder, hf_cache, monkeypatch):
    bpy = pytest.importorskip("bpy")
    from test_panels import Layout

    models = sys.modules[PACKAGE + ".operators.models"]
    monkeypatch.setenv("HF_HUB_CACHE", hf_cache)  # the engine command inherits it
    prefs = extension.preferences.get()
    prefs.models_folder = models_folder
    try:
        assert bpy.ops.keyframe_diffusion.models_refresh() == {"FINISHED"}
        found = by_name(models.entries)
        assert found["kd-test/tiny-sd"]["kind"] == "pipeline" and found["sd15.safetensors"]["kind"] == "checkpoint"
        assert [kind for kind, _ in models.grouped()] == ["pipeline", "checkpoint", "lora", "controlnet",
                                                          "motion_adapter", "other"]

        calls: list = []
        prefs.draw_models(Layout(calls))
        assert calls.count(("operator", "keyframe_diffusion.model_use")) == 5  # 2 pipelines, 3 checkpoints
        assert calls.count(("operator", "keyframe_diffusion.model_add_lora")) == 2
        assert ("prop", "download_repo") in calls and ("label", "LoRAs (2)") in calls
        icons = {i.identifier for i in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items}
        assert set(models.KIND_ICONS.values()) <= icons

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
        assert ("label", models.download_blocker(prefs)) in calls

        prefs.models_folder = os.path.join(models_folder, "nowhere")
        assert bpy.ops.keyframe_diffusion.models_refresh() == {"FINISHED"}  # the warning is reported, not raised
        assert models.warnings == [f"models folder '{prefs.models_folder}' does not exist"]
    finally:
        prefs.models_folder, prefs.allow_downloads, prefs.download_repo = "", False, ""
        models.entries.clear()
        models.warnings.clear()
