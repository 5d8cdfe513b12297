"""Composable Diffusion inside an unmodified diffusers pipeline: the UNet runs once per prompt part.

``pipeline_inputs`` (engine.prompts) packs a frame's K parts side by side along the sequence axis of
``prompt_embeds`` (N, K*seq, dim). While ``composed`` is active, hooks on the UNet split that sequence back into the K
parts, run them as one batch, and return per sample the weighted mean of the parts' predictions, so the pipeline's
classifier-free guidance, guidance rescale and scheduler work on the composed prediction unchanged.

Per-sample inputs follow their sample: every tensor argument (nested in dicts, lists and tuples too: the timestep
when batched, SDXL's ``added_cond_kwargs`` time ids and pooled text embeddings, ControlNet's down/mid block residuals,
``timestep_cond``, class labels, ...) whose first dimension is the batch size is indexed along with the samples. A
sample whose K chunks are identical (the negative half of a CFG batch: the negative repeated K times) runs once,
its prediction scaled by the sum of its weights (1 for normalised weights).

The (B, K) weights apply to each consecutive block of B samples, so they fit a CFG batch [negatives; positives]
(N = 2B) as well as a batch without guidance (N = B). One image per prompt is assumed (``num_images_per_prompt=1``).
A ControlNet, run by the pipeline outside the UNet, sees the concatenated parts as one long prompt.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Iterator

import torch


def _take(value, index: torch.Tensor, batch: int):
    """Index every per-sample tensor in `value` (recursively) along its first dimension."""
    if isinstance(value, torch.Tensor):
        if value.ndim >= 1 and value.shape[0] == batch:
            return value.index_select(0, index.to(value.device))
        return value
    if isinstance(value, dict):
        return {k: _take(v, index, batch) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_take(v, index, batch) for v in value]
        return type(value)(items) if isinstance(value, list) or type(value) is tuple else type(value)(*items)
    return value


def _total(weights: torch.Tensor) -> float:
    """The sum of a sample's weights, exactly 1 when they are normalised (so a repeated negative passes unchanged)."""
    total = float(weights.double().sum())
    return 1.0 if abs(total - 1.0) < 1e-6 else total


class _Composer:
    def __init__(self, unet, weights: torch.Tensor, parts: int):
        self.weights = weights.detach().to(torch.float32).cpu()
        self.parts = parts
        self.names = list(inspect.signature(unet.forward).parameters)
        self.mix: torch.Tensor | None = None

    def before(self, _module, args, kwargs):
        kwargs = dict(kwargs)
        for name, value in zip(self.names, args):
            kwargs[name] = value
        hidden = kwargs["encoder_hidden_states"]
        n, total, dim = hidden.shape
        k, b = self.parts, self.weights.shape[0]
        if total % k:
            raise ValueError(f"composed: the prompt sequence ({total}) does not split into {k} equal parts")
        if n % b:
            raise ValueError(f"composed: a UNet batch of {n} does not fit weights for {b} frames")
        chunks = hidden.reshape(n, k, total // k, dim)
        weights = self.weights.repeat(n // b, 1)  # (N, K): the same frame weights for each block of B samples
        source, chunk_of, mix_vals = [], [], []  # per new row: its sample, its chunk, its weight in the mean
        for i in range(n):
            same = all(torch.equal(chunks[i, 0], chunks[i, j]) for j in range(1, k))
            for j in range(1 if same else k):
                source.append(i)
                chunk_of.append(j)
                mix_vals.append(_total(weights[i]) if same else float(weights[i, j]))
        index = torch.tensor(source, dtype=torch.long)
        chunk_index = torch.tensor(chunk_of, dtype=torch.long)
        self.mix = torch.zeros(n, len(source), dtype=torch.float32)
        self.mix[index, torch.arange(len(source))] = torch.tensor(mix_vals, dtype=torch.float32)
        new = {name: _take(value, index, n) for name, value in kwargs.items()
               if name not in ("encoder_hidden_states", "encoder_attention_mask")}
        new["encoder_hidden_states"] = chunks[index.to(hidden.device), chunk_index.to(hidden.device)]
        mask = kwargs.get("encoder_attention_mask")
        if isinstance(mask, torch.Tensor) and mask.shape == (n, total):
            mask = mask.reshape(n, k, total // k)[index.to(mask.device), chunk_index.to(mask.device)]
        elif mask is not None:
            mask = _take(mask, index, n)
        if "encoder_attention_mask" in kwargs:
            new["encoder_attention_mask"] = mask
        return (), new

    def after(self, _module, _args, _kwargs, output):
        mix, self.mix = self.mix, None
        if isinstance(output, torch.Tensor):
            return self._combine(mix, output)
        if isinstance(output, tuple):
            return (self._combine(mix, output[0]),) + tuple(output[1:])
        output.sample = self._combine(mix, output.sample)
        return output

    @staticmethod
    def _combine(mix: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("nm,m...->n...", mix.to(sample.device), sample.float())
        return mixed.to(sample.dtype)


@contextlib.contextmanager
def composed(unet, weights: torch.Tensor | None, parts: int) -> Iterator[None]:
    """While active, the UNet composes K = `parts` prompt parts with (B, K) `weights`; None leaves the UNet alone.

    The hooks are removed on exit, also when the body raises.
    """
    if weights is None:
        yield
        return
    if weights.ndim != 2 or weights.shape[1] != parts:
        raise ValueError(f"composed: weights must have shape (frames, {parts}), got {tuple(weights.shape)}")
    composer = _Composer(unet, weights, parts)
    handles = [unet.register_forward_pre_hook(composer.before, with_kwargs=True)]
    try:
        handles.append(unet.register_forward_hook(composer.after, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
