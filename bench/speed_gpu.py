"""GPU speed benchmark: the engine against a plain per-frame diffusers loop on SD-Turbo, SD 1.5 and SDXL layouts.

    .venv/bin/python bench/speed_gpu.py [--models sd-turbo sd15 sdxl] [--modes ...] [--frames 32] [--out FILE]
    OMP_NUM_THREADS=2 .venv/bin/python bench/speed_gpu.py --smoke     # the same code paths on a CPU, tiny models

Models are built once from configs with random weights (speed does not depend on weight values, and the GPU machine
has no network) and saved as fp16 safetensors diffusers folders under --cache (default
~/.cache/keyframe-diffusion-bench): "sd-turbo" (SD 2.1-base layout, Euler with trailing timesteps), "sd15" (SD 1.5
layout, DPM-Solver++) and "sdxl" (SDXL base layout, Euler); their UNets' parameter counts are checked against the real
models'. Text encoders have their real layouts but a tiny character-level tokenizer (its small vocabulary only
shrinks the embedding table: the 77-token encoder pass is the same work). "taesd" is an AutoencoderTiny with TAESD's
layout (the `decoder` setting's fast decoder, for SDXL too: same layout as TAESDXL).

For each model, at 512x512 (SDXL 1024x1024), FRAMES frames, fp16 on "cuda", each timing after a warm-up run (compile
rows report their warm-up, which includes compiling), with the device synchronised around it, peak memory from
torch.cuda.max_memory_allocated:
- feedback img2img at batch 1 (each frame img2img of the previous one, zoomed and panned): SD-Turbo at 1 real step
  (2 steps x strength 0.5) and 4 real steps (4 x 1.0), guidance 0; SD 1.5 20 steps x 0.6, guidance 7 (CFG); SDXL
  20 x 0.6, guidance 6. Rows: the engine; with the tiny decoder; tiny decoder + channels_last; + bf16 weights;
  + torch.compile; + compile and background writes; and bench/speed_cpu.py's plain loop (with its own VAE and with
  the tiny decoder);
- interpolate txt2img, batched (8; SDXL 4): SD-Turbo 1 step guidance 0, SD 1.5 and SDXL 20 steps with CFG; the engine,
  with the tiny decoder, with tiny decoder + compile + background writes; against the plain loop (batch 1, prompts
  encoded again every frame);
- video img2img, batched as interpolate, of FRAMES init pictures at the feedback settings; against the plain loop;
- StreamDiffusion's img2img (sd-turbo folder, 1 step, tiny decoder, frames written as PNGs) if it is installed.
Every frame is written as a PNG, as the engine does. "vs plain loop" is the plain loop's time for the same mode and
settings (the model's own VAE, fp16) over the row's. Each row's JSON also has `frame_std` (pixel spread of the last
frame: near 0 means blank frames, whose PNGs encode unrealistically fast) and `png_ms` (PNG encoding of that frame).

Issue targets, for reference: SD-Turbo 512x512 feedback img2img at 1 step with the tiny decoder >= 100 frames/s at
batch 1; batched independent frames >= 300 frames/s; SD 1.5 20-step CFG <= 250 ms/frame.

The device machine runs a command for at most 10 minutes: build first (--build-only), then one model per command
(--models sdxl --frames 16 --modes feedback, then --modes interpolate video streamdiffusion). Prints a markdown
table, then one JSON line (also appended to --out).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed_cpu  # noqa: E402  (puts the repository root on sys.path too)

MODELS = ("sd-turbo", "sd15", "sdxl")
MODES = ("feedback", "interpolate", "video", "streamdiffusion")
# The real models' UNet sizes (SD-Turbo is SD 2.1-base's UNet): the built layouts must match them.
REAL_UNET_PARAMS = {"sd-turbo": 865_910_724, "sd15": 859_520_964, "sdxl": 2_567_463_684}
REAL_UNETS: dict[str, dict] = {
    "sd-turbo": dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                     cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True),
    "sd15": dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
    "sdxl": dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
}
# CLIP text encoders: (hidden, layers, heads, intermediate, activation, projection).
TEXT_ENCODERS = {"sd-turbo": (1024, 23, 16, 4096, "gelu", 1024), "sd15": (768, 12, 12, 3072, "quick_gelu", 768),
                 "sdxl": (768, 12, 12, 3072, "quick_gelu", 768), "sdxl-2": (1280, 32, 20, 5120, "gelu", 1280)}
VAE_SCALING = {"sd-turbo": 0.18215, "sd15": 0.18215, "sdxl": 0.13025}
TAESD_SETTING = "taesd"  # stands for the decoder folder in row settings


@dataclass(frozen=True)
class Case:
    """One denoising setting: img2img runs int(steps * strength) of the steps, txt2img all of them."""

    steps: int
    strength: float
    guidance: float

    def label(self, img2img: bool) -> str:
        if not img2img:
            return f"{self.steps} step{'s' * (self.steps != 1)}, guidance {self.guidance:g}"
        real = min(int(self.steps * self.strength), self.steps)
        return (f"{real} step{'s' * (real != 1)} ({self.steps} x strength {self.strength:g}), "
                f"guidance {self.guidance:g}")


@dataclass(frozen=True)
class Spec:
    name: str
    size: int
    batch: int
    img2img: tuple[Case, ...]  # feedback cases; video uses the first
    txt2img: Case  # interpolate


SPECS = {
    "sd-turbo": Spec("sd-turbo", 512, 8, (Case(2, 0.5, 0.0), Case(4, 1.0, 0.0)), Case(1, 1.0, 0.0)),
    "sd15": Spec("sd15", 512, 8, (Case(20, 0.6, 7.0),), Case(20, 1.0, 7.0)),
    "sdxl": Spec("sdxl", 1024, 4, (Case(20, 0.6, 6.0),), Case(20, 1.0, 6.0)),
}
SMOKE_SIZE = {"sd-turbo": 64, "sd15": 64, "sdxl": 128}
SMOKE_BATCH = 2


@dataclass
class Row:
    model: str
    mode: str
    setting: str
    batch: int
    frames: int
    seconds: float | None = None
    warmup_s: float | None = None
    peak_gib: float | None = None
    plain_seconds: float | None = None  # the plain loop's time for this model and mode (own VAE)
    frame_std: float | None = None
    png_ms: float | None = None
    error: str = ""

    @property
    def ms_per_frame(self) -> float | None:
        return None if self.seconds is None else 1000 * self.seconds / self.frames

    @property
    def fps(self) -> float | None:
        return None if self.seconds is None else self.frames / self.seconds

    @property
    def vs_plain(self) -> float | None:
        return None if self.seconds is None or self.plain_seconds is None else self.plain_seconds / self.seconds

    def as_json(self) -> dict:
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}
        derived = {"ms_per_frame": self.ms_per_frame, "frames_per_s": self.fps, "vs_plain": self.vs_plain}
        return {**rounded, **{k: None if v is None else round(v, 3) for k, v in derived.items()}}


@dataclass
class Setup:
    """What the rows of one model share."""

    spec: Spec
    model: str  # the pipeline folder
    decoder: str  # the TAESD-layout folder
    device: str
    precision: str
    frames: int
    inits: list[str]
    smoke: bool
    compile_once: bool = False  # --smoke compiles only the first feedback case: compiling on a CPU takes minutes
    renderer: object = None
    state: dict = field(default_factory=dict)  # StreamDiffusion's stream, built in its warm-up


Run = Callable[[str, int], None]  # (output folder, frames)


# ------------------------------------------------------------------------------------------------------------------
# Building the models


def scheduler(name: str):
    """The model's scheduler: Stable Diffusion's betas; SD-Turbo samples with Euler on trailing timesteps."""
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    betas = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 steps_offset=1)
    if name == "sd15":
        return DPMSolverMultistepScheduler(**betas)
    return EulerDiscreteScheduler(**betas, timestep_spacing="trailing" if name == "sd-turbo" else "leading")


def vae(name: str, channels: tuple[int, ...], layers: int):
    """Stable Diffusion's autoencoder layout (4 blocks: latents at 1/8); SDXL's decodes in fp16 (no upcast)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=channels,
                         layers_per_block=layers, latent_channels=4, sample_size=1024 if name == "sdxl" else 512,
                         scaling_factor=VAE_SCALING[name], force_upcast=name != "sdxl")


