"""Schedules: Deforum keyframe strings against an independent oracle of Deforum's rules, F-curve keys, formatting,
simplification, every error case, prompt schedules, Giffusion transitions, and fuzzing. No bpy here."""

from __future__ import annotations

import itertools
import sys
import time
import json
import re

import numexpr
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import schedule as S
from engine.schedule import PromptKey, ScheduleError

pytestmark = pytest.mark.usefixtures("frozen_heap")  # tests/engine/conftest.py: CPU-time bounds

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------------------------
# the oracle: Deforum's in-between rules, restated with pandas and per-frame scalar numexpr


def deforum_oracle(text: str, max_frames: int, seed: int = 0) -> np.ndarray:
    keys = {}
    for m in re.finditer(r"(\d+)\s*:\s*\((.*?)\)\s*(?:,|$)", text, re.S):
        keys[int(m.group(1))] = m.group(2).strip()
    series = pd.Series([np.nan] * max_frames, dtype=float)
    names = {"max_f": max_frames - 1, "s": seed}
    value, is_number = None, True  # Deforum leaves these unset before frame 0's key; the schedules below start at a key
    for i in range(max_frames):
        if i in keys:
            value = keys[i]
            is_number = _plain(value)
            if is_number:
                series[i] = float(value)
        if not is_number:
            series[i] = float(numexpr.evaluate(value, local_dict={"t": i, **names}, global_dict={}))
    series[0] = series[series.first_valid_index()]
    series[max_frames - 1] = series[series.last_valid_index()]
    return series.interpolate(method="linear", limit_direction="both").to_numpy()


