"""Hostile input, generated: thousands of mutated plans, plan files and audio files. Each one is either accepted or
refused with the project's own error (PlanError, AudioError) whose message says where: a field and frame, or the file
(with a line and column where there is one). None takes a second.

The counts (examples per run): mutated plans 1,000, damaged plan files 400, audio: random bytes 200, cut files 200,
damaged headers 200; 2,000 in all. `pytest tests/engine/test_hostile_inputs.py --hypothesis-show-statistics` prints
them.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import time

import numpy as np
import pytest
from common import make_plan
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine import audio
from engine import plan as plan_mod
from engine.audio import AudioError
from engine.plan import PlanError

pytestmark = pytest.mark.usefixtures("frozen_heap")  # tests/engine/conftest.py: CPU-time bounds

sf = pytest.importorskip("soundfile")

# A generous bound for one example: the defects these tests guard against took minutes (or a 7 TiB allocation).
# Measured in this thread's CPU time, so neither a busy machine (CI's two cores) nor another thread of the test process
# makes a fast input look slow (in the full suite a 0.1 s parse read 1.4 s of process time); hypothesis' explain phase
# is left out because its line tracing slows every call several times over.
SLOW = 1.0


def examples(count: int) -> settings:
    return settings(max_examples=count, deadline=None, database=None,
                    phases=[p for p in Phase if p is not Phase.explain],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _timed(work, bound: float = SLOW):
    start = time.thread_time()
    try:
        return work()
    finally:
        assert time.thread_time() - start < bound


# --- plans ----------------------------------------------------------------------------------------------------------

def _rich_plan(mode: str) -> dict:
    """A valid plan using every section: units, LoRAs, upscaling, motion, image, camera, control, masks, init."""
    plan = make_plan("frames", frames=3, mode=mode, controlnets=[{"model": "cn", "preprocessor": "NONE"}],
                     loras=[{"path": "style.safetensors", "scale": 0.8}], scheduler_kwargs={"timestep_spacing": "x"},
                     upscale={"model": "up", "steps": 5, "guidance": 7.0, "noise_level": 20, "output_dir": "up"},
                     fps=24.0, frame_start=1, frame_end=3, cadence=2, plane_distance=10.0, mask_blur=4)
    for record in plan["frames"]:
        record.update(control=[{"image": "c.png", "scale": 1.0, "start": 0.0, "end": 1.0}],
                      image={"noise": 0.02, "contrast": 1.0, "coherence_alpha": 1.0},
                      mask={"path": "m.png", "select": [1, 2], "invert": False}, guidance_rescale=0.2)
        if mode == "FEEDBACK":
            record.update(motion={"zoom": 1.02, "angle": 1.0, "fov": 40.0},
                          camera={"name": "Cam", "type": "PERSP", "lens": 50.0, "shift_x": 0.0,
                                  "matrix_world": [[1.0, 0.0, 0.0, 0.0]] * 4})
        else:
            record.update(init={"path": "in.mp4", "index": record["frame"] - 1})
    plan_mod.validate(plan)  # the base is valid: every failure below comes from its mutation
    return plan


BASES = {mode: _rich_plan(mode) for mode in ("FEEDBACK", "VIDEO")}
NASTY_NUMBERS = [0, -1, 1, 7, 2**31, 2**63, 2**64, 2**70, -(2**70), 10**30, 10**300, 1e308, -1e308, 1e-320, 0.5,
                 -0.0, math.nan, math.inf, -math.inf]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=12)
    | st.sampled_from(NASTY_NUMBERS),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)
MUTATIONS = st.one_of(
    st.tuples(st.just("set"), JSON),
    st.tuples(st.just("set"), st.sampled_from(NASTY_NUMBERS)),
    st.tuples(st.just("set"), st.text(max_size=20) | st.sampled_from(["", "\0", "../../etc", "DANCE", "é" * 40])),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("nest"), st.integers(1, 120)),
)
# Where an error may say it is: a field (settings..., frames[i] (frame n)...), the plan's marker or version.
PLACE = re.compile(r"^(settings\b|frames\b|the plan\b|not a Keyframe Diffusion plan: 'schema'|unknown plan version"
                   r"|the environment variable)")


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _mutate(plan: dict, path: tuple, mutation: tuple) -> dict:
    kind, arg = mutation
    if not path:
        return arg if kind == "set" else plan
    parent = plan
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if kind == "set":
        parent[key] = arg
    elif kind == "delete":
        del parent[key]
    else:
        for _ in range(arg):
            parent[key] = [parent[key]] if arg % 2 else {"x": parent[key]}
    return plan


def _check_plan(plan) -> None:
    try:
        valid = plan_mod.validate(plan)
    except PlanError as e:
        assert PLACE.search(str(e)), f"no field or place in: {e}"
        return
    # Accepted: it can be hashed and written back as strict JSON (no NaN, no 5,000-digit numbers).
    plan_mod.frame_hashes(valid["settings"], valid["frames"])
    json.dumps(valid, allow_nan=False)


@examples(1000)
@given(mode=st.sampled_from(sorted(BASES)), data=st.data())
def test_mutated_plans_are_accepted_or_refused_naming_the_field(mode, data):
    plan = copy.deepcopy(BASES[mode])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not isinstance(plan, (dict, list)):
            break
        paths = list(_paths(plan))
        path = paths[data.draw(st.integers(0, len(paths) - 1), label="where")]
        plan = _mutate(plan, path, data.draw(MUTATIONS, label="mutation"))
    _timed(lambda: _check_plan(plan))


# --- plan files -----------------------------------------------------------------------------------------------------

PLAN_BYTES = json.dumps(BASES["FEEDBACK"], indent=1).encode()
SNIPPETS = [b"[" * 5000, b"{\"a\":" * 3000, b"9" * 5000, b"-" + b"1" * 4400, b"\xff", b"\xc3", b"\xed\xa0\x80",
            b"NaN", b"Infinity", b"1e999", b"\x00", b"\"", b"{}", b"[]", b",", b"\\u0000", b"\n", b"\xef\xbb\xbf"]
BYTE_EDITS = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, len(PLAN_BYTES))),
    st.tuples(st.just("byte"), st.tuples(st.integers(0, len(PLAN_BYTES) - 1), st.integers(0, 255))),
    st.tuples(st.just("insert"), st.tuples(st.integers(0, len(PLAN_BYTES)), st.sampled_from(SNIPPETS))),
    st.tuples(st.just("number"), st.tuples(st.integers(0, 200), st.sampled_from([b"9" * 5000, b"1e999", b"-0", b"NaN",
                                                                                  b"1" * 30, b"0.5", b"true"]))),
)


def _edit(data: bytes, edit) -> bytes:
    kind, arg = edit
    if kind == "cut":
        return data[:arg]
    if kind == "byte":
        return data[:arg[0]] + bytes([arg[1]]) + data[arg[0] + 1:]
    if kind == "insert":
        return data[:arg[0]] + arg[1] + data[arg[0]:]
    numbers = list(re.finditer(rb"(?<=: )-?\d+(\.\d+)?(e[-+]?\d+)?", data))  # replace the nth number of the plan
    if not numbers:
        return data
    match = numbers[arg[0] % len(numbers)]
    return data[:match.start()] + arg[1] + data[match.end():]


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="kd-hostile-") as folder:
        yield folder


@examples(400)
@given(edits=st.lists(BYTE_EDITS, min_size=1, max_size=3) | st.binary(max_size=300).map(lambda b: [("raw", b)]))
def test_damaged_plan_files_are_refused_naming_the_file_or_field(scratch, edits):
    data = PLAN_BYTES
    for edit in edits:
        data = edit[1] if edit[0] == "raw" else _edit(data, edit)
    path = os.path.join(scratch, "plan.json")
    with open(path, "wb") as f:
        f.write(data)
    try:
        _timed(lambda: plan_mod.load(path))
    except PlanError as e:
        message = str(e)
        assert message.startswith(path) or PLACE.search(message), f"no file or field in: {message}"


# --- audio ----------------------------------------------------------------------------------------------------------

SR = 22050
FORMATS = {"pcm16.wav": "PCM_16", "float.wav": "FLOAT", "pcm16.aiff": "PCM_16", "pcm16.flac": "PCM_16",
           "vorbis.ogg": "VORBIS", "mpeg.mp3": "MPEG_LAYER_III"}


@pytest.fixture(scope="module")
def sounds(scratch):
    """A quarter second of a tone with clicks, in each format soundfile writes."""
    t = np.arange(SR // 4) / SR
    y = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.3 * (np.arange(t.size) % 2000 < 20)).astype(np.float32)
    files = {}
    for name, subtype in FORMATS.items():
        files[name] = os.path.join(scratch, name)
        sf.write(files[name], y, SR, subtype=subtype)
    data = {name: open(path, "rb").read() for name, path in files.items()}
    # The first file soundfile can't open imports librosa and audioread for the fallback, the first resampling soxr:
    # seconds, once, not the input's doing.
    aiff = bytearray(data["pcm16.aiff"])
    aiff[28:32] = b"\xff" * 4
    sf.write(os.path.join(scratch, "44k.wav"), np.zeros(4410, np.float32), 44100)
    for name, warm in (("warm.wav", b"not audio"), ("warm.aiff", bytes(aiff)),
                       ("44k.wav", open(os.path.join(scratch, "44k.wav"), "rb").read())):
        _check_audio(scratch, name, warm, bound=60.0)
    return data


def _check_audio(scratch: str, name: str, data: bytes, bound: float = SLOW) -> None:
    path = os.path.join(scratch, "hostile-" + name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        samples = _timed(lambda: audio._read(path), bound)
    except AudioError as e:
        assert path in str(e), f"the file is not named in: {e}"
    else:
        assert samples.size > 0 and samples.dtype == np.float32 and np.isfinite(samples).all()


@examples(200)
@given(name=st.sampled_from(sorted(FORMATS)), data=st.binary(max_size=4096))
def test_random_bytes_as_audio(scratch, sounds, name, data):
    _check_audio(scratch, name, data)


@examples(200)
@given(name=st.sampled_from(sorted(FORMATS)), keep=st.floats(0.0, 1.0))
def test_cut_audio_files(scratch, sounds, name, keep):
    data = sounds[name]
    _check_audio(scratch, name, data[:int(len(data) * keep)])


HEADER_VALUES = [0, 1, 2, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 44100, 8, 1024]


@examples(200)
@given(name=st.sampled_from(sorted(FORMATS)),
       edits=st.lists(st.tuples(st.integers(0, 63), st.sampled_from(HEADER_VALUES) | st.integers(0, 2**32 - 1)),
                      min_size=1, max_size=4))
def test_audio_with_damaged_headers(scratch, sounds, name, edits):
    data = bytearray(sounds[name])
    for offset, value in edits:  # a 32-bit field of the header (sizes, rates, channels) set to a hostile value
        data[offset:offset + 4] = value.to_bytes(4, "little")
    _check_audio(scratch, name, bytes(data))
