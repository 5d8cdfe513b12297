"""How a video model (Wan 2.x, LTX-Video) fits the device: each memory mode's estimated peak, the choice among them
against a limit, and the mode applied to the loaded pipeline.

The estimate (bytes) is built from the pipeline's real parameter counts per component and an activation estimate:

    weights(c)  = (parameters + buffers of component c) x dtype_bytes; under FP8 the transformer's layers that
                  layerwise casting stores in fp8 count 1 byte a parameter (diffusers' skip patterns stay full width)
    N           = latent tokens = ceil(latent_frames / p_t) x ceil(H / s / p_h) x ceil(W / s / p_w), with
                  latent_frames = (frames - 1) // t + 1; s, t the VAE's space/time compression, p the patch size
    transformer = 1.15 x cfg_batch x N x (k x (D + F) x dtype_bytes + T) + text
                  D the hidden width, F the feed-forward width; k = 1.4 for Wan, 3.2 for LTX (and anything else);
                  T = 28 x D bytes for Wan 2.2 TI2V's per-token timesteps (fp32 projections), else 0; cfg_batch 2 for
                  LTX (its pipelines batch the guidance branches) and 1 for Wan (separate calls); text = the 512
                  (Wan) / 128 (LTX) text tokens x D x 8 x dtype_bytes; 1.15 for the CUDA allocator's slack
    vae decode  = Wan's VAE decodes one latent frame at a time: c x decoder base channels / patch^2 x dtype_bytes per
                  pixel of the area it holds (the frame, or one 256x256 tile x 1.5 with tiling), c = 53 (Wan 2.1's
                  VAE, 96 channels: 5100 a pixel) or 70 (Wan 2.2's residual VAE); LTX's decodes all frames at once: 50 x
                  (decoder channels / 128) x dtype_bytes per pixel per frame (tiled: 512x512 x 17 frames); plus the
                  decoded video, 3 x frames x H x W x dtype_bytes

k and the VAE constants are peaks of live tensor bytes measured on the CPU (torch profiler memory events) on
real-architecture blocks (Wan 1.3B/14B, LTX 2B) and VAEs (Wan 2.1/2.2, LTX) at small sizes, as slopes in the token or
pixel count; attention is assumed to run in a kernel that never holds the N x N scores (flash / memory-efficient
SDPA, as on CUDA), and the VAE's encode (I2V, VACE control video) to cost no more than its decode. Modes:

    FULL           all weights + the larger of the transformer's and the (untiled) decode's activations
    FP8            as FULL with the transformer's castable layers at 1 byte a parameter
    MODEL_OFFLOAD  one component at a time: the largest of text encoder, image encoder, each transformer +
                   activations, VAE + tiled decode
    FP8_OFFLOAD    as MODEL_OFFLOAD with the fp8 transformer
    GROUP_OFFLOAD  the largest of the components that run whole (text encoder, image encoder, VAE + tiled decode)
                   and the transformer's resident part: its parameters outside the block lists + two blocks (the one
                   running and the one prefetched) + activations

docs/video-memory.md has the modes' figures for the real models. torch is imported only when asked.
"""

from __future__ import annotations

import math
from typing import Any

from . import vocabulary as vocab
from .errors import ModelError

MODES = vocab.names(vocab.MEMORY_MODES)
CONCRETE = tuple(mode for mode in MODES if mode != "AUTO")  # fastest first, as AUTO tries them
OFFLOAD = ("MODEL_OFFLOAD", "FP8_OFFLOAD", "GROUP_OFFLOAD")
FP8_MODES = ("FP8", "FP8_OFFLOAD")
_LABELS = {mode: label for mode, label, _ in vocab.MEMORY_MODES}
_TRANSFORMERS = ("transformer", "transformer_2")  # transformer_2: Wan 2.2 A14B's low-noise expert
GIB = 2 ** 30

# Measured constants (see the module docstring): activation bytes per token and dtype byte, per family.
_K_WAN, _K_OTHER = 1.4, 3.2
_ALLOCATOR_SLACK = 1.15
# Wan's VAE: values held per decoder pixel per decoder base channel (x dtype_bytes), measured on Wan 2.1's VAE (53)
# and Wan 2.2's residual one (70); a decoder pixel is patch_size^2 picture pixels.
_WAN_VAE_PER_CHANNEL = {False: 53, True: 70}
_LTX_VAE_PER_PIXEL_FRAME = 50  # x dtype_bytes x decoder channels / 128, per pixel per frame
_TILE_OVERLAP = 1.5  # a tile's blending with its neighbours held at once


def label(mode: str) -> str:
    return _LABELS.get(mode, mode)


