"""Audio analysis benchmark: 3 minutes of synthetic audio (a 120 BPM kick-like click track, a tone and noise, seeded)
through engine.audio. Prints one JSON line; record it in bench/RESULTS.md.

    .venv/bin/python bench/audio.py [--seconds 180] [--fps 30]

Figures (seconds): warmup_s is the first analyse() of 1 s of audio in this process (librosa's numba compilation,
or loading its on-disk numba cache, plus imports); analyse_full_first_s is the first analyse() of the whole file
(no cache; also pays for FFT plans, memory and the file cache), analyse_full_s the median of 3 more;
analyse_percussive_s adds HPSS; curve_pulse_s / curve_ramp_s are curve() over every frame of the file at --fps
without a cache (analysis included); shape_s is frame_signal() + shape() alone; cached_curve_s is curve() served
from a warm cache.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine import audio  # noqa: E402

SR = 22050


def synth(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    y = 0.15 * np.sin(2 * np.pi * 220.0 * t) + 0.02 * rng.standard_normal(n)
    # Kick: a 150 -> 50 Hz pitch drop with a fast decay, every 0.5 s (120 BPM).
    k = np.arange(int(0.25 * SR)) / SR
    kick = 0.8 * np.sin(2 * np.pi * (50 * k + 100 * (1 - np.exp(-k * 30)) / 30)) * np.exp(-k * 18)
    for start in range(0, n - kick.size, SR // 2):
        y[start:start + kick.size] += kick
    return np.clip(y, -1, 1).astype(np.float32)


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - t0, 3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    import soundfile as sf

    tmp = tempfile.mkdtemp(prefix="kd-bench-audio-")
    try:
        warm = os.path.join(tmp, "warm.wav")
        sf.write(warm, synth(1.0, seed=1), SR)
        path = os.path.join(tmp, "song.wav")
        sf.write(path, synth(args.seconds), SR)
        percussive = audio.AnalysisParams(part="percussive")
        _, warmup = timed(lambda: audio.analyse(warm, percussive))
        track, analyse_first = timed(lambda: audio.analyse(path))
        analyse_full = statistics.median(timed(lambda: audio.analyse(path))[1] for _ in range(3))
        _, analyse_perc = timed(lambda: audio.analyse(path, percussive))
        pulse, curve_pulse = timed(lambda: audio.curve(path, args.fps, kind="pulse"))
        _, curve_ramp = timed(lambda: audio.curve(path, args.fps, kind="ramp"))
        _, shape_s = timed(lambda: audio.shape(audio.frame_signal(track, args.fps), "ramp", attack=2, release=6,
                                               smooth=3))
        cache = os.path.join(tmp, "cache")
        audio.curve(path, args.fps, cache_dir=cache)
        _, cached = timed(lambda: audio.curve(path, args.fps, cache_dir=cache))
        print(json.dumps({
            "bench": "audio", "seconds_of_audio": args.seconds, "fps": args.fps, "frames": pulse["frames"],
            "onsets": len(pulse["onsets"]), "beats": len(pulse["beats"]), "tempo": round(pulse["tempo"], 2),
            "warmup_s": warmup, "analyse_full_first_s": analyse_first, "analyse_full_s": analyse_full,
            "analyse_percussive_s": analyse_perc,
            "curve_pulse_s": curve_pulse, "curve_ramp_s": curve_ramp, "shape_s": shape_s, "cached_curve_s": cached,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
                       f"Python {platform.python_version()}",
            "date": datetime.date.today().isoformat(),
        }))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
