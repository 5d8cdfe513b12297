"""The tiny Wan and LTX-Video pipelines (engine.tiny_video_models): written with save_pretrained, they load back through
DiffusionPipeline's real local path as the right class, run a 2-step call at the smallest sizes, and their conditions
(first/last pictures, VACE control video and mask, LTX condition pictures) change the frames."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from engine.tiny_video_models import BUILDERS, build_tiny_wan_t2v, make_tiny_video_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These calls are bound by per-layer overhead: on one thread they take milliseconds, while two threads on a
    shared machine spend 10-100x that handing work over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> the folder it was written to (each kind written once)."""
    root = tmp_path_factory.mktemp("tiny-video")
    folders: dict[str, str] = {}

    def folder(kind: str) -> str:
        if kind not in folders:
            folders[kind] = make_tiny_video_model(str(root / kind), kind)
        return folders[kind]

    return folder


@pytest.fixture(scope="module")
def pipe(saved):
    """kind -> the pipeline loaded back from its folder (each loaded once)."""
    from diffusers import DiffusionPipeline

    loaded: dict = {}

    def load(kind: str):
        if kind not in loaded:
            loaded[kind] = DiffusionPipeline.from_pretrained(saved(kind), use_safetensors=True, local_files_only=True)
            loaded[kind].set_progress_bar_config(disable=True)
        return loaded[kind]

    return load


def picture(colour: str, size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), colour)


def frames(pipeline, **kwargs) -> np.ndarray:
    """A 2-step call at 32x32 without guidance unless kwargs say otherwise: (frames, height, width, 3) in [0, 1]."""
    call = dict(prompt="a red cube", num_inference_steps=2, height=32, width=32, guidance_scale=1.0, output_type="np",
                generator=torch.Generator().manual_seed(0))
    return np.asarray(pipeline(**{**call, **kwargs}).frames[0])


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def ltx_condition(colour: str, frame_index: int, size: int = 32):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    return LTXVideoCondition(image=picture(colour, size), frame_index=frame_index)


# kind, the class it loads as, the call's conditions and size, the frames' shape
CALLS = [
    ("wan-t2v", "WanPipeline", dict(num_frames=5), (5, 32, 32, 3)),
    ("wan-i2v", "WanImageToVideoPipeline",
     dict(num_frames=5, image=picture("red"), last_image=picture("blue")), (5, 32, 32, 3)),
    ("wan22-i2v", "WanImageToVideoPipeline", dict(num_frames=9, image=picture("red")), (9, 32, 32, 3)),
    ("wan-vace", "WanVACEPipeline",
     dict(num_frames=5, video=[picture("gray")] * 5, mask=[picture("black")] + [picture("white")] * 4),
     (5, 32, 32, 3)),
    ("ltx-condition", "LTXConditionPipeline", dict(num_frames=9, conditions=[ltx_condition("red", 0)]),
     (9, 32, 32, 3)),
    ("ltx-t2v", "LTXPipeline", dict(num_frames=9, height=32, width=64), (9, 32, 64, 3)),
]


def test_every_kind_is_called():
    assert sorted(kind for kind, *_ in CALLS) == sorted(BUILDERS)


@pytest.mark.parametrize("kind, cls, kwargs, shape", CALLS, ids=[c[0] for c in CALLS])
def test_loads_back_and_makes_frames(pipe, kind, cls, kwargs, shape):
    pipeline = pipe(kind)
    assert type(pipeline).__name__ == cls
    video = frames(pipeline, **kwargs)
    assert video.shape == shape
    assert np.isfinite(video).all() and video.min() >= 0 and video.max() <= 1
    assert video.std() > 0.01  # not a flat picture


@pytest.mark.parametrize("kind", ["wan-t2v", "wan-i2v", "ltx-condition"])
def test_saved_as_safetensors_with_the_t5_tokenizer(saved, kind):
    folder = saved(kind)
    index = json.load(open(os.path.join(folder, "model_index.json")))
    assert index["tokenizer"] == ["transformers", "T5Tokenizer"]
    weights = [name for _, _, names in os.walk(folder) for name in names if name.endswith((".bin", ".safetensors"))]
    assert weights and all(name.endswith(".safetensors") for name in weights)


