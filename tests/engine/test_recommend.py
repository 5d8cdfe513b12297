"""Recommended settings per model (engine/models/recommend.py): the embedded models' own figures, a card file in a
model folder, and the families recognised from real config files (model_index.json, scheduler and UNet configs) and
names. Only JSON is read: the module must import in Blender without torch or diffusers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from common import ROOT

from engine.errors import ModelError
from engine.models import recommend
from engine.models.recommend import CARD_FILE, Recommended, recommended


def write_model(folder, pipeline: str, scheduler: dict, unet: dict) -> str:
    """A diffusers folder's configs as diffusers writes them (no weights: recommend reads configs only)."""
    (folder / "scheduler").mkdir(parents=True)
    (folder / "unet").mkdir()
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": pipeline, "_diffusers_version": "0.31.0", "scheduler": ["diffusers", scheduler["_class_name"]],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}))
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "prediction_type": "epsilon", **scheduler}))
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", **unet}))
    return str(folder)


# The parts of the real configs that tell the families apart (stabilityai/sd-turbo, stabilityai/sdxl-turbo,
# SimianLuo/LCM_Dreamshaper_v7, stabilityai/stable-diffusion-xl-base-1.0, stabilityai/stable-diffusion-2-1,
# stable-diffusion-v1-5/stable-diffusion-v1-5).
SD_TURBO = ("StableDiffusionPipeline", {"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing"},
            {"cross_attention_dim": 1024, "sample_size": 64})
SDXL_TURBO = ("StableDiffusionXLPipeline", {"_class_name": "EulerAncestralDiscreteScheduler",
                                            "timestep_spacing": "trailing"},
              {"cross_attention_dim": 2048, "sample_size": 64})
LCM = ("StableDiffusionPipeline", {"_class_name": "LCMScheduler", "timestep_spacing": "leading"},
       {"cross_attention_dim": 768, "sample_size": 96, "time_cond_proj_dim": 256})
SDXL = ("StableDiffusionXLPipeline", {"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading"},
        {"cross_attention_dim": 2048, "sample_size": 128})
SD2_V = ("StableDiffusionPipeline", {"_class_name": "DDIMScheduler", "prediction_type": "v_prediction"},
         {"cross_attention_dim": 1024, "sample_size": 96})
SD1 = ("StableDiffusionPipeline", {"_class_name": "PNDMScheduler", "timestep_spacing": "leading"},
       {"cross_attention_dim": 768, "sample_size": 64})


def test_the_embedded_model_carries_its_held_out_settings():
    found = recommended("embedded:shapes")
    assert (found.steps, found.guidance, found.width, found.height, found.scheduler) == (30, 6.0, 64, 64, "default")
    assert found.source.startswith("engine/shapes/model/training.json") and "97.5%" in found.source
    assert "a COLOUR SHAPE on a COLOUR background" in found.notes and found.prompts
    assert found.summary() == "30 steps, guidance 6, 64x64"
    # The figures are the trained model's graded ones, the defaults the scene starts with (settings/properties.py).
    from engine import shapes

    assert (found.steps, found.guidance) == (shapes.STEPS, shapes.GUIDANCE)
    tiny = recommended("embedded:tiny")
    assert (tiny.steps, tiny.width) == (2, 64) and tiny.guidance <= 1.0  # noise at any setting: the fastest


@pytest.mark.parametrize("name, config, family, figures", [
    ("my-copy", SD_TURBO, "SD-Turbo", (1, 0.0, 512, "default")),
    ("fast-xl", SDXL_TURBO, "SDXL-Turbo", (1, 0.0, 512, "default")),  # SDXL-Turbo's card: 512x512
    ("dreamshaper", LCM, "LCM", (4, 8.0, 768, "lcm")),  # guidance feeds the distilled UNet's w embedding
    ("my-xl", SDXL, "SDXL", (30, 5.0, 1024, "default")),
    ("sd21", SD2_V, "SD 2.x (v-prediction)", (30, 7.5, 768, "default")),
    ("sd15", SD1, "SD 1.x", (30, 7.5, 512, "default")),
])
def test_families_from_their_config_files(tmp_path, name, config, family, figures):
    folder = write_model(tmp_path / name, *config)
    found = recommended(folder)  # the Model field holding a folder: its configs are read
    assert found.family == family
    assert (found.steps, found.guidance, found.width, found.scheduler) == figures and found.height == found.width
    assert found.source.startswith("https://huggingface.co/")


