"""Property-based tests of the Deforum keyframe-string parser (engine/schedule.py): thousands of generated and mutated
schedules (random text from the schedule alphabet, token soups, mutations of real schedules, generated expressions,
deep nesting, huge numbers, unicode, empty parts). Every one is either accepted, with a finite value per frame, or
refused with a ScheduleError whose message starts with the position it names; none takes a second.

`pytest tests/engine/test_schedule_fuzz.py --hypothesis-show-statistics` prints the examples run and how many were
accepted or refused, and why."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from engine import schedule as S
from engine.schedule import ScheduleError

pytestmark = pytest.mark.usefixtures("frozen_heap")  # tests/engine/conftest.py: CPU-time bounds

# A generous bound for one parse + evaluation: the pathological inputs this guards against took 12 s to minutes.
# Measured in this thread's CPU time, so neither a busy machine (CI's two cores) nor another thread of the test process
# makes a fast input look slow (in the full suite a 0.1 s parse read 1.4 s of process time); hypothesis' explain phase
# is left out because its line tracing slows every call several times over.
SECONDS = 1.0


def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, database=None,
                    phases=[p for p in Phase if p is not Phase.explain],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


def _timed(fn, *args):
    start = time.thread_time()
    try:
        return fn(*args), None
    except ScheduleError as exc:
        return None, exc
    finally:
        elapsed = time.thread_time() - start
        assert elapsed < SECONDS, f"{fn.__name__} took {elapsed:.2f} s on {args[0][:80]!r}… ({len(args[0])} chars)"


def _kind(message: str) -> str:
    for words in ("nested more than", "out of range", "frame range", "unknown name", "finite number",
                  "divides by zero", "too far apart", "characters long", "too long or nested", "never closed",
                  "unexpected ')'", "empty", "expected", "no key falls", "must be a whole number", "not a real",
                  "not one number", "cannot evaluate", "unbalanced"):
        if words in message:
            return words
    return "other"


def _event(name: str) -> None:
    if currently_in_test_context():  # the statistics; the plain tests below call check() too
        event(name)


def _check_refusal(text: str, exc: ScheduleError) -> None:
    assert type(exc) is ScheduleError, f"{type(exc).__name__} is not the plain ScheduleError"
    assert exc.text == text
    assert exc.position is not None and 0 <= exc.position <= len(text), exc.position
    assert str(exc).startswith(f"position {exc.position}: "), str(exc)[:200]
    assert len(str(exc)) < 2000  # the offending text is cut, not echoed whole


def check(text: str, max_frames: int = 24, seed: int = 5) -> None:
    """The contract: accepted with finite values (and F-curve keys that reproduce them), or refused with a position."""
    keys, exc = _timed(S.parse_keyframes, text)
    if exc is not None:
        _check_refusal(text, exc)
    else:
        assert keys and all(isinstance(k, S.Key) for k in keys)
    result, exc = _timed(S.evaluate, text, max_frames, seed)
    if exc is not None:
        _check_refusal(text, exc)
        _event(f"refused: {_kind(str(exc))}")
        return
    values, warns = result
    assert values.shape == (max_frames,) and values.dtype == np.float64 and np.all(np.isfinite(values))
    assert all(isinstance(w, str) for w in warns)
    (fkeys, _), exc = _timed(S.fcurve_keys, text, max_frames, seed)
    assert exc is None
    frames = [f for f, _ in fkeys]
    np.testing.assert_allclose(np.interp(np.arange(max_frames), frames, [v for _, v in fkeys]), values)
    _event("accepted")


FRAMES = st.integers(1, 60)
SEEDS = st.integers(-2**40, 2**40)

# ------------------------------------------------------------------------------------------------------------------
# random text from the schedule alphabet, and token soups

ALPHABET = "0123456789:(),.  \n\t\"'tsmax_finwhercoqlgpbd+-*/%<>=&|~!eE[]{}"
TOKENS = ["0", "10", "3", "007", ":", "(", ")", ",", " ", "\n", "t", "max_f", "s", "sin(", "cos(", "log(", "sqrt(",
          "exp(", "where(", "max(", "sum(", "x", "1.5", ".5", "1e3", "1e400", "-", "+", "*", "/", "%", "//", "**",
          '"', "'", "<", ">", "==", "&", "|", "~", "0x1f", "nan", "inf", "9" * 30, "1" * 5000, "(" * 150, ")" * 150,
          "é", "１", "\u0301", "\x00", "True", "False", "__class__", ";", "[0]", "lambda", "t.real"]


@fuzz(2000)
@given(st.text(alphabet=ALPHABET, max_size=120), FRAMES, SEEDS)
def test_fuzz_alphabet(text, max_frames, seed):
    check(text, max_frames, seed)


@fuzz(1500)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join), FRAMES, SEEDS)
def test_fuzz_tokens(text, max_frames, seed):
    check(text, max_frames, seed)


@fuzz(600)
@given(st.text(max_size=80), FRAMES)
def test_fuzz_unicode(text, max_frames):
    check(text, max_frames)


# ------------------------------------------------------------------------------------------------------------------
# mutations of valid schedules

VALID = [
    "0:(1.0)",
    "0: (1.0), 10: (2.0), 20: (0.5)",
    '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)',
    "0:(1.0025+0.002*sin(1.25*3.14*t/30))",
    "0:(0), 10:(0.5*sin(2*3.14*t/24)), 40:(1), 60:(t/max_f)",
    "0:(where(t<30, t/30, 1))",
    "0:(max(t)), 5:(sum(t*2))",
    "0: (1.0),\n 25: (1.5) ,\n\t50:(1.0)\n",
    "0:(abs(sin(t*0.1))**2*s/1000)",
    "0:(s%7), 20:(t%10), 35:(t//4)",
    '0:((2)), 1:( "-1.5" ), 2:((1)+(2))',
    "max_f/2:(1), 2*max_f:(3)",
    "0:(-0.5), 12:(.25), 24:(+3), 30:(1e-3),",
    "0:((t > 2) & (t < 9)), 10:(~(t > 12))",
]


def _valid_schedules_are_valid():
    for text in VALID:
        values, _ = S.evaluate(text, 24, 5)
        assert np.all(np.isfinite(values))


def test_the_seeds_of_the_mutations_are_valid():
    _valid_schedules_are_valid()


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        end = draw(st.integers(at, min(len(text), at + 12)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "swap", "nest", "digits", "unicode",
                                   "empty", "zero"]))
        if op == "insert":
            text = text[:at] + draw(st.text(alphabet=ALPHABET, min_size=1, max_size=4)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[end:]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[end:]
        elif op == "duplicate":
            text = text[:end] + text[at:end] * draw(st.integers(1, 50)) + text[end:]
        elif op == "swap":
            text = text[at:] + text[:at]
        elif op == "nest":  # parentheses around a piece, or a deep run of them
            depth = draw(st.sampled_from([1, 2, 99, 100, 101, 5000, 100_000]))
            text = text[:at] + "(" * depth + text[at:end] + ")" * draw(st.sampled_from([0, depth])) + text[end:]
        elif op == "digits":  # huge numbers where frames or values stand
            digits = draw(st.sampled_from("0123456789")) * draw(st.sampled_from([7, 8, 20, 309, 4300, 4301, 20_000]))
            text = text[:at] + digits + text[end:]
        elif op == "unicode":
            text = text[:at] + draw(st.text(min_size=1, max_size=3)) + text[at:]
        elif op == "empty":  # empty parts: values, frames, keys
            text = text[:at] + draw(st.sampled_from(["()", ":()", ",,", ", ,", ":", "''", '""', "0:( )"])) + text[end:]
        else:  # division by zero and overflow slipped into an expression
            text = text[:at] + draw(st.sampled_from(["%0", "//0", "/0", "**s**s", "*1e308*10", "**t**t"])) + text[at:]
    return text


@fuzz(2000)
@given(mutated(), FRAMES, SEEDS)
def test_fuzz_mutations(text, max_frames, seed):
    check(text, max_frames, seed)


# ------------------------------------------------------------------------------------------------------------------
# generated schedules: keys with numbers and expressions that may divide by zero, overflow or leave the real line

NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["0", "1e308", "-1.7e308", "2**62", "2**63", "2**70", "9**9**9", "1e-320"]))
ATOMS = st.one_of(st.sampled_from(["t", "max_f", "s", "(t+1)", "(t-3)"]), NUMBERS)


def _combine(inner):
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%", "//", "**"]), inner).map(
            lambda p: f"({p[0]}{p[1]}{p[2]})"),
        st.tuples(st.sampled_from(["sin", "cos", "tan", "abs", "sqrt", "log", "log10", "exp", "arccosh", "arcsin",
                                   "floor", "ceil", "tanh"]), inner).map(lambda p: f"{p[0]}({p[1]})"),
        st.tuples(st.sampled_from(["<", ">", "==", "<="]), inner, inner, inner).map(
            lambda p: f"where({p[1]}{p[0]}{p[2]}, {p[3]}, {p[1]})"),
        inner.map(lambda e: f"-{e}"),
    )


EXPRESSIONS = st.recursive(ATOMS, _combine, max_leaves=8)
VALUES = st.one_of(NUMBERS, EXPRESSIONS)
FRAME_TEXT = st.one_of(st.integers(0, 80).map(str), st.sampled_from(['"max_f-1"', "max_f/2", "'s%3'", "max_f*1e9",
                                                                       "1048574", "1048575", "9" * 5000]))


@fuzz(1000)
@given(st.lists(st.tuples(FRAME_TEXT, VALUES), min_size=1, max_size=5), FRAMES, SEEDS)
def test_fuzz_generated_schedules(keys, max_frames, seed):
    text = ", ".join(f"{frame}:({value})" for frame, value in keys)
    check(text, max_frames, seed)


# ------------------------------------------------------------------------------------------------------------------
# extremes: deep nesting, huge numbers, long runs, at sizes no hand-written example reaches


@st.composite
def extreme(draw):
    unit = draw(st.sampled_from(["(", ")", "1", "9", ".1", "t+", "-", "((", "'", '"', " ", "\n", ",", "0:(1),",
                                 "max_f", "é", "e9", "sin(", "1:(t),", "2:(t+1),"]))
    # whole keys cost tens of microseconds each (linear): 100,000 of them would be 600,000 characters
    sizes = [1, 100, 501, 4301] if ":(" in unit else [1, 100, 101, 999, 1000, 1001, 4301, 10_000, 100_000]
    n = draw(st.sampled_from(sizes))
    where = draw(st.sampled_from(["{}", "0:({})", "0:(1), {}:(2)", '"{}":(1)', "{}:(1)", "0:(t*{})", "0:({}1)"]))
    return where.replace("{}", unit * n)


@fuzz(400)
@given(extreme(), FRAMES)
def test_fuzz_extremes(text, max_frames):
    check(text, max_frames)


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deep_nesting_everywhere_is_fast(depth):
    for text in ("0:(" + "(" * depth + "1" + ")" * depth + ")", "(" * depth + ":(1)", "0:(" + "(" * depth,
                 '"' + "(" * depth + '":(1)', "0:(1)" + ")" * depth, "0:(" + "(1)" * depth + ")"):
        check(text)


# ------------------------------------------------------------------------------------------------------------------
# prompt schedules: frame keys of any size


@fuzz(300)
@given(st.one_of(st.integers(0, 5000).map(lambda n: "1" * n), st.text(alphabet="0123456789 -+.e", max_size=30)),
       st.text(max_size=10))
def test_fuzz_prompt_frames(frame, prompt):
    for call, source in ((S.parse_giffusion_prompts, f"{frame}: {prompt}\n"),
                         (S.parse_deforum_prompts, {frame: prompt}),
                         (S.parse_deforum_prompts, f'{{"0": {frame or 0}}}' if frame.isdigit() else "{}")):
        start = time.thread_time()
        try:
            keys = call(source)
        except ScheduleError:
            pass
        else:
            assert all(0 <= k.frame <= S.MAX_FRAME for k in keys)
        assert time.thread_time() - start < SECONDS