def test_tokenizer_pads_as_the_pipelines_ask(pipe):
    """Wan and LTX encode prompts with these arguments; T5's ids: pad 0, eos 1 after the text."""
    tokenizer = pipe("wan-t2v").tokenizer
    out = tokenizer(["a red cube", "x" * 100], padding="max_length", max_length=16, truncation=True,
                    add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    assert out.input_ids.shape == (2, 16)
    length = int(out.attention_mask[0].sum())
    assert out.input_ids[0, length - 1] == tokenizer.eos_token_id == 1
    assert (out.input_ids[0, length:] == tokenizer.pad_token_id).all() and tokenizer.pad_token_id == 0
    assert out.attention_mask[1].all()  # truncated to max_length
    assert tokenizer.unk_token_id not in out.input_ids[0].tolist()


def test_weights_are_deterministic_for_a_seed():
    def weights(seed: int):
        return build_tiny_wan_t2v(seed).transformer.state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_wan_prompt_and_guidance(pipe):
    pipeline = pipe("wan-t2v")
    plain = frames(pipeline, num_frames=5)
    assert difference(plain, frames(pipeline, num_frames=5, prompt="two blue spheres")) > 1e-4
    guided = frames(pipeline, num_frames=5, guidance_scale=5.0, negative_prompt="blurry")
    assert guided.shape == plain.shape and difference(plain, guided) > 1e-4
    np.testing.assert_array_equal(plain, frames(pipeline, num_frames=5))  # the same seed, the same frames


def test_wan_first_last_frame_pictures_change_the_frames(pipe):
    """Wan 2.1 FLF2V layout: both pictures are needed (its image position embedding spans two pictures)."""
    pipeline = pipe("wan-i2v")
    base = frames(pipeline, num_frames=5, image=picture("red"), last_image=picture("blue"))
    assert difference(base, frames(pipeline, num_frames=5, image=picture("green"), last_image=picture("blue"))) > 0.01
    assert difference(base, frames(pipeline, num_frames=5, image=picture("red"), last_image=picture("yellow"))) > 1e-3


def test_wan22_last_picture_is_optional(pipe):
    pipeline = pipe("wan22-i2v")
    first_only = frames(pipeline, num_frames=5, image=picture("red"))
    both = frames(pipeline, num_frames=5, image=picture("red"), last_image=picture("blue"))
    assert difference(first_only, both) > 1e-3
    assert difference(first_only, frames(pipeline, num_frames=5, image=picture("green"))) > 0.01


def test_wan_vace_control_video_mask_and_reference(pipe):
    """White mask: make this frame (from the control picture); black: keep the control picture."""
    pipeline = pipe("wan-vace")
    gray, white, black = [picture("gray")] * 5, [picture("white")] * 5, [picture("black")] * 5
    keep_first = black[:1] + white[1:]
    base = frames(pipeline, num_frames=5, video=gray, mask=keep_first)
    assert difference(base, frames(pipeline, num_frames=5)) > 0.01  # vs no control at all
    red_first = [picture("red")] + gray[1:]
    assert difference(base, frames(pipeline, num_frames=5, video=red_first, mask=keep_first)) > 0.01
    assert difference(base, frames(pipeline, num_frames=5, video=gray, mask=white)) > 1e-3
    with_reference = frames(pipeline, num_frames=5, video=gray, mask=keep_first, reference_images=[picture("blue")])
    assert with_reference.shape == base.shape  # the reference's latent frame is dropped from the output
    assert difference(base, with_reference) > 0.01


def test_ltx_condition_pictures_change_the_frames(pipe):
    pipeline = pipe("ltx-condition")
    bare = frames(pipeline, num_frames=9)
    at_start = frames(pipeline, num_frames=9, conditions=[ltx_condition("red", 0)])
    assert difference(bare, at_start) > 0.01
    at_end = frames(pipeline, num_frames=9, conditions=[ltx_condition("red", 8)])
    assert difference(bare, at_end) > 1e-3
    assert difference(at_end, frames(pipeline, num_frames=9, conditions=[ltx_condition("green", 8)])) > 1e-4
    both = frames(pipeline, num_frames=17, height=64, width=64,
                  conditions=[ltx_condition("red", 0, 64), ltx_condition("blue", 16, 64)])
    assert both.shape == (17, 64, 64, 3)
