"""Command line: python -m engine {render,upscale,worker,check,models,download,make-tiny-model,export,schedule,inspire,
audio,score,flicker}, run from the extension folder."""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import threading

from . import plan as plan_mod
from .events import line_printer
from .errors import ModelError, OutputFolderError
from .models.options import LoadOptions


def _load_options(args) -> LoadOptions:
    return LoadOptions(allow_download=args.allow_download, allow_unsafe=args.allow_unsafe, device=args.device,
                       single_file_config=args.single_file_config or None)


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-download", action="store_true", help="let diffusers download missing models")
    p.add_argument("--allow-unsafe", action="store_true", help="allow pickle (.bin/.ckpt) weights")
    p.add_argument("--single-file-config", default="", metavar="MODEL",
                   help="diffusers folder or cached id whose configs describe a single-file checkpoint")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")


def _printer():
    """Each event said for a person on stderr (events.line_printer: a line per frame with elapsed and left, a step
    line only after a quiet spell); the finished summary as JSON on stdout."""
    say = line_printer(lambda text: print(text, file=sys.stderr, flush=True))

    def emit(event: dict) -> None:
        if event["event"] == "finished":
            print(json.dumps(event))
        say(event)

    return emit


def add_render(sub) -> None:
    p = sub.add_parser("render", help="render a baked plan")
    p.add_argument("plan")
    p.add_argument("--frames", help="A-B: only these frames")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="spread the frames over a Ray cluster: its address (auto, HOST:PORT, ray://HOST:10001), "
                        "or none to start a local one")
    p.add_argument("--ray-workers", type=int, metavar="N",
                   help="how many Ray workers (default: one per GPU, or one per CPU without GPUs)")
    p.add_argument("--ray-shared", action="store_true",
                   help="workers write frames into the output folder themselves (it must be shared storage at the "
                        "same path on every machine); default: frames are streamed back and written here")
    _output_flags(p)
    _model_flags(p)
    p.set_defaults(func=cmd_render)


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", metavar="DIR",
                   help="write the frames into DIR instead of the plan's output folder (the upscaled ones below it)")
    p.add_argument("--trust-output", action="store_true",
                   help="let the plan write where it says even outside the folder holding it (by default a plan "
                        "writes only into the folder it was baked for)")


def _load_plan(args) -> dict:
    return plan_mod.load(args.plan, output=args.output, trust_output=args.trust_output)


def cmd_render(args) -> int:
    plan = _load_plan(args)
    frame_range = plan_mod.parse_frame_range(args.frames) if args.frames else None
    if args.ray is not None:
        from .distributed import RayRenderer

        renderer = RayRenderer(_load_options(args), address=args.ray or None, workers=args.ray_workers,
                               shared=args.ray_shared)
        renderer.connect()  # on the main thread, where Ray sets up its signal handlers
    else:
        from .renderer import Renderer

        renderer = Renderer(_load_options(args))
    return _run_cancellable(lambda cancel: renderer.render(plan, frame_range, _printer(), cancel))


def add_upscale(sub) -> None:
    p = sub.add_parser("upscale", help="run only the upscaling pass (settings.upscale) over finished frames")
    p.add_argument("plan")
    p.add_argument("--frames", help="A-B: only these frames")
    _output_flags(p)
    _model_flags(p)
    p.set_defaults(func=cmd_upscale)


def cmd_upscale(args) -> int:
    """Only the upscaling pass over the plan's finished frames (settings.upscale)."""
    from .renderer import Renderer

    plan = _load_plan(args)
    frame_range = plan_mod.parse_frame_range(args.frames) if args.frames else None
    renderer = Renderer(_load_options(args))
    return _run_cancellable(lambda cancel: renderer.upscale(plan, frame_range, _printer(), cancel))


def _run_cancellable(work) -> int:
    """Run work(cancel) -> finished summary; exit status 0, 1 when cancelled, 130 on Ctrl+C."""
    cancel = threading.Event()
    result: dict = {}

    def run() -> None:
        try:
            result["summary"] = work(cancel)
        except BaseException as e:  # handed to the main thread
            result["error"] = e

    # Rendered on a thread so that Ctrl+C cancels cleanly (all Ray workers too) and the finished frames are kept.
    thread = threading.Thread(target=run, name="kd-render")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        print("cancelling (Ctrl+C again to quit at once)", file=sys.stderr)
        cancel.set()
        thread.join()
        return 130
    if "error" in result:
        raise result["error"]
    return 0 if not result["summary"]["cancelled"] else 1


