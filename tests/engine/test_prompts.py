"""Prompt conditioning: composable prompts, Compel weighting, caching, the composed UNet, interpolate on SD and SDXL."""

import numpy as np
import pytest
import torch

from engine.composable import composed
from engine.modes import interpolate
from engine.prompts import PromptEncoder, parse_composable, pipeline_inputs, uses_compel_syntax
from engine.tiny_model import build_tiny_pipeline, build_tiny_sdxl_pipeline


@pytest.fixture(scope="module")
def sd():
    return build_tiny_pipeline(0)


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny_sdxl_pipeline(0)


@pytest.fixture(params=["sd", "sdxl"])
def pipe(request, sd, sdxl):
    return {"sd": sd, "sdxl": sdxl}[request.param]


def latents(seed: int, batch: int = 1) -> torch.Tensor:
    return torch.randn((batch, 4, 32, 32), generator=torch.Generator().manual_seed(seed))


def call(pipe, cond_kwargs: dict, lat: torch.Tensor, guidance: float = 5.0, **extra) -> np.ndarray:
    with torch.no_grad():
        return pipe(**cond_kwargs, latents=lat, num_inference_steps=2, guidance_scale=guidance, width=64, height=64,
                    output_type="np", **extra).images


def hook_count(module) -> int:
    return len(module._forward_pre_hooks) + len(module._forward_hooks)


# --- parsing ----------------------------------------------------------------------------------------------------


def test_parse_composable_parts_and_weights():
    assert parse_composable("a red circle :1.5 | a blue square :0.5 | a tree") == [
        ("a red circle", 1.5), ("a blue square", 0.5), ("a tree", 1.0)]
    assert parse_composable("ratio 16:9 poster") == [("ratio 16:9 poster", 1.0)]
    assert parse_composable("ratio 16:9 poster | b") == [("ratio 16:9 poster", 1.0), ("b", 1.0)]
    assert parse_composable("a cat:1.5 | b") == [("a cat:1.5", 1.0), ("b", 1.0)]  # no space: text
    assert parse_composable("Title : subtitle | b") == [("Title : subtitle", 1.0), ("b", 1.0)]
    assert parse_composable("(a | b)1.2 | [c | d] :2") == [("(a | b)1.2", 1.0), ("[c | d]", 2.0)]
    assert parse_composable("(a | b)") == [("(a | b)", 1.0)]
    assert parse_composable("a | b :-0.5") == [("a", 1.0), ("b", -0.5)]
    assert parse_composable("a | b : 2e-1 ") == [("a", 1.0), ("b", 0.2)]
    assert parse_composable("x :0 | y") == [("y", 1.0)]  # weight 0 drops the part
    assert parse_composable("a cat :1.5") == [("a cat :1.5", 1.0)]  # no '|': one part, as written
    assert parse_composable(r"a \| b") == [(r"a \| b", 1.0)]


@pytest.mark.parametrize("text, message", [
    ("a :x | b", r"malformed weight ':x' at character 3"),
    ("a | b :", r"malformed weight ':' at character 7"),
    ("a | b :1.2.3", r"malformed weight ':1.2.3' at character 7"),
    ("a | | b", r"empty part before the '\|' at character 5"),
    ("| a", r"empty part before the '\|' at character 1"),
    ("a |", r"empty part after the '\|' at character 3"),
    ("a | :2", r"empty part after the '\|' at character 3"),
    ("a :1 | b :-1", r"sum to more than zero"),
    ("a :0 | b :0", r"sum to more than zero"),
])
def test_parse_composable_errors_name_the_position(text, message):
    with pytest.raises(ValueError, match=message):
        parse_composable(text)


def test_compel_syntax_detection():
    for plain in ["a red circle", "sci-fi city", "[bad] art", "ratio 16:9 poster", "a - b", '"quoted" text']:
        assert not uses_compel_syntax(plain), plain
    for weighted in ["(red)1.5 circle", "a cat++", "a (dog)-", '("a cat", "a dog").blend(0.3, 0.7)',
                     '("a cat", "a dog").and()', "(a red circle)1"]:
        assert uses_compel_syntax(weighted), weighted


# --- encoding ---------------------------------------------------------------------------------------------------


