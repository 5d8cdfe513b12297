"""Audio-driven curves: turn a sound file into one value per animation frame.

Analysis (``analyse``) works on ONE mel power spectrogram of the file, read as mono and resampled to 22050 Hz:
hop 256 samples (about 11.6 ms), n_fft 2048, 128 mel bands over 0 Hz to Nyquist (11025 Hz). Everything else is
derived from that matrix, which keeps a 3-minute song to a couple of seconds of work:

* part: "full"; "percussive" or "harmonic" = ``librosa.decompose.hpss`` on the mel spectrogram (median filtering
  across time and across bands, soft masks, ``margin`` >= 1; larger margins leave a residual that neither part gets).
  Separating the mel matrix instead of the STFT is about 15 times faster and good enough for driving animation.
* band: ``fmin``/``fmax`` in Hz keep the mel bands whose centre frequency lies in [fmin, fmax] (``fmax`` 0 means
  Nyquist; a band narrower than one mel band keeps the band nearest its centre). The bands are picked from the
  full-range spectrogram rather than building a new filterbank for the band: a narrow band spread over 128 filters
  would leave filters narrower than an FFT bin, i.e. empty. An ``fmax`` above Nyquist is clipped to Nyquist with a
  warning (``param_warnings``); an ``fmin`` at or above Nyquist, or ``fmin >= fmax``, is an error.
* feature, per hop, from the part- and band-selected mel power M (bands x hops):

  - "onset": ``librosa.onset.onset_strength(S=power_to_db(M))`` -- spectral flux, peaks where sound starts;
  - "rms": ``sqrt(mean over bands of M)`` -- loudness in the band;
  - "mel": M reduced over bands with ``reduce`` = max / mean / median (Giffusion's audio schedule).

Onsets (``librosa.onset.onset_detect``) and beats and tempo (``librosa.beat.beat_track``) always use the onset
strength of the selected part and band, whatever the feature. The per-hop signal is finite and >= 0.

Timing convention. Hop j sits at time ``librosa.frames_to_time(j) = j * 256 / 22050`` s (the centre of its
analysis window). Audio frame i covers audio time [i/fps, (i+1)/fps) (fps is a float, e.g. 30/1.001). The value of
frame i is the MAX of the per-hop signal over hops whose time lies in that window, so a short hit is never lost
between frames; a frame that holds no hop (fps above 86) takes the signal interpolated linearly at the window centre.
Frames whose window starts at or after the end of the audio are 0. An event (onset, beat) at time t lands on frame
``floor(t * fps + 1e-6)``; hops are assigned to frames with the same rule, the 1e-6 absorbing float noise in t*fps.
"Audio frame" counts from the start of the file; the caller maps it to a scene frame (strip start, offset).

Shaping (``shape``): optional centred moving average, an attack/release envelope follower, normalisation by the
window's maximum, then either a "pulse" (low..high following the signal) or a "ramp" (low rising to high, faster
where the signal is strong -- Giffusion's audio-driven interpolation schedule).

``cli`` is ``python -m engine audio FILE --fps F ...``; it prints the ``curve`` dict as one JSON line.

Only numpy is imported at module level; librosa and soundfile are imported when audio is actually read.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np

from . import vocabulary as vocab

PARTS = vocab.names(vocab.AUDIO_PARTS)
FEATURES = vocab.names(vocab.AUDIO_FEATURES)
REDUCES = vocab.names(vocab.AUDIO_REDUCES)
SHAPES = vocab.names(vocab.AUDIO_SHAPES)

SR = 22050
HOP = 256
N_FFT = 2048
N_MELS = 128
NYQUIST = SR / 2.0
# Bump when the analysis or the cache layout changes: old cache entries then simply stop matching.
FORMAT_VERSION = 1
_EPS = 1e-6  # in frames: absorbs float noise in t * fps
_TINY = np.finfo(np.float64).tiny
READABLE = "use WAV, FLAC, OGG or MP3"


class AudioError(ValueError):
    """Bad input: a missing or unreadable file, or a bad parameter; the message says what to do."""


@dataclass(frozen=True)
class AnalysisParams:
    part: str = "full"
    margin: float = 1.0
    feature: str = "onset"
    reduce: str = "max"
    fmin: float = 0.0
    fmax: float = 0.0


@dataclass
class Track:
    """The analysis of one file: the per-hop signal (finite, >= 0) and events, all times in seconds."""

    duration: float
    hop_times: np.ndarray
    signal: np.ndarray
    onset_times: np.ndarray
    beat_times: np.ndarray
    tempo: float


# --- validation ---------------------------------------------------------------------------------------------------

def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise AudioError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise AudioError(f"{name} must be a finite number, got {value!r}")
    return v


def _check_fps(fps) -> float:
    v = _finite("fps", fps)
    if v <= 0:
        raise AudioError(f"fps must be greater than 0, got {fps!r} (e.g. 24, 25, 30 or 30/1.001)")
    return v


def _whole(value) -> bool:
    try:
        return not isinstance(value, bool) and int(value) == value and value >= 0
    except (TypeError, ValueError, OverflowError):
        return False


def _check_window(start, count) -> tuple[int, int | None]:
    if not _whole(start):
        raise AudioError(f"start must be a whole number of frames >= 0, got {start!r}")
    if count is not None and not _whole(count):
        raise AudioError(f"the frame count must be a whole number >= 0, got {count!r}")
    return int(start), (None if count is None else int(count))


def _one_of(name: str, value, known: tuple[str, ...]) -> None:
    if value not in known:
        raise AudioError(f"unknown {name} {value!r}; use one of: {', '.join(known)}")


def param_warnings(params: AnalysisParams) -> list[str]:
    """Check ``params`` (AudioError when unusable) and return warnings about values that were adjusted."""
    _one_of("part", params.part, PARTS)
    _one_of("feature", params.feature, FEATURES)
    _one_of("reduce", params.reduce, REDUCES)
    margin = _finite("margin", params.margin)
    if margin < 1.0:
        raise AudioError(f"margin must be at least 1.0 (1 = the parts add up to the mix), got {params.margin!r}")
    fmin, fmax = _finite("fmin", params.fmin), _finite("fmax", params.fmax)
    if fmin < 0 or fmax < 0:
        raise AudioError(f"fmin and fmax must be >= 0 Hz (fmax 0 = up to Nyquist), got {fmin:g} and {fmax:g}")
    if fmax > 0 and fmin >= fmax:
        raise AudioError(f"fmin ({fmin:g} Hz) must be below fmax ({fmax:g} Hz); use fmax 0 for no upper limit")
    if fmin >= NYQUIST:
        raise AudioError(f"fmin ({fmin:g} Hz) must be below the analysis Nyquist frequency ({NYQUIST:g} Hz)")
    if fmax > NYQUIST:
        return [f"fmax {fmax:g} Hz is above the analysis Nyquist frequency; using {NYQUIST:g} Hz"]
    return []


def _band(params: AnalysisParams) -> tuple[float, float]:
    fmax = params.fmax if 0 < params.fmax <= NYQUIST else NYQUIST
    return float(params.fmin), float(fmax)


# --- reading and analysis -----------------------------------------------------------------------------------------

# A sample rate outside this is a damaged header: resampling 1 Hz audio to SR would make 22,050 samples of each one.
_RATES = (1000, 1_000_000)
# Streaming writers (ffmpeg or sox into a pipe) can't go back to fill in the data size and leave a placeholder this
# large; a size below it that the file doesn't hold is a cut-off file.
_UNKNOWN_SIZE = 0x7FFF0000
_BLOCK = 1 << 20  # samples per read, whatever the header claims: memory follows the data, never the header


def _cut_short(header_log: str) -> str | None:
    """What libsndfile's reading of a WAV/AIFF header says is missing ("data : 44100 (should be 56)"), or None."""
    for m in re.finditer(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", header_log, re.M):
        promised, present = int(m.group(2)), int(m.group(3))
        if present < promised < _UNKNOWN_SIZE:
            return f"its header promises {promised} bytes of audio but the file holds {present}"
    return None


def _read_soundfile(path: str) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate through libsndfile. Its own errors propagate (the caller falls back to
    librosa); a file it opens but that is cut short or has an impossible header is an AudioError."""
    import soundfile as sf

    damaged = f"{path} is truncated or damaged: {{}}; export or copy the file again"
    with sf.SoundFile(path) as f:
        if not _RATES[0] <= f.samplerate <= _RATES[1]:
            raise AudioError(damaged.format(f"its header gives a sample rate of {f.samplerate} Hz "
                                            f"(audio files use {_RATES[0]}-{_RATES[1]} Hz)"))
        missing = _cut_short(f.extra_info)
        if missing:
            raise AudioError(damaged.format(missing))
        promised, parts = f.frames, []
        while len(data := f.read(max(1, _BLOCK // f.channels), dtype="float32", always_2d=True)):
            parts.append(data.mean(axis=1, dtype=np.float32))
        rate = f.samplerate
    got = sum(p.size for p in parts)
    # Compressed formats declare their length (FLAC STREAMINFO, an MP3's Xing header; without one, an estimate from the
    # file size that a tag or a varying bit rate can put a little off): a tenth of it missing is a cut-off file.
    # 2**62 and above: a stream of unknown length.
    if promised < 2**62 and got < promised - max(2304, promised // 10):
        raise AudioError(damaged.format(f"its header promises {promised} samples but only {got} could be read"))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), rate


def _read(path: str) -> np.ndarray:
    """Mono float32 samples at SR; AudioError for anything that can't be read."""
    try:
        y, sr = _read_soundfile(path)
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure is the user's file, not our bug
        reason = " ".join(str(e).split()) or type(e).__name__
        # soundfile lacks some containers (e.g. m4a); librosa can still decode them through audioread + ffmpeg.
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, _ = librosa.load(path, sr=SR, mono=True)
        except Exception:  # noqa: BLE001
            raise AudioError(f"can't read audio from {path}: {reason} (a truncated or damaged file, or a format "
                             f"this engine can't decode); {READABLE}") from None
        y = np.asarray(y, dtype=np.float32)
    else:
        if y.size and sr != SR:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    if y.size == 0:  # libsndfile reads a cut-off Ogg Vorbis file as 0 samples
        raise AudioError(f"can't read audio from {path}: no samples could be decoded from it (an empty recording, or "
                         f"a truncated or damaged file); {READABLE}")
    return np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)


