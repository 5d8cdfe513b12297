"""Temporal coherence on the embedded default: a red ball rolls across a blue checkered floor while the camera trucks
and turns, rendered by Blender as the input of scene mode, plain (each frame diffused on its own) and with Follow
Motion (each key starts from the previous output moved along Blender's Vector pass, with its noise moved too and
Latent Fusion; a true-flow cadence makes the frames between keys), at the same strength; and Follow Motion diffusing
every frame, to show what the cadence adds.

    python scripts/demo_coherence.py [--output out/coherence] [--frames 24] [--strength 0.5] [--guide 0.8]
                                     [--fusion 0.5] [--cadence 4] [--still-noise]

Prints the flicker (Lai et al.'s warping error, engine/flicker.py) of the input, the plain frames and the guided frames
side by side, all measured along Blender's true motion (the Vector pass), and how many frames the shapes scorer reads
as the prompt. Leaves the .blend, the sets of frames, the scene render, the Vector pass, a side-by-side GIF and a
contact sheet under the output folder.

Runs on the bpy wheel (the dev venv), with the extension installed from its built zip, as `scripts/demo.py` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts.demo import install_extension  # noqa: E402

PROMPT = "a red circle on a blue background"
WANTED = ("red", "circle", "blue")  # what the shapes scorer must read in a guided frame
FLOOR = ((40, 80, 220), (25, 50, 150))  # two blues: the scorer reads both as the prompt's blue background
BALL = (220, 40, 40)


def _linear(rgb: tuple[int, int, int]) -> tuple[float, float, float, float]:
    """sRGB 0-255 -> Blender's linear colour, so the Standard view transform renders exactly these values."""
    def one(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return (*(one(c) for c in rgb), 1.0)


def _emission(bpy, name: str, checker: bool):
    """A flat, unlit material (Emission): the colours reach the picture unchanged, so the scorer reads them."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    if checker:
        tex = nodes.new("ShaderNodeTexChecker")
        tex.inputs["Scale"].default_value = 12.0
        tex.inputs["Color1"].default_value = _linear(FLOOR[0])
        tex.inputs["Color2"].default_value = _linear(FLOOR[1])
        links.new(tex.outputs["Color"], emit.inputs["Color"])
    else:
        emit.inputs["Color"].default_value = _linear(BALL)
    return material


def _linear_keys(objects) -> None:
    from bl_ext.user_default.keyframe_diffusion.settings import compat

    for obj in objects:
        for fcurve in compat.action_fcurves(obj):
            for key in fcurve.keyframe_points:
                key.interpolation = "LINEAR"


def make_scene(bpy, frames: int, size: int, strength: float, guide: float, warp_noise: bool, fusion: float) -> None:
    """The floor, the ball rolling across it, the camera trucking and turning; scene mode at `strength`."""
    import math

    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.fps = 24
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"  # the colours as given, not AgX's or Filmic's
    bpy.ops.mesh.primitive_plane_add(size=60, location=(0, 0, 0))
    bpy.context.active_object.data.materials.append(_emission(bpy, "Floor", checker=True))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.2, location=(0, 0, 1.2), segments=48, ring_count=24)
    ball = bpy.context.active_object
    ball.data.materials.append(_emission(bpy, "Ball", checker=False))
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    # The ball crosses the floor left to right; the camera trucks the other way and turns to follow it.
    for frame, ball_x, cam_x, turn in ((1, -2.5, 2.0, -6.0), (frames, 2.5, -2.0, 6.0)):
        ball.location.x = ball_x
        ball.keyframe_insert("location", frame=frame)
        camera.location = (cam_x, -9.0, 7.5)
        camera.rotation_euler = (math.radians(50), 0.0, math.radians(turn))
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
    _linear_keys((ball, camera))

    bpy.ops.keyframe_diffusion.prompt_add(text=PROMPT, frame=1)
    settings = scene.keyframe_diffusion
    settings.width = settings.height = size
    settings.mode, settings.init_source = "VIDEO", "SCENE"
    settings.strength = strength
    settings.guide = guide
    settings.warp_noise = warp_noise
    settings.fusion = fusion


def generate(bpy, folder: str, guided: bool, cadence: int = 1) -> None:
    from bl_ext.user_default.keyframe_diffusion.run import cli

    settings = bpy.context.scene.keyframe_diffusion
    settings.flow_guide, settings.cadence = guided, cadence
    settings.output_dir = folder
    if cli.main(["generate", "--save"]) != 0:
        raise SystemExit(f"demo-coherence: the {'guided' if guided else 'plain'} render failed")


def figures(out: str, frames: int) -> dict:
    """The warping error of the input, the plain and the guided frames, along the Vector pass; the scorer's reading
    of the guided frames."""
    from PIL import Image

    from engine.flicker import flicker, read_frames
    from engine.flow import read_vector_pass
    from engine.frames import frame_filename
    from engine.shapes import scorer

    def paths(folder: str, name=frame_filename) -> list[str]:
        return [os.path.join(out, folder, name(n)) for n in range(1, frames + 1)]

    vectors = [read_vector_pass(p) for p in paths("guided/passes/vector",
                                                  lambda n: frame_filename(n).replace(".png", ".exr"))]
    flows = [(vectors[i][0], vectors[i - 1][1]) for i in range(1, frames)]  # (backward of t, forward of t-1)
    scene = read_frames(paths("guided/passes/image"))
    result = {}
    for name, folder in (("input", None), ("plain", "plain"), ("every_frame", "every_frame"), ("guided", "guided")):
        images = scene if folder is None else read_frames(paths(folder))
        figure = flicker(images, flows=flows)
        result[name] = {"warping_error": figure["warping_error"], "mean_difference": figure["mean_difference"],
                        "visible": figure["visible"]}
    for name in ("plain", "every_frame", "guided"):
        reads = [scorer.score(Image.open(p).convert("RGB")) for p in paths(name)]
        result[name]["follows_prompt"] = sum((s.color, s.shape, s.background) == WANTED for s in reads) / frames
    return result


def side_by_side(out: str, frames: int, cadence: int) -> tuple[str, str]:
    """A GIF and a contact sheet of input | plain | Follow Motion every frame | Follow Motion with the cadence, each
    frame scaled up 3x so the flicker is visible."""
    from PIL import Image, ImageDraw

    from engine.frames import frame_filename

    scale, label = 3, 14
    rows = []
    for n in range(1, frames + 1):
        tiles = [Image.open(os.path.join(out, folder, frame_filename(n))).convert("RGB")
                 for folder in ("guided/passes/image", "plain", "every_frame", "guided")]
        w, h = tiles[0].size
        row = Image.new("RGB", (len(tiles) * w * scale, h * scale + label), "white")
        draw = ImageDraw.Draw(row)
        for i, (tile, text) in enumerate(zip(tiles, ("input", "plain", "Follow Motion", f"... cadence {cadence}"))):
            row.paste(tile.resize((w * scale, h * scale), Image.NEAREST), (i * w * scale, label))
            draw.text((i * w * scale + 4, 1), text, fill="black")
        rows.append(row)
    gif = os.path.join(out, "coherence.gif")
    rows[0].save(gif, save_all=True, append_images=rows[1:], duration=1000 // 12, loop=0)
    every = max(1, frames // 6)
    picked = rows[::every][:6]
    sheet = Image.new("RGB", (picked[0].width, sum(r.height for r in picked)), "white")
    for i, row in enumerate(picked):
        sheet.paste(row, (0, i * row.height))
    path = os.path.join(out, "coherence_sheet.png")
    sheet.save(path)
    return gif, path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "out", "coherence"))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--strength", type=float, default=0.5, help="both renders' strength")
    parser.add_argument("--guide", type=float, default=0.8, help="Motion Guidance of the guided render")
    parser.add_argument("--still-noise", action="store_true", help="the guided render without Move Noise")
    parser.add_argument("--fusion", type=float, default=0.8, help="Latent Fusion of the guided render")
    parser.add_argument("--cadence", type=int, default=4, help="true-flow cadence of the guided render")
    args = parser.parse_args()
    out = os.path.abspath(args.output)
    started = time.time()
    bpy, blend = install_extension(out, "coherence.blend")  # '//plain/' means out/coherence/plain
    from engine.shapes import dataset

    make_scene(bpy, args.frames, dataset.SIZE, args.strength, args.guide, not args.still_noise,
               args.fusion)
    print(f"demo-coherence: {args.frames} frames at {dataset.SIZE}x{dataset.SIZE}, '{PROMPT}', strength "
          f"{args.strength}; plain, Follow Motion on every frame, then Follow Motion at cadence {args.cadence} "
          f"(guidance {args.guide}, Latent Fusion {args.fusion}, {'still' if args.still_noise else 'moving'} noise)",
          flush=True)
    generate(bpy, "//plain/", guided=False)
    generate(bpy, "//every_frame/", guided=True)
    generate(bpy, "//guided/", guided=True, cadence=args.cadence)
    result = figures(out, args.frames)
    with open(os.path.join(out, "figures.json"), "w") as f:
        json.dump(result, f, indent=2)
    gif, sheet = side_by_side(out, args.frames, args.cadence)
    inp, plain, every, guided = (result[k]["warping_error"] for k in ("input", "plain", "every_frame", "guided"))
    reads = {k: f"{result[k]['follows_prompt']:.0%}" for k in ("plain", "every_frame", "guided")}
    print(f"""
demo-coherence: finished in {time.time() - started:.0f}s
  blend file   {blend}   (the strip shows the guided frames)
  frames       {os.path.join(out, 'plain')}, {os.path.join(out, 'every_frame')}, {os.path.join(out, 'guided')}
  input        {os.path.join(out, 'guided', 'passes', 'image')}, Vector pass in {os.path.join(out, 'guided', 'passes',
                                                                                         'vector')}
  side by side {gif}
               {sheet}
  flicker (warping error along Blender's Vector pass; lower is steadier)
               input {inp:.5f}   plain {plain:.5f}   Follow Motion every frame {every:.5f}
               Follow Motion at cadence {args.cadence} {guided:.5f}
               guided / input {guided / max(inp, 1e-12):.2f}x (target <= 1.5x), guided / plain {guided / plain:.2f}x
               (target <= 0.5x)
  prompt       the shapes scorer reads '{PROMPT}' in {reads['guided']} of the guided frames
               (plain: {reads['plain']}, every frame: {reads['every_frame']}; target >= 90%)""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
