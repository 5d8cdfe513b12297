"""Tiny random-weight video models for clip-mode tests, built from small configs (deterministic for a seed).

- a MotionAdapter (AnimateDiff) that fits the tiny SD pipeline of engine.tiny_model (two blocks of 32/64 channels,
  one layer each);
- a TextToVideoSDPipeline with a tiny UNet3DConditionModel and tiny_model's VAE, tokenizer and text encoder;
- a motion LoRA on the adapter's motion modules, saved as .safetensors in the format load_lora_weights reads.

They go through the real save_pretrained / from_pretrained paths; their frames are noise.
"""

from __future__ import annotations

import os

from .tiny_model import _save_atomically, _tiny_text_config, _tiny_tokenizer, _tiny_vae, build_tiny_pipeline

# Long enough for the default context of 16 frames and the test's 40-frame shots in windows.
MOTION_MAX_SEQ_LENGTH = 32


def _randomize(modules, seed: int, scale: float) -> None:
    """Seeded small random values in place of zero-initialised weights (output projections start at zero in
    diffusers, which would make the motion modules and LoRAs no-ops that tests can't see)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * scale)


def build_tiny_motion_adapter(seed: int = 0):
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_mid_block_layers_per_block=1,
        motion_num_attention_heads=4,
        motion_norm_num_groups=32,
        motion_max_seq_length=MOTION_MAX_SEQ_LENGTH,
        use_motion_mid_block=True,
    )
    _randomize([m for name, m in adapter.named_modules() if name.endswith("proj_out")], seed + 1, 0.1)
    return adapter.eval()


def make_tiny_motion_adapter(folder: str, seed: int = 0) -> str:
    """Write the tiny MotionAdapter to `folder` (config.json + safetensors, atomically)."""
    return _save_atomically(build_tiny_motion_adapter(seed), folder, ".tiny-adapter-")


def build_tiny_text_to_video_pipeline(seed: int = 0):
    """A TextToVideoSDPipeline (the damo-vilab/text-to-video-ms-1.7b kind) with a tiny UNet3DConditionModel."""
    import torch
    from diffusers import DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=32,
    )
    # The temporal layers' outputs start at zero in diffusers; give them weight so frames really interact.
    _randomize([m for name, m in unet.named_modules() if name.endswith("temp_convs.0.conv4")
                or name.endswith("proj_out") and "temp" in name], seed + 1, 0.05)
    tokenizer = _tiny_tokenizer()
    return TextToVideoSDPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(_tiny_text_config(len(tokenizer.get_vocab()))),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1),
    )


def make_tiny_text_to_video_model(folder: str, seed: int = 0) -> str:
    """Write the tiny text-to-video pipeline to `folder` (atomically)."""
    return _save_atomically(build_tiny_text_to_video_pipeline(seed), folder, ".tiny-t2v-")


def make_tiny_motion_lora(path: str, seed: int = 0, rank: int = 4) -> str:
    """Write a LoRA on the motion modules' attention (AnimateDiff motion LoRA kind) of the tiny adapter to `path`
    (a .safetensors file). Its weights are random, not zero, so it visibly changes the frames."""
    import torch
    from diffusers import AnimateDiffPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    base = build_tiny_pipeline(seed)
    pipe = AnimateDiffPipeline.from_pipe(base, motion_adapter=build_tiny_motion_adapter(seed))
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                        target_modules=r".*motion_modules.*\.(to_q|to_k|to_v|to_out\.0)")
    torch.manual_seed(seed + 2)
    pipe.unet.add_adapter(config)
    layers = get_peft_model_state_dict(pipe.unet)
    # The key layout load_lora_weights reads: the UNet's keys under "unet.".
    state = {f"unet.{k}": v.detach().contiguous().to(torch.float32) for k, v in layers.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    save_file(state, tmp)
    os.replace(tmp, path)
    return path
