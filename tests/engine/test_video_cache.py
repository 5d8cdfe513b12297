"""engine/video_cache.py: diffusers' cache hooks on tiny Wan and LTX pipelines (4-block transformers, so First Block
Cache has blocks to skip) change how many blocks really compute in a multi-step denoise; NONE and switching restore
and replace them; each guidance branch keeps its own PAB/FasterCache state."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine import tiny_video_models, video_cache  # noqa: E402
from engine.errors import ModelError  # noqa: E402

STEPS = 10  # TaylorSeer computes steps 0-5 and every third after: 3 of 10 predicted


def _with_blocks(pipe, blocks: int = 4):
    """The tiny pipeline with a transformer of the same layout but `blocks` blocks."""
    torch.manual_seed(1)
    config = {**pipe.transformer.config, "num_layers": blocks}
    pipe.register_modules(transformer=type(pipe.transformer).from_config(config).eval())
    return pipe


FAMILIES = {"wan": (tiny_video_models.build_tiny_wan_t2v, 32), "ltx": (tiny_video_models.build_tiny_ltx_t2v, 64)}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def counted(request):
    """(pipe, render): render() denoises STEPS steps with guidance (latents out) and returns the latents with the
    number of feed-forward and self-attention computations the blocks really made (inner layers, which a skipped
    block or attention never reaches)."""
    build, size = FAMILIES[request.param]
    pipe = _with_blocks(build(0))
    transformer = pipe.transformer
    calls = {"ffn": 0, "attn": 0}

    def counter(key):
        def hook(*_):
            calls[key] += 1
        return hook

    for block in getattr(transformer, "blocks", None) or transformer.transformer_blocks:
        (getattr(block, "ffn", None) or block.ff).register_forward_hook(counter("ffn"))
        block.attn1.to_q.register_forward_hook(counter("attn"))

    def render():
        calls.update(ffn=0, attn=0)
        latents = pipe(prompt="a red ball", negative_prompt="", num_inference_steps=STEPS, guidance_scale=5.0,
                       height=size, width=size, num_frames=9, output_type="latent",
                       generator=torch.Generator().manual_seed(0)).frames
        return latents, dict(calls)

    video_cache.apply_cache(pipe, "NONE")
    yield pipe, render
    video_cache.apply_cache(pipe, "NONE")


# What each cache skips: whole blocks (feed-forward and attention) or self-attention only.
SKIPS = {"FIRST_BLOCK": ("ffn", "attn"), "PYRAMID": ("attn",), "FASTER": ("attn",), "TAYLORSEER": ("ffn", "attn")}


def test_each_cache_skips_computation_and_none_restores_it(counted):
    pipe, render = counted
    video_cache.apply_cache(pipe, "NONE")
    full, full_calls = render()
    for name, skipped in SKIPS.items():
        video_cache.apply_cache(pipe, name)
        assert video_cache.applied_cache(pipe) == name == pipe._kd_cache
        latents, calls = render()
        for key in ("ffn", "attn"):
            if key in skipped:
                assert calls[key] < full_calls[key], (name, key, calls, full_calls)
            else:
                assert calls[key] == full_calls[key], (name, key, calls, full_calls)
        assert not torch.equal(latents, full), name  # reused/predicted features change the result a little
        assert torch.isfinite(latents).all()
    video_cache.apply_cache(pipe, "NONE")
    latents, calls = render()
    assert calls == full_calls and torch.equal(latents, full)
    assert not pipe.transformer.is_cache_enabled


def _hook_names(transformer) -> set[str]:
    names = set()
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        names |= set() if registry is None else set(registry.hooks)
    return names


def test_switching_replaces_the_hooks(counted):
    pipe, render = counted
    video_cache.apply_cache(pipe, "FIRST_BLOCK")
    first = _hook_names(pipe.transformer)
    assert any(name.startswith("fbc") for name in first)
    video_cache.apply_cache(pipe, "PYRAMID")
    second = _hook_names(pipe.transformer)
    assert not any(name.startswith("fbc") for name in second)
    assert "pyramid_attention_broadcast" in second and video_cache._BRANCH_HOOK in second
    video_cache.apply_cache(pipe, "PYRAMID")  # the same cache again: nothing changes
    assert _hook_names(pipe.transformer) == second
    video_cache.apply_cache(pipe, "TAYLORSEER")
    third = _hook_names(pipe.transformer)
    assert "taylorseer_cache" in third and "pyramid_attention_broadcast" not in third
    assert video_cache._BRANCH_HOOK not in third
    render()  # runs with the switched cache
    video_cache.apply_cache(pipe, "NONE")
    assert not any(name.startswith(("fbc", "pyramid", "faster", "taylorseer", video_cache._BRANCH_HOOK))
                   for name in _hook_names(pipe.transformer))


@pytest.mark.parametrize("name", ["PYRAMID", "FASTER"])
@pytest.mark.parametrize("timesteps", [(900.0, 500.0), (500.0, 500.0)], ids=["outside-then-inside", "inside"])
def test_guidance_branches_keep_their_own_attention_state(name, timesteps):
    """Wan calls the transformer once per branch ("cond", then "uncond"). Two steps with the same inputs, the second
    inside the cache's timestep range: each branch's second call reuses (or extrapolates from) its own first call,
    which gives exactly the uncached output; diffusers' per-layer state alone would hand the "cond" call's attention to
    the "uncond" one. A first call already inside the range computes (FasterCache alone would reuse nothing)."""
    pipe = _with_blocks(tiny_video_models.build_tiny_wan_t2v(0), 2)
    transformer = pipe.transformer
    generator = torch.Generator().manual_seed(0)
    inputs = {branch: dict(hidden_states=torch.randn(1, 4, 3, 4, 4, generator=generator),
                           timestep=torch.tensor([500.0]),
                           encoder_hidden_states=torch.randn(1, 8, 32, generator=generator), return_dict=False)
              for branch in ("cond", "uncond")}
    with torch.no_grad():
        plain = {branch: transformer(**kwargs)[0] for branch, kwargs in inputs.items()}
        video_cache.apply_cache(pipe, name)
        for step_timestep in timesteps:  # what the hooks read; 500 is inside both caches' ranges
            pipe._current_timestep = torch.tensor(step_timestep)
            cached = {}
            for branch, kwargs in inputs.items():
                with transformer.cache_context(branch):
                    cached[branch] = transformer(**kwargs)[0]
    video_cache.apply_cache(pipe, "NONE")
    for branch in inputs:
        assert torch.allclose(cached[branch], plain[branch], atol=1e-6), branch


def test_two_expert_pipeline_gets_the_cache_on_both():
    pipe = tiny_video_models.build_tiny_wan22_i2v(0)
    video_cache.apply_cache(pipe, "TAYLORSEER")
    assert pipe.transformer.is_cache_enabled and pipe.transformer_2.is_cache_enabled
    video_cache.apply_cache(pipe, "NONE")
    assert not pipe.transformer.is_cache_enabled and not pipe.transformer_2.is_cache_enabled


def test_a_transformer_that_cannot_take_the_hook_is_named():
    pipe = tiny_video_models.build_tiny_wan_t2v(0)
    pipe.transformer = torch.nn.Linear(2, 2)  # no CacheMixin
    with pytest.raises(ModelError, match="First Block Cache can't hook Linear"):
        video_cache.apply_cache(pipe, "FIRST_BLOCK")
    assert video_cache.applied_cache(pipe) == "NONE"
    one_block = _with_blocks(tiny_video_models.build_tiny_wan_t2v(0), 1)  # First Block Cache needs a head and a tail
    with pytest.raises(ModelError, match="First Block Cache can't hook WanTransformer3DModel"):
        video_cache.apply_cache(one_block, "FIRST_BLOCK")
    assert not one_block.transformer.is_cache_enabled and video_cache.applied_cache(one_block) == "NONE"
    with pytest.raises(ModelError, match="unknown video cache"):
        video_cache.apply_cache(one_block, "TEACACHE")