def test_compel_on_a_plain_prompt_matches_encode_prompt(pipe):
    encoder = PromptEncoder(pipe)
    plain, plain_pooled = encoder.embed("a red circle")
    # '(...)1' is Compel syntax with no effect: the Compel path, which must agree with diffusers' encode_prompt.
    via_compel, compel_pooled = encoder.embed("(a red circle)1")
    assert uses_compel_syntax("(a red circle)1")
    assert via_compel.shape == plain.shape
    assert torch.allclose(via_compel, plain, atol=1e-5)
    if plain_pooled is not None:
        assert torch.allclose(compel_pooled, plain_pooled, atol=1e-5)
    with torch.no_grad():
        reference = pipe.encode_prompt(prompt="a red circle", device="cpu", num_images_per_prompt=1,
                                       do_classifier_free_guidance=False)
    assert torch.equal(reference[0][0], plain)
    weighted, weighted_pooled = encoder.embed("(red)1.5 circle")
    unweighted, unweighted_pooled = encoder.embed("red circle")
    assert (weighted - unweighted).abs().max() > 1e-3
    if unweighted_pooled is not None:  # the syntax is stripped for SDXL's pooled embedding
        assert torch.allclose(weighted_pooled, unweighted_pooled, atol=1e-6)


def test_each_distinct_text_is_encoded_once_per_encoder(pipe):
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if hasattr(pipe, "text_encoder_2") else [])
    calls = [0] * len(encoders)
    handles = []
    for i, enc in enumerate(encoders):
        def count(_m, _args, i=i):
            calls[i] += 1
        handles.append(enc.register_forward_pre_hook(count))
    records = [{"frame": f, "seed": 0, "steps": 1, "guidance": 3.0,
                "prompts": [{"text": "a red circle | a tree :0.5", "negative": "blurry", "weight": 0.5, "seed": 1},
                            {"text": "a tree", "negative": "", "weight": 0.5, "seed": 2}]} for f in range(1, 4)]
    settings = {"width": 64, "height": 64, "batch_size": 2, "latent_source": "PROMPT_SEEDS"}
    pipe.__dict__.pop("_kd_prompt_cache", None)  # what other tests encoded on this pipeline
    try:
        images = list(interpolate.render(pipe, settings, records, lambda *a: None))
        # Distinct texts: 'a red circle', 'a tree', 'blurry' and '' (the empty negative; zeros on SDXL, shaped like
        # it), each once.
        assert calls == [4] * len(encoders)
        encoder = PromptEncoder(pipe)  # the next render's: the pipeline keeps what it encoded
        for _ in range(3):
            encoder.frame(records[0]["prompts"])
            encoder.encode("a tree | a red circle")
        assert calls == [4] * len(encoders)
        pipe.__dict__["_kd_lora_state"] = (("/some/lora.safetensors", 0.8, (1, 2)),)  # LoRAs changed: again
        try:
            PromptEncoder(pipe).frame(records[0]["prompts"])
        finally:
            del pipe.__dict__["_kd_lora_state"]
        assert calls == [8] * len(encoders)
    finally:
        for h in handles:
            h.remove()
    assert [f for f, _ in images] == [1, 2, 3]


# --- frames and pipeline inputs -----------------------------------------------------------------------------------


def test_frame_blends_single_parts_and_stacks_composable_parts(sd):
    encoder = PromptEncoder(sd)
    a, b = encoder.embed("a red circle")[0], encoder.embed("a blue square")[0]
    cond = encoder.frame([{"text": "a red circle", "negative": "", "weight": 1.0}])
    assert cond.positive.shape == (1, 77, 32) and cond.part_weights == [1.0]
    assert torch.equal(cond.positive[0], a) and torch.equal(cond.negative, encoder.embed("")[0])
    mixed = encoder.frame([{"text": "a red circle", "negative": "", "weight": 0.5},
                           {"text": "a blue square", "negative": "", "weight": 0.5}])
    assert mixed.positive.shape[0] == 1 and not torch.equal(mixed.positive[0], a)
    parts = encoder.frame([{"text": "a red circle :3 | a blue square", "negative": "", "weight": 0.5},
                           {"text": "a tree", "negative": "x", "weight": 0.5}])
    assert parts.positive.shape == (3, 77, 32)
    assert parts.part_weights == pytest.approx([0.375, 0.125, 0.5])
    assert torch.equal(parts.positive[0], a) and torch.equal(parts.positive[1], b)
    kwargs, weights = pipeline_inputs([cond, parts], "cpu", torch.float32)
    assert kwargs["prompt_embeds"].shape == (2, 3 * 77, 32) == kwargs["negative_prompt_embeds"].shape
    assert weights.tolist() == [[1.0, 0.0, 0.0], pytest.approx([0.375, 0.125, 0.5])]
    assert torch.equal(kwargs["prompt_embeds"][0], a.repeat(3, 1))  # zero-weight copies of the only part
    assert pipeline_inputs([cond, mixed], "cpu", torch.float32)[1] is None