def _component(pipe, name: str):
    import torch

    module = getattr(pipe, name, None)
    return module if isinstance(module, torch.nn.Module) else None


def _count(module) -> int:
    """Parameters + buffers (rope tables, scale/shift tables), each tensor once (T5 ties its embeddings)."""
    if module is None:
        return 0
    seen, total = set(), 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel()
    return total


def _fp8_castable(transformer) -> int:
    """Parameters that enable_layerwise_casting stores in fp8: the leaf layers (Linear, Conv, Embedding) outside
    diffusers' default skip patterns plus the model's own (_keep_in_fp32_modules, _skip_layerwise_casting_patterns),
    found with the same walk diffusers makes."""
    import re

    from diffusers.hooks._common import _GO_LC_SUPPORTED_PYTORCH_LAYERS
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    patterns = tuple(DEFAULT_SKIP_MODULES_PATTERN) + tuple(getattr(transformer, "_keep_in_fp32_modules", None) or ()) \
        + tuple(getattr(transformer, "_skip_layerwise_casting_patterns", None) or ())

    def walk(module, prefix: str) -> int:
        if prefix and any(re.search(pattern, prefix) for pattern in patterns):
            return 0
        if isinstance(module, _GO_LC_SUPPORTED_PYTORCH_LAYERS):
            return sum(p.numel() for p in module.parameters())
        return sum(walk(child, f"{prefix}.{name}" if prefix else name) for name, child in module.named_children())

    return walk(transformer, "")


def _block_lists(transformer) -> list:
    import torch

    return [child for child in transformer.children() if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential))]


def _resident_group(transformer) -> int:
    """What block-level group offloading (one block a group, the next prefetched) holds on the device at once."""
    blocks = [block for blocks in _block_lists(transformer) for block in blocks]
    if not blocks:
        return _count(transformer)
    in_blocks = sum(_count(block) for block in blocks)
    return _count(transformer) - in_blocks + min(2, len(blocks)) * max(_count(block) for block in blocks)


def _config(obj, key: str, default=None):
    config = getattr(obj, "config", None)
    if config is None:
        return default
    value = config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)
    return default if value is None else value


def _compression(pipe) -> tuple[int, int]:
    """(space, time) compression of the pipeline's VAE: its config (Wan), its attributes (LTX), the pipeline's."""
    vae = getattr(pipe, "vae", None)
    space = _config(vae, "scale_factor_spatial") or getattr(vae, "spatial_compression_ratio", None) \
        or getattr(pipe, "vae_scale_factor_spatial", None) or getattr(pipe, "vae_spatial_compression_ratio", None) or 8
    time = _config(vae, "scale_factor_temporal") or getattr(vae, "temporal_compression_ratio", None) \
        or getattr(pipe, "vae_scale_factor_temporal", None) or getattr(pipe, "vae_temporal_compression_ratio", None) \
        or 4
    return int(space), int(time)


def _patch(transformer) -> tuple[int, int, int]:
    patch = _config(transformer, "patch_size", 1)
    if isinstance(patch, (list, tuple)):
        return int(patch[0]), int(patch[1]), int(patch[2])
    return int(_config(transformer, "patch_size_t", 1) or 1), int(patch), int(patch)


def latent_tokens(pipe, frames: int, height: int, width: int) -> int:
    """The transformer's sequence length for a window of `frames` at height x width."""
    space, time = _compression(pipe)
    p_t, p_h, p_w = _patch(pipe.transformer)
    latent_frames = (frames - 1) // time + 1
    return math.ceil(latent_frames / p_t) * math.ceil(height / space / p_h) * math.ceil(width / space / p_w)


def _is_ltx(pipe) -> bool:
    return "LTX" in type(getattr(pipe, "transformer", None)).__name__


def _widths(transformer) -> tuple[int, int]:
    """(hidden, feed-forward) width: the config's heads x head size, and the widest Linear in the first block."""
    import torch

    hidden = int(_config(transformer, "num_attention_heads", 0)) * int(_config(transformer, "attention_head_dim", 0))
    ffn = int(_config(transformer, "ffn_dim", 0) or 0)
    if not ffn:
        lists = _block_lists(transformer)
        first = lists[0][0] if lists and len(lists[0]) else transformer
        ffn = max((m.out_features for m in first.modules() if isinstance(m, torch.nn.Linear)), default=4 * hidden)
    return hidden or 1, ffn