def _plain(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


REALISTIC = [
    ("0:(1.04)", 120, 0),
    ("0:(0), 30:(10), 60:(-5)", 90, 0),
    ("0:(0), 30:(10), 60:(-5)", 45, 0),
    ("0:(1.0025+0.002*sin(1.25*3.14*t/30))", 200, 0),
    ("0:(0), 10:(0.5*sin(2*3.14*t/24)), 40:(1), 60:(t/max_f)", 100, 0),
    ("0:(1.0), 10:(2.0), 20:(0.5*sin(2*3.14*t/24))", 48, 0),
    ("0:(1), 30:(cos(t/10)*0.5+1), 60:(2)", 61, 0),
    ("10:(1), 40:(3)", 60, 0),
    ("5:(sin(t/5))", 30, 0),
    ("0:(s%7), 20:(t%10), 35:(t//4)", 50, 1234),
    ("0:(0), 50:(max_f/2), 70:(max_f-t)", 90, 0),
    ("0: (1.0),\n 25: (1.5) ,\n\t50:(1.0)\n", 75, 0),
    ("0:(-0.5), 12:(.25), 24:(+3)", 30, 0),
    ("0:(where(t<30, t/30, 1))", 60, 0),
    ("0:(0), 30:(10), 60:(-5), 500:(3)", 90, 0),
    ("0:(abs(sin(t*0.1))**2*s/1000)", 40, 777),
    ("0:(0), 1:(1)", 1, 0),
    ("0:(0), 1:(1)", 2, 0),
    ("0:(t)", 1, 0),
    ("0:(t%3), 4:(2), 6:(t%3), 9:(max(t)), 12:(max(t)), 15:(t%3)", 20, 0),  # repeats are evaluated together
]


@pytest.mark.parametrize("text,max_frames,seed", REALISTIC)
def test_evaluate_matches_deforum_oracle(text, max_frames, seed):
    values, _ = S.evaluate(text, max_frames, seed)
    assert values.dtype == np.float64 and values.shape == (max_frames,)
    np.testing.assert_allclose(values, deforum_oracle(text, max_frames, seed), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text,max_frames,seed", REALISTIC)
def test_fcurve_keys_reproduce_evaluate(text, max_frames, seed):
    keys, _ = S.fcurve_keys(text, max_frames, seed)
    frames = [f for f, _ in keys]
    assert frames == sorted(set(frames)) and all(0 <= f < max_frames for f in frames)
    values, _ = S.evaluate(text, max_frames, seed)
    interpolated = np.interp(np.arange(max_frames), frames, [v for _, v in keys])  # constant extrapolation
    np.testing.assert_allclose(interpolated, values, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text,max_frames,seed", REALISTIC)
def test_format_parse_evaluate_round_trip(text, max_frames, seed):
    keys, _ = S.fcurve_keys(text, max_frames, seed)
    written = S.format_keyframes(keys)
    again, warns = S.evaluate(written, max_frames, seed)
    values, _ = S.evaluate(text, max_frames, seed)
    np.testing.assert_allclose(again, values, rtol=1e-6, atol=1e-6)
    simplified = S.simplify([f for f, _ in keys], [v for _, v in keys])
    compact, _ = S.evaluate(S.format_keyframes(simplified), max_frames, seed)
    np.testing.assert_allclose(compact, values, rtol=1e-5, atol=2e-6)


def test_expression_spans_and_numeric_in_betweens():
    values, warns = S.evaluate("0:(0), 10:(t), 20:(5)", 30)
    assert warns == []
    np.testing.assert_allclose(values[:10], np.linspace(0, 10, 11)[:10])  # numeric key in-betweens to t(10)
    np.testing.assert_allclose(values[10:20], np.arange(10, 20))  # the expression over its own span
    np.testing.assert_allclose(values[20:], 5)  # the last numeric key holds


def test_deforum_default_seed_schedule_with_frame_expressions():
    text = '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)'
    values, warns = S.evaluate(text, 10, seed=42)
    assert warns == []
    np.testing.assert_array_equal(values, [42, -1, -1, -1, -1, -1, -1, -1, 42, 42])
    keys = S.parse_keyframes(text)
    assert [k.frame_expr for k in keys] == [None, None, "max_f-2", "max_f-1"]
    assert [k.frame for k in keys] == [0, 1, -1, -1]
    assert [k.frame for k in S.parse_keyframes(text, max_frames=10)] == [0, 1, 7, 8]
    assert [k.frame for k in S.parse_keyframes("max_f/2:(1), 2*max_f:(3)", max_frames=10)] == [4, 18]


def test_parse_keyframes_syntax():
    keys = S.parse_keyframes(" 0:(max(1,2)*sin(t)) ,\n 10 : ( 2.5 ),")
    assert [(k.frame, k.value, k.number, k.position) for k in keys] == [
        (0, "max(1,2)*sin(t)", None, 1), (10, "2.5", 2.5, 24)]
    assert keys[1].value_position == 31
    assert S.parse_keyframes("0:(1e-3)")[0].number == 0.001  # every plain number is a number
    assert [k.number for k in S.parse_keyframes('0:((2)), 1:( "-1.5" ), 2:((1)+(2))')] == [2.0, -1.5, None]
    for name in ("nan", "inf"):  # not numbers, and not names numexpr knows
        with pytest.raises(ScheduleError, match=f"unknown name '{name}'"):
            S.parse_keyframes(f"0:({name})")


def test_vectorised_equals_per_frame_for_reductions():
    # numexpr's max/sum reduce; Deforum sees one frame at a time, so they must act per frame here too
    values, _ = S.evaluate("0:(max(t)), 5:(sum(t*2))", 10)
    np.testing.assert_array_equal(values, [0, 1, 2, 3, 4, 10, 12, 14, 16, 18])


def test_warnings():
    values, warns = S.evaluate("5:(1), 5:(2), 20:(3)", 10)
    np.testing.assert_array_equal(values, 2)
    assert any("frame 5 has another key" in w and "later one wins" in w for w in warns)
    assert any("frame 20 is beyond the last frame (9)" in w for w in warns)
    assert any("starts at frame 5" in w for w in warns)
    keys, warns = S.fcurve_keys("0:(1), 10:(2)", 5)
    assert keys == [(0, 1.0)] and any("beyond" in w for w in warns)
    _, warns = S.evaluate('0:(1), "max_f-20":(2)', 10)
    assert any("before frame 0" in w for w in warns)


@pytest.mark.parametrize("text,position,words", [
    ("", 0, "empty"),
    ("  \n ", 0, "empty"),
    ("a:(1)", 0, "unknown name 'a'"),
    ("-1:(2)", 0, "frame '-1' must be a whole number"),
    ("0:(1), 1.5:(2)", 7, "frame '1.5' must be a whole number"),
    ("0:(1), 10 (2)", 10, "expected ':' after frame 10"),
    ("0:1", 2, "expected '('"),
    ("0:(sin(t)", 2, "position 2: this '(' is never closed"),
    ("0:(1))", 5, "position 5: unexpected ')'"),
    ("0:()", 2, "empty value"),
    ("0:(   )", 2, "empty value"),
    ("0:(1) x 5:(2)", 6, "expected ',' between keys"),
    ("0:(1)\n10:(2)", 6, "expected ','"),
    ("0:(1),,5:(2)", 6, "expected a frame number"),
    ("0:(1), 5:(sin(x))", 14, "unknown name 'x'"),
    ("0:(1), 5:(2+*3)", 10, "cannot evaluate"),
    ("0:(max(1,2)*sin(t))", 3, "cannot evaluate"),
    ("0:(1/0)", 3, "divides by zero"),
    ("0:(0), 4:(log(t-6))", 10, "frame 4 is nan"),
    ("0:(1), 3:(1/(t-5))", 10, "frame 5 is inf"),
    ("0:(9**9**9)", 3, "too large"),
    ('"max_f-:(1)', 0, "never closed"),
    ("20:(1)", 0, "no key falls inside"),
])
def test_errors(text, position, words):
    with pytest.raises(ScheduleError) as info:
        S.evaluate(text, 10)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == position and err.text == text
    assert words in str(err) and f"position {position}" in str(err)


def test_unknown_name_lists_known_names():
    with pytest.raises(ScheduleError) as info:
        S.parse_keyframes("0:(sin(x))")
    message = str(info.value)
    assert info.value.position == 7
    for name in ("t", "max_f", "s", "sin", "where", "arctan2"):
        assert re.search(rf"\b{name}\b", message.split("known names:")[1])


def test_missing_numexpr_is_reported(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "numexpr":
            raise ImportError("no numexpr")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    np.testing.assert_array_equal(S.evaluate("0:(1), 2:(3)", 3)[0], [1, 2, 3])  # numbers need no numexpr
    with pytest.raises(ScheduleError, match=r"pip install numexpr==2\.14\.2"):
        S.evaluate("0:(t)", 3)


def test_bad_max_frames():
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ScheduleError):
            S.evaluate("0:(1)", bad)


# ------------------------------------------------------------------------------------------------------------------
# format and simplify


def test_format_keyframes():
    assert S.format_keyframes([(10, 2.5), (0, 1.0), (3, 1 / 3), (4, -0.0)]) == "0:(1), 3:(0.3333333), 4:(0), 10:(2.5)"
    assert S.format_keyframes([(0, 1e-7), (1, 123456789.0)]) == "0:(0.0000001), 1:(123456800)"
    assert S.format_keyframes([(0, np.float32(0.1))]) == "0:(0.1)"  # float32 values round-trip at 7 digits
    for bad in ([], [(0, float("nan"))], [(-1, 1.0)], [(1.5, 1.0)], [(2, 1.0), (2, 3.0)]):
        with pytest.raises(ScheduleError):
            S.format_keyframes(bad)


def test_simplify_drops_collinear_keys():
    frames = list(range(0, 101))
    values = [0.1 * f for f in range(0, 51)] + [5.0 - 0.2 * (f - 50) for f in range(51, 101)]
    assert S.simplify(frames, values) == [(0, 0.0), (50, 5.0), (100, values[-1])]
    assert S.simplify([3], [1.5]) == [(3, 1.5)]
    assert S.simplify([], []) == []
    assert S.simplify([0, 5], [1, 1]) == [(0, 1.0), (5, 1.0)]
    constant = S.simplify(range(5000), [7.0] * 5000)
    assert constant == [(0, 7.0), (4999, 7.0)]


def test_simplify_reproduces_a_curve():
    frames = np.arange(0, 300, 2)
    values = np.sin(frames / 60.0) * 3
    keys = S.simplify(frames, values, tolerance=1e-2)
    assert keys[0] == (0, 0.0) and keys[-1][0] == 298 and len(keys) < len(frames) / 3
    rebuilt = np.interp(frames, [f for f, _ in keys], [v for _, v in keys])
    assert np.max(np.abs(rebuilt - values)) <= 1e-2 + 1e-12


def _fits(frames, values, chosen, tol):
    rebuilt = np.interp(frames, [frames[i] for i in chosen], [values[i] for i in chosen])
    return np.max(np.abs(rebuilt - np.asarray(values))) <= tol


@FUZZ
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=8), st.sampled_from([0.0, 0.5, 1.0]))
def test_simplify_is_minimal(ints, tol):
    values = [float(v) for v in ints]
    frames = list(range(len(values)))
    keys = S.simplify(frames, values, tol)
    chosen = [f for f, _ in keys]
    assert chosen[0] == 0 and chosen[-1] == len(values) - 1
    assert _fits(frames, values, chosen, tol + 1e-9)
    inner = range(1, len(values) - 1)
    for size in range(0, len(keys) - 2):  # no smaller set of keys fits
        for subset in itertools.combinations(inner, size):
            assert not _fits(frames, values, sorted({0, len(values) - 1, *subset}), tol)


def test_simplify_rejects_bad_input():
    for frames, values in (([0, 1], [1.0]), ([1, 0], [1, 2]), ([0, 0.5], [1, 2]), ([0, 1], [1, float("inf")])):
        with pytest.raises(ScheduleError):
            S.simplify(frames, values)
    with pytest.raises(ScheduleError):
        S.simplify([0, 1], [0, 1], tolerance=-1)


# ------------------------------------------------------------------------------------------------------------------
# prompts


def test_deforum_prompts():
    source = '{"60": "a coconut --neg photo, realistic", "0": "tiny cute bunny", "30": " a cat "}'
    keys = S.parse_deforum_prompts(source)
    assert keys == [PromptKey(0, "tiny cute bunny", ""), PromptKey(30, "a cat", ""),
                    PromptKey(60, "a coconut", "photo, realistic")]
    assert S.parse_deforum_prompts(json.loads(source)) == keys
    # split at the first --neg (no spaces needed), later markers dropped, as Deforum's prepare_prompt does
    assert S.parse_deforum_prompts({0: "a", "5": "b--negc --neg d"}) == [PromptKey(0, "a", ""),
                                                                          PromptKey(5, "b", "c  d")]
    assert S.format_deforum_prompts(keys) == {"0": "tiny cute bunny", "30": "a cat",
                                              "60": "a coconut --neg photo, realistic"}
    assert S.parse_deforum_prompts(S.format_deforum_prompts(keys)) == keys


def test_deforum_prompt_frame_expressions():
    source = {"0": "a", "max_f/4-5": "b", "max_f-20": "c"}  # max_f is max_frames in Deforum's prompt keys
    assert [k.frame for k in S.parse_deforum_prompts(source, max_frames=100)] == [0, 20, 80]
    with pytest.raises(ScheduleError, match="max_frames"):
        S.parse_deforum_prompts(source)
    with pytest.raises(ScheduleError, match="unknown name 't'"):
        S.parse_deforum_prompts({"t": "a"}, max_frames=10)
    with pytest.raises(ScheduleError, match="frames start at 0"):
        S.parse_deforum_prompts({"max_f-20": "a"}, max_frames=10)


@pytest.mark.parametrize("source,words", [
    ('{"0": "a",\n "5" "b"}', "line 2, column 6"),
    ("[1, 2]", "JSON object"),
    ("{}", "empty"),
    ({"1.5": "a"}, "whole number"),
    ({"-1": "a"}, "whole number"),
    ({"": "a"}, "whole number"),
    ({"0": 3}, "must be text"),
    ({"0": None}, "must be text"),
    ({True: "a"}, "whole number"),
])
def test_deforum_prompt_errors(source, words):
    with pytest.raises(ScheduleError, match=re.escape(words)):
        S.parse_deforum_prompts(source)


def test_json_error_position():
    with pytest.raises(ScheduleError) as info:
        S.parse_deforum_prompts('{"0": "a",\n "5" "b"}')
    assert info.value.position == 16


def test_format_deforum_prompts_refuses_neg_in_text():
    with pytest.raises(ScheduleError):
        S.format_deforum_prompts([PromptKey(0, "a --neg b", "")])


def test_giffusion_prompts():
    text = "0: a red apple\n\n  60 : a green apple \r\n30:a pear"
    assert S.parse_giffusion_prompts(text) == [PromptKey(0, "a red apple", ""), PromptKey(30, "a pear", ""),
                                               PromptKey(60, "a green apple", "")]
    with pytest.raises(ScheduleError) as info:
        S.parse_giffusion_prompts("0: a\n  a pear\n")
    assert info.value.position == 7 and "line 2" in str(info.value)
    for bad in ("", "\n  \n", "x: y", "-1: y", "1.5: y"):
        with pytest.raises(ScheduleError):
            S.parse_giffusion_prompts(bad)


# ------------------------------------------------------------------------------------------------------------------
# Giffusion transitions


def test_parse_frequencies():
    assert S.parse_frequencies("1.0, 2.0") == [1.0, 2.0]
    assert S.parse_frequencies("  ") == [1.0]
    assert S.parse_frequencies("3") == [3.0]
    for text, position in (("1.0, x", 5), ("1,,2", 2), ("1, nan", 3), ("1,", 2)):
        with pytest.raises(ScheduleError) as info:
            S.parse_frequencies(text)
        assert info.value.position == position


def test_giffusion_sine_single_frequency():
    mix = S.giffusion_sine(31, [1.0])
    assert mix.shape == (31,) and mix[0] == 0 and np.all((mix >= 0) & (mix <= 1))
    assert int(np.argmax(mix)) in (15, 16) and mix.max() == pytest.approx(1.0)
    assert mix[-1] < 0.02  # back near the start prompt at the segment's end


def test_giffusion_sine_matches_definition_and_normalises():
    n = 40
    x = np.arange(n) / n
    raw = np.sin(np.pi * x * 1.0) ** 2 + np.sin(np.pi * x * 2.0) ** 2
    mix = S.giffusion_sine(n, [1.0, 2.0])
    np.testing.assert_allclose(mix, (raw - raw.min()) / np.ptp(raw))
    assert mix.min() == 0 and mix.max() == pytest.approx(1.0)


def test_giffusion_sine_degenerate():
    np.testing.assert_array_equal(S.giffusion_sine(1, [1.0]), [0.0])
    np.testing.assert_array_equal(S.giffusion_sine(4, [0.0]), np.zeros(4))
    assert not np.any(np.isnan(S.giffusion_sine(2, [2.0])))
    np.testing.assert_allclose(S.giffusion_sine(10, []), S.giffusion_sine(10, [1.0]))
    for bad in (0, -1):
        with pytest.raises(ScheduleError):
            S.giffusion_sine(bad, [1.0])


def test_giffusion_curve():
    curve = S.giffusion_curve("0:(0), 10:(1)", 5, 10, 20)
    np.testing.assert_allclose(curve, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(S.giffusion_curve("0:(0.5+0.5*sin(t))", 0, 3, 4), 0.5 + 0.5 * np.sin(np.arange(4)))
    with pytest.raises(ScheduleError, match="1.2 at frame 11"):
        S.giffusion_curve("0:(0), 10:(1), 20:(3)", 10, 15, 30)
    with pytest.raises(ScheduleError):
        S.giffusion_curve("0:(0)", 5, 3, 10)


# ------------------------------------------------------------------------------------------------------------------
# fuzzing: anything goes in, a result or a ScheduleError comes out

ALPHABET = "0123456789:(),. tsmax_fin+-*/%\n\"'"
TOKENS = st.sampled_from(["0", "10", "3", ":", "(", ")", ",", " ", "\n", "t", "max_f", "s", "sin(", "x", "1.5",
                          "*", "/", "%", "-", "**", '"', "max(", "where(", "1e9", "nan", "9**9", "<", "&", "~"])
SCHEDULE_TEXT = st.one_of(st.text(max_size=60), st.text(alphabet=ALPHABET, max_size=60),
                          st.lists(TOKENS, max_size=25).map("".join))


def _keyframes_ok(text: str, max_frames: int) -> None:
    try:
        keys = S.parse_keyframes(text)
        assert keys
    except ScheduleError as exc:
        assert exc.text == text and (exc.position is None or 0 <= exc.position <= len(text))
    try:
        values, warns = S.evaluate(text, max_frames, seed=5)
        assert values.shape == (max_frames,) and np.all(np.isfinite(values))
        keys, _ = S.fcurve_keys(text, max_frames, seed=5)
        np.testing.assert_allclose(np.interp(np.arange(max_frames), *zip(*keys)), values)
    except ScheduleError:
        pass


@FUZZ
@given(SCHEDULE_TEXT, st.integers(1, 40))
def test_fuzz_keyframes(text, max_frames):
    _keyframes_ok(text, max_frames)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 50), st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(["t", "sin(t)", "t%7", "max_f-t", "s", "(t", "x"]))),
    min_size=1, max_size=6), st.integers(1, 40))