def test_sdxl_frame_pools_parts_and_zeroes_the_empty_negative(sdxl):
    encoder = PromptEncoder(sdxl)
    cond = encoder.frame([{"text": "a red circle :1 | a tree :3", "negative": "", "weight": 1.0}])
    pa, pb = encoder.embed("a red circle")[1], encoder.embed("a tree")[1]
    assert torch.allclose(cond.pooled, 0.25 * pa + 0.75 * pb, atol=1e-6)
    assert not cond.negative.any() and not cond.negative_pooled.any()
    # A zero (empty) negative and a real one blend linearly, without slerp's NaN for a zero vector.
    mixed = encoder.frame([{"text": "a", "negative": "", "weight": 0.5},
                           {"text": "b", "negative": "ugly", "weight": 0.5}])
    assert torch.isfinite(mixed.negative).all() and torch.isfinite(mixed.negative_pooled).all()
    assert torch.allclose(mixed.negative, 0.5 * encoder.embed("ugly")[0], atol=1e-6)
    kwargs, weights = pipeline_inputs([cond], "cpu", torch.float32)
    assert kwargs["pooled_prompt_embeds"].shape == (1, 32) and weights.shape == (1, 2)


def test_and_conjunction_pads_with_the_empty_prompt(sd):
    encoder = PromptEncoder(sd)
    long_cond = encoder.frame([{"text": '("a cat", "a dog").and() | a tree', "negative": "", "weight": 1.0}])
    assert long_cond.positive.shape == (2, 154, 32) and long_cond.negative.shape == (154, 32)
    assert torch.equal(long_cond.positive[1, 77:], encoder.embed("")[0])
    short = encoder.frame([{"text": "a tree", "negative": "", "weight": 1.0}])
    kwargs, weights = pipeline_inputs([short, long_cond], "cpu", torch.float32)
    assert kwargs["prompt_embeds"].shape == (2, 2 * 154, 32)
    with composed(sd.unet, weights, 2):
        image = call(sd, kwargs, latents(0, 2))
    assert image.shape == (2, 64, 64, 3) and np.isfinite(image).all()


# --- the composed UNet ------------------------------------------------------------------------------------------


def unet_inputs(pipe, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dim = pipe.unet.config.cross_attention_dim
    sample = torch.randn((batch, 4, 32, 32), generator=g)
    parts = [torch.randn((batch, 77, dim), generator=g) for _ in range(2)]
    extra = {}
    if pipe.unet.config.addition_embed_type == "text_time":
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn((batch, 32), generator=g),
                                      "time_ids": torch.tensor([[64, 64, 0, 0, 64, 64]] * batch, dtype=torch.float32)
                                      + torch.arange(batch)[:, None]}
    return sample, parts, extra


def test_composed_unet_is_the_weighted_mean_of_separate_calls(pipe):
    unet = pipe.unet
    sample, (h1, h2), extra = unet_inputs(pipe, 2)
    timestep = torch.tensor([500, 300])  # per sample: must follow its sample
    weights = torch.tensor([[0.25, 0.75], [1.5, -0.5]])  # the second frame pushes away from its second part
    before = hook_count(unet)
    with torch.no_grad():
        e1 = unet(sample, timestep, h1, **extra).sample
        e2 = unet(sample, timestep, h2, **extra).sample
        with composed(unet, weights, 2):
            assert hook_count(unet) == before + 2
            out = unet(sample, timestep, encoder_hidden_states=torch.cat([h1, h2], dim=1), **extra,
                       return_dict=False)[0]
    expected = weights[:, 0, None, None, None] * e1 + weights[:, 1, None, None, None] * e2
    assert out.shape == sample.shape
    assert torch.allclose(out, expected, atol=1e-5)
    assert hook_count(unet) == before


