"""`blender scene.blend -c keyframe_diffusion {generate,bake,import-deforum,export-deforum} ...`, registered with
register_cli_command."""

from __future__ import annotations

import argparse
import sys

import bpy

from ..bake.scene import BakeError, write_plan
from ..engine.events import line_printer
from ..engine.plan import parse_frame_range
from ..timeline import schedules
from .generate import GenerateError, GenerateJob


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blender FILE.blend -c keyframe_diffusion",
                                     description="Bake and generate Keyframe Diffusion animations headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("generate", "bake, render missing frames, update the strip"), ("bake", "write the plan")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--scene", help="scene name (default: the active scene)")
        p.add_argument("--model", help="model folder or Hugging Face id (overrides the scene's)")
        p.add_argument("--output", help="output folder (overrides the scene's)")
        p.add_argument("--save", action="store_true", help="save the .blend afterwards (keeps --model/--output)")
        if name == "generate":
            p.add_argument("--frames", help="A-B: render only these frames")
            p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                           help="spread the frames over a Ray cluster at ADDRESS (auto, HOST:PORT, "
                                "ray://HOST:10001); without ADDRESS the scene's cluster, or a local Ray")
            p.add_argument("--no-ray", action="store_true", help="render on this machine even if the scene "
                           "distributes with Ray")
    for name, text in (("import-deforum", "key the scene from a Deforum settings file (.txt/.json)"),
                       ("export-deforum", "write the scene as a Deforum settings file")):
        p = sub.add_parser(name, help=text)
        p.add_argument("file")
        p.add_argument("--scene", help="scene name (default: the active scene)")
        p.add_argument("--save", action="store_true", help="save the .blend afterwards")
    return parser


def _lines():
    """What the terminal shows of one render (engine.events.line_printer): the plan, loading, the cluster, a line per
    frame written with elapsed time and an estimate, a step line only after a quiet spell (a long first frame);
    the end and errors are said by the caller."""
    return line_printer(lambda text: print(f"keyframe_diffusion: {text}", flush=True),
                        leave=("ready", "finished", "error", "exit"))


def printer(job: GenerateJob, note: str = ""):
    """The event printer of a headless render: the job's frame count and estimate in place of the start event's
    line (before any frame: the render may run for hours), with `note` added; then _lines."""
    lines = _lines()

    def on_event(event: dict) -> None:
        if event.get("event") == "start" and job.announcement:
            print(f"keyframe_diffusion: {job.announcement}{note}", flush=True)
        else:
            lines(event)
    return on_event


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help and on errors; Blender wants a return code
        return int(e.code or 0)
    scene = bpy.data.scenes.get(args.scene) if args.scene else bpy.context.scene
    if scene is None:
        print(f"keyframe_diffusion: no scene named '{args.scene}'", file=sys.stderr)
        return 1
    settings = scene.keyframe_diffusion
    if args.save and args.command in ("generate", "bake"):  # persist overrides only when asked to save
        if args.model:
            settings.model = args.model
        if args.output:
            settings.output_dir = args.output
    try:
        if args.command == "import-deforum":
            ignored, warnings = schedules.apply_settings_file(scene, args.file)
            for line in warnings:
                print(f"keyframe_diffusion: warning: {line}")
            print(f"keyframe_diffusion: imported {args.file}; not imported (no counterpart): {len(ignored)} keys"
                  + (f" ({', '.join(ignored[:12])}{', ...' if len(ignored) > 12 else ''})" if ignored else ""))
        elif args.command == "export-deforum":
            for note in schedules.write_settings_file(scene, args.file):
                print(f"keyframe_diffusion: warning: not exported: {note}")
            print(f"keyframe_diffusion: wrote {args.file}")
        elif args.command == "bake":
            path, plan = write_plan(scene, args.output, args.model)
            print(f"keyframe_diffusion: baked {len(plan['frames'])} frames to {path}")
        else:
            frames = parse_frame_range(args.frames) if args.frames else None
            use_ray = False if args.no_ray else (True if args.ray is not None else None)
            job = GenerateJob(scene, frames, args.model, args.output, use_ray, args.ray or None)
            job.run_blocking(on_event=printer(job))
            print(f"keyframe_diffusion: {job.message}; frames in {job.folder}")
            if job.cancelled:
                return 1
    except (BakeError, GenerateError, ValueError, OSError) as e:
        print(f"keyframe_diffusion: error: {e}", file=sys.stderr)
        return 1
    if args.save:
        if not bpy.data.filepath:
            print("keyframe_diffusion: error: --save needs a .blend file to save into", file=sys.stderr)
            return 1
        bpy.ops.wm.save_mainfile()
        print(f"keyframe_diffusion: saved {bpy.data.filepath}")
    return 0


_handle = None


def register() -> None:
    global _handle
    _handle = bpy.utils.register_cli_command("keyframe_diffusion", main)


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