def test_fuzz_structured_keyframes(pairs, max_frames):
    text = ", ".join(f"{f}:({v})" for f, v in pairs)
    _keyframes_ok(text, max_frames)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=6)
PROMPT_KEYS = st.one_of(st.text(max_size=10), st.text(alphabet="0123456789max_f-/+*() ", max_size=10),
                        st.integers(-5, 100))


@FUZZ
@given(st.one_of(st.text(max_size=60), st.dictionaries(PROMPT_KEYS, st.text(max_size=20) | JSON_VALUES, max_size=5),
                 JSON_VALUES.map(json.dumps)), st.none() | st.integers(1, 200))
def test_fuzz_deforum_prompts(source, max_frames):
    try:
        keys = S.parse_deforum_prompts(source, max_frames=max_frames)
        assert keys and [k.frame for k in keys] == sorted({k.frame for k in keys})
        assert all(k.frame >= 0 for k in keys)
    except ScheduleError:
        pass


@FUZZ
@given(st.one_of(st.text(max_size=80), st.text(alphabet="0123456789: abc\n\r-.", max_size=80)))
def test_fuzz_giffusion_prompts(text):
    try:
        keys = S.parse_giffusion_prompts(text)
        assert keys and [k.frame for k in keys] == sorted({k.frame for k in keys})
    except ScheduleError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)


