"""A tiny Stable Diffusion pipeline with random weights, built from small configs.

It exercises the real diffusers path (save_pretrained / from_pretrained, the real scheduler, text encoder, UNet and
VAE classes) at a size that renders a 64x64 frame in a fraction of a second on a CPU. It is 'embedded:tiny', the model
of plumbing tests; its frames are noise. The default model is the trained 'embedded:shapes' (engine/shapes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile


def _byte_level_alphabet() -> list[str]:
    # The 256 printable stand-ins for bytes that byte-level BPE tokenizers (CLIP's included) use.
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _write_tokenizer_files(folder: str) -> int:
    """A character-level CLIP vocabulary: every byte symbol, alone and word-final, plus the two specials."""
    alphabet = _byte_level_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    return len(vocab)


def _tiny_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        _write_tokenizer_files(tok_dir)
        return CLIPTokenizer(os.path.join(tok_dir, "vocab.json"), os.path.join(tok_dir, "merges.txt"),
                             model_max_length=77)


def _tiny_text_config(vocab_size: int, hidden: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=32,
    )


# The UNet layout both tiny pipelines share; SDXL adds its text-time embedding on top.
_TINY_UNET = dict(
    block_out_channels=(32, 64),
    layers_per_block=1,
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
)


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
    )


def build_tiny_sdxl_pipeline(seed: int = 0):
    """A StableDiffusionXLPipeline with tiny random components: two text encoders (the second with a projection,
    whose pooled output feeds the UNet's text-time embedding), as SDXL has."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **_TINY_UNET,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + the pooled text embedding
        cross_attention_dim=64,  # both encoders' hidden states side by side
    )
    tokenizer = _tiny_tokenizer()
    config = _tiny_text_config(len(tokenizer.get_vocab()))
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=_tiny_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
    )


def build_tiny_pipeline(seed: int = 0):
    """Return a StableDiffusionPipeline with tiny random components (deterministic for a seed)."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **_TINY_UNET,
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    vae = _tiny_vae()
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    tokenizer = _tiny_tokenizer()
    text_encoder = CLIPTextModel(_tiny_text_config(len(tokenizer.get_vocab())))
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _save_atomically(model, folder: str, prefix: str) -> str:
    """save_pretrained into a temp folder beside `folder`, then swap it in: a half-written folder never appears."""
    folder = os.path.abspath(folder)
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _with_unet_inputs(seed: int, in_channels: int) -> dict:
    """The tiny SD pipeline's VAE, text encoder, tokenizer and scheduler with a UNet of the same layout taking
    `in_channels` inputs (the 4 latent channels first, then what the model is conditioned on)."""
    import torch
    from diffusers import UNet2DConditionModel

    parts = build_tiny_pipeline(seed).components
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(**{**_TINY_UNET, "in_channels": in_channels}, cross_attention_dim=32,
                                attention_head_dim=8)
    return {"unet": unet, **{k: parts[k] for k in ("vae", "text_encoder", "tokenizer", "scheduler")}}


def build_tiny_inpaint_pipeline(seed: int = 0):
    """A StableDiffusionInpaintPipeline laid out like an inpainting model (runwayml/stable-diffusion-inpainting): the
    UNet takes 9 channels, the noisy latents, the mask and the masked image's latents."""
    from diffusers import StableDiffusionInpaintPipeline

    return StableDiffusionInpaintPipeline(**_with_unet_inputs(seed, 9), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)


def build_tiny_depth_pipeline(seed: int = 0):
    """A StableDiffusionDepth2ImgPipeline laid out like stabilityai/stable-diffusion-2-depth: the UNet takes 5
    channels, the noisy latents and a depth map. No depth estimator: the engine gives it Blender's depth."""
    from diffusers import StableDiffusionDepth2ImgPipeline

    return StableDiffusionDepth2ImgPipeline(**_with_unet_inputs(seed, 5), depth_estimator=None,
                                            feature_extractor=None)


def make_tiny_model(folder: str, seed: int = 0, kind: str = "sd") -> str:
    """Write the tiny pipeline ('sd', 'sdxl', 'sd-inpaint' or 'sd-depth') to `folder` (atomically)."""
    builders = {"sd": build_tiny_pipeline, "sdxl": build_tiny_sdxl_pipeline, "sd-inpaint": build_tiny_inpaint_pipeline,
                "sd-depth": build_tiny_depth_pipeline}
    if kind not in builders:
        raise ValueError(f"unknown tiny model kind '{kind}' (known: {', '.join(builders)})")
    return _save_atomically(builders[kind](seed), folder, ".tiny-")


