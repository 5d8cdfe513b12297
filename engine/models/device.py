"""Which device the weights go to and in which dtype. torch is imported only when asked, so callers that merely
name a device stay light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import vocabulary as vocab
from ..errors import ModelError

if TYPE_CHECKING:
    import torch

PRECISIONS = vocab.names(vocab.PRECISIONS)


def pick_device(requested: str = "auto") -> str:
    """The requested device, or for "auto" the fastest one here: CUDA, then MPS, then the CPU."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> torch.dtype:
    """fp16 on CUDA (half the memory, the speed people expect); fp32 elsewhere (CPU/MPS fp16 is slow or lossy)."""
    import torch

    return torch.float16 if str(device).startswith("cuda") else torch.float32


def pick_dtype(precision: str, device: str) -> torch.dtype:
    """The torch dtype for a precision setting on a device."""
    import torch

    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    if precision == "auto":
        return default_dtype(device)
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
