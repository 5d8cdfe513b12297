"""The model manager: `engine.model_index` lists what is in a models folder and the Hugging Face cache by kind, from
configs and safetensors headers only; `python -m engine models` / `download`. The preferences' Models box in Blender:
tests/blender/test_blender_models_box.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from common import ROOT, make_hf_cache, make_models_folder

from engine import model_index


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory, tiny_model_dir) -> str:
    return make_models_folder(tmp_path_factory.mktemp("my-models"), tiny_model_dir)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, tiny_model_dir) -> str:
    """A Hugging Face cache as huggingface_hub lays it out: a diffusers pipeline repo and a LoRA-only repo."""
    return make_hf_cache(tmp_path_factory.mktemp("hub"), tiny_model_dir)


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