def transformer_activations(pipe, frames: int, height: int, width: int, dtype_bytes: int) -> int:
    tokens = latent_tokens(pipe, frames, height, width)
    hidden, ffn = _widths(pipe.transformer)
    ltx = _is_ltx(pipe)
    k = _K_OTHER if ltx or "Wan" not in type(pipe.transformer).__name__ else _K_WAN
    per_token = k * (hidden + ffn) * dtype_bytes
    if _config(pipe, "expand_timesteps", False):
        per_token += 28 * hidden  # Wan 2.2 TI2V: a timestep per token, its 6 x D projection in fp32
    text = (128 if ltx else 512) * hidden * 8 * dtype_bytes
    return int(_ALLOCATOR_SLACK * ((2 if ltx else 1) * tokens * per_token + text))


def vae_activations(pipe, frames: int, height: int, width: int, dtype_bytes: int, tiled: bool) -> int:
    vae = getattr(pipe, "vae", None)
    video = 3 * frames * height * width * dtype_bytes
    if vae is not None and "Wan" in type(vae).__name__:
        if tiled:
            area = min(height, getattr(vae, "tile_sample_min_height", 256)) \
                * min(width, getattr(vae, "tile_sample_min_width", 256)) * _TILE_OVERLAP
        else:
            area = height * width
        patch = int(_config(vae, "patch_size", None) or 1)
        channels = int(_config(vae, "decoder_base_dim", None) or _config(vae, "base_dim", 96))
        per_pixel = _WAN_VAE_PER_CHANNEL[bool(_config(vae, "is_residual", False))] * channels / patch ** 2
        return int(per_pixel * dtype_bytes * area + video)
    channels = _config(vae, "decoder_block_out_channels") or _config(vae, "block_out_channels") or (128,)
    scale = _LTX_VAE_PER_PIXEL_FRAME * dtype_bytes * channels[0] / 128
    if tiled:
        held = min(frames, getattr(vae, "tile_sample_min_num_frames", 16) + 1) \
            * min(height, getattr(vae, "tile_sample_min_height", 512)) \
            * min(width, getattr(vae, "tile_sample_min_width", 512)) * _TILE_OVERLAP
    else:
        held = frames * height * width
    return int(scale * held + video)


def estimate_parts(pipe, frames: int, height: int, width: int, dtype_bytes: int) -> dict[str, int]:
    """The estimate's terms in bytes: each component's weights, the transformer's fp8 and group-resident weights,
    the activations (transformer; VAE untiled and tiled)."""
    parts = {name: _count(_component(pipe, name)) * dtype_bytes for name in ("text_encoder", "image_encoder", "vae")}
    transformers = [module for module in (_component(pipe, name) for name in _TRANSFORMERS) if module is not None]
    if not transformers:
        raise ModelError(f"{type(pipe).__name__} has no transformer: the memory estimate is for Wan and LTX-Video "
                         "pipelines")
    parts["transformers"] = [_count(t) * dtype_bytes for t in transformers]
    parts["transformers_fp8"] = [_count(t) * dtype_bytes - _fp8_castable(t) * (dtype_bytes - 1) for t in transformers]
    parts["transformers_group"] = [_resident_group(t) * dtype_bytes for t in transformers]
    parts["transformer_activations"] = transformer_activations(pipe, frames, height, width, dtype_bytes)
    parts["vae_activations"] = vae_activations(pipe, frames, height, width, dtype_bytes, tiled=False)
    parts["vae_activations_tiled"] = vae_activations(pipe, frames, height, width, dtype_bytes, tiled=True)
    return parts


def _peak(parts: dict, mode: str) -> int:
    act, vae_act, vae_tiled = parts["transformer_activations"], parts["vae_activations"], parts["vae_activations_tiled"]
    whole = max(parts["text_encoder"], parts["image_encoder"], parts["vae"] + vae_tiled)
    if mode in ("FULL", "FP8"):
        transformers = parts["transformers_fp8" if mode == "FP8" else "transformers"]
        weights = parts["text_encoder"] + parts["image_encoder"] + parts["vae"] + sum(transformers)
        return weights + max(act, vae_act)
    if mode in ("MODEL_OFFLOAD", "FP8_OFFLOAD"):
        transformers = parts["transformers_fp8" if mode == "FP8_OFFLOAD" else "transformers"]
        return max(whole, max(transformers) + act)
    if mode == "GROUP_OFFLOAD":
        return max(whole, max(parts["transformers_group"]) + act)
    raise ModelError(f"unknown memory mode {mode!r}: one of {', '.join(CONCRETE)}")


