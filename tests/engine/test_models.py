"""Model loading and pipeline adjustments on tiny real diffusers models: SD and SDXL folders, single-file
checkpoints, derived img2img/ControlNet pipelines sharing components, ControlNet, LoRA, schedulers by name with
settings, and extra pipeline arguments as JSON data."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import ModelError
from engine.models.controlnets import load_controlnet
from engine.models.derive import derive, pipeline_kind
from engine.models.kwargs import check_pipeline_kwargs
from engine.models.load import load_pipeline
from engine.models.locate import resolve
from engine.models.loras import apply_loras
from engine.models.options import LoadOptions
from engine.models.schedulers import set_scheduler
from engine.tiny_model import build_tiny_pipeline, make_tiny_controlnet, make_tiny_model

OPTIONS = LoadOptions(device="cpu")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, tiny_model_dir) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {
        "sd": tiny_model_dir,
        "sdxl": make_tiny_model(str(root / "tiny-sdxl"), kind="sdxl"),
        "cn-sd": make_tiny_controlnet(str(root / "cn-sd"), seed=0, kind="sd"),
        "cn-sd-2": make_tiny_controlnet(str(root / "cn-sd-2"), seed=3, kind="sd"),
        "cn-sdxl": make_tiny_controlnet(str(root / "cn-sdxl"), seed=0, kind="sdxl"),
    }


@pytest.fixture(scope="module")
def pipes(dirs) -> dict:
    return {kind: load_pipeline(dirs[kind], OPTIONS) for kind in ("sd", "sdxl")}


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache of our own: the tests see exactly the ids they put in it."""
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))

    def add(repo_id: str, folder: str) -> None:
        repo = hub / ("models--" + repo_id.replace("/", "--"))
        shutil.copytree(folder, repo / "snapshots" / ("0" * 40))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)

    return add


def run(pipe, seed: int = 1, **kwargs) -> np.ndarray:
    """One 64x64 frame, two steps, fixed seed."""
    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        return pipe(prompt="a red circle", num_inference_steps=2, generator=generator, output_type="np",
                    **kwargs).images[0]


def control(color=(220, 40, 40)) -> Image.Image:
    image = Image.new("RGB", (64, 64), color)
    image.paste((20, 20, 200), (16, 16, 48, 48))
    return image


# --- loading -------------------------------------------------------------------------------------------------------


def test_sd_and_sdxl_folders_load_by_their_class(pipes):
    assert type(pipes["sd"]).__name__ == "StableDiffusionPipeline"
    assert type(pipes["sdxl"]).__name__ == "StableDiffusionXLPipeline"
    assert pipeline_kind(pipes["sd"]) == "sd" and pipeline_kind(pipes["sdxl"]) == "sdxl"
    assert pipes["sd"].safety_checker is None
    assert run(pipes["sdxl"], width=64, height=64).shape == (64, 64, 3)


def test_unknown_pipeline_class_is_refused_by_name(tmp_path, dirs):
    folder = tmp_path / "flux"
    shutil.copytree(dirs["sd"], folder)
    index = (folder / "model_index.json").read_text().replace('"StableDiffusionPipeline"', '"FluxPipeline"')
    (folder / "model_index.json").write_text(index)
    with pytest.raises(ModelError, match=r"is a FluxPipeline .*StableDiffusionPipeline.*StableDiffusionXLPipeline"):
        load_pipeline(str(folder), OPTIONS)


# --- single-file checkpoints ---------------------------------------------------------------------------------------
# Written from the tiny model in the original (CompVis/A1111) layout, the inverse of diffusers' own conversion.

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest: str) -> str:
    layer, param = rest.split(".", 1)
    return f"{_RESNET.get(layer, layer)}.{param}"


