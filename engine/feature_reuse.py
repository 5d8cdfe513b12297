"""Feature reuse across denoising steps (DeepCache's idea) for a diffusers UNet2DConditionModel.

A UNet's deep, low-resolution features change little from one denoising step to the next; the shallow branch (the
first convolution and the last up block's last layer, at full latent resolution) carries the detail. With an interval
N >= 2, every Nth UNet call of a pipeline call runs the whole UNet and keeps the outputs of its deep part; the calls in
between run only the shallow branch and take the deep part's outputs from the last full call. Every down block, the
middle block, every up block but the last, and the last up block's layers but its last are the deep part.

The DeepCache package (DeepCacheSDHelper) does the same with its own bookkeeping; it is not used because it reads the
timestep from the UNet's second positional argument (the composable-prompt hooks pass everything by keyword, the
stream batch passes one timestep per frame) and keeps its cached features between pipeline calls unless re-enabled.
Here the state lives only inside one ``reused_features`` block, and a call whose input shape differs from the cached
one runs in full.

It changes the pictures slightly (so it is part of a frame's hash, engine/plan.py), and saves roughly the share of
skipped calls times the share of the UNet's time spent in its deep part.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .errors import ModelError

_UNSET = object()


def why_unsupported(unet) -> str | None:
    """Why feature reuse can't run on `unet`, or None when it can."""
    if hasattr(unet, "_orig_mod"):  # torch.compile's OptimizedModule
        return "a compiled UNet (turn Compile or Feature Reuse off)"
    from diffusers import UNet2DConditionModel

    if not isinstance(unet, UNet2DConditionModel):
        return (f"{type(unet).__name__} (feature reuse takes image models' UNet2DConditionModel; "
                "turn Feature Reuse off for this model)")
    last = unet.up_blocks[-1] if len(unet.up_blocks) else None
    if last is None or len(getattr(last, "resnets", [])) < 1:
        return f"{type(unet).__name__} without up blocks (turn Feature Reuse off)"
    return None


class FeatureReuse:
    """The hooks' state for one ``reused_features`` block: which calls ran in full, and the deep part's outputs."""

    def __init__(self, unet, interval: int):
        self.unet = unet
        self.interval = interval
        self.calls = 0  # UNet calls seen
        self.full_calls = 0  # ... of which ran the whole UNet
        self.full = True  # whether the UNet call in progress runs the whole UNet
        self.shape = None  # the input shape the cached features belong to
        self.cache: dict[int, object] = {}
        self._patched: list[tuple[object, object]] = []  # (module, its own instance forward or _UNSET)
        self._handle = None

    def deep_modules(self) -> list:
        unet = self.unet
        last = unet.up_blocks[-1]
        deep = [*unet.down_blocks, *([unet.mid_block] if unet.mid_block is not None else []), *unet.up_blocks[:-1]]
        deep += list(last.resnets[:-1])
        attentions = getattr(last, "attentions", None)
        if attentions is not None and len(attentions):
            deep += list(attentions[:-1])
        return deep

    def _before(self, _module, args, kwargs):
        sample = args[0] if args else kwargs.get("sample")
        shape = tuple(sample.shape) if sample is not None else None
        self.full = self.calls % self.interval == 0 or shape != self.shape or not self.cache
        if self.full:
            self.cache.clear()
            self.shape = shape
            self.full_calls += 1
        self.calls += 1

    def _wrap(self, index: int, forward):
        def reused(*args, **kwargs):
            if not self.full and index in self.cache:
                return self.cache[index]
            output = forward(*args, **kwargs)
            if self.full:
                self.cache[index] = output
            return output

        return reused

    def install(self) -> None:
        for index, module in enumerate(self.deep_modules()):
            own = module.__dict__.get("forward", _UNSET)  # an instance forward (accelerate's offload hooks) is kept
            self._patched.append((module, own))
            module.forward = self._wrap(index, module.forward)
        self._handle = self.unet.register_forward_pre_hook(self._before, with_kwargs=True)

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        for module, own in reversed(self._patched):
            if own is _UNSET:
                module.__dict__.pop("forward", None)
            else:
                module.forward = own
        self._patched.clear()
        self.cache.clear()


def interval_of(settings: dict) -> int:
    """The plan's feature reuse interval; 0 and 1 (and absent) mean off."""
    value = int(settings.get("feature_reuse") or 0)
    return value if value >= 2 else 0


@contextlib.contextmanager
def reused_features(unet, interval: int) -> Iterator[FeatureReuse | None]:
    """While active, the UNet runs in full every `interval` calls and only its shallow branch in between; an interval
    below 2 leaves the UNet alone. Raises ModelError for a UNet it can't work on. The hooks are removed on exit, also
    when the body raises (a cancel inside the denoising loop)."""
    if interval < 2:
        yield None
        return
    why = why_unsupported(unet)
    if why is not None:
        raise ModelError(f"feature reuse does not work on {why}")
    reuse = FeatureReuse(unet, interval)
    try:
        reuse.install()
        yield reuse
    finally:
        reuse.remove()
