"""What a caller allows when the engine finds and loads a model: downloads, pickle weights, the device, the dtype and,
for single-file checkpoints, which base model's configs describe them."""

from __future__ import annotations

from dataclasses import dataclass

# Weights that are only tensors, and weights in pickle formats, which can run code when loaded (allow_unsafe).
SAFE_EXTENSIONS = (".safetensors",)
PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")
# How to allow downloads, for errors that reach both the sidebar and the command line (the engine can't tell which).
ALLOW_DOWNLOADS = ("allow downloads (in Blender: tick Allow Model Downloads in Edit > Preferences > Add-ons > "
                   "Keyframe Diffusion, with Blender's online access on; on the command line: --allow-download)")


@dataclass(frozen=True)
class LoadOptions:
    allow_download: bool = False
    allow_unsafe: bool = False  # pickle weights (.bin/.ckpt/.pt); never remote code from here
    device: str = "auto"
    # For single-file checkpoints: the diffusers folder or cached Hugging Face id whose configs describe the
    # checkpoint's architecture (usually its base model, e.g. 'stabilityai/stable-diffusion-xl-base-1.0'). Without
    # it the base is guessed from the weights and must then be in the cache (or downloads allowed).
    single_file_config: str | None = None
    # Weights' dtype: "auto" (fp16 on CUDA, fp32 elsewhere), "fp32", "fp16" or "bf16".
    precision: str = "auto"