def unet_to_original(unet) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    config = unet.config
    per = config.layers_per_block + 1  # original blocks per diffusers block: its layers and a down/upsampler
    direct = dict(DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    out = {}
    for key, value in unet.state_dict().items():
        if key in direct:
            new = direct[key]
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            index = 1 + int(m[1]) * per + int(m[3])
            new = f"input_blocks.{index}.0.{_resnet(m[4])}" if m[2] == "resnets" else f"input_blocks.{index}.1.{m[4]}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            index = int(m[1]) * per + int(m[3])
            new = f"output_blocks.{index}.0.{_resnet(m[4])}" if m[2] == "resnets" else f"output_blocks.{index}.1.{m[4]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            block = int(m[1])
            slot = 2 if "CrossAttn" in config.up_block_types[block] else 1
            new = f"output_blocks.{block * per + per - 1}.{slot}.conv.{m[2]}"
        else:
            raise KeyError(f"no original name for UNet weight {key}")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_original(vae) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = DIFFUSERS_TO_LDM_MAPPING["vae"]
    last = len(vae.config.up_block_types) - 1  # the original decoder counts its blocks from the bottom
    out = {}
    for key, value in vae.state_dict().items():
        key_ = key.replace("conv_shortcut", "nin_shortcut")
        if key in direct:
            new = direct[key]
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key_):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key_):
            new = f"decoder.up.{last - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{last - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key_):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)"
                               r"\.(.+)", key):
            new = f"{m[1]}.mid.attn_1.{_VAE_ATTENTION[m[2]]}.{m[3]}"
            if value.ndim == 2:  # the original attention is made of 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise KeyError(f"no original name for VAE weight {key}")
        out["first_stage_model." + new] = value
    return out


def text_encoder_to_original(text_encoder) -> dict:
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in text_encoder.state_dict().items()}


def write_single_file(pipe, path: str) -> str:
    from safetensors.torch import save_file

    checkpoint = {**unet_to_original(pipe.unet), **vae_to_original(pipe.vae),
                  **text_encoder_to_original(pipe.text_encoder)}
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, path)
    return path


def test_original_layout_writer_inverts_diffusers_conversion(pipes):
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    pipe = pipes["sd"]
    for module, to_original, convert in ((pipe.unet, unet_to_original, convert_ldm_unet_checkpoint),
                                         (pipe.vae, vae_to_original, convert_ldm_vae_checkpoint)):
        back = convert(to_original(module), dict(module.config))
        state = module.state_dict()
        assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_single_file_loads_with_a_config_folder_or_cached_id(tmp_path, pipes, fake_hub):
    path = write_single_file(pipes["sd"], str(tmp_path / "tiny.safetensors"))
    # The config comes from a model of the same architecture with other weights: every weight must come from the file.
    other = make_tiny_model(str(tmp_path / "other"), seed=1)
    expected = run(pipes["sd"], width=64, height=64)
    pipe = load_pipeline(path, LoadOptions(device="cpu", single_file_config=other))
    assert type(pipe).__name__ == "StableDiffusionPipeline" and pipe.safety_checker is None
    assert np.array_equal(run(pipe, width=64, height=64), expected)
    fake_hub("kd-test/tiny-base", other)
    pipe = load_pipeline(path, LoadOptions(device="cpu", single_file_config="kd-test/tiny-base"))
    assert np.array_equal(run(pipe, width=64, height=64), expected)


def test_single_file_refusals_name_the_file(tmp_path, pipes, fake_hub):
    path = write_single_file(pipes["sd"], str(tmp_path / "tiny.safetensors"))
    # Offline with no config: the base diffusers would guess is not cached, and nothing may be downloaded.
    with pytest.raises(ModelError, match=r"'.*tiny\.safetensors' is a single file; loading it needs the config of its "
                                         r"base model 'stable-diffusion-v1-5/stable-diffusion-v1-5'.*downloads are off"):
        load_pipeline(path, OPTIONS)
    with pytest.raises(ModelError, match=r"config 'nobody/nothing'.*not in the Hugging Face cache"):
        resolve(path, False, single_file_config="nobody/nothing")
    with pytest.raises(ModelError, match="config .* has no model_index.json"):
        resolve(path, False, single_file_config=str(tmp_path))
    pickle = tmp_path / "tiny.ckpt"
    pickle.write_bytes(b"not even a pickle")
    with pytest.raises(ModelError, match=r"'.*tiny\.ckpt' is a single file in a pickle format.*can run code"):
        load_pipeline(str(pickle), LoadOptions(device="cpu", single_file_config=str(tmp_path / "x")))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a checkpoint"):
        resolve(str(tmp_path / "notes.txt"), False)


