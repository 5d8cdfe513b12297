"""Bake benchmark: 1,000 frames, 20 animated settings (F-curves, one with a modifier), 4 prompt keys and an animated,
parented, constrained camera. Prints one JSON line; record it in bench/RESULTS.md.

    .venv/bin/python bench/bake.py [--frames 1000] [--repeat 5]

Runs on the bpy wheel with the extension installed from its built zip in a private Blender user folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

from blender_setup import install_extension


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ext = install_extension(tempfile.mkdtemp(prefix="kd-bench-"))
    import bpy

    scene = bpy.context.scene
    n = args.frames
    scene.frame_start, scene.frame_end = 1, n
    settings = scene.keyframe_diffusion
    for i, frame in enumerate((1, n // 3, 2 * n // 3, n)):
        bpy.ops.keyframe_diffusion.prompt_add(text=f"prompt {i}", frame=frame, transition="BEZIER")
    animated = list(ext.settings.properties.FRAME_PARAMS)[:19] + ["seed"]
    for name in animated:
        rna = settings.bl_rna.properties[name]
        low, high = (1, 20) if rna.type == "INT" else (max(rna.soft_min, 0.0), min(rna.soft_max, 1.0))
        for frame, value in ((1, low), (n // 2, high), (n, low)):
            setattr(settings, name, value)
            settings.keyframe_insert(name, frame=frame)
    ext.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom").modifiers.new("NOISE")
    rig = bpy.data.objects.new("Rig", None)
    target = bpy.data.objects.new("Target", None)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    for obj in (rig, target, cam):
        scene.collection.objects.link(obj)
    cam.parent, cam.location = rig, (0, -6, 2)
    cam.constraints.new("TRACK_TO").target = target
    for frame, value in ((1, 0.0), (n, 6.28)):
        rig.rotation_euler.z = value
        rig.keyframe_insert("rotation_euler", index=2, frame=frame)
        cam.data.lens = 35 + 10 * value
        cam.data.keyframe_insert("lens", frame=frame)
    scene.camera = cam
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        plan = ext.bake.scene.bake_scene(scene)
        times.append(time.perf_counter() - start)
    assert len(plan["frames"]) == n
    print(json.dumps({
        "benchmark": "bake", "frames": n, "animated_settings": len(animated), "prompt_keys": 4,
        "camera": "parented + Track To + animated lens", "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4), "per_frame_ms": round(1000 * statistics.median(times) / n, 4),
        "blender": bpy.app.version_string, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