def text_config(vocab: int, hidden: int, layers: int, heads: int, intermediate: int, act: str, projection: int):
    from transformers import CLIPTextConfig

    # Token ids as the tiny tokenizer numbers them (its two specials come last).
    return CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          intermediate_size=intermediate, hidden_act=act, projection_dim=projection,
                          max_position_embeddings=77, bos_token_id=vocab - 2, eos_token_id=vocab - 1,
                          pad_token_id=vocab - 1)


def real_pipeline(name: str, device: str):
    """The real model's layout with random weights, its weights allocated on `device` ("meta": none at all)."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from engine.tiny_model import _tiny_tokenizer

    tokenizer = _tiny_tokenizer()
    vocab = len(tokenizer.get_vocab())
    parts = dict(tokenizer=tokenizer, scheduler=scheduler(name))  # schedulers compute on the CPU, with numpy
    # Random initialisation of billions of weights is much faster on the GPU than on the CPU.
    with torch.device(device):
        parts.update(unet=UNet2DConditionModel(**REAL_UNETS[name]), vae=vae(name, (128, 256, 512, 512), 2),
                     text_encoder=CLIPTextModel(text_config(vocab, *TEXT_ENCODERS[name])))
        if name == "sdxl":
            encoder_2 = CLIPTextModelWithProjection(text_config(vocab, *TEXT_ENCODERS["sdxl-2"]))
    if name == "sdxl":
        return StableDiffusionXLPipeline(**parts, text_encoder_2=encoder_2, tokenizer_2=_tiny_tokenizer())
    return StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def smoke_pipeline(name: str):
    """engine.tiny_model's pipeline (SD or SDXL) with speed_cpu.bench_model's 4-block autoencoder, so latents are 1/8
    of the picture as in the real models, and the real model's scheduler."""
    from engine.tiny_model import build_tiny_pipeline, build_tiny_sdxl_pipeline

    pipe = build_tiny_sdxl_pipeline(0) if name == "sdxl" else build_tiny_pipeline(0)
    pipe.register_modules(vae=vae(name, (32, 32, 64, 64), 1), scheduler=scheduler(name))
    return pipe


