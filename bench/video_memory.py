"""Each memory mode's estimated peak (engine/video_memory.py) for the real Wan 2.x and LTX-Video architectures, their
configs built on the meta device (no weights, no download), at 480x832 x 81 frames and at each model's own size,
bf16. The table in docs/video-memory.md comes from here:

    .venv/bin/python bench/video_memory.py [--markdown]

Configs as published in the models' diffusers folders (transformer/text encoder/VAE config.json); the LTX rows use
diffusers' default LTX VAE config (the 0.9.0/0.9.1 VAE).
"""

from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine import video_memory  # noqa: E402

WAN_TRANSFORMER = dict(patch_size=(1, 2, 2), attention_head_dim=128, text_dim=4096, freq_dim=256, cross_attn_norm=True,
                       qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


def _umt5():
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                       num_heads=64, feed_forward_proj="gated-gelu"))


def _t5_xxl():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                                   feed_forward_proj="gated-gelu"))


def _clip_vit_h():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    return CLIPVisionModel(CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                            num_attention_heads=16, image_size=224, patch_size=14,
                                            projection_dim=1024, hidden_act="gelu"))


def _wan(heads: int, ffn: int, layers: int, in_channels: int = 16, out_channels: int = 16, **extra):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(num_attention_heads=heads, ffn_dim=ffn, num_layers=layers, in_channels=in_channels,
                                 out_channels=out_channels, **WAN_TRANSFORMER, **extra)


def _wan_vace():
    from diffusers import WanVACETransformer3DModel

    return WanVACETransformer3DModel(num_attention_heads=40, ffn_dim=13824, num_layers=40, in_channels=16,
                                     out_channels=16, vace_layers=[0, 5, 10, 15, 20, 25, 30, 35], vace_in_channels=96,
                                     **WAN_TRANSFORMER)


def _wan21_vae():
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan()


def _wan22_vae():
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                            out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4)


def _ltx(heads: int, head_dim: int, layers: int):
    from diffusers import LTXVideoTransformer3DModel

    return LTXVideoTransformer3DModel(in_channels=128, out_channels=128, num_attention_heads=heads,
                                      attention_head_dim=head_dim, cross_attention_dim=heads * head_dim,
                                      num_layers=layers, caption_channels=4096)


def _ltx_vae():
    from diffusers import AutoencoderKLLTXVideo

    return AutoencoderKLLTXVideo()


# name, builder of the pipeline's parts, its own size (frames, height, width)
MODELS = (
    ("Wan2.1 T2V 1.3B", lambda: dict(text_encoder=_umt5(), transformer=_wan(12, 8960, 30), vae=_wan21_vae()),
     (81, 480, 832)),
    ("Wan2.1 T2V 14B", lambda: dict(text_encoder=_umt5(), transformer=_wan(40, 13824, 40), vae=_wan21_vae()),
     (81, 720, 1280)),
    ("Wan2.1 I2V 14B", lambda: dict(text_encoder=_umt5(), image_encoder=_clip_vit_h(), vae=_wan21_vae(),
                                    transformer=_wan(40, 13824, 40, in_channels=36, image_dim=1280,
                                                     added_kv_proj_dim=5120)), (81, 720, 1280)),
    ("Wan2.1 VACE 14B", lambda: dict(text_encoder=_umt5(), transformer=_wan_vace(), vae=_wan21_vae()),
     (81, 720, 1280)),
    ("Wan2.2 TI2V 5B", lambda: dict(text_encoder=_umt5(), transformer=_wan(24, 14336, 30, 48, 48), vae=_wan22_vae(),
                                    config={"expand_timesteps": True}), (121, 704, 1280)),
    ("Wan2.2 T2V A14B", lambda: dict(text_encoder=_umt5(), transformer=_wan(40, 13824, 40),
                                     transformer_2=_wan(40, 13824, 40), vae=_wan21_vae()), (81, 720, 1280)),
    ("LTX-Video 2B (0.9.x)", lambda: dict(text_encoder=_t5_xxl(), transformer=_ltx(32, 64, 28), vae=_ltx_vae()),
     (121, 512, 768)),
    ("LTX-Video 13B (0.9.7/0.9.8)", lambda: dict(text_encoder=_t5_xxl(), transformer=_ltx(32, 128, 48),
                                                 vae=_ltx_vae()), (121, 704, 1216)),
)


def build(parts):
    """The parts on the meta device, in bf16 (what the models run in)."""
    import torch

    with torch.device("meta"):
        built = parts()
    return SimpleNamespace(**{name: part.to(torch.bfloat16) if isinstance(part, torch.nn.Module) else part
                              for name, part in built.items()})


def rows(dtype_bytes: int = 2) -> list[dict]:
    out = []
    for name, parts, own in MODELS:
        pipe = build(parts)
        counts = {key: video_memory._count(getattr(pipe, key, None)) / 1e9
                  for key in ("text_encoder", "image_encoder", "transformer", "transformer_2", "vae")}
        for frames, height, width in ((81, 480, 832), own):
            parts = video_memory.estimate_parts(pipe, frames, height, width, dtype_bytes)
            gib = video_memory.GIB
            out.append({"model": name, "size": f"{width}x{height}x{frames}",
                        "tokens": video_memory.latent_tokens(pipe, frames, height, width),
                        "params_b": {k: round(v, 2) for k, v in counts.items() if v},
                        **video_memory.describe(parts),
                        # the phases behind the offload modes: the text encoder alone, the block-offloaded
                        # transformer with its activations, the VAE with its tiled decode
                        "text_encoder_gib": round(parts["text_encoder"] / gib, 1),
                        "group_denoise_gib": round((max(parts["transformers_group"])
                                                    + parts["transformer_activations"]) / gib, 1),
                        "tiled_decode_gib": round((parts["vae"] + parts["vae_activations_tiled"]) / gib, 1)})
            if own == (81, 480, 832):
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    from diffusers.utils import logging

    logging.set_verbosity_error()  # "modules that should be kept in float32": meta weights, nothing is computed
    table = rows()
    modes = video_memory.CONCRETE
    if args.markdown:
        print("| Model | W x H x frames | tokens | parameters (billions) | " + " | ".join(modes)
              + " | text encoder alone | group-offloaded denoise | tiled decode |")
        print("|---|---|---|---|" + "---|" * (len(modes) + 3))
        for row in table:
            params = ", ".join(f"{k.replace('_encoder', '').replace('transformer', 'dit')} {v}"
                               for k, v in row["params_b"].items())
            print(f"| {row['model']} | {row['size']} | {row['tokens']} | {params} | "
                  + " | ".join(f"{row[m]}" for m in modes)
                  + f" | {row['text_encoder_gib']} | {row['group_denoise_gib']} | {row['tiled_decode_gib']} |")
    else:
        for row in table:
            print(row)


if __name__ == "__main__":
    main()