def add_worker(sub) -> None:
    p = sub.add_parser("worker", help="serve render commands as JSON lines on stdin/stdout")
    _model_flags(p)
    p.set_defaults(func=cmd_worker)


def cmd_worker(args) -> int:
    from .worker import serve

    return serve(_load_options(args))


def add_score(sub) -> None:
    p = sub.add_parser("score", help="read colour, shape and position from images (the embedded model's world)")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    """What the shapes scorer reads in each image: one JSON line per file (the embedded model's world)."""
    from PIL import Image, UnidentifiedImageError

    from .shapes import scorer

    status = 0
    for path in args.images:
        try:
            with Image.open(path) as image:
                s = scorer.score(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            print(f"error: cannot read image '{path}': {e}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"path": path, "color": s.color, "shape": s.shape, "background": s.background,
                          "position": s.position, "size": s.size, "fit": round(s.fit, 3)}))
    return status


def add_check(sub) -> None:
    p = sub.add_parser("check", help="report Python, torch and diffusers versions, what is missing, the device")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    p.add_argument("--text", action="store_true", help="short lines instead of JSON")
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    """What this Python can do as the engine: versions, what is missing and how to fix it, the device."""
    from .environment import check, summary_lines

    report = check(args.device)
    if args.text:
        print("\n".join(summary_lines(report)))
    else:
        print(json.dumps(report))
    return 0  # the report says whether it is ready; the command itself worked


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list the models in the Hugging Face cache and in folders, by kind, as JSON")
    p.add_argument("--folder", action="append", default=[], metavar="DIR",
                   help="a models folder to search (checkpoints, LoRAs, diffusers folders); may be repeated")
    p.add_argument("--no-hf-cache", action="store_true", help="don't list the Hugging Face cache")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    """The models in the Hugging Face cache and the given folders, by kind, as JSON (the preferences' Models box)."""
    from .model_index import scan

    warnings: list[str] = []
    models = scan(args.folder, hf_cache=not args.no_hf_cache, warnings=warnings)
    print(json.dumps({"models": models, "warnings": warnings}))
    return 0


def add_download(sub) -> None:
    p = sub.add_parser("download", help="download a Hugging Face model into the cache (needs --allow-download)")
    p.add_argument("repo_id", help="e.g. stabilityai/sd-turbo")
    p.add_argument("--allow-download", action="store_true", help="the user's consent to download")
    p.add_argument("--allow-unsafe", action="store_true", help="download pickle (.bin/.ckpt) weights too")
    p.set_defaults(func=cmd_download)


def cmd_download(args) -> int:
    """Download a Hub model's configs and weights into the Hugging Face cache, only when the user opted in."""
    if not args.allow_download:
        raise ModelError(f"downloads are off: nothing was downloaded. Pass --allow-download to fetch '{args.repo_id}' "
                         "(in Blender: enable Allow Model Downloads in the Keyframe Diffusion preferences and "
                         "Blender's online access)")
    from .model_index import download

    print(json.dumps(download(args.repo_id, allow_unsafe=args.allow_unsafe)))
    return 0


def add_make_tiny_model(sub) -> None:
    p = sub.add_parser("make-tiny-model", help="write the random-weight tiny pipeline folder (embedded:tiny)")
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_tiny_model)


def cmd_make_tiny_model(args) -> int:
    from .tiny_model import make_tiny_model

    print(make_tiny_model(args.dir, seed=args.seed))
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="write finished frames as a GIF or MP4")
    p.add_argument("dir", help="output folder holding the frames and manifest.json")
    p.add_argument("out", help="a .gif or .mp4 file")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--frames", help="A-B: only these frames")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .export import export
    from .frames import FrameStore

    store = FrameStore(args.dir, writable=False)  # reads only: no lock, and it may be anyone's folder of frames
    frames = store.finished_frames()
    if args.frames:
        a, b = plan_mod.parse_frame_range(args.frames)
        frames = [f for f in frames if a <= f <= b]
    paths = [store.path(f) for f in frames] or sorted(glob.glob(os.path.join(args.dir, "frame_*.png")))
    print(export(paths, args.out, args.fps))
    return 0