def build(name: str, folder: str, smoke: bool, device: str) -> float:
    """Write the model's folder once (fp16 for the real sizes); returns the seconds it took (0 if it was there)."""
    import torch

    from engine.tiny_model import _save_atomically

    if os.path.isfile(os.path.join(folder, "model_index.json")):
        return 0.0
    started = time.perf_counter()
    torch.manual_seed(0)
    pipe = smoke_pipeline(name) if smoke else real_pipeline(name, device).to(torch.float16)
    _save_atomically(pipe, folder, ".bench-")
    del pipe
    free_memory()
    return time.perf_counter() - started


def unet_parameters(config: dict) -> int:
    """A UNet's parameter count from its config, built on the meta device (no memory allocated)."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return sum(p.numel() for p in UNet2DConditionModel(**config).parameters())


def saved_unet_parameters(folder: str) -> int:
    from diffusers import UNet2DConditionModel

    config = dict(UNet2DConditionModel.load_config(os.path.join(folder, "unet")))
    return unet_parameters({k: v for k, v in config.items() if not k.startswith("_")})


def check_real_builders() -> dict[str, int]:
    """Build every real-size pipeline on the meta device (no memory): the builders run, the UNets' sizes are checked."""
    counts = {}
    for name in MODELS:
        pipe = real_pipeline(name, "meta")
        counts[name] = sum(p.numel() for p in pipe.unet.parameters())
        print(f"real-size {name} (meta device): UNet {counts[name] / 1e6:.1f} M parameters "
              f"(the real model: {REAL_UNET_PARAMS[name] / 1e6:.1f} M){check_mark(name, counts[name])}", flush=True)
        del pipe
    return counts


def check_mark(name: str, count: int) -> str:
    return "" if abs(count - REAL_UNET_PARAMS[name]) <= 0.01 * REAL_UNET_PARAMS[name] else "  <-- MISMATCH"


# ------------------------------------------------------------------------------------------------------------------
# Timing


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    """Seconds of fn, with the GPU's queued work finished before and after (CUDA calls return before they run)."""
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda") else None