@FUZZ
@given(st.one_of(st.text(max_size=30), st.text(alphabet="0123456789., -+e", max_size=30)))
def test_fuzz_frequencies(text):
    try:
        freqs = S.parse_frequencies(text)
    except ScheduleError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    assert freqs and all(np.isfinite(freqs))
    mix = S.giffusion_sine(7, freqs)
    assert mix.shape == (7,) and np.all((mix >= 0) & (mix <= 1))


# ------------------------------------------------------------------------------------------------------------------
# issue 22: nesting, frame ranges, division by zero, overflow


def _refused(text, max_frames=10, seed=0, **kw):
    """The ScheduleError evaluate raises for text, checked to name a position inside it, and the seconds it took."""
    start = time.thread_time()
    with pytest.raises(ScheduleError) as info:
        S.evaluate(text, max_frames, seed, **kw)
    elapsed = time.thread_time() - start
    err = info.value
    assert err.position is not None and 0 <= err.position <= len(text) and err.text == text
    assert str(err).startswith(f"position {err.position}: ")
    return err, elapsed


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("make,position", [
    (lambda d: "0:(" + "(" * d + "1" + ")" * d + ")", 3 + S.MAX_NESTING - 1),  # a value (read as a plain number)
    (lambda d: "0:(" + "(" * d + "t" + ")" * d + ")", 3 + S.MAX_NESTING - 1),  # an expression
    (lambda d: "0:(" + "(" * d, 3 + S.MAX_NESTING - 1),  # never closed
    (lambda d: "(" * d + "max_f" + ")" * d + ":(1)", S.MAX_NESTING),  # a frame expression
    (lambda d: "0:(1), 5:(sin(" + "(" * d + "t" + ")" * d + "))", 14 + S.MAX_NESTING - 2),
])
def test_deep_nesting_is_refused_at_once(depth, make, position):
    # 10,000 levels took 12 s (the value's parentheses were peeled one rescan at a time), blocking Blender's UI
    err, elapsed = _refused(make(depth))
    assert err.position == position and f"nested more than {S.MAX_NESTING} levels" in str(err)
    assert elapsed < 1.0


