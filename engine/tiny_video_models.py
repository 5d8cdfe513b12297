"""Tiny random-weight Wan 2.x and LTX-Video pipelines for video-model tests, built from small configs (deterministic
for a seed).

- Wan: text-to-video (WanPipeline), first/last-frame to video (WanImageToVideoPipeline, two layouts: Wan 2.1 FLF2V
  with a CLIP image encoder, which needs both pictures, and Wan 2.2 I2V-A14B with two experts, whose last picture is
  optional) and VACE (WanVACEPipeline). One tiny causal 3D VAE (4 latent channels; 8x in space, 4x in time as the
  real one), a two-layer UMT5 text encoder, two-block transformers;
- LTX-Video: conditioned generation (LTXConditionPipeline) and text-to-video (LTXPipeline) with the same parts: a tiny
  VAE with the real 32x space / 8x time compression, a two-layer T5 text encoder, a one-block transformer.

The real tokenizers (umt5-xxl, t5-v1_1-xxl) can't be fetched here, so both families get a character-level T5 tokenizer
made from a generated vocabulary (pad 0, eos 1, unk 2, as T5's). Everything goes through the real save_pretrained /
from_pretrained paths. The frames are noise, but the conditions (pictures, control videos, masks) change them: the
VAEs have no biases and carry latent statistics measured on themselves, so encoded pictures are not drowned.
"""

from __future__ import annotations

import string

from .tiny_model import _save_atomically

TEXT_DIM = 32  # the text encoders' width, which the transformers' text/caption inputs take
WAN_LATENT_CHANNELS = 4  # 16 in the real Wan 2.1 VAE
LTX_LATENT_CHANNELS = 8  # 128 in the real LTX VAE
MAX_SEQUENCE_LENGTH = 512  # what the tokenizer calls its model_max_length (the pipelines pass their own max_length)


def _zero_biases(model) -> None:
    """Random biases add the same values whatever the input, and a few layers of them drown it: without them a tiny
    VAE's latents follow the pictures (first frames, control videos) and its decoded frames follow the latents."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()


def _latent_statistics(vae, size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and deviation of the VAE's latents over eight seeded pictures of random 8x8-pixel blocks
    (`size` square, one frame), as the real VAEs' latents_mean/latents_std were measured over data: normalised with
    them, encoded pictures weigh as much as the noise beside them in the transformers' inputs."""
    import torch

    generator = torch.Generator().manual_seed(0)
    blocks = torch.rand(8, 3, 1, size // 8, size // 8, generator=generator) * 2 - 1
    pictures = blocks.repeat_interleave(8, dim=3).repeat_interleave(8, dim=4)
    with torch.no_grad():
        latents = vae.encode(pictures).latent_dist.mode()
    return latents.mean(dim=(0, 2, 3, 4)).tolist(), latents.std(dim=(0, 2, 3, 4)).clamp(min=1e-3).tolist()


def _tiny_t5_tokenizer():
    """A T5 (Unigram, sentencepiece-style) tokenizer over printable ASCII: each character alone and word-initial
    (after the '▁' word marker); anything else becomes <unk>. It adds </s> at the end, as T5's does."""
    from transformers import T5Tokenizer

    chars = string.ascii_letters + string.digits + string.punctuation
    # Word-initial pieces score above bare '▁' + character, so a word's first letter takes its marker along.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -4.0) for c in chars] + [(c, -5.0) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=MAX_SEQUENCE_LENGTH)


def _t5_config(config_class, vocab_size: int):
    """A two-layer T5-family encoder config of width TEXT_DIM (T5 v1.1's gated GELU feed-forward)."""
    return config_class(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def _tiny_umt5_encoder(vocab_size: int, seed: int):
    """Wan's text encoder kind: UMT5 (every layer has its own relative position bias)."""
    import torch
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    return UMT5EncoderModel(_t5_config(UMT5Config, vocab_size)).eval()


def _tiny_t5_encoder(vocab_size: int, seed: int):
    """LTX's text encoder kind: T5 v1.1."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(_t5_config(T5Config, vocab_size)).eval()


def _tiny_wan_vae(seed: int):
    """Wan's causal 3D VAE, narrow and without biases: three downsamplings (8x in space), the last two also in time
    (4x), as the real one; its latents_mean/latents_std measured on itself."""
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=WAN_LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * WAN_LATENT_CHANNELS,
        latents_std=[1.0] * WAN_LATENT_CHANNELS,
    ).eval()
    _zero_biases(vae)
    mean, std = _latent_statistics(vae, 32)
    vae.register_to_config(latents_mean=mean, latents_std=std)
    return vae


def _wan_scheduler():
    """UniPC in flow-matching mode with the shift Wan 2.1 uses at 480p, as the Wan-AI diffusers folders set it."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                                   num_train_timesteps=1000)


def _wan_transformer_kwargs(in_channels: int) -> dict:
    """The tiny layout all three Wan transformers share: width 32 in 2 heads of 16 (each head's rotary embedding is
    split over time, height and width), 2 blocks, patches of 1x2x2 (so sizes go in steps of 8 * 2 = 16)."""
    return dict(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=in_channels,
        out_channels=WAN_LATENT_CHANNELS,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=64,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def _wan_parts(seed: int) -> dict:
    """The tokenizer, text encoder, VAE and scheduler every tiny Wan pipeline has."""
    tokenizer = _tiny_t5_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": _tiny_umt5_encoder(len(tokenizer), seed + 1),
        "vae": _tiny_wan_vae(seed + 2),
        "scheduler": _wan_scheduler(),
    }


def build_tiny_wan_t2v(seed: int = 0):
    """A WanPipeline (the Wan-AI/Wan2.1-T2V kind) with tiny random components."""
    import torch
    from diffusers import WanPipeline, WanTransformer3DModel

    parts = _wan_parts(seed)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**_wan_transformer_kwargs(WAN_LATENT_CHANNELS))
    return WanPipeline(transformer=transformer.eval(), **parts)


# The tiny CLIP image encoder: 32x32 pictures in 8x8 patches, 16 tokens plus the class token.
CLIP_IMAGE_SIZE = 32
CLIP_PATCH = 8
CLIP_TOKENS = (CLIP_IMAGE_SIZE // CLIP_PATCH) ** 2 + 1


def _tiny_image_encoder(seed: int):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=CLIP_IMAGE_SIZE, patch_size=CLIP_PATCH, projection_dim=32)
    return CLIPVisionModel(config).eval()


def _tiny_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": CLIP_IMAGE_SIZE},
                              crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE})


