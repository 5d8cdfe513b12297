"""Audio-driven curves (engine/audio.py) on synthetic audio written here: click tracks, silence, a tone, a sweep."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from common import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import audio
from engine.audio import AnalysisParams, AudioError, Track

sf = pytest.importorskip("soundfile")
SR = 22050
FPS_LIST = [24.0, 25.0, 30.0, 30 / 1.001]


def clicks(times, duration: float, seed: int = 0, amp: float = 0.8) -> np.ndarray:
    """The same 3 ms burst of exponentially decaying noise starting at each of ``times``."""
    n = int(0.003 * SR)
    burst = (amp * np.random.default_rng(seed).standard_normal(n) * np.exp(-np.arange(n) / (n / 5)))
    y = np.zeros(int(duration * SR), np.float32)
    for t in times:
        i = int(round(t * SR))
        y[i:i + n] += burst.astype(np.float32)
    return y


def tone(duration: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(duration * SR)) / SR)).astype(np.float32)


def write(path, y, sr: int = SR) -> str:
    sf.write(str(path), y, sr)
    return str(path)


def click_frames(fps: float) -> list[int]:
    # About every 0.6 s, leaving the first frames free.
    step = round(0.6 * fps)
    return [8 + j * step for j in range(5)]


@pytest.fixture(scope="module")
def click_files(tmp_path_factory):
    """One click track per fps, each click in the MIDDLE of its frame: a hop (11.6 ms) of detection latency stays
    inside the frame, whose half is at least 16.7 ms."""
    root = tmp_path_factory.mktemp("clicks")
    out = {}
    for fps in FPS_LIST:
        frames = click_frames(fps)
        times = [(k + 0.5) / fps for k in frames]
        out[fps] = (write(root / f"clicks_{fps:.3f}.wav", clicks(times, times[-1] + 0.6)), frames)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    t = np.arange(int(3.0 * SR)) / SR
    f0, f1, dur = 100.0, 4000.0, 3.0
    k = math.log(f1 / f0)  # exponential sweep: phase = 2 pi f0 dur / k * (exp(k t / dur) - 1)
    sweep = 0.5 * np.sin(2 * np.pi * f0 * dur / k * (np.exp(k * t / dur) - 1))
    return {
        "silence": write(root / "silence.wav", np.zeros(int(2.0 * SR), np.float32)),
        "tone": write(root / "tone.wav", tone(3.0)),
        "sweep": write(root / "sweep.flac", sweep.astype(np.float32)),
    }


# --- frames, without librosa --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", FPS_LIST + [12.5, 60.0, 120.0])
def test_time_to_frame_is_exact_at_frame_starts(fps):
    for k in range(0, 5000, 7):
        assert audio.time_to_frame(k / fps, fps) == k
        assert audio.time_to_frame((k + 0.5) / fps, fps) == k
        assert audio.time_to_frame((k + 1) / fps - 1e-4, fps) == k


def test_frame_signal_takes_the_max_per_frame_and_zero_past_the_end():
    times = np.arange(20) * 0.05  # 20 hops at 20 per second over 1 s
    signal = np.zeros(20)
    signal[[3, 4, 11]] = [0.2, 0.7, 1.0]
    track = Track(1.0, times, signal, np.array([0.17, 0.16, 0.55]), np.array([]), 0.0)
    # 10 fps: frame i holds hops 2i and 2i+1.
    out = audio.frame_signal(track, 10.0)
    assert len(out) == 10
    assert out[1] == 0.2 and out[2] == 0.7 and out[5] == 1.0 and out[3] == 0
    window = audio.frame_signal(track, 10.0, start=5, count=8)
    assert window[0] == 1.0 and not window[5:].any()  # frames 10.. are past the end of 1 s of audio
    assert audio.frame_signal(track, 10.0, start=12).size == 0
    # 40 fps: frames without a hop interpolate at their centre.
    dense = audio.frame_signal(track, 40.0)
    assert len(dense) == 40 and dense[6] == 0.2 and dense[8] == 0.7
    assert dense[7] == pytest.approx(np.interp(7.5 / 40, times, signal))
    assert audio.event_frames(track.onset_times, 10.0) == [1, 5]
    assert audio.event_frames(track.onset_times, 10.0, start=2) == [5]
    assert audio.event_frames(track.onset_times, 10.0, start=0, count=5) == [1]


# --- shape ---------------------------------------------------------------------------------------------------------

def test_shape_maps_low_high_and_ramps():
    assert np.allclose(audio.shape(np.array([0, 0.5, 1.0]), low=2, high=4), [2, 3, 4])
    assert np.allclose(audio.shape(np.array([0, 1.0, 0, 1.0]), "ramp", low=1, high=3), [1, 2, 2, 3])
    assert np.allclose(audio.shape(np.array([0, 2.0]), low=1, high=-1), [1, -1])  # high below low inverts
    assert np.allclose(audio.shape(np.zeros(5), low=0.3, high=9), 0.3)
    assert np.allclose(audio.shape(np.zeros(5), "ramp", low=0.3, high=9), 0.3)
    assert audio.shape(np.zeros(0), "ramp").size == 0


def test_attack_slows_the_rise_and_release_slows_the_fall():
    step = np.r_[np.zeros(5), np.ones(200)]
    rise = audio.shape(step, attack=4)
    expected = 1 - math.exp(-1 / 4) ** np.arange(1, 201)
    assert np.allclose(rise[5:], expected / expected.max())
    assert not rise[:5].any() and np.all(np.diff(rise[5:40]) > 0) and np.all(np.diff(rise) >= 0)
    assert audio.shape(step)[5] == 1.0  # instant without attack
    impulse = np.r_[np.zeros(5), 1.0, np.zeros(30)]
    fall = audio.shape(impulse, release=5)
    assert np.allclose(fall[5:], np.exp(-np.arange(31) / 5))
    assert np.array_equal(audio.shape(impulse), impulse)


def test_smooth_widens_a_pulse():
    impulse = np.r_[np.zeros(10), 1.0, np.zeros(10)]
    wide = audio.shape(impulse, smooth=5)
    assert np.count_nonzero(wide) == 5 and np.allclose(wide[8:13], 1.0)
    assert np.array_equal(audio.shape(impulse, smooth=1), impulse)


@settings(max_examples=150, deadline=None)
@given(x=st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.just(0.0), max_size=60),
       kind=st.sampled_from(audio.SHAPES), low=st.floats(-10, 10), high=st.floats(-10, 10),
       attack=st.floats(0, 20), release=st.floats(0, 20), smooth=st.integers(0, 9))
def test_shape_is_finite_bounded_and_ramps_are_monotone(x, kind, low, high, attack, release, smooth):
    out = audio.shape(np.array(x, dtype=np.float64), kind, low, high, attack, release, smooth)
    assert out.shape == (len(x),) and np.isfinite(out).all()
    assert np.all(out >= min(low, high)) and np.all(out <= max(low, high))
    if kind == "ramp" and len(x):
        steps = np.diff(out) * (1 if high >= low else -1)
        assert np.all(steps >= 0)
        assert out[-1] == high or np.all(out == low)
    if not any(v > 0 for v in x):
        assert np.all(out == low)


def test_shape_rejects_bad_options():
    with pytest.raises(AudioError, match="pulse, ramp"):
        audio.shape(np.ones(3), "saw")
    with pytest.raises(AudioError, match="attack"):
        audio.shape(np.ones(3), attack=-1)
    with pytest.raises(AudioError, match="smooth"):
        audio.shape(np.ones(3), smooth=-2)


def test_module_imports_without_librosa():
    code = ("import sys; sys.modules['librosa'] = None; sys.modules['soundfile'] = None\n"
            "from engine import audio\nprint(audio.shape([0, 1, 0]).tolist())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0.0, 1.0, 0.0]"


# --- analysis --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("part", ["full", "percussive"])
@pytest.mark.parametrize("fps", FPS_LIST)
def test_onsets_land_on_click_frames(click_files, fps, part):
    path, frames = click_files[fps]
    result = audio.curve(path, fps, params=AnalysisParams(part=part))
    assert result["onsets"] == frames
    assert result["frames"] == len(result["values"]) == audio.audio_frames(result["duration"], fps)
    spacing = (frames[1] - frames[0]) / fps
    assert any(abs(result["tempo"] - m * 60 / spacing) < 0.1 * m * 60 / spacing for m in (0.5, 1, 2))
    assert result["beats"] and set(result["beats"]) <= set(result["onsets"])
    assert result["warnings"] == []


@pytest.mark.parametrize("feature", ["onset", "rms", "mel"])
def test_pulses_peak_at_the_clicks(click_files, feature):
    fps = 30 / 1.001
    path, frames = click_files[fps]
    values = np.array(audio.curve(path, fps, params=AnalysisParams(feature=feature), low=0.1, high=0.9)["values"])
    for k in frames:
        assert values[k] == values[k - 4:k + 5].max() and values[k] > 0.5
    quiet = np.ones(len(values), bool)
    for k in frames:
        quiet[k - 3:k + 4] = False
    assert np.all(values[quiet] < 0.15) and values.min() == pytest.approx(0.1)


@pytest.mark.parametrize("feature", ["onset", "rms"])
def test_ramps_are_monotone_reach_high_and_move_at_the_clicks(click_files, feature):
    fps = 24.0
    path, frames = click_files[fps]
    values = np.array(audio.curve(path, fps, params=AnalysisParams(feature=feature), kind="ramp", low=-1.0,
                                  high=2.5)["values"])
    steps = np.diff(values, prepend=-1.0)
    assert np.all(steps >= 0) and values[-1] == 2.5 and values[0] >= -1.0
    near = np.zeros(len(values), bool)
    for k in frames:
        near[k - 2:k + 3] = True
    assert steps[near].sum() > 0.95 * steps.sum()
    assert steps[near].mean() > 20 * steps[~near].mean()


def test_percussive_part_from_a_mix_keeps_the_clicks(tmp_path):
    fps = 25.0
    frames = click_frames(fps)
    y = clicks([(k + 0.5) / fps for k in frames], 3.5) + tone(3.5, 220.0, 0.3)
    path = write(tmp_path / "mix.wav", y)
    perc = audio.curve(path, fps, params=AnalysisParams(part="percussive"))
    assert perc["onsets"] == frames


def test_harmonic_keeps_a_tone_and_percussive_keeps_clicks(click_files, files):
    def energy(path, part):
        return float(np.sum(audio.analyse(path, AnalysisParams(part=part, feature="rms")).signal ** 2))

    assert energy(files["tone"], "harmonic") > 20 * energy(files["tone"], "percussive")
    click = click_files[25.0][0]
    assert energy(click, "percussive") > 20 * energy(click, "harmonic")
    # margin > 1 leaves a residual: both parts lose energy.
    assert energy(files["tone"], "harmonic") > energy(files["tone"], "full") * 0.5
    wide = audio.analyse(files["tone"], AnalysisParams(part="percussive", margin=3.0, feature="rms")).signal
    assert np.sum(wide ** 2) <= energy(files["tone"], "percussive")


def test_steady_tone_gives_flat_nonzero_rms(files):
    result = audio.curve(files["tone"], 30.0, params=AnalysisParams(feature="rms"))
    values = np.array(result["values"])
    assert len(values) == 90
    middle = values[5:-5]
    assert middle.min() > 0.95 and middle.max() == pytest.approx(1.0, abs=0.01)
    assert result["onsets"] == [] or result["onsets"][0] <= 2


def test_bands_follow_a_sweep(files):
    fps = 25.0

    def peak(fmin, fmax):
        values = audio.curve(files["sweep"], fps, params=AnalysisParams(feature="rms", fmin=fmin, fmax=fmax))["values"]
        return int(np.argmax(values)) / fps

    assert peak(20, 300) < 1.0  # the sweep passes 300 Hz at 0.89 s
    assert peak(2000, 5000) > 2.3  # and 2000 Hz at 2.44 s
    high = audio.curve(files["sweep"], fps, params=AnalysisParams(feature="mel", fmin=2000, fmax=30000))
    assert any("Nyquist" in w for w in high["warnings"])
    assert int(np.argmax(high["values"])) / fps > 2.3


def test_silence_gives_flat_curves_and_a_warning(files):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for feature in audio.FEATURES:
            for part in audio.PARTS:
                for kind in audio.SHAPES:
                    result = audio.curve(files["silence"], 24.0, params=AnalysisParams(part=part, feature=feature),
                                         kind=kind, low=0.25, high=0.75, attack=2, smooth=3)
                    assert result["frames"] == 48 and result["values"] == [0.25] * 48
                    assert result["onsets"] == [] and result["beats"] == [] and result["tempo"] == 0.0
                    assert any("silent" in w for w in result["warnings"])
    json.dumps(result, allow_nan=False)


def test_windows_before_and_past_the_end(click_files):
    path, frames = click_files[30.0]
    full = audio.curve(path, 30.0)
    n = full["frames"]
    part = audio.curve(path, 30.0, start=frames[1] - 3, count=10)
    assert part["onsets"] == [frames[1]] and part["start"] == frames[1] - 3 and len(part["values"]) == 10
    late = audio.curve(path, 30.0, start=n + 5, count=4, low=0.5)
    assert late["values"] == [0.5] * 4 and any("after the audio ends" in w for w in late["warnings"])
    assert audio.curve(path, 30.0, start=n + 5)["values"] == []
    over = audio.curve(path, 30.0, start=n - 3, count=10)
    assert any("past the end" in w for w in over["warnings"])


def test_other_formats_rates_and_channels_agree(tmp_path, click_files):
    fps = 25.0
    path, frames = click_files[fps]
    y, _ = sf.read(path, dtype="float32")
    stereo_44k = np.repeat(np.stack([y, y], axis=1), 2, axis=0)  # crude 2x upsampling is enough for clicks
    for name, data, sr in (("c.flac", y, SR), ("c.ogg", y, SR), ("c44.wav", stereo_44k, 44100)):
        assert audio.curve(write(tmp_path / name, data, sr), fps)["onsets"] == frames, name


def test_very_short_audio(tmp_path):
    path = write(tmp_path / "short.wav", np.full(10, 0.5, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        track = audio.analyse(path, AnalysisParams(feature="rms"))
    assert track.duration == pytest.approx(10 / SR) and track.signal.size == 1
    assert audio.curve(path, 30.0)["frames"] == 1


# --- cache -----------------------------------------------------------------------------------------------------------

def test_cache_hits_invalidates_and_survives_corruption(tmp_path, monkeypatch):
    path = write(tmp_path / "c.wav", clicks([0.3, 0.9], 1.5))
    cache = tmp_path / "cache"
    calls = []
    real = audio._analyse_samples
    monkeypatch.setattr(audio, "_analyse_samples", lambda y, p: calls.append(1) or real(y, p))
    first = audio.analyse(path, cache_dir=str(cache))
    entries = list(cache.glob("*.npz"))
    assert len(calls) == 1 and len(entries) == 1
    second = audio.analyse(path, cache_dir=str(cache))
    assert len(calls) == 1
    for field in ("hop_times", "signal", "onset_times", "beat_times"):
        assert np.array_equal(getattr(first, field), getattr(second, field))
    assert (first.duration, first.tempo) == (second.duration, second.tempo)
    audio.analyse(path, AnalysisParams(feature="rms"), cache_dir=str(cache))  # other params: another entry
    assert len(calls) == 2 and len(list(cache.glob("*.npz"))) == 2

    write(path, clicks([0.6], 1.5))
    st_ = os.stat(path)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 5_000_000_000))
    changed = audio.analyse(path, cache_dir=str(cache))
    assert len(calls) == 3 and len(changed.onset_times) == 1

    for entry in cache.glob("*.npz"):
        entry.write_bytes(b"not a zip file")
    again = audio.analyse(path, cache_dir=str(cache))
    assert len(calls) == 4 and np.array_equal(again.signal, changed.signal)
    audio.analyse(path, cache_dir=str(cache))
    assert len(calls) == 4  # the corrupt entry was rewritten
    assert not list(cache.glob("*.tmp"))


# --- errors ----------------------------------------------------------------------------------------------------------

def test_unreadable_files(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="audio file not found: .*nope.wav"):
        audio.analyse(str(missing))
    text = tmp_path / "text.wav"
    text.write_text("this is not audio\n" * 20)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    zero = write(tmp_path / "zero.wav", np.zeros(0, np.float32))
    for bad in (str(text), str(empty), zero):
        with pytest.raises(AudioError, match=r"can't read audio from .*; use WAV, FLAC, OGG or MP3"):
            audio.analyse(bad)
    assert issubclass(AudioError, ValueError)


@pytest.mark.parametrize("kwargs, match", [
    ({"fps": 0}, "fps must be greater than 0"),
    ({"fps": -24}, "fps must be greater than 0"),
    ({"fps": float("nan")}, "fps"),
    ({"start": -1}, "start"),
    ({"count": -5}, "count"),
    ({"params": AnalysisParams(part="drums")}, "full, percussive, harmonic"),
    ({"params": AnalysisParams(feature="loud")}, "onset, rms, mel"),
    ({"params": AnalysisParams(reduce="sum")}, "max, mean, median"),
    ({"params": AnalysisParams(fmin=500, fmax=200)}, "fmin"),
    ({"params": AnalysisParams(fmin=12000)}, "Nyquist"),
    ({"params": AnalysisParams(fmin=-1)}, "fmin"),
    ({"params": AnalysisParams(margin=0.5)}, "margin"),
    ({"kind": "saw"}, "pulse, ramp"),
])
def test_bad_parameters(files, kwargs, match):
    args = {"fps": 24.0, **kwargs}
    with pytest.raises(AudioError, match=match):
        audio.curve(files["tone"], **args)


def test_cli(files, capsys, tmp_path):
    assert audio.cli([files["tone"], "--fps", "29.97", "--frames", "40", "--start", "3", "--shape", "ramp",
                      "--feature", "rms", "--part", "harmonic", "--low", "1", "--high", "2",
                      "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert len(result["values"]) == 40 and result["values"][-1] == 2.0 and result["start"] == 3
    assert set(result) == {"file", "fps", "start", "frames", "duration", "tempo", "values", "onsets", "beats",
                           "warnings"}
    assert list((tmp_path / "c").glob("*.npz"))

    assert audio.cli([str(tmp_path / "missing.wav"), "--fps", "24"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: audio file not found:")
    assert audio.cli([files["tone"], "--fps", "24", "--part", "drums"]) == 2
    assert "full, percussive, harmonic" in capsys.readouterr().err
    assert audio.cli([files["tone"]]) == 2  # --fps is required (argparse's own message)


# --- truncated and damaged files -------------------------------------------------------------------------------------

def _cut(path, keep: int, name: str) -> str:
    data = open(path, "rb").read()
    out = os.path.join(os.path.dirname(path), name)
    with open(out, "wb") as f:
        f.write(data[:keep])
    return out


def test_a_truncated_wav_is_refused_not_read_as_silence(tmp_path):
    """The adversarial run's reproducer: a 1 s 16-bit WAV (44,144 bytes) cut to its first 100 bytes used to give one
    silent frame without a word."""
    full = str(tmp_path / "tone.wav")
    sf.write(full, tone(1.0), SR, subtype="PCM_16")
    assert os.path.getsize(full) == 44144
    cut = _cut(full, 100, "cut.wav")
    with pytest.raises(AudioError, match=r"cut\.wav is truncated or damaged: its header promises 44100 bytes of audio "
                                         r"but the file holds 56; export or copy the file again"):
        audio.analyse(cut)
    assert audio.cli([cut, "--fps", "24"]) == 2


@pytest.mark.parametrize("fmt, subtype, fractions", [
    ("wav", "FLOAT", [0.1, 0.5, 0.99]), ("aiff", "PCM_16", [0.1, 0.5, 0.99]), ("flac", "PCM_16", [0.1, 0.5, 0.9]),
    ("ogg", "VORBIS", [0.1, 0.5, 0.9]),
    # An MP3's length in its header may be an estimate: a tenth of it missing is what counts as cut short.
    ("mp3", "MPEG_LAYER_III", [0.1, 0.5, 0.8]),
])
def test_files_cut_short_are_refused_in_every_format(tmp_path, fmt, subtype, fractions):
    full = str(tmp_path / f"tone.{fmt}")
    sf.write(full, tone(2.0), SR, subtype=subtype)
    for fraction in fractions:
        cut = _cut(full, int(os.path.getsize(full) * fraction), f"cut{fraction}.{fmt}")
        message = rf"cut{fraction}\.{fmt}\b.*(truncated or damaged|a truncated or damaged file)"
        with warnings.catch_warnings(), pytest.raises(AudioError, match=message):
            warnings.simplefilter("ignore")
            audio.analyse(cut)


def test_streamed_wavs_with_a_placeholder_size_still_read(tmp_path):
    """ffmpeg or sox writing into a pipe can't fill in the data size: 0xFFFFFFFF is not a truncation."""
    full = str(tmp_path / "tone.wav")
    sf.write(full, tone(1.0), SR, subtype="PCM_16")
    data = bytearray(open(full, "rb").read())
    at = data.index(b"data")
    data[4:8] = data[at + 4:at + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    assert audio.analyse(str(streamed)).duration == pytest.approx(1.0)


def test_an_impossible_sample_rate_is_refused(tmp_path):
    """A header saying 1 Hz would make 22,050 samples of each one (minutes of resampling for a small file)."""
    full = str(tmp_path / "tone.wav")
    sf.write(full, tone(1.0), SR, subtype="PCM_16")
    data = bytearray(open(full, "rb").read())
    data[24:28] = (1).to_bytes(4, "little")  # the fmt chunk's sample rate
    bad = tmp_path / "slow.wav"
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"slow\.wav is truncated or damaged: its header gives a sample rate of 1 Hz"):
        audio.analyse(str(bad))