def test_nesting_up_to_the_limit_is_read():
    inner = S.MAX_NESTING - 1  # the key's own parentheses are the first level
    values, _ = S.evaluate("0:(" + "(" * inner + "2.5" + ")" * inner + ")", 3)
    np.testing.assert_array_equal(values, 2.5)
    assert S.parse_keyframes("0:(" + "(" * inner + "2.5" + ")" * inner + ")")[0].number == 2.5
    with pytest.raises(ScheduleError, match="nested more than"):
        S.parse_keyframes("0:(" + "(" * (inner + 1) + "2.5" + ")" * (inner + 1) + ")")


def test_unwrap_is_linear():
    # the layers of a value such as ((((1)))) are peeled against one table of matches, not by rescanning each layer
    # (10,000 layers: about 20 s before)
    start = time.thread_time()
    assert S._unwrap("(" * 10_000 + " '1.5' " + ")" * 10_000) == "1.5"
    assert S._unwrap("((1)+(2))") == "(1)+(2)" and S._unwrap("(1)+(2)") == "(1)+(2)"
    assert time.thread_time() - start < 1.0


def test_long_digit_runs_are_read_in_linear_time():
    # a frame of digits glued to a letter sent the frame regex into quadratic backtracking (100,000 digits: minutes)
    err, elapsed = _refused("1" * 100_000 + "x:(1)")
    assert err.position == 0 and elapsed < 1.0
    assert S._PLAIN_FRAME.fullmatch("12.5e3") and S._PLAIN_FRAME.fullmatch("7.") and not S._PLAIN_FRAME.fullmatch(".")


