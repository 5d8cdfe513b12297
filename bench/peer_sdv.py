"""Peer benchmark: stable-diffusion-videos' `StableDiffusionWalkPipeline.walk` on the same prompt interpolation as
bench/speed_cpu.py, so its frames per second can be set beside the engine's.

    python3.11 -m venv .venv-sdv && .venv-sdv/bin/pip install -r requirements/bench-sdv.txt \
        && .venv-sdv/bin/pip install --no-deps stable_diffusion_videos==0.9.2
    .venv-sdv/bin/python bench/peer_sdv.py --model FOLDER --frames 48 --size 128 --steps 10 --batch 4 --guidance 5.0

FOLDER is a diffusers StableDiffusionPipeline folder (the engine's random-weight tiny model: see speed_cpu.py, which
runs this script with --sdv-python). On CPU in float32, no safety checker, torch threads = usable cores:

1. load the pipeline (load_s), then one warm-up walk of BATCH frames with its video (warmup_s); neither is timed below;
2. time walk(prompts=["a red circle", "a blue square"], seeds=[1, 2], num_interpolation_steps=FRAMES, ...) into a
   temporary folder. sdv makes exactly num_interpolation_steps frames per pair of prompts (np.linspace(0, 1, N): both
   ends included), so 2 prompts and N = FRAMES give FRAMES PNGs; the script counts them and asserts that.
   walk() also encodes videos with make_video_pyav: one per pair (clip) and then the whole walk again (the same frames
   here, as there is one pair). Those calls are timed by a wrapper that only measures them and calls sdv's own
   function (no work is skipped); video_s is their sum, seconds = walk time minus video_s (generation + PNG writing),
   walk_s = the whole walk() call.

Prints one JSON line on stdout (logs and progress bars go to stderr).

With --serve it loads the pipeline once, says {"ready": true} and then times one walk per JSON request line on stdin
({"frames", "size", "steps", "batch", "guidance"}), answering each with a JSON line ({"seconds", "walk_s", "video_s",
"frames"}, or {"error"}): bench/speed_cpu.py keeps it warm and alternates its walks with the engine's renders.

Compatibility notes (see requirements/bench-sdv.txt): sdv 0.9.2 imports `torchvision.io.write_video` and
`torchvision.transforms.functional.pil_to_tensor`. No torchvision works with the CPU torch 2.13.0 here (PyPI's
torchvision 0.28.0, the one made for torch 2.13.0, is a CUDA build whose ops library needs libtorch_cuda, and it no
longer has torchvision.io.write_video), so torchvision is not installed and, only when it cannot be imported, this
script registers a minimal `torchvision` module with those two functions, written here (write_video encodes with
PyAV and libx264 like torchvision's did). The tiny model's tokenizer folder has only tokenizer.json (it
is saved by transformers 5), which transformers 4.x's slow CLIPTokenizer cannot read, so the equivalent
CLIPTokenizerFast is set as the tokenizer component when vocab.json is missing; and transformers 5 saves the text
encoder's weights without the `text_model.` prefix 4.x expects, so they are loaded again under it (strictly). Neither
changes the work done per frame.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import types

PROMPTS = ["a red circle", "a blue square"]
SEEDS = [1, 2]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def install_torchvision_shim() -> bool:
    """Register stand-ins for `torchvision.io.write_video` and `torchvision.transforms.functional.pil_to_tensor`
    when no working torchvision can be imported. Returns whether it did."""
    try:
        from torchvision.io import write_video  # noqa: F401
        from torchvision.transforms.functional import pil_to_tensor  # noqa: F401
        return False
    except Exception:  # not installed, or installed but its ops library does not load
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

    import av
    import numpy as np
    import torch

    def write_video(filename, video_array, fps, video_codec="libx264", options=None, **audio):
        # What sdv asks of it: frames (T, H, W, 3) uint8 into an H.264 file through PyAV, no audio.
        if audio.get("audio_array") is not None:
            raise NotImplementedError("the benchmark's torchvision stand-in writes no audio")
        frames = np.asarray(torch.as_tensor(video_array, dtype=torch.uint8).cpu())
        with av.open(filename, mode="w") as container:
            stream = container.add_stream(video_codec, rate=int(round(float(fps))))
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = dict(options or {})
            for rgb in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            container.mux(stream.encode(None))

    def pil_to_tensor(picture):
        # HWC uint8 -> CHW tensor, as sdv expects.
        return torch.from_numpy(np.array(picture.convert("RGB"), copy=True)).permute(2, 0, 1)

    root = types.ModuleType("torchvision")
    io = types.ModuleType("torchvision.io")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    io.write_video = write_video
    functional.pil_to_tensor = pil_to_tensor
    root.io, root.transforms, transforms.functional = io, transforms, functional
    root.__version__ = "0.0-benchmark-stand-in"
    sys.modules.update({"torchvision": root, "torchvision.io": io, "torchvision.transforms": transforms,
                        "torchvision.transforms.functional": functional})
    return True


def load_unprefixed_text_encoder(text_encoder, folder: str) -> bool:
    """transformers 5 saves CLIPTextModel's weights without the `text_model.` prefix that transformers 4.x expects,
    so 4.x leaves them randomly initialised (with a warning). Load them again under the prefix, strictly. Returns
    whether it had to."""
    import torch
    from safetensors.torch import load_file

    path = os.path.join(folder, "model.safetensors")
    if not os.path.isfile(path):
        return False
    saved = load_file(path)
    expected = set(text_encoder.state_dict())
    if set(saved) <= expected:
        return False
    renamed = {"text_model." + key: value for key, value in saved.items()}
    if set(renamed) != expected:
        raise RuntimeError(f"text encoder weights in {path} match neither naming")
    with torch.no_grad():
        text_encoder.load_state_dict(renamed, strict=True)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="diffusers StableDiffusionPipeline folder")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=1, help="timed walks; the fastest is reported")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the videos walk() encodes")
    parser.add_argument("--serve", action="store_true",
                        help="load once, then time one walk per JSON line on stdin ({\"frames\", \"size\", "
                             "\"steps\", \"batch\", \"guidance\"}), one JSON line out each (for "
                             "bench/speed_cpu.py's alternating rounds)")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error("--frames must be at least 2 (both prompts are frames)")

    threads = usable_cores()
    import torch
    torch.set_num_threads(threads)
    # transformers and diffusers decide at import whether torchvision is there: import them before any stand-in.
    import diffusers
    import transformers
    shimmed = install_torchvision_shim()

    import stable_diffusion_videos
    from stable_diffusion_videos import StableDiffusionWalkPipeline
    from stable_diffusion_videos import stable_diffusion_pipeline as sdv_module

    video_times: list[float] = []
    encode = sdv_module.make_video_pyav

    def timed_make_video(*a, **kw):  # measures sdv's own encoder, which walk() looks up in its module
        started = time.perf_counter()
        try:
            return encode(*a, **kw)
        finally:
            video_times.append(time.perf_counter() - started)

    sdv_module.make_video_pyav = timed_make_video

    started = time.perf_counter()
    tokenizer_dir = os.path.join(args.model, "tokenizer")
    fast_tokenizer = not os.path.isfile(os.path.join(tokenizer_dir, "vocab.json"))
    # diffusers type-checks a passed tokenizer against model_index.json's CLIPTokenizer, so the fast one is put in
    # after loading the rest.
    pipe = StableDiffusionWalkPipeline.from_pretrained(args.model, torch_dtype=torch.float32, safety_checker=None,
                                                       feature_extractor=None,
                                                       **({"tokenizer": None} if fast_tokenizer else {}))
    if fast_tokenizer:
        pipe.register_modules(tokenizer=transformers.CLIPTokenizerFast.from_pretrained(tokenizer_dir))
    text_encoder_prefixed = load_unprefixed_text_encoder(pipe.text_encoder, os.path.join(args.model, "text_encoder"))
    pipe = pipe.to("cpu")
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - started

    if args.serve:
        return serve(pipe, video_times, args, load_s)
    common = dict(prompts=PROMPTS, seeds=SEEDS, height=args.size, width=args.size, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, batch_size=args.batch, fps=args.fps)
    with tempfile.TemporaryDirectory(prefix="peer-sdv-") as tmp:
        started = time.perf_counter()
        pipe.walk(num_interpolation_steps=max(2, min(args.batch, args.frames)), output_dir=tmp, name="warmup",
                  **common)
        warmup_s = time.perf_counter() - started
        runs = []  # (seconds without video encoding, walk seconds, video seconds, encodes)
        for repeat in range(max(1, args.repeats)):
            done = timed_walk(pipe, video_times, tmp, f"timed{repeat}", args.frames, args.size, args.steps,
                              args.batch, args.guidance, args.fps)
            runs.append((done["seconds"], done["walk_s"], done["video_s"], len(video_times)))
            frames = done["frames"]

    seconds, walk_s, video_s, encodes = min(runs)
    print(json.dumps({
        "tool": "stable-diffusion-videos", "version": stable_diffusion_videos.__version__,
        "frames": frames, "size": args.size, "steps": args.steps, "batch": args.batch, "guidance": args.guidance,
        "load_s": round(load_s, 3), "warmup_s": round(warmup_s, 3),
        "seconds": round(seconds, 3), "frames_per_s": round(frames / seconds, 3),
        "walk_s": round(walk_s, 3), "frames_per_s_with_video": round(frames / walk_s, 3),
        "video_s": round(video_s, 3), "video_encodes": encodes, "repeats": len(runs),
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "threads": threads, "torchvision_stand_in": shimmed, "tokenizer": type(pipe.tokenizer).__name__,
        "text_encoder_reprefixed": text_encoder_prefixed,
    }))
    return 0


def timed_walk(pipe, video_times: list[float], tmp: str, name: str, frames: int, size: int, steps: int, batch: int,
               guidance: float, fps: int) -> dict:
    """One walk of FRAMES frames into tmp/name: its seconds without video encoding, the walk's, the videos'."""
    import shutil

    video_times.clear()
    started = time.perf_counter()
    video_path = pipe.walk(prompts=PROMPTS, seeds=SEEDS, height=size, width=size, num_inference_steps=steps,
                           guidance_scale=guidance, batch_size=batch, fps=fps, num_interpolation_steps=frames,
                           output_dir=tmp, name=name)
    walk_s = time.perf_counter() - started
    written = len(glob.glob(os.path.join(tmp, name, "**", "*.png"), recursive=True))
    assert written == frames, f"walk wrote {written} frames, expected {frames}"
    assert video_path and os.path.isfile(video_path), "walk wrote no video"
    shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
    return {"seconds": walk_s - sum(video_times), "walk_s": walk_s, "video_s": sum(video_times), "frames": written}


def serve(pipe, video_times: list[float], args, load_s: float) -> int:
    """The warm peer: one timed walk per request line, so a bench can alternate it with its own runs."""
    print(json.dumps({"ready": True, "load_s": round(load_s, 3)}), flush=True)
    with tempfile.TemporaryDirectory(prefix="peer-sdv-") as tmp:
        for count, line in enumerate(sys.stdin):
            if not line.strip():
                continue
            ask = json.loads(line)
            try:
                done = timed_walk(pipe, video_times, tmp, f"walk{count}", int(ask["frames"]), int(ask["size"]),
                                  int(ask["steps"]), int(ask["batch"]), float(ask["guidance"]), args.fps)
            except Exception as e:  # said to the bench, which stops with it
                done = {"error": f"{type(e).__name__}: {e}"}
            print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
