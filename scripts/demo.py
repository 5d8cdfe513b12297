"""The main job on the embedded default: build a demo scene, bake, render every frame through the engine worker,
and leave a .blend whose Sequencer shows the frames, the frame files, a GIF and an MP4.

    python scripts/demo.py [--output out/demo] [--frames 48]

The embedded default is the tiny model trained on flat shapes (engine/shapes), so the frames show the prompts' shapes
crossfading; the demo reads each prompt key's frame back with the shapes scorer and prints what it shows.

Runs on the bpy wheel (the dev venv). The extension is installed from its built zip into a private Blender user
folder, exactly as a user's install does, so the demo exercises the real extension.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine.shapes import GUIDANCE, STEPS, dataset  # noqa: E402

PROMPTS = (
    "a red circle on a blue background",
    "a yellow square on a black background",
    "a green triangle on a white background",
)


def build_zip(folder: str) -> str:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_extension.py"), "--output-dir",
                           folder], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def install_extension(out: str, blend_name: str):
    """Empty the folder `out`, build the zip, install it into a private Blender user folder there as a user would,
    and start from an empty file saved as `blend_name` in it (so '//' paths are inside `out`); returns (bpy, the
    .blend's path)."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    os.environ["BLENDER_USER_RESOURCES"] = os.path.join(out, "blender-user")
    zip_path = build_zip(os.path.join(out, "build"))
    import bpy

    if bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                enable_on_install=True) != {"FINISHED"}:
        raise SystemExit("demo: could not install the extension")
    bpy.ops.wm.read_homefile(use_empty=True)
    blend = os.path.join(out, blend_name)
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    return bpy, blend


def prompt_keys(frames: int) -> list[int]:
    return [1 + round(i * (frames - 1) / (len(PROMPTS) - 1)) for i in range(len(PROMPTS))]


def make_scene(bpy, frames: int, size: int) -> None:
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    # An orbiting camera: recorded per frame in the plan (the feedback mode's 3D motion will use it).
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    for frame in (1, frames // 2, frames):
        angle = 2 * math.pi * (frame - 1) / frames
        cam.location = (8 * math.cos(angle), 8 * math.sin(angle), 3)
        cam.rotation_euler = (math.radians(75), 0, angle + math.pi / 2)
        cam.keyframe_insert("location", frame=frame)
        cam.keyframe_insert("rotation_euler", frame=frame)
    settings = scene.keyframe_diffusion
    settings.width = settings.height = size
    settings.steps = STEPS
    settings.batch_size = 4
    for frame, text in zip(prompt_keys(frames), PROMPTS):
        bpy.ops.keyframe_diffusion.prompt_add(text=text, frame=frame, transition="BEZIER")
    for frame, guidance in ((1, GUIDANCE + 1.0), (frames, GUIDANCE - 1.0)):
        settings.guidance = guidance
        settings.keyframe_insert("guidance", frame=frame)


def contact_sheet(paths: list[str], out: str, columns: int = 8) -> str:
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    w, h = images[0].size
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (columns * w, rows * h), "black")
    for i, img in enumerate(images):
        sheet.paste(img, ((i % columns) * w, (i // columns) * h))
    sheet.save(out)
    return out


def read_keys(paths: list[str], frames: int) -> str:
    """What the shapes scorer sees at each prompt key (the frames in between crossfade)."""
    from PIL import Image

    from engine.shapes import scorer

    lines = []
    for frame, text in zip(prompt_keys(frames), PROMPTS):
        s = scorer.score(Image.open(paths[frame - 1]).convert("RGB"))
        lines.append(f"frame {frame}: '{text}' -> reads as a {s.color} {s.shape} on {s.background}")
    return "\n               ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "out", "demo"))
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    out = os.path.abspath(args.output)
    started = time.time()
    bpy, blend = install_extension(out, "demo.blend")  # '//frames/' means out/demo/frames
    make_scene(bpy, args.frames, dataset.SIZE)  # the model's native size
    scene = bpy.context.scene
    scene.keyframe_diffusion.output_dir = "//frames/"
    print(f"demo: {args.frames} frames at {dataset.SIZE}x{dataset.SIZE}, prompts: {', '.join(PROMPTS)}", flush=True)
    from bl_ext.user_default.keyframe_diffusion.run import cli

    if cli.main(["generate", "--save"]) != 0:
        return 1
    strip = scene.sequence_editor.strips["Keyframe Diffusion"]
    frames_dir = bpy.path.abspath(strip.directory)
    paths = [os.path.join(frames_dir, e.filename) for e in strip.elements]
    gif, mp4 = os.path.join(out, "demo.gif"), os.path.join(out, "demo.mp4")
    for fmt, path in (("GIF", gif), ("MP4", mp4)):
        if bpy.ops.keyframe_diffusion.export(format=fmt, filepath=path) != {"FINISHED"}:
            return 1
    sheet = contact_sheet(paths, os.path.join(out, "contact_sheet.png"))
    bpy.ops.wm.save_mainfile()
    readings = read_keys(paths, args.frames)
    print(f"""
demo: finished in {time.time() - started:.0f}s
  blend file   {blend}   (Sequencer strip '{strip.name}', frames {strip.frame_final_start}-{strip.frame_final_end - 1})
  frames       {frames_dir} ({len(paths)} PNG files, manifest.json, plan.json)
  animation    {gif}
               {mp4}
  overview     {sheet}
  prompt keys  {readings}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