def add_schedule(sub) -> None:
    p = sub.add_parser("schedule", help="print a Deforum keyframe string's per-frame values as JSON")
    p.add_argument("text", help="e.g. '0:(1.0), 30:(1.04), 60:(1+0.02*sin(t/5))'")
    p.add_argument("--frames", type=int, required=True, help="number of frames (Deforum's max_frames)")
    p.add_argument("--seed", type=int, default=0, help="value of 's' in expressions")
    p.set_defaults(func=cmd_schedule)


def cmd_schedule(args) -> int:
    from . import schedule

    if args.frames < 1:
        raise ValueError(f"--frames must be at least 1, got {args.frames}")
    values, warnings = schedule.evaluate(args.text, args.frames, args.seed)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # A stable interface for scripts: Deforum frame numbers from 0, one value per frame, the warnings.
    print(json.dumps({"frames": args.frames, "seed": args.seed, "values": [float(v) for v in values],
                      "warnings": warnings}))
    return 0


def add_inspire(sub) -> None:
    p = sub.add_parser("inspire", help="suggest prompts for subjects, as JSON (see: inspire --help)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_inspire)


def cmd_inspire(args) -> int:
    from .inspire import cli

    return cli(args.rest)


def add_audio(sub) -> None:
    p = sub.add_parser("audio", help="per-frame curve, onsets and beats of an audio file as JSON (see: audio --help)",
                       add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_audio)


def cmd_audio(args) -> int:
    from .audio import cli

    return cli(args.rest)


def add_flicker(sub) -> None:
    from .flow import FLOW_METHODS

    p = sub.add_parser("flicker", help="the temporal warping error of a folder of frames (and of its input) as JSON")
    p.add_argument("frames", help="folder of PNG or JPEG frames, in the order of the numbers in their names")
    p.add_argument("--reference", metavar="INPUT_DIR",
                   help="the frames' input (scene render, movie frames): its motion is the flow, and its own figure "
                        "is the limit the frames can reach")
    p.add_argument("--flow", choices=FLOW_METHODS, default="dis", help="optical flow method (default: dis)")
    p.add_argument("--pairs", action="store_true", help="also each consecutive pair's figures")
    p.set_defaults(func=cmd_flicker)


def cmd_flicker(args) -> int:
    from .flicker import cli

    print(json.dumps(cli(args.frames, args.reference, args.flow, args.pairs), indent=2))
    return 0


# Commands with their own parser: handed everything after their name (argparse's REMAINDER can't take a leading
# option such as --help).
_DELEGATED = {"inspire": cmd_inspire, "audio": cmd_audio}


def _distributed_error() -> type:
    from .distributed import DistributedError

    return DistributedError


# The subcommands in the order --help lists them: each adds its parser, whose func runs it.
SUBCOMMANDS = (add_render, add_upscale, add_worker, add_score, add_check, add_models, add_download,
               add_make_tiny_model, add_export, add_schedule, add_inspire, add_audio, add_flicker)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m engine", description="Keyframe Diffusion engine")
    sub = top.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return top


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def _out_of_memory(e: BaseException) -> bool:
    """numpy's MemoryError, torch.OutOfMemoryError (a RuntimeError: CUDA, MPS) or torch's CPU allocator failing."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def error_line(e: BaseException) -> str | None:
    """The one line a person reads for an error that ends a command; None for a bug, whose traceback is the report.
    The engine's own errors (PlanError, ModelError, OutputFolderError, ...), bad values, files that can't be read or
    written (a full disk, a missing input) and allocation failures are the user's to act on, not bugs."""
    if _out_of_memory(e):
        return (f"out of memory: {_one_line(e, 200) or type(e).__name__}. Render smaller frames or a smaller "
                "batch_size, or turn on VAE slicing or tiling, or CPU offload")
    if isinstance(e, OSError):
        if e.strerror and e.filename:  # the system's words ("No space left on device") and the file
            return f"{e.strerror}: {e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
        return _one_line(e) or type(e).__name__
    package = __package__ or "engine"
    ours = type(e).__module__ == package or type(e).__module__.startswith(package + ".")
    if ours or isinstance(e, (ValueError, ModelError, OutputFolderError, _distributed_error())):
        return _one_line(e) or type(e).__name__
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _DELEGATED:
        return _DELEGATED[argv[0]](argparse.Namespace(rest=argv[1:]))
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:  # noqa: BLE001 - sorted below: the user's errors as one line, bugs with their traceback
        line = error_line(e)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