def test_pickle_single_file_loads_only_when_unsafe_is_allowed(tmp_path, pipes, dirs):
    checkpoint = {**unet_to_original(pipes["sd"].unet), **vae_to_original(pipes["sd"].vae),
                  **text_encoder_to_original(pipes["sd"].text_encoder)}
    path = str(tmp_path / "tiny.ckpt")
    torch.save({"state_dict": checkpoint}, path)
    with pytest.raises(ModelError, match="pickle"):
        load_pipeline(path, LoadOptions(device="cpu", single_file_config=dirs["sd"]))
    pipe = load_pipeline(path, LoadOptions(allow_unsafe=True, device="cpu", single_file_config=dirs["sd"]))
    assert np.array_equal(run(pipe, width=64, height=64), run(pipes["sd"], width=64, height=64))


# --- derived pipelines and ControlNet ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_derived_pipelines_share_components_and_run(kind, pipes, dirs):
    base = pipes[kind]
    unit = load_controlnet(dirs[f"cn-{kind}"], OPTIONS, base.device, base.unet.dtype)
    assert load_controlnet(dirs[f"cn-{kind}"], OPTIONS, base.device, base.unet.dtype) is unit  # cached
    assert derive(base, "txt2img") is base
    img2img = derive(base, "img2img")
    ctl_txt = derive(base, "txt2img", [unit])
    ctl_img = derive(base, "img2img", [unit])
    prefix = "StableDiffusionXL" if kind == "sdxl" else "StableDiffusion"
    assert type(img2img).__name__ == f"{prefix}Img2ImgPipeline"
    assert type(ctl_txt).__name__ == f"{prefix}ControlNetPipeline"
    assert type(ctl_img).__name__ == f"{prefix}ControlNetImg2ImgPipeline"
    shared = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"] + (
        ["text_encoder_2", "tokenizer_2"] if kind == "sdxl" else [])
    for derived in (img2img, ctl_txt, ctl_img):
        for name in shared:
            assert getattr(derived, name) is getattr(base, name), name
        assert pipeline_kind(derived) == kind
        assert derive(derived, "txt2img") is base  # a derived pipeline leads back to its base
    assert ctl_txt.controlnet is unit and ctl_img.controlnet is unit
    # Cached: asking again is free and gives the same objects.
    assert derive(base, "img2img") is img2img and derive(base, "img2img", [unit]) is ctl_img
    # The scheduler is set on the base; derived pipelines follow it.
    set_scheduler(base, "euler_a")
    assert derive(base, "img2img").scheduler is base.scheduler
    set_scheduler(base, "default")
    assert run(img2img, image=control(), strength=1.0).shape == (64, 64, 3)
    assert run(ctl_img, image=control(), control_image=control((0, 200, 0)), strength=1.0).shape == (64, 64, 3)


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_controlnet_scale_zero_is_no_controlnet(kind, pipes, dirs):
    base = pipes[kind]
    unit = load_controlnet(dirs[f"cn-{kind}"], OPTIONS, base.device, base.unet.dtype)
    pipe = derive(base, "txt2img", [unit])
    plain = run(base, width=64, height=64)
    assert np.array_equal(run(pipe, image=control(), controlnet_conditioning_scale=0.0, width=64, height=64), plain)
    assert not np.allclose(run(pipe, image=control(), controlnet_conditioning_scale=1.0, width=64, height=64), plain,
                           atol=1e-3)


def test_two_controlnet_units_run_together(pipes, dirs):
    base = pipes["sd"]
    units = [load_controlnet(dirs[name], OPTIONS, base.device, base.unet.dtype) for name in ("cn-sd", "cn-sd-2")]
    pipe = derive(base, "txt2img", units)
    assert type(pipe.controlnet).__name__ == "MultiControlNetModel" and list(pipe.controlnet.nets) == units
    both = run(pipe, image=[control(), control((0, 200, 0))], controlnet_conditioning_scale=[1.0, 0.5])
    first_only = run(pipe, image=[control(), control((0, 200, 0))], controlnet_conditioning_scale=[1.0, 0.0])
    assert both.shape == (64, 64, 3) and not np.array_equal(both, first_only)
    assert derive(base, "txt2img", list(reversed(units))) is not pipe  # other units, other pipeline


