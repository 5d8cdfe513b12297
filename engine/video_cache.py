"""diffusers' cache hooks on a video model's transformer (Wan 2.x, LTX-Video): fewer full transformer computations per
shot, at a small cost in pixels. One cache at a time, recorded on the pipeline (pipe._kd_cache); NONE removes it.

- FIRST_BLOCK: First Block Cache. Each step runs the first block; when its residual changed by less than
  FIRST_BLOCK_THRESHOLD (0.1; relative mean absolute difference) since the last full step, the other blocks are skipped and their cached
  residual added. Per guidance branch (diffusers keeps its state per cache context: Wan's "cond"/"uncond" calls).
- PYRAMID: Pyramid Attention Broadcast. While the timestep is inside (100, 800), each spatial self-attention
  computes every second call and hands its last output on in between (diffusers' default timestep range).
- FASTER: FasterCache's attention reuse. While the timestep is below 681, each spatial self-attention computes every
  second call and extrapolates in between (last + (last - previous) x 0.3; diffusers' example values). Its other
  half, approximating the unconditional branch from the conditional one, is not used: Wan runs its guidance branches
  as separate calls and diffusers' FasterCache can't split LTX's token-sequence layout (its own TODO), so both
  families run it as diffusers' "guidance distilled" variant.
- TAYLORSEER: TaylorSeer Lite. After 6 full steps, one step in 3 runs the transformer; the others skip every block
  and predict the output projection from its last value and first difference (a first-order Taylor series). Lite
  keeps one tensor per guidance branch; the full variant, caching both attentions' outputs in every block, would hold
  over a hundred GB for Wan 14B at 480p. Interval and warm-up as OpenVINO GenAI's TaylorSeer Lite defaults.

PYRAMID's and FASTER's hooks keep their state per hooked layer, not per guidance branch, so Wan's separate
conditional/unconditional calls would hand one branch's attention to the other; a small hook on the transformer
(_BranchStates) gives each cache context (diffusers' "cond"/"uncond", LTX's single "cond_uncond") its own copy.

These two read the step's timestep from pipe.current_timestep, which diffusers' Wan and LTX pipelines set every
step; a loop of one's own must set pipe._current_timestep, else the timestep reads as -1 and they never skip.
Caches keep their state within one pipeline call: diffusers resets it when the call ends (maybe_free_model_hooks).
"""

from __future__ import annotations

from . import vocabulary as vocab
from .errors import ModelError

CACHES = vocab.names(vocab.VIDEO_CACHES)
_LABELS = {name: label for name, label, _ in vocab.VIDEO_CACHES}
_TRANSFORMERS = ("transformer", "transformer_2")  # transformer_2: Wan 2.2 A14B's low-noise expert
_BRANCH_HOOK = "kd_branch_states"

# Twice diffusers' default (0.05): more skipping for a little more difference. Not tuned on a real model:
# bench/video_cache.py has random weights only.
FIRST_BLOCK_THRESHOLD = 0.1
PYRAMID_SKIP, PYRAMID_TIMESTEPS = 2, (100, 800)
FASTER_SKIP, FASTER_TIMESTEPS, FASTER_WEIGHT = 2, (-1, 681), 0.3
TAYLOR_INTERVAL, TAYLOR_WARMUP = 3, 6


def label(name: str) -> str:
    return _LABELS.get(name, name)


def _transformers(pipe) -> list:
    return [module for module in (getattr(pipe, name, None) for name in _TRANSFORMERS) if module is not None]


def _timestep_reader(pipe, gate: dict | None = None):
    """The step's timestep for the hooks' range checks; -1 (outside every range: no skipping) when unset, or while
    `gate` says a branch has nothing cached yet (FasterCache would otherwise "reuse" a first call inside its range)."""
    def current() -> float:
        timestep = getattr(pipe, "_current_timestep", None)
        return -1 if timestep is None or (gate is not None and gate["fresh"]) else timestep
    return current