@pytest.mark.parametrize("text,position", [
    ("1" * 5000 + ":(1)", 0),  # 4,301+ digits: int() raised a bare ValueError without a position
    ("0:(1), " + "9" * 4301 + ":(2)", 7),
    ("0:(1), 1048575:(2)", 7),
    ("0:(1),\n  99999999999999999999:(2)", 9),
    ('0:(1), "' + "9" * 5000 + '":(2)', 8),
])
def test_frames_beyond_blenders_range_are_refused(text, position):
    err, _ = _refused(text)
    assert err.position == position and "out of range" in str(err) and "1048574" in str(err)
    assert len(str(err)) < 300  # the digits are cut in the message


def test_frame_range_edges():
    _, warns = S.evaluate("0:(1), 1048574:(2)", 10)
    assert any("beyond the last frame" in w for w in warns)
    assert [k.frame for k in S.parse_keyframes("0000:(1), 007:(2)")] == [0, 7]
    assert [k.frame for k in S.parse_keyframes("0" * 5000 + "3:(1)")] == [3]  # leading zeros are no magnitude
    err, _ = _refused('0:(1), "max_f*1e9":(2)')
    assert err.position == 8 and "beyond Blender's frame range" in str(err)
    err, _ = _refused('0:(1), "-max_f*1e9":(2)')
    assert "beyond Blender's frame range" in str(err)
    np.testing.assert_array_equal(S.evaluate("0:(1)", S.MAX_FRAME + 1)[0][-1:], [1.0])
    for bad in (S.MAX_FRAME + 2, 10**12):
        with pytest.raises(ScheduleError, match="1048575"):
            S.evaluate("0:(1)", bad)  # 10**12 frames tried to allocate 8 TB