def test_controlnet_refusals(pipes, dirs, tmp_path, fake_hub):
    sd_unit = load_controlnet(dirs["cn-sd"], OPTIONS, "cpu", torch.float32)
    with pytest.raises(ModelError, match="is for SD .* but the model is SDXL"):
        derive(pipes["sdxl"], "txt2img", [sd_unit])
    with pytest.raises(ModelError, match="unknown task 'outpaint'"):
        derive(pipes["sd"], "outpaint")
    with pytest.raises(ModelError, match=r"'someone/cn' is not in the Hugging Face cache.*hf download someone/cn"):
        load_controlnet("someone/cn", OPTIONS)
    with pytest.raises(ModelError, match="single file"):
        load_controlnet(os.path.join(dirs["cn-sd"], "diffusion_pytorch_model.safetensors"), OPTIONS)
    with pytest.raises(ModelError, match="has no config.json"):
        load_controlnet(str(tmp_path), OPTIONS)
    fake_hub("kd-test/not-a-controlnet", os.path.join(dirs["sd"], "unet"))
    with pytest.raises(ModelError, match="is a UNet2DConditionModel: only ControlNetModel"):
        load_controlnet("kd-test/not-a-controlnet", OPTIONS)


# --- LoRA ----------------------------------------------------------------------------------------------------------