def free_memory(compiled: bool = False) -> None:
    """Release dropped models' GPU memory; `compiled`: also torch.compile's caches and CUDA graphs, which keep the
    compiled UNet (and its weights) alive after the pipeline is gone."""
    import torch

    if compiled:
        torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def last_frame_stats(folder: str) -> tuple[float | None, float | None]:
    """The last PNG's pixel spread and its PNG encoding time: random weights can make blank (NaN) frames, whose PNGs
    encode far faster than real ones and would flatter every row."""
    import numpy as np
    from PIL import Image

    pngs = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    if not pngs:
        return None, None
    with Image.open(os.path.join(folder, pngs[-1])) as im:
        image = im.convert("RGB")
    started = time.perf_counter()
    image.save(io.BytesIO(), format="PNG")
    return float(np.asarray(image).std()), 1000 * (time.perf_counter() - started)


def png_reference_ms(size: int, inits: list[str]) -> dict[str, float]:
    """PNG encoding of a SIZE x SIZE noise picture (the slowest case) and of an init picture (smooth, fast): the bounds
    for what writing a real frame costs, beside each row's png_ms of its own (random-weight) frame."""
    import numpy as np
    from PIL import Image

    pictures = {"noise": Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)),
                "init_picture": Image.open(inits[0]).convert("RGB")}
    result = {}
    for name, picture in pictures.items():
        started = time.perf_counter()
        picture.save(io.BytesIO(), format="PNG")
        result[name] = round(1000 * (time.perf_counter() - started), 2)
    return result