def build_tiny_controlnet(seed: int = 0, kind: str = "sd"):
    """A ControlNetModel for the tiny 'sd' or 'sdxl' pipeline, made from its UNet as real ControlNets are. The
    conditioning embedding downsamples once (the tiny VAE's latents are half the image size). ControlNet's output
    convolutions start at zero, which would make it a no-op; here they get small seeded random values so tests can
    see its effect."""
    import torch
    from diffusers import ControlNetModel

    builders = {"sd": build_tiny_pipeline, "sdxl": build_tiny_sdxl_pipeline}
    if kind not in builders:
        raise ValueError(f"unknown tiny model kind '{kind}' (known: {', '.join(builders)})")
    unet = builders[kind](seed).unet
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    generator = torch.Generator().manual_seed(seed + 1)
    zeroed = [controlnet.controlnet_cond_embedding.conv_out, controlnet.controlnet_mid_block,
              *controlnet.controlnet_down_blocks]
    with torch.no_grad():
        for module in zeroed:
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return controlnet.eval()


def make_tiny_controlnet(folder: str, seed: int = 0, kind: str = "sd") -> str:
    """Write the tiny ControlNet ('sd' or 'sdxl') to `folder` as safetensors (atomically)."""
    return _save_atomically(build_tiny_controlnet(seed, kind), folder, ".tiny-controlnet-")


def _tiny_vae_x4(scaling_factor: float):
    """A narrow autoencoder with three blocks (two downsamplings): pictures 4x its latents' size."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(16, 16, 16),
        norm_num_groups=8,
        layers_per_block=1,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def build_tiny_x4_upscaler(seed: int = 0):
    """A StableDiffusionUpscalePipeline laid out like stabilityai/stable-diffusion-x4-upscaler, tiny and random: the
    UNet takes 4 latent + 3 low-res image channels and embeds the noise level as a class label; the VAE has three
    blocks (two downsamplings), so latents at the frame's size decode to 4x, with the real model's scaling factor."""
    import torch
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    # Narrower than the SD tiny model: this UNet runs at the frame's full size (x4 latents are not downsampled).
    unet = UNet2DConditionModel(
        **{**_TINY_UNET, "in_channels": 7, "block_out_channels": (16, 32)},
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=8,
        use_linear_projection=True,
        num_class_embeds=1000,  # as the real model: noise levels 0-350 index it
    )
    tokenizer = _tiny_tokenizer()
    return StableDiffusionUpscalePipeline(
        vae=_tiny_vae_x4(0.08333),
        text_encoder=CLIPTextModel(_tiny_text_config(len(tokenizer.get_vocab()))),
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False,
                                steps_offset=1),
        max_noise_level=350,
    )


def build_tiny_latent_upscaler(seed: int = 0):
    """A StableDiffusionLatentUpscalePipeline laid out like stabilityai/sd-x2-latent-upscaler, tiny and random: a
    k-diffusion-style UNet (K blocks, Fourier time embedding, no mid block) taking 4 noisy + 4 low-res latent channels
    and predicting 4 + 1 (the unused variance channel), conditioned on 128 noise-level values plus the pooled text
    embedding. Like the real one its UNet has four levels and takes no odd sizes between them, so frames must be padded
    to a multiple of 16 here (of 32 for the real one, whose autoencoder scales by 8, not 4)."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionLatentUpscalePipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    hidden = 32
    unet = UNet2DConditionModel(
        act_fn="gelu",
        attention_head_dim=8,
        norm_num_groups=None,
        block_out_channels=(32, 32, 64, 64),  # K blocks need the last two widths equal
        layers_per_block=1,
        time_cond_proj_dim=128 + hidden,
        conv_in_kernel=1,
        conv_out_kernel=1,
        cross_attention_dim=hidden,
        down_block_types=("KDownBlock2D",) + ("KCrossAttnDownBlock2D",) * 3,
        up_block_types=("KCrossAttnUpBlock2D",) * 3 + ("KUpBlock2D",),
        in_channels=8,
        out_channels=5,
        mid_block_type=None,
        only_cross_attention=False,
        resnet_time_scale_shift="scale_shift",
        time_embedding_type="fourier",
        timestep_post_act="gelu",
    )
    tokenizer = _tiny_tokenizer()
    return StableDiffusionLatentUpscalePipeline(
        vae=_tiny_vae_x4(0.18215),
        text_encoder=CLIPTextModel(_tiny_text_config(len(tokenizer.get_vocab()), hidden)),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(prediction_type="sample"),
    )


def make_tiny_upscaler(folder: str, seed: int = 0, kind: str = "x4") -> str:
    """Write the tiny upscaler ('x4': StableDiffusionUpscalePipeline, 'x2': StableDiffusionLatentUpscalePipeline) to
    `folder` (atomically)."""
    builders = {"x4": build_tiny_x4_upscaler, "x2": build_tiny_latent_upscaler}
    if kind not in builders:
        raise ValueError(f"unknown tiny upscaler kind '{kind}' (known: {', '.join(builders)})")
    return _save_atomically(builders[kind](seed), folder, ".tiny-upscaler-")