def test_prompt_frames_beyond_blenders_range_are_refused():
    for source in ({"1" * 5000: "a"}, {10**5000: "a"}, {"1048575": "a"}, {1048575: "a"}):
        with pytest.raises(ScheduleError, match="out of range"):
            S.parse_deforum_prompts(source)
    with pytest.raises(ScheduleError, match="beyond Blender's frame range"):
        S.parse_deforum_prompts({"max_f*1e9": "a"}, max_frames=10)
    with pytest.raises(ScheduleError, match="must be text"):
        S.parse_deforum_prompts('{"0": ' + "1" * 5000 + "}")  # json's int() raised a bare ValueError
    assert S.parse_deforum_prompts({"1048574": "a"})[0].frame == 1048574
    with pytest.raises(ScheduleError) as info:
        S.parse_giffusion_prompts("0: a\n" + "7" * 5000 + ": b\n")
    assert info.value.position == 5 and "line 2" in str(info.value) and "out of range" in str(info.value)


@pytest.mark.parametrize("expr", ["t % 0", "t // 0", "t / 0", "(t + 1) % 0", "(t + 1) // 0", "(t + 1) / 0",
                                  "s % 0", "max_f // 0", "1 % 0", "1 // 0", "1 / 0", "t % (t - t)"])
def test_division_by_zero_is_always_an_error(expr):
    # t % 0 and t // 0 were a silent 0 (numexpr's integer arithmetic) while 1 % 0 was an error
    err, _ = _refused(f"0:(1), 4:({expr})", seed=3)
    message = str(err)
    assert err.position == 10 and "frame 4" in message and repr(expr) in message
    assert "divides by zero" in message or "division by zero" in message


def test_frame_expression_division_by_zero():
    for frame in ("max_f % 0", "max_f // 0", "s / 0"):
        err, _ = _refused(f'0:(1), "{frame}":(2)', seed=5)
        assert err.position == 8 and repr(frame) in str(err)


@pytest.mark.parametrize("text,seed,frame,shown", [
    ("0:(s**s**s)", 7, 0, "inf"),  # was -9223372036854775808, wrapped around in int64
    ("0:(1), 3:(t**t**t)", 0, 5, "inf"),  # 4**4**4 wrapped; 5**5**5 is inf in float64
    ("0:(exp(t * 100))", 0, 8, "inf"),
    ("0:(1e308 * 10)", 0, 0, "inf"),
    ("0:(t * 1e308 * 10)", 0, 1, "inf"),
    ("0:(1), 2:(log(t - 5))", 0, 2, "nan"),
    ("0:(sqrt(-1))", 0, 0, "nan"),
    ("0:(sqrt(t - 2))", 0, 0, "nan"),
    ("0:(arccosh(t - 5))", 0, 0, "nan"),
    ("0:(t / t)", 0, 0, "nan"),
    ("0:(t ** -1)", 0, 0, "inf"),
    ("0:(log(0))", 0, 0, "-inf"),
])
def test_every_non_finite_value_is_refused(text, seed, frame, shown):
    err, _ = _refused(text, seed=seed)
    expr = text.rsplit(":(", 1)[1][:-1]
    assert f"the value at frame {frame} is {shown} ({expr!r})" in str(err)
    assert err.position == text.rindex(expr)