def measure(row: Row, run: Run, warm_frames: int, device: str) -> Row:
    """Warm up (not timed, but reported), then time the row's frames; an error (out of memory, a missing package) is
    kept in the row instead of ending the benchmark."""
    tmp = tempfile.mkdtemp(prefix="kd-speed-gpu-")
    try:
        if warm_frames:
            os.makedirs(os.path.join(tmp, "warm"))
            row.warmup_s = timed(lambda: run(os.path.join(tmp, "warm"), warm_frames), device)
        os.makedirs(os.path.join(tmp, "run"))
        reset_peak(device)
        row.seconds = timed(lambda: run(os.path.join(tmp, "run"), row.frames), device)
        row.peak_gib = peak_gib(device)
        row.frame_std, row.png_ms = last_frame_stats(os.path.join(tmp, "run"))
    except Exception as e:  # noqa: BLE001  every failure becomes the row's text
        row.error = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
        traceback.print_exc(file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        free_memory()
    status = f"error: {row.error[:120]}" if row.error else f"{row.ms_per_frame:.1f} ms/frame"
    print(f"  {row.model} | {row.mode} | {row.setting} | batch {row.batch}: {status}", file=sys.stderr, flush=True)
    return row


# ------------------------------------------------------------------------------------------------------------------
# What is run


@contextlib.contextmanager
def case_constants(case: Case) -> Iterator[None]:
    """speed_cpu's make_plan and plain loops read guidance and strength from its module constants."""
    saved = speed_cpu.GUIDANCE, speed_cpu.STRENGTH
    speed_cpu.GUIDANCE, speed_cpu.STRENGTH = case.guidance, case.strength
    try:
        yield
    finally:
        speed_cpu.GUIDANCE, speed_cpu.STRENGTH = saved


@contextlib.contextmanager
def img2img_class(sdxl: bool) -> Iterator[None]:
    """speed_cpu's plain feedback and video loops build `diffusers.StableDiffusionImg2ImgPipeline(**pipe.components)`;
    for SDXL the same loop needs SDXL's img2img class (same call arguments), so it stands in while they run."""
    import diffusers

    if not sdxl:
        yield
        return
    original = diffusers.StableDiffusionImg2ImgPipeline
    diffusers.StableDiffusionImg2ImgPipeline = diffusers.StableDiffusionXLImg2ImgPipeline
    try:
        yield
    finally:
        diffusers.StableDiffusionImg2ImgPipeline = original


class OnPipelineDevice:
    """speed_cpu.plain_interpolate was written for the CPU: it encodes prompts on "cpu" and makes float32 latents
    there. On a GPU the same loop would encode on the pipeline's device and hand latents in its dtype."""

    def __init__(self, pipe):
        self._pipe = pipe

    def __getattr__(self, name: str):
        return getattr(self._pipe, name)

    def encode_prompt(self, prompt, _device, *args, **kwargs):
        return self._pipe.encode_prompt(prompt, self._pipe._execution_device, *args, **kwargs)

    def __call__(self, *args, latents=None, **kwargs):
        if latents is not None:
            latents = latents.to(self._pipe._execution_device, self._pipe.unet.dtype)
        return self._pipe(*args, latents=latents, **kwargs)


def plain_interpolate_sdxl(pipe, folder: str, frames: int, size: int, steps: int) -> float:
    """speed_cpu.plain_interpolate for SDXL, whose encode_prompt also returns pooled embeddings: per frame both prompts
    encoded again and blended (pooled ones too), the seeds' noise slerped, one call at batch 1, the PNG saved."""
    import torch

    device, dtype = pipe._execution_device, pipe.unet.dtype
    shape = (1, pipe.unet.config.in_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    started = time.perf_counter()
    for i in range(frames):
        t = i / max(1, frames - 1)
        with torch.no_grad():
            a, negative, pooled_a, negative_pooled = pipe.encode_prompt(
                speed_cpu.PROMPTS[0], device=device, do_classifier_free_guidance=True, negative_prompt="")
            b, _, pooled_b, _ = pipe.encode_prompt(speed_cpu.PROMPTS[1], device=device,
                                                   do_classifier_free_guidance=True, negative_prompt="")
            image = pipe(prompt_embeds=(1 - t) * a + t * b, pooled_prompt_embeds=(1 - t) * pooled_a + t * pooled_b,
                         negative_prompt_embeds=negative, negative_pooled_prompt_embeds=negative_pooled,
                         latents=speed_cpu.slerp(t, *noise).to(device, dtype), num_inference_steps=steps,
                         guidance_scale=speed_cpu.GUIDANCE, height=size, width=size).images[0]
        image.save(os.path.join(folder, f"{i + 1:05d}.png"))
    return time.perf_counter() - started


def ignore(_event: dict) -> None:
    pass


def engine_settings(setup: Setup, switches: dict) -> dict:
    settings = {"model": setup.model, "device": setup.device, "precision": setup.precision, **switches}
    if settings.get("decoder") == TAESD_SETTING:
        settings["decoder"] = setup.decoder
    return settings


def engine_run(setup: Setup, mode: str, case: Case, batch: int, switches: dict) -> Run:
    def run(folder: str, frames: int) -> None:
        with case_constants(case):
            plan = speed_cpu.make_plan(mode, folder, frames, setup.spec.size, case.steps, batch,
                                       setup.inits if mode == "VIDEO" else None, **engine_settings(setup, switches))
            speed_cpu.engine_seconds(setup.renderer, plan)
    return run


def plain_pipeline(setup: Setup, tiny_decoder: bool):
    """The engine's loaded pipeline with its speed switches off, the model's scheduler and the chosen decoder."""
    from engine.models.decoders import use_decoder
    from engine.models.schedulers import set_scheduler
    from engine.models.speed import apply_speed

    pipe = setup.renderer.pipeline(setup.model, setup.device, ignore, setup.precision)
    apply_speed(pipe, {})
    set_scheduler(pipe, "default")
    decoder = setup.renderer.decoder(setup.decoder, str(pipe.device), pipe.unet.dtype, ignore) if tiny_decoder else None
    use_decoder(pipe, decoder)
    return pipe


def plain_run(setup: Setup, mode: str, case: Case, tiny_decoder: bool) -> Run:
    sdxl = setup.spec.name == "sdxl"

    def run(folder: str, frames: int) -> None:
        pipe = plain_pipeline(setup, tiny_decoder)
        size, steps = setup.spec.size, case.steps
        with case_constants(case), img2img_class(sdxl):
            if mode == "FEEDBACK":
                speed_cpu.plain_feedback(pipe, folder, frames, size, steps)
            elif mode == "VIDEO":
                speed_cpu.plain_video(pipe, folder, setup.inits[:frames], steps)
            elif sdxl:
                plain_interpolate_sdxl(pipe, folder, frames, size, steps)
            else:
                speed_cpu.plain_interpolate(OnPipelineDevice(pipe), folder, frames, size, steps)
    return run


def streamdiffusion_run(setup: Setup) -> Run:
    """StreamDiffusion's img2img as its README shows it: SD-Turbo, one denoising step (t_index_list [32] of 50),
    no CFG, the tiny decoder; each frame taken to PIL and written as a PNG, as the other rows do."""
    def run(folder: str, frames: int) -> None:
        from PIL import Image
        from streamdiffusion.image_utils import postprocess_image

        stream = setup.state.get("stream") or setup.state.setdefault("stream", make_stream(setup))
        for i, path in enumerate(setup.inits[:frames]):
            output = stream(Image.open(path).convert("RGB"))
            postprocess_image(output, output_type="pil")[0].save(os.path.join(folder, f"{i + 1:05d}.png"))
    return run


def make_stream(setup: Setup):
    import torch
    from diffusers import AutoencoderTiny, StableDiffusionPipeline
    from streamdiffusion import StreamDiffusion

    from engine.models.device import pick_dtype

    dtype = pick_dtype(setup.precision, setup.device)
    pipe = StableDiffusionPipeline.from_pretrained(setup.model, torch_dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False).to(setup.device)
    stream = StreamDiffusion(pipe, t_index_list=[32], torch_dtype=dtype, width=setup.spec.size,
                             height=setup.spec.size, cfg_type="none")
    stream.vae = AutoencoderTiny.from_pretrained(setup.decoder, torch_dtype=dtype).to(device=torch.device(setup.device))
    stream.prepare(speed_cpu.PROMPTS[0], num_inference_steps=50, guidance_scale=0.0)
    return stream


# ------------------------------------------------------------------------------------------------------------------
# The rows of one model


@dataclass
class Job:
    row: Row
    run: Run
    warm_frames: int
    order: tuple = (False, False)  # (bf16, compile): bf16 rows last (they reload the model), compiled ones before


def switch_label(setup: Setup, switches: dict) -> str:
    precision = switches.get("precision", setup.precision)
    names = [f"engine {precision}"] + [TAESD_SETTING] * ("decoder" in switches) + [
        k for k in ("channels_last", "compile", "background_writes", "overlap_decode", "stream_batch")
        if switches.get(k)]
    return " ".join(names)


def feedback_jobs(setup: Setup, case: Case, compile_rows: bool) -> list[Job]:
    mode = f"feedback img2img, {case.label(True)}"
    warm = min(3, setup.frames)  # the first frame is txt2img, the next ones img2img: both paths warmed up
    taesd = {"decoder": TAESD_SETTING}
    variants = [{}, taesd, {**taesd, "channels_last": True}, {**taesd, "precision": "bf16"}]
    if compile_rows:
        variants += [{**taesd, "compile": True}, {**taesd, "compile": True, "background_writes": True}]
    jobs = [engine_job(setup, mode, "FEEDBACK", case, 1, switches, warm) for switches in variants]
    for tiny in (False, True):
        row = Row(setup.spec.name, mode, f"plain loop {setup.precision}" + f" {TAESD_SETTING}" * tiny, 1, setup.frames)
        jobs.append(Job(row, plain_run(setup, "FEEDBACK", case, tiny), min(2, setup.frames)))
    return jobs


def batched_jobs(setup: Setup, mode_name: str, case: Case, compile_rows: bool) -> list[Job]:
    """Interpolate or video: the engine in batches against the plain loop's one call per frame."""
    img2img = mode_name == "VIDEO"
    mode = f"{'video img2img' if img2img else 'interpolate txt2img'}, {case.label(img2img)}"
    warm = min(setup.frames, 2 * setup.spec.batch)  # compile's CUDA graphs are recorded after a few calls of the shape
    taesd = {"decoder": TAESD_SETTING}
    variants = [{}, taesd, {**taesd, "overlap_decode": True, "background_writes": True}]
    if img2img:  # frames at different steps in one UNet call (the same work here: nothing is keyed)
        variants.append({**taesd, "stream_batch": True})
    if compile_rows:
        variants.append({**taesd, "compile": True, "background_writes": True, "overlap_decode": True})
    jobs = [engine_job(setup, mode, mode_name, case, setup.spec.batch, switches, warm) for switches in variants]
    row = Row(setup.spec.name, mode, f"plain loop {setup.precision}", 1, setup.frames)
    jobs.append(Job(row, plain_run(setup, mode_name, case, False), min(2, setup.frames)))
    return jobs


def engine_job(setup: Setup, mode: str, mode_name: str, case: Case, batch: int, switches: dict, warm: int) -> Job:
    row = Row(setup.spec.name, mode, switch_label(setup, switches), batch, setup.frames)
    order = (switches.get("precision") == "bf16", bool(switches.get("compile")))
    return Job(row, engine_run(setup, mode_name, case, batch, switches), warm, order)


def streamdiffusion_job(setup: Setup) -> Job:
    case = setup.spec.img2img[0]
    row = Row(setup.spec.name, f"video img2img, {case.label(True)}",
              f"StreamDiffusion {setup.precision} {TAESD_SETTING} (1 step: t_index_list [32])", 1, setup.frames)
    return Job(row, streamdiffusion_run(setup), min(4, setup.frames))


def model_jobs(setup: Setup, modes: list[str], compile_everywhere: bool) -> list[Job]:
    spec, jobs = setup.spec, []
    if "feedback" in modes:
        for i, case in enumerate(spec.img2img):
            jobs += feedback_jobs(setup, case, compile_everywhere or (i == 0 and setup.compile_once))
    if "interpolate" in modes:
        jobs += batched_jobs(setup, "INTERPOLATE", spec.txt2img, compile_everywhere)
    if "video" in modes:
        jobs += batched_jobs(setup, "VIDEO", spec.img2img[0], compile_everywhere)
    if "streamdiffusion" in modes and spec.name == "sd-turbo":
        jobs.append(streamdiffusion_job(setup))
    return jobs


def bench_model(setup: Setup, modes: list[str]) -> list[Row]:
    """The model's rows in the listed order, measured in an order that loads the model as few times as possible."""
    from engine.renderer import Renderer

    jobs = model_jobs(setup, modes, not setup.smoke)
    setup.renderer, bf16_renderer = Renderer(), False
    try:
        for job in sorted(jobs, key=lambda j: j.order):  # stable: the listed order within each group
            if job.order[0] and not bf16_renderer:
                # bf16 rows last, with a fresh Renderer: the fp16 pipeline and its compiled graphs are freed before
                # the bf16 copy of the model loads (two SDXL copies would crowd the GPU).
                setup.renderer = None
                free_memory(compiled=True)
                setup.renderer, bf16_renderer = Renderer(), True
            if job.row.setting.startswith("StreamDiffusion") and not streamdiffusion_installed():
                job.row.error = "streamdiffusion not installed"
                continue
            measure(job.row, job.run, job.warm_frames, setup.device)
    finally:
        setup.renderer = None  # the pipelines go with it
        setup.state.pop("stream", None)
        free_memory(compiled=True)
    return [job.row for job in jobs]


def streamdiffusion_installed() -> bool:
    try:
        import streamdiffusion  # noqa: F401
    except Exception:  # noqa: BLE001  an installed but broken package counts as missing
        return False
    return True


# ------------------------------------------------------------------------------------------------------------------
# Report


def link_plain(rows: list[Row]) -> None:
    """Each row's reference: the plain loop with the model's own VAE, same model and mode."""
    plain = {(r.model, r.mode): r.seconds for r in rows if r.setting.startswith("plain loop") and
             TAESD_SETTING not in r.setting and r.seconds is not None}
    for row in rows:
        row.plain_seconds = plain.get((row.model, row.mode))


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list[Row]) -> str:
    lines = ["| model | mode | setting | batch | ms/frame | frames/s | peak GiB | vs plain loop |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        setting = r.setting + (f" (warm-up {r.warmup_s:.1f} s)" if "compile" in r.setting and r.warmup_s else "")
        if r.error:
            lines.append(f"| {r.model} | {r.mode} | {setting} | {r.batch} | error: {r.error[:100]} | - | - | - |")
            continue
        lines.append(f"| {r.model} | {r.mode} | {setting} | {r.batch} | {cell(r.ms_per_frame, '.1f')} | "
                     f"{cell(r.fps, '.1f')} | {cell(r.peak_gib, '.2f')} | "
                     f"{cell(r.vs_plain, '.2f') + 'x' if r.vs_plain else '-'} |")
    return "\n".join(lines)


def targets(rows: list[Row]) -> dict:
    """The issue's targets against the best engine row that measures each."""
    engine = [r for r in rows if r.setting.startswith("engine") and r.seconds is not None]

    def best_fps(match: Callable[[Row], bool]) -> float | None:
        found = [r.fps for r in engine if match(r)]
        return round(max(found), 1) if found else None

    turbo_fb = best_fps(lambda r: r.model == "sd-turbo" and r.mode.startswith("feedback img2img, 1 step ")
                        and TAESD_SETTING in r.setting and r.batch == 1)
    batched = best_fps(lambda r: r.model == "sd-turbo" and r.batch > 1)
    sd15 = best_fps(lambda r: r.model == "sd15" and r.mode.startswith("interpolate"))
    return {
        "sd_turbo_feedback_1_step_taesd_batch1_fps": {"best": turbo_fb, "target": ">= 100",
                                                       "met": None if turbo_fb is None else turbo_fb >= 100},
        "sd_turbo_batched_independent_fps": {"best": batched, "target": ">= 300",
                                             "met": None if batched is None else batched >= 300},
        "sd15_20_step_cfg_ms_per_frame": {"best": None if sd15 is None else round(1000 / sd15, 1), "target": "<= 250",
                                          "met": None if sd15 is None else 1000 / sd15 <= 250},
    }


def machine(device: str) -> dict:
    import diffusers
    import torch
    import transformers

    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "cpu": f"{platform.machine()}, {os.cpu_count()} cores"}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


# ------------------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--frames", type=int, default=None, help="frames per row (default 32; 4 with --smoke)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny random models at 64-128 px on the CPU: checks the script, measures nothing useful")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                        "keyframe-diffusion-bench"))
    parser.add_argument("--build-only", action="store_true", help="build the model folders and stop")
    parser.add_argument("--out", default="", help="also append the JSON line to this file (one line per run)")
    return parser.parse_args()


def quiet_libraries() -> None:
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()  # "Loading pipeline components" bars on every model load
    transformers.utils.logging.disable_progress_bar()
    # Frames that overflow to NaN with random fp16 weights still cost the same to compute; frame_std reports them.
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")


def main() -> int:
    args = parse_args()
    if args.smoke:
        # torch.compile in this process, not in a pool of compiler processes on two cores (as speed_cpu does).
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    import torch

    quiet_libraries()
    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device here: run with --smoke to check the script on the CPU", file=sys.stderr)
        return 2
    frames = args.frames or (4 if args.smoke else 32)
    cache = os.path.join(os.path.abspath(os.path.expanduser(args.cache)), "smoke" if args.smoke else "")
    result: dict = {"machine": machine(device), "smoke": args.smoke, "frames": frames, "models": {}}
    if args.smoke:
        result["real_size_unet_params_meta"] = check_real_builders()
    for name in args.models:
        folder = os.path.join(cache, name)
        built = build(name, folder, args.smoke, device)
        count = saved_unet_parameters(folder)
        print(f"{name}: {folder} (built in {built:.1f} s)" if built else f"{name}: {folder}", flush=True)
        print(f"{name}: UNet {count / 1e6:.1f} M parameters (the real model: {REAL_UNET_PARAMS[name] / 1e6:.1f} M)"
              f"{'' if args.smoke else check_mark(name, count)}", flush=True)
        result["models"][name] = {"folder": folder, "unet_params": count, "build_s": round(built, 1)}
    decoder = speed_cpu.bench_decoder(os.path.join(cache, "taesd"))
    if args.build_only:
        print(json.dumps(result))
        return 0
    rows: list[Row] = []
    for i, name in enumerate(args.models):
        spec = SPECS[name]
        size = SMOKE_SIZE[name] if args.smoke else spec.size
        spec = Spec(spec.name, size, SMOKE_BATCH if args.smoke else spec.batch, spec.img2img, spec.txt2img)
        inits_dir = tempfile.mkdtemp(prefix="kd-speed-gpu-inits-")
        setup = Setup(spec, result["models"][name]["folder"], decoder, device, "fp32" if args.smoke else "fp16",
                      frames, speed_cpu.write_inits(inits_dir, frames, size), args.smoke, args.smoke and i == 0)
        result["models"][name]["png_ms"] = png_reference_ms(size, setup.inits)
        print(f"{name}: PNG encoding at {size}x{size}: {result['models'][name]['png_ms']} ms", flush=True)
        try:
            rows += bench_model(setup, args.modes)
        finally:
            shutil.rmtree(inits_dir, ignore_errors=True)
    link_plain(rows)
    print(table(rows))
    result["targets"] = targets(rows)
    result["rows"] = [r.as_json() for r in rows]
    print(f"targets: {json.dumps(result['targets'])}" + ("  (smoke: tiny models, not comparable)" * args.smoke))
    line = json.dumps(result)
    print(line)
    if args.out:  # appended: a session runs one model per command and keeps every run's line
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 1 if any(r.error and r.error != "streamdiffusion not installed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