def estimate_peak(pipe, mode: str, frames: int, height: int, width: int, dtype_bytes: int) -> int:
    """The estimated peak device memory in bytes of rendering a window of `frames` at height x width under `mode`
    (one of CONCRETE), weights and activations at `dtype_bytes` a value. See the module docstring for the formula."""
    if frames < 1 or height < 1 or width < 1:
        raise ModelError(f"memory estimate: frames, height and width must be positive (got {frames}, {height}, "
                         f"{width})")
    return _peak(estimate_parts(pipe, frames, height, width, dtype_bytes), mode)


def free_bytes(device: str) -> int | None:
    """Free memory the device can still give: CUDA's free memory; on MPS the Metal working-set budget left
    (recommended_max_memory - driver_allocated_memory); None on the CPU, where the pipeline already sits in the RAM
    that "available memory" would be compared against, so no figure would mean what the estimate needs."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.mem_get_info(dev)[0])
    if dev.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        except (AttributeError, RuntimeError):
            return None
    return None


def _resident_on(pipe, device: str) -> int:
    """Bytes of the pipeline's weights already on `device`: free memory doesn't count them, the estimate does."""
    import torch

    dev = torch.device(device)
    total, seen = 0, set()
    for name in ("text_encoder", "image_encoder", "vae") + _TRANSFORMERS:
        module = _component(pipe, name)
        for tensor in [] if module is None else list(module.parameters()) + list(module.buffers()):
            if id(tensor) in seen or tensor.device.type != dev.type:
                continue
            if dev.index is not None and tensor.device.index not in (None, dev.index):
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def _dtype_bytes(pipe) -> int:
    for tensor in pipe.transformer.parameters():
        if tensor.is_floating_point():
            return tensor.element_size()
    return 4


def _modes_for(device: str) -> tuple[str, ...]:
    """The modes a device can run: no offload on the CPU (the weights would move from RAM to RAM), no fp8 on MPS
    (PyTorch can't hold float8 tensors there: pytorch/pytorch#148420)."""
    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        return ("FULL", "FP8")
    if kind == "mps":
        return tuple(mode for mode in CONCRETE if mode not in FP8_MODES)
    return CONCRETE


def _refuse_on_device(mode: str, device: str) -> None:
    import torch

    kind = torch.device(device).type
    if kind == "cpu" and mode in OFFLOAD:
        raise ModelError(f"Memory mode {label(mode)} moves the model's parts between the GPU and the CPU's memory; "
                         f"rendering on the CPU they are in that memory already, so there is nothing to offload. "
                         f"Choose Full or Auto (or FP8 Storage to halve the transformer's memory).")
    if kind == "mps" and mode in FP8_MODES:
        raise ModelError(f"Memory mode {label(mode)} stores the transformer in float8, which PyTorch can't hold on "
                         f"Apple's MPS device; choose Model Offload, Group Offload or Auto.")


def choose(pipe, settings: dict, frames: int, height: int, width: int, device: str) -> str:
    """The concrete memory mode to render with. AUTO: the fastest mode (vocabulary order) whose estimate fits the
    limit; an explicit mode: itself, if it fits. The limit is memory_limit_gb GiB when set (> 0), else the device's
    free memory (plus what the pipeline already holds there). With no limit known (the CPU, or a device that can't
    say) AUTO is FULL and an explicit mode is taken as it is. On the CPU the offload modes are refused (nowhere to
    offload to). Raises ModelError when the mode doesn't fit, naming the fastest mode that does or, if none does,
    the smallest estimate and what to lower."""
    mode = settings.get("memory_mode", "AUTO") or "AUTO"
    if mode not in MODES:
        raise ModelError(f"unknown memory mode {mode!r}: one of {', '.join(MODES)}")
    if mode != "AUTO":
        _refuse_on_device(mode, device)
    candidates = _modes_for(device)
    limit_gb = float(settings.get("memory_limit_gb", 0) or 0)
    if limit_gb > 0:
        limit, origin = int(limit_gb * GIB), "the Memory Limit setting"
    else:
        free = free_bytes(device)
        if free is None:
            return "FULL" if mode == "AUTO" else mode
        limit = free + _resident_on(pipe, device)
        origin = f"{device}'s free memory; set a Memory Limit to use another figure"
    parts = estimate_parts(pipe, frames, height, width, _dtype_bytes(pipe))
    estimates = {name: _peak(parts, name) for name in candidates}
    fitting = [name for name in candidates if estimates[name] <= limit]
    if mode == "AUTO" and fitting:
        return fitting[0]
    if mode != "AUTO" and estimates[mode] <= limit:
        return mode
    what, limit_text = f"{frames} frames at {width}x{height}", f"{limit / GIB:.1f} GB limit ({origin})"
    if mode == "AUTO":
        head = f"No memory mode fits {what} on {device} within the {limit_text}"
    else:
        head = f"Memory mode {label(mode)} needs about {estimates[mode] / GIB:.1f} GB for {what}, over the {limit_text}"
    if fitting:
        best = fitting[0]
        raise ModelError(f"{head}. {label(best)} fits (about {estimates[best] / GIB:.1f} GB): choose it, or Auto.")
    smallest = min(estimates, key=estimates.get)
    raise ModelError(f"{head}. No mode fits: the smallest, {label(smallest)}, needs about "
                     f"{estimates[smallest] / GIB:.1f} GB. Render fewer frames at once (a shorter shot window) or a "
                     f"smaller size.")


def applied(pipe) -> str | None:
    """The memory mode applied to this pipeline, None if none yet ("FAILED" if applying one broke off midway: the
    pipeline must be loaded again)."""
    return getattr(pipe, "_kd_memory_mode", None)


def _tile_vae(pipe) -> None:
    """Tiled (and sliced) VAE decoding: the decode's activations were the peak of the offload modes otherwise."""
    vae = getattr(pipe, "vae", None)
    for switch in ("enable_tiling", "enable_slicing"):
        if hasattr(vae, switch):
            getattr(vae, switch)()


def _store_fp8(pipe) -> None:
    import torch

    for name in _TRANSFORMERS:
        transformer = _component(pipe, name)
        if transformer is None:
            continue
        if not hasattr(transformer, "enable_layerwise_casting"):
            raise ModelError(f"Memory mode FP8 Storage needs diffusers' layerwise casting, which "
                             f"{type(transformer).__name__} doesn't have; choose Full or Model Offload.")
        # diffusers' default skip patterns (embeddings, norms, proj_in/out) and the model's fp32 modules stay as
        # they are; every other Linear/Conv is stored in fp8 and cast to the transformer's dtype per call.
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=transformer.dtype)


