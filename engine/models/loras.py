"""LoRA adapters by file on a loaded pipeline (and every pipeline derived from it), reloading only what changed:
a render that keeps its LoRAs pays for them once."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ModelError
from .derive import base_pipeline
from .options import PICKLE_EXTENSIONS, SAFE_EXTENSIONS

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def apply_loras(pipe: DiffusionPipeline, loras: list[dict], allow_unsafe: bool = False) -> None:
    """Make exactly these LoRAs ({"path": file, "scale": number}) active on the pipeline (and every pipeline derived
    from it, which share its UNet and text encoders). Adapters already loaded from an unchanged file are kept and
    only re-weighted; the rest are loaded or deleted, and an empty list removes every adapter layer."""
    base = base_pipeline(pipe)
    wanted: dict[str, tuple[float, tuple[int, int]]] = {}
    for i, entry in enumerate(loras):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str) or not entry["path"].strip():
            raise ModelError(f"LoRA {i + 1}: give an object with a \"path\" (and a \"scale\"), not {entry!r}")
        name = entry["path"]
        scale = entry.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ModelError(f"LoRA '{name}': scale must be a number, got {scale!r}")
        path = os.path.abspath(os.path.expanduser(name.strip()))
        if not os.path.isfile(path):
            raise ModelError(f"LoRA '{name}' not found: no such file")
        lower = path.lower()
        if lower.endswith(PICKLE_EXTENSIONS):
            if not allow_unsafe:
                raise ModelError(f"LoRA '{name}' is a pickle file, which can run code when loaded: use a "
                                 ".safetensors version, or allow unsafe (pickle) weights if you trust its source")
        elif not lower.endswith(SAFE_EXTENSIONS):
            raise ModelError(f"LoRA '{name}' is not a .safetensors file")
        if path in wanted:
            raise ModelError(f"LoRA '{name}' is listed twice: give it once with the summed scale")
        stat = os.stat(path)
        wanted[path] = (float(scale), (stat.st_mtime_ns, stat.st_size))

    loaded: dict[str, tuple[str, tuple[int, int]]] = base.__dict__.setdefault("_kd_loras", {})
    # What the text encoders' LoRAs are (engine/prompts.py keeps encoded texts while it stays the same): unknown
    # until the change below has gone through.
    base.__dict__["_kd_lora_state"] = None
    if not wanted:
        if loaded:
            base.unload_lora_weights()  # takes the adapter layers out: the UNet is exactly the original again
            loaded.clear()
        base.__dict__["_kd_lora_state"] = ()
        return
    stale = [p for p, (_, stamp) in loaded.items() if p not in wanted or wanted[p][1] != stamp]
    if stale:
        base.delete_adapters([loaded[p][0] for p in stale])
        for p in stale:
            del loaded[p]
    counter = base.__dict__.get("_kd_lora_counter", 0)
    for path, (_, stamp) in wanted.items():
        if path in loaded:
            continue
        counter += 1
        # Adapter names become module keys: no dots; the counter keeps them unique across reloads.
        adapter = f"kd{counter}_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])[:40]
        _load_lora(base, path, adapter)
        loaded[path] = (adapter, stamp)
    base._kd_lora_counter = counter
    base.set_adapters([loaded[p][0] for p in wanted], adapter_weights=[s for s, _ in wanted.values()])
    base.__dict__["_kd_lora_state"] = tuple(sorted((p, s, stamp) for p, (s, stamp) in wanted.items()))


def _load_lora(pipe, path: str, adapter: str) -> None:
    try:
        if path.lower().endswith(SAFE_EXTENSIONS):
            from safetensors.torch import load_file

            # Read here, so diffusers never gets a path it could open as a pickle.
            pipe.load_lora_weights(load_file(path), adapter_name=adapter)
        else:
            pipe.load_lora_weights(os.path.dirname(path), weight_name=os.path.basename(path), adapter_name=adapter)
    except Exception as e:  # peft and diffusers raise ValueError, KeyError, RuntimeError... for a LoRA that won't fit
        try:
            pipe.delete_adapters([adapter])
        except Exception:
            pass  # nothing of it was loaded
        raise ModelError(f"could not load LoRA '{path}' (is it for this model's architecture?): {e}") from e