def make_lora(folder: str, seed: int) -> str:
    """A LoRA on the tiny UNet's attention projections with random (non-zero) weights."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = build_tiny_pipeline(0).unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                              safe_serialization=True)
    return os.path.join(folder, "pytorch_lora_weights.safetensors")


def test_loras_switch_scale_and_unload_exactly(tmp_path, dirs):
    pipe = load_pipeline(dirs["sd"], OPTIONS)
    a, b = make_lora(str(tmp_path / "a"), 1), make_lora(str(tmp_path / "b"), 2)
    original = run(pipe)
    apply_loras(pipe, [{"path": a, "scale": 0.0}])
    assert np.array_equal(run(pipe), original)
    names = pipe.get_list_adapters()["unet"]
    apply_loras(pipe, [{"path": a, "scale": 1.0}])
    with_a = run(pipe)
    assert not np.allclose(with_a, original, atol=1e-3)
    assert pipe.get_list_adapters()["unet"] == names  # only the scale changed: nothing reloaded
    apply_loras(pipe, [{"path": a, "scale": 1.0}, {"path": b, "scale": 0.5}])
    assert len(pipe.get_list_adapters()["unet"]) == 2 and not np.array_equal(run(pipe), with_a)
    # Derived pipelines share the UNet, so they carry the same adapters.
    assert derive(pipe, "img2img").unet is pipe.unet
    apply_loras(pipe, [{"path": a, "scale": 1.0}])
    assert pipe.get_list_adapters()["unet"] == names and np.array_equal(run(pipe), with_a)
    apply_loras(pipe, [])
    assert np.array_equal(run(pipe), original)
    assert not any("lora" in type(m).__module__ for m in pipe.unet.modules())  # adapter layers gone, not just off


def test_lora_refusals(tmp_path, pipes):
    missing = str(tmp_path / "nowhere.safetensors")
    with pytest.raises(ModelError, match=r"LoRA '.*nowhere\.safetensors' not found"):
        apply_loras(pipes["sd"], [{"path": missing, "scale": 1.0}])
    pickle = tmp_path / "style.bin"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match=r"LoRA '.*style\.bin' is a pickle file"):
        apply_loras(pipes["sd"], [{"path": str(pickle), "scale": 1.0}])
    with pytest.raises(ModelError, match="scale must be a number"):
        apply_loras(pipes["sd"], [{"path": str(pickle), "scale": "1"}])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelError, match=r"could not load LoRA '.*junk\.safetensors'"):
        apply_loras(pipes["sd"], [{"path": str(junk), "scale": 1.0}])
    assert not getattr(pipes["sd"], "_kd_loras", {})


# --- schedulers and extra arguments --------------------------------------------------------------------------------


def test_scheduler_names_and_settings(dirs):
    pipe = load_pipeline(dirs["sd"], OPTIONS)
    default = pipe.scheduler
    set_scheduler(pipe, "euler_karras")
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler" and pipe.scheduler.config.use_karras_sigmas
    set_scheduler(pipe, "dpm++_sde", {"solver_order": 1, "use_karras_sigmas": True})
    scheduler = pipe.scheduler
    assert scheduler.config.algorithm_type == "sde-dpmsolver++" and scheduler.config.solver_order == 1
    set_scheduler(pipe, "dpm++_sde", {"use_karras_sigmas": True, "solver_order": 1})
    assert pipe.scheduler is scheduler  # same name and settings: not rebuilt
    assert run(pipe).shape == (64, 64, 3)
    set_scheduler(pipe, "dpm++_sde", {"solver_order": 2})
    assert pipe.scheduler is not scheduler and pipe.scheduler.config.solver_order == 2
    set_scheduler(pipe, "default", {"timestep_spacing": "trailing"})
    assert type(pipe.scheduler) is type(default) and pipe.scheduler.config.timestep_spacing == "trailing"
    set_scheduler(pipe, "default")
    assert pipe.scheduler is default
    with pytest.raises(ModelError, match=r"scheduler 'euler' \(EulerDiscreteScheduler\) has no setting 'karras'; "
                                         r"accepted: .*use_karras_sigmas"):
        set_scheduler(pipe, "euler", {"karras": True})
    with pytest.raises(ModelError, match="objects only|values are not allowed"):
        set_scheduler(pipe, "euler", {"trained_betas": {"a": 1}})
    with pytest.raises(ModelError, match=r"scheduler 'euler' refused the settings .*nonsense"):
        set_scheduler(pipe, "euler", {"beta_schedule": "nonsense"})
    with pytest.raises(ModelError, match="unknown scheduler 'k_dpm'"):
        set_scheduler(pipe, "k_dpm")
    assert pipe.scheduler is default  # a refused change leaves the scheduler alone


def test_pipeline_kwargs_are_checked_json_data(dirs):
    pipe = load_pipeline(dirs["sd"], OPTIONS)
    set_scheduler(pipe, "ddim")
    kwargs = check_pipeline_kwargs(pipe, {"eta": 1.0})
    assert kwargs == {"eta": 1.0}
    assert not np.array_equal(run(pipe, **kwargs), run(pipe))  # eta > 0 makes DDIM stochastic: it reached the call
    with pytest.raises(ModelError, match=r"'etta' is not an argument of StableDiffusionPipeline \(accepted: .*eta"):
        check_pipeline_kwargs(pipe, {"etta": 1.0})
    with pytest.raises(ModelError, match="'num_inference_steps' can't be given here: use the Steps setting"):
        check_pipeline_kwargs(pipe, {"num_inference_steps": 3})
    with pytest.raises(ModelError, match="'callback_on_step_end' can't be given here: the engine sets it itself"):
        check_pipeline_kwargs(pipe, {"callback_on_step_end": "print"})
    with pytest.raises(ModelError, match="'eta' can't be given here"):
        check_pipeline_kwargs(pipe, {"eta": 1.0}, reserved={"eta"})
    with pytest.raises(ModelError, match="not a finite number"):
        check_pipeline_kwargs(pipe, {"eta": float("inf")})
    # Strings are data, never evaluated.
    assert check_pipeline_kwargs(pipe, {"cross_attention_kwargs": {"note": "__import__('os')"}})
    img2img = derive(pipe, "img2img")
    with pytest.raises(ModelError, match="'strength' can't be given here: use the Strength setting"):
        check_pipeline_kwargs(img2img, {"strength": 0.3})