def test_composed_unet_in_a_cfg_batch_keeps_the_negative(pipe):
    unet = pipe.unet
    sample, (h1, h2), extra = unet_inputs(pipe, 1, seed=3)
    neg = torch.randn(h1.shape, generator=torch.Generator().manual_seed(9))
    doubled = {k: {n: torch.cat([t, t]) for n, t in v.items()} for k, v in extra.items()}
    with torch.no_grad():
        e_neg = unet(sample, 400, neg, **extra).sample
        e1 = unet(sample, 400, h1, **extra).sample
        e2 = unet(sample, 400, h2, **extra).sample
        with composed(unet, torch.tensor([[0.3, 0.7]]), 2):
            out = unet(torch.cat([sample, sample]), 400, torch.cat([neg.repeat(1, 2, 1), torch.cat([h1, h2], 1)]),
                       **doubled).sample
    assert torch.allclose(out[0], e_neg[0], atol=1e-5)
    assert torch.allclose(out[1], 0.3 * e1[0] + 0.7 * e2[0], atol=1e-5)


def test_composed_unet_repeats_controlnet_residuals(sd):
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    controlnet = ControlNetModel.from_unet(sd.unet, conditioning_embedding_out_channels=(16, 32))
    sample, (h1, h2), _ = unet_inputs(sd, 2, seed=4)
    with torch.no_grad():
        down, mid = controlnet(sample, 200, h1, controlnet_cond=torch.rand((2, 3, 64, 64)), return_dict=False)
        down = tuple(d + torch.randn_like(d) for d in down)  # make the residuals matter (ControlNet starts at zero)
        mid = mid + torch.randn_like(mid)
        residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        e1 = sd.unet(sample, 200, h1, **residuals).sample
        e2 = sd.unet(sample, 200, h2, **residuals).sample
        plain = sd.unet(sample, 200, h1).sample
        weights = torch.tensor([[0.6, 0.4], [0.1, 0.9]])
        with composed(sd.unet, weights, 2):
            out = sd.unet(sample, 200, torch.cat([h1, h2], 1), **residuals).sample
    assert (e1 - plain).abs().max() > 1e-3
    assert torch.allclose(out, weights[:, :1, None, None] * e1 + weights[:, 1:, None, None] * e2, atol=1e-5)


def test_composed_hooks_are_removed_on_an_exception(sd):
    before = hook_count(sd.unet)
    with pytest.raises(RuntimeError, match="boom"):
        with composed(sd.unet, torch.tensor([[0.5, 0.5]]), 2):
            assert hook_count(sd.unet) == before + 2
            raise RuntimeError("boom")
    assert hook_count(sd.unet) == before
    with composed(sd.unet, None, 1):
        assert hook_count(sd.unet) == before  # no weights, no hooks
    with pytest.raises(ValueError, match="shape"):
        with composed(sd.unet, torch.tensor([[1.0]]), 2):
            pass
    assert hook_count(sd.unet) == before


def test_one_part_is_exactly_the_plain_pipeline_call(pipe):
    encoder = PromptEncoder(pipe)
    lat = latents(5)
    plain = call(pipe, {"prompt": "a red circle"}, lat)
    for text in ("a red circle", "a red circle :1 | a blue square :0"):
        kwargs, weights = pipeline_inputs([encoder.frame([{"text": text, "negative": "", "weight": 1.0}])], "cpu",
                                          torch.float32)
        assert weights is None
        assert np.array_equal(call(pipe, kwargs, lat), plain)
    # Through the hooks with a single part (K = 1): the same image.
    kwargs, _ = pipeline_inputs([encoder.frame([{"text": "a red circle", "negative": "", "weight": 1.0}])], "cpu",
                                torch.float32)
    with composed(pipe.unet, torch.tensor([[1.0]]), 1):
        assert np.abs(call(pipe, kwargs, lat) - plain).max() < 1e-5