def test_big_values_are_exact_not_wrapped():
    values, _ = S.evaluate("0:(2**t)", 1024)
    assert values[63] == 2.0**63 and values[64] == 2.0**64 and values[1023] == 2.0**1023  # int64 gave -2**63 from 63 on
    np.testing.assert_array_equal(S.evaluate("0:(s*s*s*s*s)", 2, seed=2**20)[0], 2.0**100)  # was 0
    np.testing.assert_array_equal(S.evaluate("0:(s % 7), 1:(-s // 7)", 2, seed=-1)[0], [6, 0])  # Python's rounding
    err, _ = _refused("0:(2**1024 * t)")  # a constant beyond 64 bits: said so, not a bare OverflowError
    assert "too large for 64 bits" in str(err)


def test_in_betweens_that_overflow_are_refused():
    err, _ = _refused("0:(1.7e308), 10:(-1.7e308)", 11)
    assert err.position == 13 and "the in-between at frame 1 is -inf" in str(err)
    assert "frames 0 (1.7e+308) and 10 (-1.7e+308)" in str(err)
    values, _ = S.evaluate("0:(1.7e308), 10:(1.6e308)", 11)  # same sign: fine
    assert np.all(np.isfinite(values))


def test_bitwise_operators_on_numbers_say_what_to_write():
    err, _ = _refused("0:(t & 1)")
    assert "bitwise operators" in str(err) and "t % 2" in str(err)
    np.testing.assert_array_equal(S.evaluate("0:((t > 2) & (t < 5))", 7)[0], [0, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(S.evaluate("0:(where(~(t > 2), 1, 0))", 4)[0], [1, 1, 1, 0])


def test_over_long_and_over_deep_expressions():
    err, elapsed = _refused("0:(" + "1." + "1" * 5000 + "x)")  # numexpr's safety regex is quadratic on this
    assert err.position == 3 and f"at most {S.MAX_EXPRESSION}" in str(err) and elapsed < 1.0
    err, _ = _refused("0:(" + "-" * 900 + "t)")  # operators nested past MAX_DEPTH
    assert "too long or nested too deeply" in str(err)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)  # as some libraries do on import: the refusal must not depend on it
    try:
        err, _ = _refused("0:(" + "-" * (S.MAX_DEPTH + 10) + "t)")
    finally:
        sys.setrecursionlimit(limit)
    assert "too long or nested too deeply" in str(err)
    np.testing.assert_array_equal(S.evaluate("0:(" + "-" * 150 + "t)", 3)[0], [0, 1, 2])
    long_ok = "+".join(["t"] * 100)
    np.testing.assert_array_equal(S.evaluate(f"0:({long_ok})", 3)[0], [0, 100, 200])


def test_seed_must_fit():
    with pytest.raises(ScheduleError, match="seed"):
        S.evaluate("0:(s)", 2, seed=2**70)
    with pytest.raises(ScheduleError, match="seed"):
        S.evaluate("0:(s)", 2, seed="x")


def test_different_expressions_are_bounded():
    # each different expression costs numexpr a compile: 11,000 of them took 12 s; repeats are evaluated together
    many = ", ".join(f"{i}:(t+{i})" for i in range(S.MAX_EXPRESSIONS + 1))
    err, elapsed = _refused(many, 1000)
    assert err.position == many.rindex("t+") and f"more than {S.MAX_EXPRESSIONS} different" in str(err)
    assert elapsed < 1.0
    frames = ", ".join(f'"max_f-{i}":(1)' for i in range(S.MAX_EXPRESSIONS + 1))
    err, _ = _refused(frames, 1000)
    assert f"more than {S.MAX_EXPRESSIONS} different" in str(err)
    values, _ = S.evaluate(", ".join(f"{i}:(t+{i % S.MAX_EXPRESSIONS})" for i in range(1000)), 1000)
    np.testing.assert_array_equal(values, np.arange(1000) + np.arange(1000) % S.MAX_EXPRESSIONS)
    start = time.thread_time()
    values, _ = S.evaluate(", ".join(f"{i}:(sin(t))" for i in range(10_000)), 10_000)  # one expression, 10,000 keys
    assert time.thread_time() - start < 1.0  # 10,000 numexpr calls took about 4.5 s
    np.testing.assert_allclose(values, np.sin(np.arange(10_000)))