def build_tiny_wan_i2v(seed: int = 0):
    """A WanImageToVideoPipeline laid out like Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers: a CLIP image encoder whose
    penultimate hidden states of the first and last pictures enter the transformer's cross-attention side by side
    (with a learnt position embedding over both), and a transformer taking the noisy latents, 4 mask channels (one per
    frame of a latent's temporal group) and the encoded first/last-frame video: 4 + 4 + 4 channels (16 + 4 + 16 = 36
    in the real one)."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel

    parts = _wan_parts(seed)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        **_wan_transformer_kwargs(2 * WAN_LATENT_CHANNELS + 4),
        image_dim=32,  # the CLIP encoder's width
        added_kv_proj_dim=32,  # the transformer's (2 heads x 16): keys/values of the image tokens
        pos_embed_seq_len=2 * CLIP_TOKENS,
    )
    # The position embedding telling the first picture's tokens from the last's starts at zero; give it values, as a
    # trained one has.
    pos_embed = transformer.condition_embedder.image_embedder.pos_embed
    with torch.no_grad():
        pos_embed.copy_(torch.randn(pos_embed.shape, generator=torch.Generator().manual_seed(seed + 3)) * 0.1)
    return WanImageToVideoPipeline(transformer=transformer.eval(), image_encoder=_tiny_image_encoder(seed + 4),
                                   image_processor=_tiny_image_processor(), **parts)


def build_tiny_wan22_i2v(seed: int = 0):
    """A WanImageToVideoPipeline laid out like Wan-AI/Wan2.2-I2V-A14B-Diffusers: no image encoder (the pictures enter
    only as encoded first/last-frame video, so the last picture is optional), and two transformer experts taking the
    same 4 + 4 + 4 channels: `transformer` for the noisy steps (timesteps at or above boundary_ratio * 1000),
    `transformer_2` for the rest."""
    import torch
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel

    parts = _wan_parts(seed)
    experts = []
    for offset in (0, 5):
        torch.manual_seed(seed + offset)
        experts.append(WanTransformer3DModel(**_wan_transformer_kwargs(2 * WAN_LATENT_CHANNELS + 4)).eval())
    return WanImageToVideoPipeline(transformer=experts[0], transformer_2=experts[1], boundary_ratio=0.9,
                                   image_encoder=None, image_processor=None, **parts)


def build_tiny_wan_vace(seed: int = 0):
    """A WanVACEPipeline (the Wan-AI/Wan2.1-VACE kind): besides the noisy latents, VACE blocks beside transformer
    blocks 0 and 1 take the control video encoded twice (where the mask is white and where it is black) and the mask
    folded to latent size (8 x 8 = 64 channels): 4 + 4 + 64 channels (96 in the real one)."""
    import torch
    from diffusers import WanVACEPipeline, WanVACETransformer3DModel

    parts = _wan_parts(seed)
    torch.manual_seed(seed)
    transformer = WanVACETransformer3DModel(
        **_wan_transformer_kwargs(WAN_LATENT_CHANNELS),
        vace_layers=[0, 1],
        vace_in_channels=2 * WAN_LATENT_CHANNELS + 8 * 8,
    )
    return WanVACEPipeline(transformer=transformer.eval(), **parts)


def _tiny_ltx_vae(seed: int):
    """LTX-Video's VAE, narrow and without biases: 4x4 pixel patches, then three blocks that halve space and time (32x
    in space, 8x in time, as the real one), one layer each; its latents_mean/latents_std (buffers in this class, not
    config) measured on itself."""
    import torch
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        latent_channels=LTX_LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        patch_size=4,
        patch_size_t=1,
        timestep_conditioning=False,
    ).eval()
    _zero_biases(vae)
    mean, std = _latent_statistics(vae, 64)
    with torch.no_grad():
        vae.latents_mean.copy_(torch.tensor(mean))
        vae.latents_std.copy_(torch.tensor(std))
    return vae


def _ltx_scheduler():
    """Flow-match Euler without the resolution-dependent shift: LTXConditionPipeline passes its own timesteps (a
    linear-quadratic schedule) and no shift, which a dynamic-shifting scheduler refuses."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift=1.0)