def _config(pipe, name: str, gate: dict):
    import torch
    from diffusers import FasterCacheConfig, FirstBlockCacheConfig, PyramidAttentionBroadcastConfig, \
        TaylorSeerCacheConfig

    if name == "FIRST_BLOCK":
        return FirstBlockCacheConfig(threshold=FIRST_BLOCK_THRESHOLD)
    if name == "PYRAMID":
        return PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=PYRAMID_SKIP,
                                               spatial_attention_timestep_skip_range=PYRAMID_TIMESTEPS,
                                               current_timestep_callback=_timestep_reader(pipe))
    if name == "FASTER":
        return FasterCacheConfig(spatial_attention_block_skip_range=FASTER_SKIP,
                                 spatial_attention_timestep_skip_range=FASTER_TIMESTEPS,
                                 attention_weight_callback=lambda _: FASTER_WEIGHT,
                                 current_timestep_callback=_timestep_reader(pipe, gate), is_guidance_distilled=True)
    return TaylorSeerCacheConfig(cache_interval=TAYLOR_INTERVAL, disable_cache_before_step=TAYLOR_WARMUP,
                                 max_order=1, taylor_factors_dtype=torch.float32, use_lite_mode=True)


def _branch_hook_class():
    from diffusers.hooks.hooks import BaseState, ModelHook, StateManager

    class _Branch(BaseState):
        """One guidance branch's copy of every per-layer hook state."""

        def __init__(self, hooks) -> None:
            self.states = [type(hook.state)() for hook in hooks]

        def reset(self) -> None:
            for state in self.states:
                state.reset()

    class _BranchStates(ModelHook):
        """Before each transformer call, hands every PAB/FasterCache hook the state of the call's cache context."""

        _is_stateful = True  # so diffusers' cache_context() sets our StateManager's context, and resets it

        def __init__(self, hooks, gate: dict) -> None:
            super().__init__()
            self.hooks, self.gate = hooks, gate
            self.state_manager = StateManager(_Branch, (hooks,))

        def pre_forward(self, module, *args, **kwargs):
            try:
                branch = self.state_manager.get_state()
            except ValueError:  # called outside a cache context: one shared state, diffusers' own behaviour
                return args, kwargs
            for hook, state in zip(self.hooks, branch.states):
                hook.state = state
            # A branch whose attention layers hold nothing yet must compute (FasterCache skips by iteration count).
            self.gate["fresh"] = any(getattr(state, "cache", False) is None for state in branch.states)
            return args, kwargs

        def reset_state(self, module):
            self.state_manager.reset()
            return module

    return _BranchStates


def _stateful_hooks(transformer) -> list:
    """The hooks under the transformer (itself included) that keep a per-layer `state` (PAB, FasterCache)."""
    found = []
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        for hook in [] if registry is None else registry.hooks.values():
            if getattr(hook, "_is_stateful", False) and hasattr(hook, "state"):
                found.append(hook)
    return found


def _add_branch_states(transformer, gate: dict) -> None:
    from diffusers.hooks import HookRegistry

    hooks = _stateful_hooks(transformer)
    if hooks:
        registry = HookRegistry.check_if_exists_or_initialize(transformer)
        registry.register_hook(_branch_hook_class()(hooks, gate), _BRANCH_HOOK)  # registered last: runs first


def _disable(transformer) -> None:
    registry = getattr(transformer, "_diffusers_hook", None)
    if registry is not None and registry.get_hook(_BRANCH_HOOK) is not None:
        registry.remove_hook(_BRANCH_HOOK, recurse=False)
    if getattr(transformer, "is_cache_enabled", False):
        transformer.disable_cache()


def applied_cache(pipe) -> str:
    return getattr(pipe, "_kd_cache", "NONE")


def apply_cache(pipe, name: str) -> None:
    """Put cache `name` (one of CACHES) on the pipeline's transformer(s), taking off any other first; NONE takes it
    off. The same cache again does nothing. ModelError when the transformer can't take the hook."""
    if name not in CACHES:
        raise ModelError(f"unknown video cache {name!r}: one of {', '.join(CACHES)}")
    if applied_cache(pipe) == name:
        return
    transformers = _transformers(pipe)
    for transformer in transformers:
        _disable(transformer)
    pipe._kd_cache = "NONE"
    if name == "NONE":
        return
    if not transformers:
        raise ModelError(f"{label(name)} hooks a diffusion transformer; {type(pipe).__name__} has none")
    for transformer in transformers:
        model = type(transformer).__name__
        if not hasattr(transformer, "enable_cache"):
            raise ModelError(f"{label(name)} can't hook {model}: it has no diffusers cache support (CacheMixin); "
                             f"set the Video Cache to None for this model")
        gate = {"fresh": False}
        try:
            transformer.enable_cache(_config(pipe, name, gate))
            if name in ("PYRAMID", "FASTER"):
                _add_branch_states(transformer, gate)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            for undo in transformers:
                _disable(undo)
            raise ModelError(f"{label(name)} can't hook {model}: {exc}; set the Video Cache to None for this "
                             f"model") from exc
    pipe._kd_cache = name
