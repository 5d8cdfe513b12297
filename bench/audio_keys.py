"""Audio to keys in Blender: 3 minutes of synthetic music on a sound strip at 30 fps (5,400 frames) drive the zoom
through the real operator: engine subprocess start, librosa analysis, JSON back, keys written. Then the same link
re-applied from the engine's analysis cache (what happens when the strip is moved), and a markers pass.
Prints one JSON line; record it in bench/RESULTS.md.

    .venv/bin/python bench/audio_keys.py [--seconds 180] [--fps 30]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from blender_setup import install_extension  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="kd-bench-audio-")
    os.environ["KEYFRAME_DIFFUSION_CACHE"] = os.path.join(tmp, "cache")  # a cold analysis cache
    import soundfile

    from audio import SR, synth  # bench/audio.py's synthetic track

    wav = os.path.join(tmp, "music.wav")
    soundfile.write(wav, synth(args.seconds), SR)
    ext = install_extension(tmp)
    import bpy

    scene = bpy.context.scene
    frames = int(args.seconds * args.fps)
    scene.render.fps, scene.render.fps_base = args.fps, 1.0
    scene.frame_start, scene.frame_end = 1, frames
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_sound("music", wav, 2, 1)

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return round(time.perf_counter() - t0, 3)

    cold = timed(lambda: bpy.ops.keyframe_diffusion.audio_link_add(
        strip="music", data_path="keyframe_diffusion.zoom", part="percussive", shape="pulse", low=1.0, high=1.05))
    fc = ext.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom")
    keys = len(fc.keyframe_points)
    strip.frame_start += 12
    moved = timed(lambda: ext.timeline.audio_keys.refresh(scene))
    markers = timed(lambda: bpy.ops.keyframe_diffusion.audio_markers(strip="music", events="beats"))
    print(json.dumps({
        "bench": "audio_keys", "seconds_of_audio": args.seconds, "fps": args.fps, "frames": frames, "keys": keys,
        "link_cold_s": cold, "strip_moved_reapply_s": moved, "beats_to_markers_s": markers,
        "markers": len(scene.timeline_markers), "blender": bpy.app.version_string,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": datetime.date.today().isoformat(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