def _band_rows(fmin: float, fmax: float) -> np.ndarray:
    import librosa

    # Filter k of librosa's mel filterbank peaks at mel_frequencies(n_mels + 2)[k + 1].
    centres = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=0.0, fmax=NYQUIST)[1:-1]
    rows = np.nonzero((centres >= fmin) & (centres <= fmax))[0]
    if rows.size == 0:
        rows = np.array([int(np.argmin(np.abs(centres - 0.5 * (fmin + fmax))))])
    return rows


def _analyse_samples(y: np.ndarray, params: AnalysisParams) -> Track:
    import librosa

    duration = y.size / SR
    if y.size < N_FFT:  # librosa warns on (and short signals defeat) a window longer than the signal
        y = np.pad(y, (0, N_FFT - y.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
                                             fmin=0.0, fmax=NYQUIST, power=2.0)
        if params.part != "full":
            harmonic, percussive = librosa.decompose.hpss(mel, margin=float(params.margin))
            mel = percussive if params.part == "percussive" else harmonic
        m = mel[_band_rows(*_band(params))].astype(np.float64)
        m = np.maximum(np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        onset_env = librosa.onset.onset_strength(S=librosa.power_to_db(m), sr=SR, hop_length=HOP, n_fft=N_FFT)
        onset_env = np.maximum(np.nan_to_num(onset_env, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        if params.feature == "onset":
            signal = onset_env
        elif params.feature == "rms":
            signal = np.sqrt(m.mean(axis=0))
        else:
            signal = {"max": np.max, "mean": np.mean, "median": np.median}[params.reduce](m, axis=0)
        if onset_env.max() > 0:
            onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SR, hop_length=HOP, units="time")
            tempo, beats = librosa.beat.beat_track(onset_envelope=onset_env, sr=SR, hop_length=HOP, units="time")
        else:  # silence: nothing to detect, and the trackers have nothing sensible to say
            onsets, tempo, beats = np.zeros(0), 0.0, np.zeros(0)
    signal = np.maximum(np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    # Hops the padding of a very short file added carry no real audio.
    n_hops = min(signal.size, 1 + int(duration * SR) // HOP)
    hop_times = librosa.frames_to_time(np.arange(n_hops), sr=SR, hop_length=HOP).astype(np.float64)
    tempo = float(np.atleast_1d(tempo)[0]) if np.size(tempo) else 0.0
    return Track(duration=float(duration), hop_times=hop_times, signal=signal[:n_hops],
                 onset_times=np.sort(np.asarray(onsets, dtype=np.float64)),
                 beat_times=np.sort(np.asarray(beats, dtype=np.float64)),
                 tempo=tempo if math.isfinite(tempo) else 0.0)


def _cache_path(cache_dir: str, path: str, st: os.stat_result, params: AnalysisParams) -> tuple[str, str]:
    key = json.dumps({"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "params": dataclasses.asdict(params), "version": FORMAT_VERSION,
                      "analysis": [SR, HOP, N_FFT, N_MELS]}, sort_keys=True)
    return os.path.join(cache_dir, hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz"), key


def _cache_load(file: str, key: str) -> Track | None:
    try:
        with np.load(file, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            track = Track(duration=float(z["duration"]), hop_times=np.asarray(z["hop_times"], dtype=np.float64),
                          signal=np.asarray(z["signal"], dtype=np.float64),
                          onset_times=np.asarray(z["onset_times"], dtype=np.float64),
                          beat_times=np.asarray(z["beat_times"], dtype=np.float64), tempo=float(z["tempo"]))
    except Exception:  # noqa: BLE001 - a missing, truncated or foreign file is just a cache miss
        return None
    if track.hop_times.shape != track.signal.shape or track.hop_times.ndim != 1:
        return None
    arrays = (track.hop_times, track.signal, track.onset_times, track.beat_times)
    if not all(np.isfinite(a).all() for a in arrays) or (track.signal < 0).any():
        return None
    return track


def _cache_store(file: str, key: str, track: Track) -> None:
    # Write to a temporary name and rename, so a crash or a concurrent reader never sees half a file.
    try:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(file), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, key=np.array(key), duration=track.duration, hop_times=track.hop_times,
                         signal=track.signal, onset_times=track.onset_times, beat_times=track.beat_times,
                         tempo=track.tempo)
            os.replace(tmp, file)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # the cache only saves time; an unwritable cache folder must not stop the analysis


def analyse(path: str, params: AnalysisParams = AnalysisParams(), cache_dir: str | None = None) -> Track:
    """Analyse an audio file (see the module docstring). With ``cache_dir``, the result is cached as .npz keyed by
    the absolute path, size, modification time, params and format version; a bad cache entry is recomputed."""
    param_warnings(params)
    apath = os.path.abspath(os.fspath(path))
    if not os.path.isfile(apath):
        raise AudioError(f"audio file not found: {apath}; check the path (relative paths start in {os.getcwd()})")
    cache = None
    if cache_dir:
        st = os.stat(apath)
        cache = _cache_path(os.path.abspath(cache_dir), apath, st, params)
        track = _cache_load(*cache)
        if track is not None:
            return track
    track = _analyse_samples(_read(apath), params)
    if cache is not None:
        _cache_store(cache[0], cache[1], track)
    return track


# --- frames -------------------------------------------------------------------------------------------------------

def time_to_frame(t: float, fps: float) -> int:
    """The audio frame an event at time ``t`` (seconds) lands on: floor(t * fps + 1e-6)."""
    return int(math.floor(_finite("time", t) * _check_fps(fps) + _EPS))


def audio_frames(duration: float, fps: float) -> int:
    """How many audio frames hold audio: those whose window starts before the end."""
    return max(0, int(math.ceil(float(duration) * _check_fps(fps) - _EPS)))


def frame_signal(track: Track, fps: float, start: int = 0, count: int | None = None) -> np.ndarray:
    """The per-frame signal of audio frames start..start+count-1 (count None: to the end of the audio)."""
    fps = _check_fps(fps)
    start, count = _check_window(start, count)
    n_audio = audio_frames(track.duration, fps)
    if count is None:
        count = max(0, n_audio - start)
    out = np.zeros(count, dtype=np.float64)
    live = min(count, max(0, n_audio - start))  # frames of the window that hold audio; the rest stay 0
    times, signal = np.asarray(track.hop_times, dtype=np.float64), np.asarray(track.signal, dtype=np.float64)
    if live == 0 or signal.size == 0:
        return out
    idx = np.floor(times * fps + _EPS).astype(np.int64) - start
    keep = (idx >= 0) & (idx < live)
    np.maximum.at(out, idx[keep], signal[keep])  # signal >= 0, so starting from 0 is the max's identity
    empty = np.bincount(idx[keep], minlength=live)[:live] == 0
    if empty.any():
        centres = (start + np.nonzero(empty)[0] + 0.5) / fps
        out[np.nonzero(empty)[0]] = np.interp(centres, times, signal)
    return out


def event_frames(times: np.ndarray, fps: float, start: int = 0, count: int | None = None) -> list[int]:
    """Sorted unique audio frames of events at ``times`` (s) inside frames start..start+count-1 (None: no end)."""
    fps = _check_fps(fps)
    start, count = _check_window(start, count)
    t = np.asarray(times, dtype=np.float64).ravel()
    t = t[np.isfinite(t)]
    frames = np.floor(t * fps + _EPS).astype(np.int64)
    keep = frames >= start
    if count is not None:
        keep &= frames < start + count
    return [int(f) for f in np.unique(frames[keep])]


# --- shaping ------------------------------------------------------------------------------------------------------

def _normalised(x: np.ndarray) -> np.ndarray:
    peak = float(x.max()) if x.size else 0.0
    if not peak > _TINY:
        return np.zeros_like(x)
    return np.clip(x / peak, 0.0, 1.0)


def shape(x: np.ndarray, kind: str = "pulse", low: float = 0.0, high: float = 1.0, attack: float = 0.0,
          release: float = 0.0, smooth: int = 0) -> np.ndarray:
    """Map a per-frame signal to keyframe values in [low, high] (negative or non-finite inputs count as 0).

    In order: a centred moving average over ``smooth`` frames (0 or 1: off); an envelope follower, starting at rest,
    that moves towards the input by 1 - exp(-1/attack) of the gap per frame when rising and 1 - exp(-1/release) when
    falling (0 = instant); normalisation by the maximum over the window (an all-zero window gives zeros); then
    "pulse" = low + (high - low) * x, or "ramp" = low + (high - low) * cumsum(x) / sum(x), which never goes back,
    ends exactly at ``high`` and stays at ``low`` when the window is silent.
    """
    _one_of("shape", kind, SHAPES)
    low, high = _finite("low", low), _finite("high", high)
    attack, release = _finite("attack", attack), _finite("release", release)
    if attack < 0 or release < 0:
        raise AudioError(f"attack and release are frame counts >= 0 (0 = instant), got {attack:g} and {release:g}")
    if not _whole(smooth):
        raise AudioError(f"smooth must be a whole number of frames >= 0 (0 = off), got {smooth!r}")
    smooth = int(smooth)
    x = np.asarray(x, dtype=np.float64).ravel()
    x = np.maximum(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    # Scale to [0, 1] first: smoothing and the follower are scale-free, and huge inputs then can't overflow.
    x = _normalised(x)
    if smooth > 1 and x.size:
        # Average over the samples actually under the window, so the ends aren't pulled towards 0.
        n, left = x.size, (smooth - 1) // 2
        sums = np.concatenate(([0.0], np.cumsum(x)))
        i = np.arange(n)
        lo, hi = np.maximum(i - left, 0), np.minimum(i - left + smooth, n)
        x = np.clip((sums[hi] - sums[lo]) / (hi - lo), 0.0, 1.0)
    if (attack > 0 or release > 0) and x.size:
        up = 1.0 - math.exp(-1.0 / attack) if attack > 0 else 1.0
        down = 1.0 - math.exp(-1.0 / release) if release > 0 else 1.0
        y, level = np.empty_like(x), 0.0
        for i, v in enumerate(x):
            level += (up if v > level else down) * (v - level)
            y[i] = level
        x = y
    x = _normalised(x)
    lo, hi = min(low, high), max(low, high)
    if kind == "pulse":
        return np.clip(low + (high - low) * x, lo, hi)
    total = float(x.sum())
    if not total > 0:
        return np.full(x.shape, low)
    out = np.clip(low + (high - low) * (np.cumsum(x) / total), lo, hi)
    out[-1] = high  # cumsum[-1] / total is 1 up to rounding; make the end exact
    return out


# --- curves and the command line ----------------------------------------------------------------------------------

def curve(path: str, fps: float, start: int = 0, count: int | None = None, params: AnalysisParams = AnalysisParams(),
          kind: str = "pulse", low: float = 0.0, high: float = 1.0, attack: float = 0.0, release: float = 0.0,
          smooth: int = 0, cache_dir: str | None = None) -> dict:
    """Per-frame values for audio frames start..start+count-1 (count None: to the end of the audio), with the onset
    and beat frames inside that window; a JSON-ready dict."""
    fps = _check_fps(fps)
    start, count = _check_window(start, count)
    _one_of("shape", kind, SHAPES)
    warns = param_warnings(params)
    track = analyse(path, params, cache_dir)
    signal = frame_signal(track, fps, start, count)
    values = shape(signal, kind, low, high, attack, release, smooth)
    n_audio = audio_frames(track.duration, fps)
    if not (track.signal.size and track.signal.max() > _TINY):
        warns.append("the audio is silent (no energy in the chosen part and band); the curve stays at low")
    elif start >= n_audio:
        warns.append(f"the window starts after the audio ends (the audio covers frames 0-{n_audio - 1} "
                     f"at {fps:g} fps); the curve stays at low")
    else:
        if not signal.max(initial=0.0) > _TINY:
            warns.append("the audio is silent in this window; the curve stays at low")
        if start + len(values) > n_audio:
            warns.append(f"the window runs past the end of the audio: frames from {n_audio} on have no audio")
    frames = len(values)
    return {"file": os.path.abspath(os.fspath(path)), "fps": fps, "start": start, "frames": frames,
            "duration": track.duration, "tempo": track.tempo, "values": [float(v) for v in values],
            "onsets": event_frames(track.onset_times, fps, start, frames),
            "beats": event_frames(track.beat_times, fps, start, frames), "warnings": warns}


def _default_cache() -> str | None:
    root = os.environ.get("KEYFRAME_DIFFUSION_CACHE")
    return os.path.join(root, "audio") if root else None


def cli(argv: list[str] | None = None) -> int:
    """`python -m engine audio FILE --fps F [...]`: prints the ``curve`` dict as one JSON line; bad input prints
    "error: ..." on stderr and returns 2."""
    parser = argparse.ArgumentParser(prog="python -m engine audio",
                                     description="Print per-frame values driven by an audio file, as JSON.")
    parser.add_argument("file", help="a WAV, FLAC, OGG or MP3 file")
    parser.add_argument("--fps", type=float, required=True, help="frames per second, e.g. 24 or 29.97")
    parser.add_argument("--start", type=int, default=0, help="first audio frame (default 0)")
    parser.add_argument("--frames", type=int, default=None, help="number of frames (default: to the end)")
    parser.add_argument("--part", default="full", help="full (default), percussive or harmonic")
    parser.add_argument("--margin", type=float, default=1.0, help="HPSS margin >= 1 (default 1)")
    parser.add_argument("--feature", default="onset", help="onset (default), rms or mel")
    parser.add_argument("--reduce", default="max", help="for --feature mel: max (default), mean or median")
    parser.add_argument("--fmin", type=float, default=0.0, help="lowest frequency in Hz (default 0)")
    parser.add_argument("--fmax", type=float, default=0.0, help="highest frequency in Hz (default 0 = Nyquist)")
    parser.add_argument("--shape", default="pulse", help="pulse (default) or ramp")
    parser.add_argument("--low", type=float, default=0.0, help="value for silence (default 0)")
    parser.add_argument("--high", type=float, default=1.0, help="value at the loudest frame (default 1)")
    parser.add_argument("--attack", type=float, default=0.0, help="rise time in frames (default 0 = instant)")
    parser.add_argument("--release", type=float, default=0.0, help="fall time in frames (default 0 = instant)")
    parser.add_argument("--smooth", type=int, default=0, help="moving average width in frames (default 0 = off)")
    parser.add_argument("--cache", default=None,
                        help="cache folder (default: $KEYFRAME_DIFFUSION_CACHE/audio when that is set, else none)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage and the error
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        params = AnalysisParams(part=args.part, margin=args.margin, feature=args.feature, reduce=args.reduce,
                                fmin=args.fmin, fmax=args.fmax)
        result = curve(args.file, args.fps, args.start, args.frames, params, kind=args.shape, low=args.low,
                       high=args.high, attack=args.attack, release=args.release, smooth=args.smooth,
                       cache_dir=args.cache if args.cache is not None else _default_cache())
    except AudioError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(json.dumps(result, allow_nan=False))
    return 0