def _ltx_parts(seed: int) -> dict:
    """The components both tiny LTX pipelines share (the same weights for a seed)."""
    import torch
    from diffusers import LTXVideoTransformer3DModel

    tokenizer = _tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=LTX_LATENT_CHANNELS,
        out_channels=LTX_LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=TEXT_DIM,
    )
    return {
        "transformer": transformer.eval(),
        "vae": _tiny_ltx_vae(seed + 2),
        "text_encoder": _tiny_t5_encoder(len(tokenizer), seed + 1),
        "tokenizer": tokenizer,
        "scheduler": _ltx_scheduler(),
    }


def build_tiny_ltx_condition(seed: int = 0):
    """An LTXConditionPipeline (the Lightricks/LTX-Video-0.9.5+ kind: pictures or clips at any frame) with tiny
    random components."""
    from diffusers import LTXConditionPipeline

    return LTXConditionPipeline(**_ltx_parts(seed))


def build_tiny_ltx_t2v(seed: int = 0):
    """An LTXPipeline (text to video) with the same tiny components as build_tiny_ltx_condition."""
    from diffusers import LTXPipeline

    return LTXPipeline(**_ltx_parts(seed))


BUILDERS = {
    "wan-t2v": build_tiny_wan_t2v,
    "wan-i2v": build_tiny_wan_i2v,
    "wan22-i2v": build_tiny_wan22_i2v,
    "wan-vace": build_tiny_wan_vace,
    "ltx-condition": build_tiny_ltx_condition,
    "ltx-t2v": build_tiny_ltx_t2v,
}


def make_tiny_video_model(folder: str, kind: str, seed: int = 0) -> str:
    """Write the tiny video pipeline of `kind` (a key of BUILDERS) to `folder` (atomically)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown tiny video model kind '{kind}' (known: {', '.join(BUILDERS)})")
    return _save_atomically(BUILDERS[kind](seed), folder, f".tiny-{kind}-")


def make_tiny_wan_t2v(folder: str, seed: int = 0) -> str:
    return make_tiny_video_model(folder, "wan-t2v", seed)


def make_tiny_wan_i2v(folder: str, seed: int = 0) -> str:
    return make_tiny_video_model(folder, "wan-i2v", seed)


def make_tiny_wan22_i2v(folder: str, seed: int = 0) -> str:
    return make_tiny_video_model(folder, "wan22-i2v", seed)


def make_tiny_wan_vace(folder: str, seed: int = 0) -> str:
    return make_tiny_video_model(folder, "wan-vace", seed)


def make_tiny_ltx_condition(folder: str, seed: int = 0) -> str:
    return make_tiny_video_model(folder, "ltx-condition", seed)


def make_tiny_ltx_t2v(folder: str, seed: int = 0) -> str:
    return make_tiny_video_model(folder, "ltx-t2v", seed)
