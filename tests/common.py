"""Plain helpers shared by every test layer (engine, blender, packaging): import them as `from common import ...`
(pytest.ini puts tests/ on the path). No fixtures here and no bpy: fixtures live in the conftest.py of the layer that
needs them, and this module must stay importable where bpy cannot be (`make test-engine`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

# The repository root (also the extension's package folder): tests/common.py -> tests -> root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Test data shared by the layers.
DATA = os.path.join(ROOT, "tests", "data")
# One temporary folder for the whole test session (Blender's user resources, the model cache, builds).
SESSION_TMP = tempfile.mkdtemp(prefix="kd-tests-")

PACKAGE = "bl_ext.user_default.keyframe_diffusion"


def make_plan(output_dir: str, frames: int = 3, steps: int = 2, model: str = "embedded:tiny", **settings) -> dict:
    """A small valid interpolate plan crossfading two prompts."""
    records = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        prompts = [{"text": "a red circle", "negative": "", "weight": 1 - t, "seed": 1},
                   {"text": "a blue square", "negative": "", "weight": t, "seed": 2}]
        records.append({"frame": i + 1, "prompts": [p for p in prompts if p["weight"] > 0], "seed": 0,
                        "steps": steps, "guidance": 5.0, "strength": 0.5, "camera": None})
    return {
        "schema": "keyframe_diffusion.plan",
        "version": 1,
        "settings": {"mode": "INTERPOLATE", "model": model, "width": 64, "height": 64, "output_dir": output_dir,
                     "batch_size": 2, **settings},
        "frames": records,
    }


def write_plan(path, plan: dict) -> str:
    with open(path, "w") as f:
        json.dump(plan, f)
    return str(path)


def tiny_model() -> str:
    """The tiny random SD pipeline (`embedded:tiny`'s layout), built once per session into SESSION_TMP."""
    folder = os.path.join(SESSION_TMP, "tiny-model")
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        from engine.tiny_model import make_tiny_model

        make_tiny_model(folder)
    return folder


# -- a local Ray cluster (engine and Blender distribution tests) ------------------------------------------------

@contextlib.contextmanager
def ray_cluster(num_cpus: int = 2):
    """A local Ray cluster of `num_cpus` CPUs, started the way `--ray` without an address starts one; yields its
    address and shuts it down after."""
    import ray

    from engine.distributed import connect

    connect(None, num_cpus=num_cpus, object_store_memory=256 * 2**20)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def wait_for_free_cpus(count: int = 2, timeout: float = 60) -> None:
    """Wait until the connected Ray cluster has `count` CPUs free (its workers stopped), so another process's workers
    get them."""
    import ray

    deadline = time.time() + timeout
    while ray.available_resources().get("CPU", 0) < count and time.time() < deadline:
        time.sleep(0.2)


# -- wheels and requirements for the engine environment installer (engine and Blender tests) ---------------------

def download_wheels(folder: str) -> str:
    """numexpr and numpy wheels into `folder` (pip download; a local index or wheel folder in pip's configuration)."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary=:all:", "numexpr==2.14.2",
                           "numpy==1.26.4", "-d", folder], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def small_requirements(folder) -> str:
    """numexpr and numpy, one of them through a `-r` include, among comments: `folder`/small.txt."""
    folder = os.fspath(folder)
    with open(os.path.join(folder, "base.txt"), "w") as f:
        f.write("# numpy for numexpr\nnumpy==1.26.4\n")
    path = os.path.join(folder, "small.txt")
    with open(path, "w") as f:
        f.write("-r base.txt\n\nnumexpr==2.14.2  # schedule expressions\n")
    return path


# -- a models folder and a Hugging Face cache for the model manager (engine and Blender tests) -------------------

HF_REVISION = "0123456789abcdef0123456789abcdef01234567"


class _MakesAFolderWhenUnpickled:
    """A pickle that leaves a trace if anything ever loads it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _tensors(*keys: str, shape=(2, 2)) -> dict:
    import torch

    return {k: torch.zeros(shape) for k in keys}


def make_models_folder(root, tiny_model_dir: str) -> str:
    """A models folder of every kind the model index knows, and things it must skip or never load, in `root`."""
    import pickle
    import shutil
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    root = Path(root)
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


def make_hf_cache(hub, tiny_model_dir: str) -> str:
    """A Hugging Face cache as huggingface_hub lays it out, in `hub`: a diffusers pipeline repo and a LoRA-only repo."""
    import shutil
    from pathlib import Path

    from safetensors.torch import save_file

    hub = Path(hub)

    def snapshot(repo: str):
        folder = hub / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(HF_REVISION)
        return folder / "snapshots" / HF_REVISION

    shutil.copytree(tiny_model_dir, snapshot("kd-test/tiny-sd"))
    lora = snapshot("kd-test/lcm-lora")
    lora.mkdir(parents=True)
    save_file(_tensors("unet.down_blocks.0.attentions.0.proj_in.lora_A.weight"),
              lora / "pytorch_lora_weights.safetensors")
    return str(hub)
