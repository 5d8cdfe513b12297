"""engine/video_memory.py: the memory modes' estimates for the real Wan/LTX architectures (built on the meta device by
bench/video_memory.py: parameter counts without weights), the choice against a limit, and the modes applied to tiny
pipelines (FP8 for real on the CPU; the offload modes, which need a GPU, through what they call)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bench import video_memory as real  # noqa: E402
from engine import tiny_video_models, video_memory  # noqa: E402
from engine.errors import ModelError  # noqa: E402

GIB = 2 ** 30


def _real(name: str):
    return real.build(next(parts for model, parts, _ in real.MODELS if model == name))


@pytest.fixture(scope="module")
def wan14b():
    return _real("Wan2.1 T2V 14B")


@pytest.fixture(scope="module")
def wan13b():
    return _real("Wan2.1 T2V 1.3B")


def _estimates(pipe, frames=81, height=480, width=832, dtype_bytes=2) -> dict[str, int]:
    return {mode: video_memory.estimate_peak(pipe, mode, frames, height, width, dtype_bytes)
            for mode in video_memory.CONCRETE}


def test_parameter_counts_are_the_real_models(wan14b, wan13b):
    assert 14.0e9 < video_memory._count(wan14b.transformer) < 14.5e9
    assert 1.3e9 < video_memory._count(wan13b.transformer) < 1.5e9
    assert 5.5e9 < video_memory._count(wan14b.text_encoder) < 5.8e9  # UMT5-XXL's encoder
    assert video_memory.latent_tokens(wan14b, 81, 480, 832) == 21 * 30 * 52


def test_estimates_are_ordered_for_a_transformer_heavy_model(wan14b):
    est = _estimates(wan14b)
    assert est["FULL"] > est["FP8"] > est["FP8_OFFLOAD"] > est["GROUP_OFFLOAD"]
    assert est["FULL"] > est["MODEL_OFFLOAD"] > est["FP8_OFFLOAD"]
    # FP8 storage saves about a byte a parameter of the transformer's Linear layers (14B: ~13 GB)
    assert 12 * GIB < est["FULL"] - est["FP8"] < 14 * GIB
    # one block at a time: the group offload floor is the text encoder running alone (UMT5-XXL in bf16)
    assert est["GROUP_OFFLOAD"] == video_memory._count(wan14b.text_encoder) * 2


def test_a_small_transformer_beside_a_big_text_encoder_offloads_below_fp8(wan13b):
    est = _estimates(wan13b)
    assert est["FULL"] > est["FP8"] > est["MODEL_OFFLOAD"] >= est["GROUP_OFFLOAD"]


def test_estimates_grow_with_frames_and_size(wan14b):
    small, longer, larger = _estimates(wan14b, 33), _estimates(wan14b, 81), _estimates(wan14b, 81, 720, 1280)
    for mode in video_memory.CONCRETE:
        assert small[mode] <= longer[mode] <= larger[mode], mode
    for mode in ("FULL", "FP8", "MODEL_OFFLOAD", "FP8_OFFLOAD"):
        assert small[mode] < longer[mode] < larger[mode], mode
    assert video_memory.transformer_activations(wan14b, 81, 720, 1280, 2) \
        > 2 * video_memory.transformer_activations(wan14b, 81, 480, 832, 2)


def test_tiled_decoding_holds_less(wan14b):
    untiled = video_memory.vae_activations(wan14b, 81, 720, 1280, 2, tiled=False)
    tiled = video_memory.vae_activations(wan14b, 81, 720, 1280, 2, tiled=True)
    assert tiled < untiled / 2


def _settings(mode="AUTO", limit=0.0) -> dict:
    return {"memory_mode": mode, "memory_limit_gb": limit}


def test_auto_takes_the_fastest_mode_that_fits_the_limit(wan14b):
    est = _estimates(wan14b)
    for mode, need in est.items():
        limit_gb = need / GIB
        expected = next(m for m in video_memory.CONCRETE if est[m] <= need)
        assert video_memory.choose(wan14b, _settings("AUTO", limit_gb), 81, 480, 832, "cuda") == expected
    assert video_memory.choose(wan14b, _settings("AUTO", 1000), 81, 480, 832, "cuda") == "FULL"


def test_an_explicit_mode_too_big_names_the_one_that_fits(wan14b):
    est = _estimates(wan14b)
    limit_gb = est["FP8_OFFLOAD"] / GIB + 0.05
    assert video_memory.choose(wan14b, _settings("FP8_OFFLOAD", limit_gb), 81, 480, 832, "cuda") == "FP8_OFFLOAD"
    with pytest.raises(ModelError) as raised:
        video_memory.choose(wan14b, _settings("FULL", limit_gb), 81, 480, 832, "cuda")
    message = str(raised.value)
    assert "Memory mode Full needs about" in message and f"{est['FULL'] / GIB:.1f} GB" in message
    assert f"{limit_gb:.1f} GB limit (the Memory Limit setting)" in message
    assert "FP8 + Offload fits" in message  # the fastest that fits, not Group Offload
    with pytest.raises(ModelError, match=r"No mode fits: the smallest, Group Offload, needs about .* fewer frames"):
        video_memory.choose(wan14b, _settings("MODEL_OFFLOAD", 4), 81, 480, 832, "cuda")
    with pytest.raises(ModelError, match=r"No memory mode fits 81 frames at 832x480 on cuda within the 4.0 GB"):
        video_memory.choose(wan14b, _settings("AUTO", 4), 81, 480, 832, "cuda")


def test_free_memory_is_the_limit_when_none_is_set(wan14b, monkeypatch):
    est = _estimates(wan14b)
    monkeypatch.setattr(video_memory, "free_bytes", lambda device: est["FP8_OFFLOAD"] + 1)
    assert video_memory.choose(wan14b, _settings(), 81, 480, 832, "cuda:0") == "FP8_OFFLOAD"
    with pytest.raises(ModelError, match="cuda:0's free memory; set a Memory Limit"):
        video_memory.choose(wan14b, _settings("FULL"), 81, 480, 832, "cuda:0")
    monkeypatch.setattr(video_memory, "free_bytes", lambda device: None)  # a device that can't say
    assert video_memory.choose(wan14b, _settings(), 81, 480, 832, "cuda") == "FULL"
    assert video_memory.choose(wan14b, _settings("GROUP_OFFLOAD"), 81, 480, 832, "cuda") == "GROUP_OFFLOAD"


def test_on_the_cpu_full_is_the_choice_and_offload_is_refused(wan14b):
    assert video_memory.free_bytes("cpu") is None
    assert video_memory.choose(wan14b, _settings(), 81, 480, 832, "cpu") == "FULL"
    est = _estimates(wan14b)
    assert video_memory.choose(wan14b, _settings("AUTO", est["FP8"] / GIB), 81, 480, 832, "cpu") == "FP8"
    with pytest.raises(ModelError, match="No mode fits: the smallest, FP8 Storage"):  # offload isn't a way out there
        video_memory.choose(wan14b, _settings("AUTO", est["FP8_OFFLOAD"] / GIB), 81, 480, 832, "cpu")
    with pytest.raises(ModelError, match="on the CPU .* nothing to offload"):
        video_memory.choose(wan14b, _settings("MODEL_OFFLOAD"), 81, 480, 832, "cpu")
    with pytest.raises(ModelError, match="float8"):
        video_memory.choose(wan14b, _settings("FP8"), 81, 480, 832, "mps")


@pytest.fixture
def wan():
    return tiny_video_models.build_tiny_wan_t2v(0)


def _render(pipe) -> torch.Tensor:
    return pipe(prompt="a red ball", negative_prompt="", num_inference_steps=2, guidance_scale=5.0, height=32,
                width=32, num_frames=5, output_type="latent", generator=torch.Generator().manual_seed(0)).frames


def test_fp8_on_the_cpu_stores_fp8_weights_and_still_renders(wan):
    before = _render(wan)
    video_memory.apply(wan, "FP8", "cpu")
    assert video_memory.applied(wan) == "FP8"
    block = wan.transformer.blocks[0]
    assert block.ffn.net[0].proj.weight.dtype == torch.float8_e4m3fn
    assert block.attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert wan.transformer.patch_embedding.weight.dtype == torch.float32  # diffusers' skip patterns stay as they are
    assert wan.transformer.blocks[0].norm2.weight.dtype == torch.float32
    after = _render(wan)
    assert torch.isfinite(after).all() and after.shape == before.shape
    assert not torch.equal(after, before)  # fp8-rounded weights: slightly different numbers
    video_memory.apply(wan, "FP8", "cpu")  # the same mode again: nothing to do
    with pytest.raises(ModelError, match="already set up for memory mode FP8 Storage; Full needs it loaded again"):
        video_memory.apply(wan, "FULL", "cpu")


def test_full_on_the_cpu_and_modes_refused_there(wan):
    with pytest.raises(ModelError, match="nothing to offload"):
        video_memory.apply(wan, "GROUP_OFFLOAD", "cpu")
    with pytest.raises(ModelError, match="choose\\(\\) resolves AUTO"):
        video_memory.apply(wan, "AUTO", "cpu")
    assert video_memory.applied(wan) is None
    video_memory.apply(wan, "FULL", "cpu")
    assert video_memory.applied(wan) == "FULL" and torch.isfinite(_render(wan)).all()


class _Spy:
    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))


@pytest.mark.parametrize("mode", ["MODEL_OFFLOAD", "FP8_OFFLOAD", "GROUP_OFFLOAD"])
def test_offload_modes_call_diffusers_offload_and_tile_the_vae(wan, monkeypatch, mode):
    spies = {name: _Spy() for name in ("enable_model_cpu_offload", "enable_group_offload")}
    for name, spy in spies.items():
        monkeypatch.setattr(wan, name, spy)
    tiling = _Spy()
    monkeypatch.setattr(wan.vae, "enable_tiling", tiling)
    video_memory.apply(wan, mode, "cuda:0")
    assert video_memory.applied(wan) == mode and tiling.calls
    if mode == "GROUP_OFFLOAD":
        (_, kwargs), = spies["enable_group_offload"].calls
        assert kwargs == dict(onload_device=torch.device("cuda:0"), offload_device=torch.device("cpu"),
                              offload_type="block_level", num_blocks_per_group=1, use_stream=True)
        assert not spies["enable_model_cpu_offload"].calls
    else:
        (_, kwargs), = spies["enable_model_cpu_offload"].calls
        assert kwargs == {"device": torch.device("cuda:0")}
    fp8 = wan.transformer.blocks[0].ffn.net[0].proj.weight.dtype == torch.float8_e4m3fn
    assert fp8 == (mode == "FP8_OFFLOAD")


def test_a_mode_that_breaks_off_leaves_the_pipeline_to_reload(wan, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("no accelerator")

    monkeypatch.setattr(wan, "enable_model_cpu_offload", broken)
    with pytest.raises(ModelError, match="Model Offload could not be applied on cuda: no accelerator"):
        video_memory.apply(wan, "MODEL_OFFLOAD", "cuda")
    assert video_memory.applied(wan) == "FAILED"
    with pytest.raises(ModelError, match="loaded again"):
        video_memory.apply(wan, "FULL", "cuda")