def test_lcm_lora_and_lcm_scheduler(tmp_path):
    sd15 = write_model(tmp_path / "sd15", *SD1)
    found = recommended(sd15, loras=["/loras/lcm-lora-sdv1-5.safetensors"])
    assert (found.family, found.steps, found.guidance, found.width, found.scheduler) == ("LCM-LoRA", 4, 1.5, 512,
                                                                                          "lcm")
    fused = write_model(tmp_path / "fused", "StableDiffusionPipeline", {"_class_name": "LCMScheduler"},
                        {"cross_attention_dim": 768, "sample_size": 64})  # an LCM-LoRA fused and saved
    assert (recommended(fused).guidance, recommended(fused).scheduler) == (1.5, "lcm")
    assert recommended(sd15, loras=["/loras/style.safetensors"]).family == "SD 1.x"  # other LoRAs change nothing


def test_names_alone_and_the_hub_cache(tmp_path, monkeypatch):
    # Ids this machine has no files of are recognised by name (Blender's Python may lack huggingface_hub).
    assert recommended("stabilityai/sd-turbo").family == "SD-Turbo"
    assert recommended("stabilityai/stable-diffusion-xl-base-1.0").width == 1024
    assert recommended("/models/dreamshaper_xl_lcm.safetensors").scheduler == "lcm"
    assert recommended("/models/model.safetensors", hint="checkpoint, SD1.x").family == "SD 1.x"
    assert recommended("someone/some-model") is None and recommended("/models/unknown.safetensors") is None
    # A cached repo is read from its snapshot: configs win over the name's guess.
    huggingface_hub = pytest.importorskip("huggingface_hub")
    snapshot = tmp_path / "hub" / "models--someone--renamed" / "snapshots" / ("0" * 40)
    write_model(snapshot, *SDXL)
    (tmp_path / "hub" / "models--someone--renamed" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--renamed" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert recommended("someone/renamed").family == "SDXL"


def test_unknown_models_keep_the_users_settings(tmp_path):
    # A pipeline of no known family (the tiny test model's widths): None, so nothing is changed.
    tiny = write_model(tmp_path / "tiny-sd", "StableDiffusionPipeline", {"_class_name": "PNDMScheduler"},
                       {"cross_attention_dim": 32, "sample_size": 32})
    assert recommended(tiny) is None


def test_a_card_file_wins_and_a_broken_one_says_why(tmp_path):
    folder = write_model(tmp_path / "mine", *SD1)
    (tmp_path / "mine" / CARD_FILE).write_text(json.dumps({"steps": 12, "guidance": 3, "size": 256,
                                                           "scheduler": "euler_a", "prompts": ["a cat"]}))
    found = recommended(folder)
    assert (found.steps, found.guidance, found.width, found.height, found.scheduler) == (12, 3.0, 256, 256, "euler_a")
    assert found.source.endswith(CARD_FILE) and found.prompts == ("a cat",)
    assert found.summary() == "12 steps, guidance 3, 256x256, Euler Ancestral scheduler"
    assert Recommended.from_dict(json.loads(json.dumps(found.as_dict()))) == found  # through the models listing
    (tmp_path / "mine" / CARD_FILE).write_text(json.dumps({"steps": 0.5, "guidance": 3, "width": 100,
                                                           "scheduler": "fast"}))
    with pytest.raises(ModelError, match=r"keyframe_diffusion.json: steps 0.5 .*width 100 is not a multiple of 8; "
                                         r"scheduler 'fast' is none of default, ddim"):
        recommended(folder)


def test_recommend_imports_without_torch_or_diffusers():
    # Blender's sidebar imports it in Blender's own Python, which has neither.
    code = ("import sys; from engine.models.recommend import recommended; recommended('embedded:shapes'); "
            "recommended('stabilityai/sd-turbo'); "
            "print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_models_listing_carries_recommendations(tmp_path):
    from engine.model_index import scan

    write_model(tmp_path / "models" / "sd-turbo", *SD_TURBO)
    (tmp_path / "models" / "broken").mkdir()
    write_model(tmp_path / "models" / "broken" / "m", *SD1)
    (tmp_path / "models" / "broken" / "m" / CARD_FILE).write_text("{")
    warnings: list[str] = []
    entries = {e["name"]: e for e in scan([str(tmp_path / "models")], hf_cache=False, warnings=warnings)}
    assert entries["sd-turbo"]["recommended"]["family"] == "SD-Turbo"
    assert entries["broken/m"]["recommended"] is None
    assert len(warnings) == 1 and "keyframe_diffusion.json is unreadable" in warnings[0]
    assert recommend.family_recommended("x", None) is None
