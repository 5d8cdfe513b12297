"""CPU speed benchmark: the engine's modes against plain per-frame diffusers loops and stable-diffusion-videos, and
each speed switch against the engine without it, every comparison in alternating rounds (bench/interleave.py).

    .venv/bin/python bench/speed_cpu.py [--frames 48] [--size 128] [--steps 10] [--batch 4] [--rounds 5]
                                        [--max-rounds 9] [--sdv-python PY] [--only NAMES]
    .venv/bin/python bench/speed_cpu.py --table [--lengths 8,16,48,200] [--sizes 64,96,128] [--sdv-python PY]
                                        [--engine-setting KEY=VALUE ...]

A random-weight tiny model (embedded:tiny's text encoder and UNet with a 4-block autoencoder, so latents are 1/8 of the
picture as in real SD models; --model embedded-tiny for embedded:tiny itself) at SIZE x SIZE, STEPS steps, guidance
5, FRAMES frames crossfading "a red circle" into "a blue square", every frame written as a PNG into a fresh folder,
model loaded and warmed up before timing. Each comparison runs its sides in rounds whose order rotates, after one
untimed run of each, and reports the median of the per-round ratios with its quartiles, more rounds while they are
wide, and the verdict on the goal where there is one (see bench/interleave.py):

- --table: the peer set at every shot length x size: the engine's interpolate mode (batch BATCH; --engine-setting adds
  plan settings to it) against the loop Giffusion and the seed articles write (for each frame, encode both prompts
  and the empty negative prompt again, blend the embeddings and slerp the seeds' noises, one pipeline call at batch 1,
  save the PNG; goal 2x) and against stable-diffusion-videos' walk (goal 1.5x) when --sdv-python names an interpreter
  that has it (requirements/bench-sdv.txt; bench/peer_sdv.py --serve keeps it loaded there between its walks);
- otherwise, at FRAMES x SIZE: interpolate (batch BATCH and 1) against the loop and sdv; feedback (zoom 1.02 and 1 px
  pan per frame, strength 0.55) against a loop that warps the previous frame with OpenCV and calls img2img with the
  prompt text; video (img2img of FRAMES init pictures) against one img2img call per frame; video with strength and
  guidance keyed per frame through plain batches (of one frame, as no two frames agree) against stream batching; each
  speed switch on and off (channels_last, bf16 weights, background writes also in feedback mode, Decode While
  Denoising in interpolate and video modes, the tiny autoencoder as decoder in interpolate and feedback modes,
  torch.compile, compiled in its warm-up and reported as compile_warmup_s); a warm re-run of one changed frame against
  the bare pipeline call for that frame (goal within 1.5x); a fresh worker process (`python -m engine worker`, what
  Blender starts) from launch to its first frame and its warm one-frame re-run; one 512x512 decode by SD 1.5's
  autoencoder layout against TAESD's; the frame store's write of a 512x512 frame at the start and after 400 frames.

Prints one JSON object; record it in bench/RESULTS.md. What a render pays outside the model: bench/overhead.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.interleave import interleave  # noqa: E402
from engine import plan as plan_mod  # noqa: E402

PROMPTS = ("a red circle", "a blue square")
GUIDANCE = 5.0
STRENGTH = 0.55
ZOOM, PAN = 1.02, 1.0
MODEL = [plan_mod.TINY_RANDOM_MODEL]  # set by main (--model)


def bench_model(folder: str) -> str:
    """The tiny random-weight pipeline with a Stable Diffusion-shaped autoencoder (4 blocks: latents at 1/8 of the
    picture, as in every real SD model and as stable-diffusion-videos assumes; embedded:tiny's has 2 blocks, 1/2)."""
    from diffusers import AutoencoderKL

    from engine.tiny_model import build_tiny_pipeline

    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        pipe = build_tiny_pipeline(0)
        pipe.register_modules(vae=AutoencoderKL(
            block_out_channels=(32, 32, 64, 64), in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=128))
        pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def bench_decoder(folder: str) -> str:
    """An AutoencoderTiny with TAESD's layout (random weights: speed does not depend on them), latents at 1/8."""
    from diffusers import AutoencoderTiny

    if not os.path.isfile(os.path.join(folder, "config.json")):
        AutoencoderTiny(encoder_block_out_channels=(64,) * 4, decoder_block_out_channels=(64,) * 4,
                        num_encoder_blocks=(1, 3, 3, 3), num_decoder_blocks=(3, 3, 3, 1),
                        latent_channels=4).save_pretrained(folder)
    return folder


def decode_seconds(size: int = 512, repeats: int = 3) -> dict:
    """One latent decoded to a SIZE x SIZE picture by Stable Diffusion 1.5's autoencoder layout and by TAESD's
    (random weights): what the tiny decoder saves on a real model, where the bench model's autoencoder is tiny too."""
    import torch
    from diffusers import AutoencoderKL

    full = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    tiny_folder = bench_decoder(os.path.join(os.environ["KEYFRAME_DIFFUSION_CACHE"], "bench-taesd-shaped"))
    from diffusers import AutoencoderTiny

    tiny = AutoencoderTiny.from_pretrained(tiny_folder)
    latents = torch.randn(1, 4, size // 8, size // 8)
    result = {}
    for name, model in (("sd15_vae", full), ("taesd", tiny)):
        times = []
        with torch.no_grad():
            for _ in range(repeats):
                started = time.perf_counter()
                model.decode(latents)
                times.append(time.perf_counter() - started)
        result[f"{name}_decode_{size}_s"] = round(sorted(times)[len(times) // 2], 3)
    result["taesd_speedup"] = round(result[f"sd15_vae_decode_{size}_s"] / result[f"taesd_decode_{size}_s"], 1)
    return result


def store_write_ms(folder: str, size: int = 512, frames: int = 420) -> dict:
    """FrameStore.write of a size x size frame with its parameters (PNG encode, text chunks, file, manifest record):
    mean ms over the first 20 frames and over frames 401-420 (the record's cost must not grow with the frames)."""
    import numpy as np
    from PIL import Image

    from engine.frames import FrameStore

    import cv2

    store = FrameStore(folder)
    # A picture PNG compresses as it would a frame (smooth shading with grain), not uniform noise, which zlib gives up
    # on at once and so writes unrealistically fast.
    ramp = np.linspace(0, 1, size)
    smooth = np.stack([np.outer(np.sin(7 * ramp), np.cos(5 * ramp)), np.outer(ramp, ramp),
                       np.outer(1 - ramp, ramp)], -1) * 127 + 128
    grain = np.random.default_rng(0).normal(0, 8, smooth.shape)
    image = Image.fromarray(cv2.GaussianBlur((smooth + grain).clip(0, 255).astype(np.uint8), (3, 3), 0))
    params = {"prompts": [{"text": PROMPTS[0], "weight": 1.0}], "steps": 10, "seed": 3, "guidance": GUIDANCE}
    times = []
    for f in range(1, frames + 1):
        started = time.perf_counter()
        store.write(f, image, f"hash{f}", {**params, "frame": f})
        times.append(time.perf_counter() - started)
    store.compact()
    return {"size": size, "first_20_ms": round(1000 * sum(times[:20]) / 20, 1),
            "frames_401_420_ms": round(1000 * sum(times[400:420]) / 20, 1)}


def make_plan(mode: str, folder: str, frames: int, size: int, steps: int, batch: int,
              inits: list[str] | None = None, keyed: bool = False, **settings) -> dict:
    """`keyed`: strength and guidance keyed across the shot (0.4 -> 0.8, 5 -> 7), so no two frames agree."""
    records = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        record = {"frame": i + 1, "seed": 3, "steps": steps, "guidance": GUIDANCE + 2 * t if keyed else GUIDANCE,
                  "strength": 0.4 + 0.4 * t if keyed else STRENGTH,
                  "prompts": [{"text": PROMPTS[0], "weight": 1 - t, "seed": 1},
                              {"text": PROMPTS[1], "weight": t, "seed": 2}]}
        if mode == "FEEDBACK":
            record["motion"] = {"zoom": ZOOM, "translation_x": PAN}
        if mode == "VIDEO":
            record["init"] = {"path": inits[i]}
        records.append(record)
    return plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION,
                              "settings": {"mode": mode, "model": MODEL[0], "width": size,
                                           "height": size, "output_dir": folder, "batch_size": batch,
                                           **settings},
                              "frames": records})


def write_inits(folder: str, frames: int, size: int) -> list[str]:
    """A moving disc on a gradient: the video mode's init frames."""
    import cv2
    import numpy as np

    paths = []
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    for i in range(frames):
        image = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                          np.full((size, size), 128.0)], -1).astype(np.uint8)
        cv2.circle(image, (int(size * (0.2 + 0.6 * i / max(1, frames - 1))), size // 2), size // 6, (255, 40, 40), -1)
        path = os.path.join(folder, f"init_{i:04d}.png")
        cv2.imwrite(path, image[..., ::-1])
        paths.append(path)
    return paths


def engine_seconds(renderer, plan: dict) -> float:
    started = time.perf_counter()
    summary = renderer.render(plan, None, lambda e: None)
    assert summary["rendered"] == len(plan["frames"]), summary
    return time.perf_counter() - started


def slerp(t: float, a, b):
    import torch

    dot = torch.sum(a * b) / (a.norm() * b.norm())
    if abs(float(dot)) > 0.9995:
        return (1 - t) * a + t * b
    theta = torch.acos(dot)
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


def plain_interpolate(pipe, folder: str, frames: int, size: int, steps: int) -> float:
    """Giffusion's way: per frame, prompts encoded again, embeddings blended, noise slerped, batch 1."""
    import torch

    shape = (1, pipe.unet.config.in_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    started = time.perf_counter()
    for i in range(frames):
        t = i / max(1, frames - 1)
        with torch.no_grad():
            a, negative = pipe.encode_prompt(PROMPTS[0], "cpu", 1, True, negative_prompt="")
            b, _ = pipe.encode_prompt(PROMPTS[1], "cpu", 1, True, negative_prompt="")
            image = pipe(prompt_embeds=(1 - t) * a + t * b, negative_prompt_embeds=negative,
                         latents=slerp(t, *noise), num_inference_steps=steps, guidance_scale=GUIDANCE,
                         height=size, width=size).images[0]
        image.save(os.path.join(folder, f"{i + 1:05d}.png"))
    return time.perf_counter() - started


def plain_feedback(pipe, folder: str, frames: int, size: int, steps: int) -> float:
    """Deforum's 2D loop without its extras: warp the previous frame, img2img it with the frame's prompt."""
    import cv2
    import numpy as np
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, ZOOM)
    matrix[0, 2] += PAN
    started = time.perf_counter()
    previous = None
    for i in range(frames):
        prompt = PROMPTS[0] if i < frames / 2 else PROMPTS[1]
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            if previous is None:
                image = pipe(prompt, num_inference_steps=steps, guidance_scale=GUIDANCE, height=size, width=size,
                             generator=generator).images[0]
            else:
                warped = cv2.warpAffine(np.asarray(previous), matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
                image = img2img(prompt, image=Image.fromarray(warped), strength=STRENGTH, num_inference_steps=steps,
                                guidance_scale=GUIDANCE, generator=generator).images[0]
        image.save(os.path.join(folder, f"{i + 1:05d}.png"))
        previous = image
    return time.perf_counter() - started


def plain_video(pipe, folder: str, inits: list[str], steps: int) -> float:
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    for i, path in enumerate(inits):
        prompt = PROMPTS[0] if i < len(inits) / 2 else PROMPTS[1]
        with torch.no_grad():
            image = img2img(prompt, image=Image.open(path).convert("RGB"), strength=STRENGTH,
                            num_inference_steps=steps, guidance_scale=GUIDANCE,
                            generator=torch.Generator().manual_seed(3)).images[0]
        image.save(os.path.join(folder, f"{i + 1:05d}.png"))
    return time.perf_counter() - started


def worker_overheads(tmp: str, size: int, steps: int, frames: int, repeats: int = 1) -> dict:
    """A fresh worker (what Blender starts) to its first frame, then a warm re-run of one changed frame (the median
    of `repeats`, each changing another frame)."""
    from engine_link.worker_client import WorkerClient

    folder = os.path.join(tmp, "worker")
    plan = make_plan("INTERPOLATE", folder, frames, size, steps, 4)
    path = os.path.join(tmp, "worker-plan.json")
    with open(path, "w") as f:
        json.dump(plan, f)
    client = WorkerClient(ROOT, sys.executable,
                          env={"KEYFRAME_DIFFUSION_CACHE": os.environ["KEYFRAME_DIFFUSION_CACHE"]})
    started = time.perf_counter()
    client.start()
    marks = {}

    def until(event_name: str, key: str) -> dict:
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            for event in client.events(timeout=0.05):
                if event.get("event") in ("error", "exit"):
                    raise RuntimeError(f"worker: {event}")
                if event.get("event") == event_name and event.get("skipped") is not True:
                    marks.setdefault(key, time.perf_counter() - started)
                    return event
        raise RuntimeError(f"worker: no {event_name} event in 300 s")

    try:
        until("ready", "ready_s")
        client.render(path)
        until("frame", "first_frame_s")
        until("finished", "all_frames_s")
        reruns = []
        for repeat in range(max(1, repeats)):
            plan["frames"][(frames // 2 + repeat) % frames]["seed"] += 1
            with open(path, "w") as f:
                json.dump(plan, f)
            rerun = time.perf_counter()
            client.render(path)
            finished = until("finished", "_")
            assert finished["rendered"] == 1, finished
            reruns.append(time.perf_counter() - rerun)
        marks["warm_one_frame_s"] = sorted(reruns)[len(reruns) // 2]  # the median, as for the bare call
    finally:
        client.stop()
    return marks


class SdvPeer:
    """stable-diffusion-videos' walk in its own interpreter (bench/peer_sdv.py --serve), loaded once and kept warm, so
    its walks alternate with the engine's renders in the same rounds."""

    def __init__(self, python: str, model: str):
        self.process = subprocess.Popen([python, os.path.join(ROOT, "bench", "peer_sdv.py"), "--model", model,
                                         "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._answer()
        self.info = {}

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench/peer_sdv.py stopped (exit {self.process.wait()}); its stderr says why")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"stable-diffusion-videos: {answer['error']}")
        return answer

    def walk(self, frames: int, size: int, steps: int, batch: int) -> float:
        """Seconds of one walk of FRAMES frames (generation and PNGs, without its video encoding)."""
        self.process.stdin.write(json.dumps({"frames": frames, "size": size, "steps": steps, "batch": batch,
                                             "guidance": GUIDANCE}) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        self.info = answer
        return answer["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


class Folders:
    """A fresh output folder for every run (so nothing is skipped as current), removed after the next is asked for."""

    def __init__(self, root: str):
        self.root, self.count, self.last = root, 0, None

    def __call__(self) -> str:
        if self.last:
            shutil.rmtree(self.last, ignore_errors=True)
        self.count += 1
        self.last = os.path.join(self.root, f"run{self.count}")
        os.makedirs(self.last)
        return self.last


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="kd-bench-speed-")
    try:
        return run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--model", choices=("sd-shaped", "embedded-tiny"), default="sd-shaped",
                        help="sd-shaped: the tiny model with latents at 1/8 (default); embedded-tiny: embedded:tiny "
                             "(latents at 1/2, so 16x the UNet work at the same size)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per comparison (bench/interleave.py)")
    parser.add_argument("--max-rounds", type=int, default=9,
                        help="rounds a comparison may take while its spread is too wide to read")
    parser.add_argument("--sdv-python", default="", help="interpreter with stable-diffusion-videos (.venv-sdv)")
    parser.add_argument("--table", action="store_true",
                        help="only the peer table: interpolate, the plain loop and sdv at each of --lengths x --sizes")
    parser.add_argument("--lengths", default="8,16,48,200", help="--table's shot lengths")
    parser.add_argument("--sizes", default="64,96,128", help="--table's sizes")
    parser.add_argument("--only", default="", help="comma-separated comparison names to run (default: all)")
    parser.add_argument("--engine-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a plan setting for --table's engine side (e.g. feature_reuse=2; VALUE is JSON)")
    return parser.parse_args()


def run(tmp: str) -> int:
    args = arguments()
    from engine.models.embedded import cache_dir

    # The models the bench builds are kept between runs in the engine's cache (embedded:tiny is built there too).
    os.environ["KEYFRAME_DIFFUSION_CACHE"] = cache_dir()
    # torch.compile in this process, not in a pool of compiler processes that would outlive the warm-up.
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    import diffusers
    import torch

    from engine.models.locate import resolve

    if args.model == "sd-shaped":
        MODEL[0] = bench_model(os.path.join(os.environ["KEYFRAME_DIFFUSION_CACHE"], "bench-sd-shaped"))
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    result: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {threads} cores",
                    "python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
                    "model": args.model, "steps": args.steps, "batch": args.batch, "guidance": GUIDANCE,
                    "protocol": f"bench/interleave.py: >= {args.rounds} alternating rounds (<= {args.max_rounds} "
                                f"while the spread is wide), median per-round ratio [quartiles]"}
    if not args.table:
        # The worker first, while this process has run no torch work: like Blender, the parent of a real worker, it
        # then takes no core from the worker (an OpenMP pool that just ran spins for a while after).
        worker = worker_overheads(tmp, args.size, args.steps, args.frames, 3 * args.rounds)
        result["worker"] = {k: round(v, 3) for k, v in worker.items() if not k.startswith("_")}
    from engine.renderer import Renderer

    renderer = Renderer()
    engine_seconds(renderer, make_plan("INTERPOLATE", os.path.join(tmp, "warm"), 4, args.size, args.steps,
                                       args.batch))
    pipe = renderer.pipeline(MODEL[0], "auto", lambda e: None)
    pipe.set_progress_bar_config(disable=True)
    peer = None
    if args.sdv_python:
        peer = SdvPeer(args.sdv_python, MODEL[0] if args.model == "sd-shaped" else resolve(MODEL[0], False))
    try:
        if args.table:
            result["table"] = peer_table(renderer, pipe, peer, tmp, args)
        else:
            result.update(comparisons(renderer, pipe, peer, tmp, args))
            if "rerun" in result:  # the worker's warm re-run against the same bare call
                result["worker"]["warm_one_frame_over_bare"] = round(
                    result["worker"]["warm_one_frame_s"] / result["rerun"]["bare_s"], 2)
    finally:
        if peer:
            result["sdv"] = {"load_s": peer.hello.get("load_s"), **peer.info}
            peer.close()
    print(json.dumps(result))
    return 0


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def peer_table(renderer, pipe, peer: SdvPeer | None, tmp: str, args) -> list[dict]:
    """Interpolate (batch BATCH), the plain loop and sdv's walk in alternating rounds at every shot length and size:
    the engine over each, with the goals (2x the plain loop, 1.5x sdv)."""
    rows = []
    folders = Folders(tmp)
    extra = {}
    for item in args.engine_setting:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError as e:
            raise SystemExit(f"--engine-setting {item!r}: VALUE must be JSON (a number, true, \"text\"): {e}") from e
    for size in [int(s) for s in args.sizes.split(",")]:
        for n in [int(f) for f in args.lengths.split(",")]:
            sides = {"engine": lambda i, n=n, size=size: engine_seconds(renderer, make_plan(
                         "INTERPOLATE", folders(), n, size, args.steps, args.batch, **extra)),
                     "plain": lambda i, n=n, size=size: plain_interpolate(pipe, folders(), n, size, args.steps)}
            pairs = [("engine", "plain")]
            if peer:
                sides["sdv"] = lambda i, n=n, size=size: peer.walk(n, size, args.steps, args.batch)
                pairs.append(("engine", "sdv"))
            log(f"table: {n} frames at {size}x{size}")
            done = interleave(sides, comparisons=pairs, rounds=args.rounds, max_rounds=args.max_rounds,
                              goals={"engine over plain": 2.0, "engine over sdv": 1.5}, log=log)
            rows.append({"frames": n, "size": size, **({"engine_settings": extra} if extra else {}), **done["ratios"],
                         "frames_per_s": {k: round(n / statistics.median(v), 2) for k, v in done["seconds"].items()}})
    return rows


def comparisons(renderer, pipe, peer: SdvPeer | None, tmp: str, args) -> dict:
    """The modes against their plain loops and the speed switches against the engine without them, each in
    alternating rounds; the warm re-run against the bare call; decoders and the frame store."""
    n, size, steps, batch = args.frames, args.size, args.steps, args.batch
    folders = Folders(tmp)
    inits = write_inits(tmp, n, size)
    tiny = ""
    if args.model == "sd-shaped":
        tiny = bench_decoder(os.path.join(os.environ["KEYFRAME_DIFFUSION_CACHE"], "bench-taesd-shaped"))

    def engine(mode: str, batch_size: int = batch, **settings):
        return lambda i: engine_seconds(renderer, make_plan(mode, folders(), n, size, steps, batch_size, inits,
                                                            **settings))

    interpolate = engine("INTERPOLATE")
    cases = {
        "interpolate": ({"engine": interpolate, "engine_batch1": engine("INTERPOLATE", batch_size=1),
                         "plain": lambda i: plain_interpolate(pipe, folders(), n, size, steps),
                         **({"sdv": lambda i: peer.walk(n, size, steps, batch)} if peer else {})},
                        [("engine", "plain"), ("engine_batch1", "plain")] + ([("engine", "sdv")] if peer else []),
                        {"engine over plain": 2.0, "engine over sdv": 1.5}),
        "feedback": ({"engine": engine("FEEDBACK"), "plain": lambda i: plain_feedback(pipe, folders(), n, size, steps)},
                     [("engine", "plain")], {"engine over plain": 1.0}),
        "video": ({"engine": engine("VIDEO"), "plain": lambda i: plain_video(pipe, folders(), inits, steps)},
                  [("engine", "plain")], {"engine over plain": 1.0}),
        "stream_batch (keyed video)": ({"plain batches": engine("VIDEO", keyed=True),
                                        "stream_batch": engine("VIDEO", keyed=True, stream_batch=True)},
                                       [("stream_batch", "plain batches")], {}),
        "feedback background_writes": ({"off": engine("FEEDBACK"), "on": engine("FEEDBACK", background_writes=True)},
                                       [("on", "off")], {}),
    }
    for name, switch in (("channels_last", {"channels_last": True}), ("bf16", {"precision": "bf16"}),
                         ("background_writes", {"background_writes": True}),
                         ("overlap_decode", {"overlap_decode": True})):
        cases[f"interpolate {name}"] = ({"off": interpolate, "on": engine("INTERPOLATE", **switch)},
                                        [("on", "off")], {})
    cases["video overlap_decode"] = ({"off": engine("VIDEO"), "on": engine("VIDEO", overlap_decode=True)},
                                     [("on", "off")], {})
    if tiny:
        for mode in ("INTERPOLATE", "FEEDBACK"):
            cases[f"{mode.lower()} tiny decoder"] = ({"off": engine(mode), "on": engine(mode, decoder=tiny)},
                                                     [("on", "off")], {})
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    unknown = only - set(cases) - {"compile", "rerun"}
    if unknown:
        raise SystemExit(f"--only: no comparison {sorted(unknown)}; the names are {sorted(cases)} + compile, rerun")
    out: dict = {"frames": n, "size": size, "comparisons": {}}
    for name, (sides, pairs, goals) in cases.items():
        if only and name not in only:
            continue
        log(f"comparison: {name}")
        done = interleave(sides, comparisons=pairs, rounds=args.rounds, max_rounds=args.max_rounds, goals=goals,
                          log=log)
        out["comparisons"][name] = {**done["ratios"], "frames_per_s": {
            k: round(n / statistics.median(v), 2) for k, v in done["seconds"].items()}}
    if not only or "compile" in only:
        # Compiling happens once per shape: warmed up outside the timing (interleave's warm-up round), and last, so
        # that the compiler's worker processes don't share the cores with the other measurements.
        started = time.perf_counter()
        engine_seconds(renderer, make_plan("INTERPOLATE", folders(), batch, size, steps, batch, compile=True))
        out["compile_warmup_s"] = round(time.perf_counter() - started, 1)
        log("comparison: interpolate compile")
        done = interleave({"off": interpolate, "on": engine("INTERPOLATE", compile=True)}, comparisons=[("on", "off")],
                          rounds=args.rounds, max_rounds=args.max_rounds, log=log)
        out["comparisons"]["interpolate compile"] = done["ratios"]
    if not only or "rerun" in only:
        out["rerun"] = rerun_against_bare(renderer, pipe, tmp, args)
        out["decoders"] = decode_seconds()
        out["frame_store"] = store_write_ms(os.path.join(tmp, "store"))
    return out


def rerun_against_bare(renderer, pipe, tmp: str, args) -> dict:
    """A warm re-run of one changed frame of the shot through the in-process Renderer, alternating with the bare
    pipeline call for one frame (embeddings and latents ready, no PNG): the goal is within 1.5x."""
    import torch

    n, size, steps = args.frames, args.size, args.steps
    plan = make_plan("INTERPOLATE", os.path.join(tmp, "rerun"), n, size, steps, args.batch)
    engine_seconds(renderer, plan)
    changed = [0]

    def rerun(i: int) -> float:
        changed[0] += 1
        plan["frames"][(n // 2 + changed[0]) % n]["seed"] += 1
        return engine_seconds_changed(renderer, plan)

    with torch.no_grad():
        embeds, negative = pipe.encode_prompt(PROMPTS[0], "cpu", 1, True, negative_prompt="")
    shape = (1, pipe.unet.config.in_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(1))

    def bare(i: int) -> float:
        started = time.perf_counter()
        with torch.no_grad():
            pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, latents=latents, num_inference_steps=steps,
                 guidance_scale=GUIDANCE, height=size, width=size)
        return time.perf_counter() - started

    log("comparison: warm one-frame re-run against the bare call")
    # "rerun over bare" is the bare call's seconds over the re-run's: within 1.5x the time is at least 1/1.5.
    done = interleave({"rerun": rerun, "bare": bare}, comparisons=[("rerun", "bare")], rounds=max(args.rounds, 7),
                      max_rounds=max(args.max_rounds, 11), goals={"rerun over bare": 1 / 1.5}, log=log)
    speed = done["ratios"]["rerun over bare"]
    return {"rerun_speed_over_bare": speed, "rerun_time_over_bare": round(1 / speed["median"], 3),
            "rerun_s": statistics.median(done["seconds"]["rerun"]),
            "bare_s": statistics.median(done["seconds"]["bare"])}


def engine_seconds_changed(renderer, plan: dict) -> float:
    """Time a render where exactly one frame is out of date."""
    started = time.perf_counter()
    summary = renderer.render(plan, None, lambda e: None)
    assert summary["rendered"] == 1, summary
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