def apply(pipe, mode: str, device: str) -> None:
    """Put the pipeline on `device` under a concrete memory mode and record it (pipe._kd_memory_mode).

    FULL: pipe.to(device). FP8: the transformer(s) stored in float8_e4m3fn by layerwise casting, then moved.
    MODEL_OFFLOAD: diffusers' model CPU offload (each component on the device only while it runs). FP8_OFFLOAD: both.
    GROUP_OFFLOAD: every component block-level group offloaded (one block a group; the transformer's blocks stream in
    one at a time, prefetched on a CUDA stream; the text encoder and VAE, having no top-level block list, onload
    whole). The offload modes also tile and slice the VAE's decode. Attention slicing is not used: Wan's and LTX's
    attention processors call SDPA, whose flash / memory-efficient kernels never hold the score matrix, and
    diffusers' attention slicing only covers the UNet-style processors.

    Applying the mode already applied does nothing; another one raises ModelError (the offload hooks and fp8 storage
    can't be undone cleanly: load the model again)."""
    import torch

    if mode not in CONCRETE:
        raise ModelError(f"memory mode {mode!r} can't be applied: one of {', '.join(CONCRETE)} (choose() resolves "
                         f"AUTO)")
    current = applied(pipe)
    if current == mode:
        return
    if current is not None:
        raise ModelError(f"The model is already set up for memory mode {label(current)}; {label(mode)} needs it "
                         f"loaded again (offload hooks and fp8 weights can't be undone in place).")
    _refuse_on_device(mode, device)
    dev = torch.device(device)
    pipe._kd_memory_mode = "FAILED"  # until done: a half-applied pipeline must be reloaded, not re-applied
    try:
        if mode in FP8_MODES:
            _store_fp8(pipe)
        if mode in ("FULL", "FP8"):
            pipe.to(dev)
        elif mode in ("MODEL_OFFLOAD", "FP8_OFFLOAD"):
            pipe.enable_model_cpu_offload(device=dev)
            _tile_vae(pipe)
        else:
            pipe.enable_group_offload(onload_device=dev, offload_device=torch.device("cpu"),
                                      offload_type="block_level", num_blocks_per_group=1,
                                      use_stream=dev.type == "cuda")
            _tile_vae(pipe)
    except (ModelError, torch.OutOfMemoryError):
        raise
    except (RuntimeError, ValueError, TypeError, ImportError) as exc:
        raise ModelError(f"Memory mode {label(mode)} could not be applied on {device}: {exc}") from exc
    pipe._kd_memory_mode = mode


def describe(parts: dict[str, Any]) -> dict[str, float]:
    """Each concrete mode's estimate in GiB from estimate_parts' terms (for tables)."""
    return {mode: round(_peak(parts, mode) / GIB, 1) for mode in CONCRETE}