def test_composable_parts_change_the_image_and_negative_weights_work(pipe):
    encoder = PromptEncoder(pipe)
    lat = latents(6)
    images = {}
    for text in ("a red circle", "a red circle | a blue square", "a red circle :1.5 | a blue square :-0.5"):
        kwargs, weights = pipeline_inputs([encoder.frame([{"text": text, "negative": "", "weight": 1.0}])], "cpu",
                                          torch.float32)
        parts = 1 if weights is None else weights.shape[1]
        with composed(pipe.unet, weights, parts):
            images[text] = call(pipe, kwargs, lat)
        assert np.isfinite(images[text]).all()
    values = list(images.values())
    assert np.abs(values[0] - values[1]).max() > 1e-4 and np.abs(values[1] - values[2]).max() > 1e-4


def test_composed_without_guidance_and_with_img2img(sd):
    from diffusers import StableDiffusionImg2ImgPipeline

    encoder = PromptEncoder(sd)
    conds = [encoder.frame([{"text": "a red circle | a blue square :0.3", "negative": "", "weight": 1.0}]),
             encoder.frame([{"text": "a tree", "negative": "", "weight": 1.0}])]
    kwargs, weights = pipeline_inputs(conds, "cpu", torch.float32)
    with composed(sd.unet, weights, 2):
        no_cfg = call(sd, kwargs, latents(1, 2), guidance=1.0)
    single = call(sd, pipeline_inputs(conds[1:], "cpu", torch.float32)[0], latents(1, 2)[1:], guidance=1.0)
    assert np.abs(no_cfg[1] - single[0]).max() < 1e-4  # a padded frame is unchanged by its zero-weight copies
    img2img = StableDiffusionImg2ImgPipeline(**sd.components)
    init = torch.rand((2, 3, 64, 64)) * 2 - 1
    with composed(sd.unet, weights, 2), torch.no_grad():
        out = img2img(**kwargs, image=init, strength=0.9, num_inference_steps=2, guidance_scale=5.0,
                      output_type="np").images
    assert out.shape == (2, 64, 64, 3) and np.isfinite(out).all()


# --- interpolate mode -------------------------------------------------------------------------------------------


def records(texts: list[str], guidance: float = 5.0) -> list[dict]:
    out = []
    for i in range(3):
        t = i / 2
        prompts = [{"text": texts[0], "negative": "", "weight": 1 - t, "seed": 1},
                   {"text": texts[1], "negative": "dull", "weight": t, "seed": 2}]
        out.append({"frame": i + 1, "prompts": [p for p in prompts if p["weight"] > 0], "seed": 7 + i, "steps": 2,
                    "guidance": guidance, "guidance_rescale": 0.3})
    return out


def render(pipe, recs, batch_size):
    settings = {"width": 64, "height": 64, "batch_size": batch_size, "latent_source": "PROMPT_SEEDS"}
    steps = []
    frames = list(interpolate.render(pipe, settings, recs, lambda f, s, n, _latents: steps.append((f, s))))
    return frames, steps


def test_interpolate_renders_composable_prompts_batched_like_unbatched(pipe):
    recs = records(["a red circle :2 | a tree", "a blue square"])
    batched, steps = render(pipe, recs, 3)
    assert [f for f, _ in batched] == [1, 2, 3] and steps == [([1, 2, 3], 1), ([1, 2, 3], 2)]
    single, _ = render(pipe, recs, 1)
    for (_, a), (_, b) in zip(batched, single):
        assert a.size == (64, 64)
        pa, pb = np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)
        assert pa.std() > 0 and np.abs(pa - pb).max() <= 2
    plain, _ = render(pipe, records(["a red circle", "a blue square"]), 3)
    assert np.abs(np.asarray(plain[0][1], dtype=np.int16) - np.asarray(batched[0][1], dtype=np.int16)).max() > 0


def test_interpolate_without_guidance(sdxl):
    frames, _ = render(sdxl, records(["a red circle | a tree", "(blue)1.3 square"], guidance=1.0), 2)
    assert [f for f, _ in frames] == [1, 2, 3] and all(img.size == (64, 64) for _, img in frames)

