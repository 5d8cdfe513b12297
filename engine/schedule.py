"""Deforum and Giffusion schedules: parse them, evaluate them per frame, and write them back.

Pure Python + numpy; numexpr (pinned: ``pip install numexpr==2.14.2``) is imported only when an expression has to be
evaluated, so numeric schedules work without it. Nothing here ever calls ``eval``/``exec``: expressions go to
numexpr, and only after every name in them has been checked against a fixed list.

Deforum keyframe strings
------------------------
``0:(1.0), 10:(2.0), 20:(0.5*sin(2*3.14*t/24))``: keys ``FRAME:(VALUE)`` separated by commas. Frames count from 0;
an animation of ``max_frames`` frames has frames ``0 .. max_frames-1``.

* VALUE is a plain number (anything Python's ``float()`` accepts after stripping whitespace and any parentheses or
  quotes around the whole value, except nan/inf) or a numexpr expression of ``t`` (the frame, an integer), ``max_f`` (``max_frames - 1``) and ``s`` (the seed).
* A numeric key sets its frame; frames between numeric keys are linear in-betweens; the first value holds before
  the first key and the last value holds after the last key.
* An expression key is evaluated at every frame from its key up to (not including) the next key, or to the end.
  The frames between a numeric key and a following expression key are linear in-betweens towards the expression's
  value at that key.
* FRAME is a whole number, or (as Deforum allows, e.g. in its default seed schedule
  ``0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)``) an expression of ``max_f`` and ``s``, bare or in quotes. Its
  value is truncated towards zero like Deforum's ``int()``.
* Whitespace and newlines may appear anywhere between tokens; newlines inside a value are read as spaces (Deforum
  hands them to numexpr, which rejects them). A trailing comma is allowed.

Errors are :class:`ScheduleError` (a ``ValueError``) with ``text``, ``position`` (0-based character offset, or None)
and a message ``position N: what is wrong, near "excerpt"``. The decisions, case by case:

* empty or whitespace-only text: error.
* a frame that is not a whole number >= 0 (``-1:(2)``, ``1.5:(2)``): error at the frame. ``a:(1)`` is read as a frame
  expression and fails on the unknown name ``a``.
* a missing ``:`` or ``(``, an empty value ``0:()``, a ``(`` that is never closed, an unexpected ``)``: error.
* anything between keys other than a comma (``0:(1) x 5:(2)``): error. Deforum silently skips such junk; we don't,
  because a typo would otherwise vanish from the animation unnoticed.
* the same frame twice: the later key wins (Deforum keeps keys in a dict) and a warning says so.
* a key at or beyond ``max_frames`` (or a frame expression that comes out negative): ignored with a warning, as
  Deforum never reaches it. If no key is left, that is an error.
* a schedule that doesn't start at frame 0: not an error; the first key's value holds before it, with a warning.
  (Deforum's own code means to fill frame 0 with the first value; in fact it crashes on such a schedule.)
* an unknown name in an expression (``0:(sin(x))``): error naming the name, its position in the whole text, and the
  known names (``t``, ``max_f``, ``s``, ``True``, ``False`` and numexpr's functions).
* any other numexpr failure (syntax, types, ``max(1,2)``: numexpr's ``max``/``min``/``sum``/``prod`` are reductions
  of one argument): error at the key's value. A non-finite result (``1/0``, ``t % 0``, ``t // 0``, ``0/0``,
  ``log(-1)``, ``sqrt(-1)``, ``s**s**s``), or an in-between of two keys that overflows float64: error naming the frame
  and the expression.
* parentheses nested more than ``MAX_NESTING`` (100) levels deep: error at the first '(' too deep. Python's parser,
  which numexpr uses, stops at 200; the check keeps parsing linear however deep the text goes.
* operators nested more than ``MAX_DEPTH`` (200) deep, such as 900 minus signs in a row: "too long or nested too
  deeply", at that fixed depth rather than wherever the process's recursion limit stands (libraries raise it).
* a frame beyond ``MAX_FRAME`` (1048574, Blender's last frame), with any number of digits, or a frame expression
  beyond -1048574..1048574: error at the frame. ``max_frames`` lies within 1..1048575.
* an expression longer than ``MAX_EXPRESSION`` (1000) characters, or more than ``MAX_EXPRESSIONS`` (500) different
  expressions in one schedule: error (numexpr's compiler and safety check slow down quadratically in the length, and
  it compiles each different expression). Repeats of one expression are evaluated together, in one call.

Expressions are evaluated once per different expression, vectorised over the spans of its keys, in float64: ``t``,
``max_f`` and ``s`` are float64 (exact for any frame and any seed up to 2**53). Deforum passes them as integers, and
numexpr's int64 arithmetic wraps around (``2**t`` is -2**63 from t = 63 on) and gives 0 for ``t % 0`` and
``t // 0``; here those become inf or nan and are refused, as ``1 % 0`` (folded by Python) always was. The one cost:
bitwise operators (``&``, ``|``, ``~``, ``<<``, ``>>``) work on comparisons only (``(t > 5) & (t < 9)``), not on
numbers. A constant result is broadcast. Reductions would see the whole span instead of one frame, so an expression
that uses one is evaluated frame by frame instead, as Deforum does.

One rule is deliberately not Deforum's: Deforum counts a value as a number only if it matches ``[+-]?digits[.digits]``
exactly, so ``1e-3`` or ``( 1.0 )`` (spaces inside) are "expressions" there and hold over their span instead of
being linear in-betweens. We read every plain number as a number.

Prompt schedules
----------------
Deforum: JSON ``{"0": "a corgi", "30": "a lion --neg blurry"}``. The prompt is split at the first ``--neg`` (as
Deforum does, no spaces needed); any later ``--neg`` markers are dropped; both sides are stripped. Frame keys are
whole numbers, or expressions of ``max_f`` (``max_frames - 1``) when ``max_frames`` is given. Errors: text that is not
JSON (with line and column), a JSON value that is not an object, an empty schedule, a frame key that is not a whole
number >= 0, a prompt that is not a string. Two keys for one frame: the later wins.

Giffusion: one ``FRAME: prompt`` per line; blank lines are skipped; any other line is an error naming its line
number. Giffusion's own regex silently skips such lines and drops the last character of an unterminated last line;
we don't.

Giffusion transitions
---------------------
``giffusion_sine``: over a segment of ``n`` frames (both keys included), ``x = arange(n) / n`` and the mix is
``sum(sin(pi * x * f) ** 2 for f in frequencies)``, min-max normalised, so frequency 1 goes to the end prompt at
mid-segment and back. A flat sum (one frame, or frequencies that cancel) is all zeros (the start prompt) where
Giffusion would divide by zero. ``giffusion_curve``: a keyframe string evaluated at absolute frames (Giffusion reads
numbers only; we accept expressions too); every value must lie in [0, 1].
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

NUMEXPR_REQUIREMENT = "numexpr==2.14.2"

# Names an expression may use besides numexpr's functions.
VALUE_NAMES = ("t", "max_f", "s")
FRAME_NAMES = ("max_f", "s")
PROMPT_FRAME_NAMES = ("max_f",)
_CONSTANTS = ("True", "False")
# numexpr reduces these over the whole array, so vectorised and per-frame evaluation differ.
_REDUCTIONS = frozenset({"sum", "prod", "min", "max"})

_NEG = "--neg"

# Blender's frames lie within -MAX_FRAME..MAX_FRAME (its MAXFRAME); a schedule's frames within 0..MAX_FRAME.
MAX_FRAME = 1048574
# Parentheses deeper than this are refused: Python's parser (which numexpr uses) stops at 200 anyway, and no real
# schedule comes near it.
MAX_NESTING = 100
# Longer expressions are refused before numexpr sees them: its safety check is a regex that backtracks
# quadratically on long runs of digits after a '.' (4,000 digits: 1.7 s), and its compiler recurses once per
# operator (a few hundred terms exhaust Python's stack anyway).
MAX_EXPRESSION = 1000
# numexpr compiles each different expression (about a millisecond): a schedule of 11,000 different expressions took
# 12 s. Repeats of one expression cost nothing extra (they are evaluated together).
MAX_EXPRESSIONS = 500


class ScheduleError(ValueError):
    """A schedule that can't be read; the message names the position (or frame, or line) and what is wrong."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.position = position


class ExpressionsUnavailable(ScheduleError):
    """This Python lacks numexpr; numeric schedules still work (Blender evaluates expressions in the engine's
    Python then)."""


@dataclass(frozen=True)
class Key:
    """One ``FRAME:(VALUE)`` key, as written.

    ``position`` is where the key starts in the text, ``value_position`` where its (stripped) value starts.
    ``number`` is the value when it is a plain number, None for an expression. ``frame_expr`` is the frame's
    expression text when the frame is one; ``frame`` is then its value, or -1 if no ``max_frames`` was given to
    resolve it.
    """

    frame: int
    value: str
    position: int
    number: float | None
    value_position: int = -1
    frame_expr: str | None = None


@dataclass(frozen=True)
class PromptKey:
    frame: int
    text: str
    negative: str


# --------------------------------------------------------------------------------------------------------------------
# errors and small helpers


def _excerpt(text: str, position: int, width: int = 14) -> str:
    start = max(0, position - width)
    end = min(len(text), position + width)
    piece = text[start:end].replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text) else "")


def _short(value: str, limit: int = 60) -> str:
    """repr of value, cut to limit characters so a message stays readable."""
    return repr(value if len(value) <= limit else value[:limit - 1] + "…")


def _error(text: str, position: int, message: str) -> ScheduleError:
    position = max(0, min(position, len(text)))
    return ScheduleError(f'position {position}: {message}, near "{_excerpt(text, position)}"', text, position)


def _numexpr() -> Any:
    try:
        import numexpr
    except ImportError as exc:  # only expressions need it; numeric schedules never get here
        raise ExpressionsUnavailable(
            f"numexpr is not installed, and schedule expressions need it: pip install {NUMEXPR_REQUIREMENT}"
        ) from exc
    return numexpr


def _function_names() -> tuple[str, ...]:
    return _sorted_functions(_numexpr())


@functools.lru_cache(maxsize=4)  # per module object: checked once per schedule, not once per key
def _sorted_functions(numexpr: Any) -> tuple[str, ...]:
    return tuple(sorted(numexpr.expressions.functions))


@functools.lru_cache(maxsize=16)
def _known_names(allowed: tuple[str, ...], functions: tuple[str, ...]) -> frozenset[str]:
    return frozenset(allowed) | frozenset(_CONSTANTS) | frozenset(functions)


# The scanners step over runs of characters with regexes (C speed) rather than one Python iteration per character, so
# a 100,000-character schedule is read in milliseconds. re's \s is str.isspace().
_WS = re.compile(r"\s*")
_DIGITS = re.compile(r"[0-9]*")  # ASCII only, as _is_digit
_PARENS = re.compile(r"[()]")
_FRAME_STOPS = re.compile(r"[():,]")


def _skip_ws(text: str, i: int) -> int:
    return _WS.match(text, i).end()


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"  # ASCII only: str.isdigit() also accepts superscripts that int() rejects


def _plain_number(text: str) -> float | None:
    """The value of a plain number (what float() reads), or None for anything else, nan and inf included."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _partners(value: str) -> dict[int, int]:
    """Each matched '(' index -> its ')' index, in one pass."""
    stack: list[int] = []
    out: dict[int, int] = {}
    for match in _PARENS.finditer(value):
        i = match.start()
        if value[i] == "(":
            stack.append(i)
        elif stack:
            out[stack.pop()] = i
    return out


def _unwrap(value: str) -> str:
    """value without parentheses or quotes around all of it: Deforum strips those before its number check.

    Linear in the length: the layers are peeled by index against one table of matching parentheses (rescanning
    after each layer was quadratic in the depth).
    """
    lo, hi = 0, len(value)
    partners: dict[int, int] | None = None
    while True:
        while lo < hi and value[lo].isspace():
            lo += 1
        while hi > lo and value[hi - 1].isspace():
            hi -= 1
        if hi - lo < 2:
            break
        first, last = value[lo], value[hi - 1]
        if first == last and first in "\"'":
            lo, hi = lo + 1, hi - 1
            continue
        if first == "(" and last == ")":
            partners = _partners(value) if partners is None else partners
            if partners.get(lo) == hi - 1:  # the '(' at lo closes at the very end: one layer around everything
                lo, hi = lo + 1, hi - 1
                continue
        break
    return value[lo:hi]


# Number literals swallow glued letters (1e5, 0x10, 2t) so those letters are never mistaken for names; numexpr judges
# the literal. Quoted strings are skipped.
_TOKEN = re.compile(r"(?P<num>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\w*)|(?P<name>[^\W\d]\w*)|"
                    r"(?P<str>'[^']*'|\"[^\"]*\")")


def _names(expr: str) -> list[tuple[str, int]]:
    return [(m.group("name"), m.start()) for m in _TOKEN.finditer(expr) if m.group("name")]


def _check_names(text: str, expr: str, offset: int, allowed: Sequence[str], what: str) -> set[str]:
    """Every name in expr must be allowed or a numexpr function, and expr not over-long; returns the names used.
    Every expression passes here before it is evaluated."""
    if len(expr) > MAX_EXPRESSION:
        raise _error(text, offset, f"{what} is {len(expr)} characters long; an expression may have at most "
                                   f"{MAX_EXPRESSION}")
    found = _names(expr)
    if not found:
        return set()
    functions = _function_names()
    known = _known_names(tuple(allowed), functions)
    for name, at in found:
        if name not in known:
            listing = ", ".join(allowed) + ", " + ", ".join(_CONSTANTS) + " and the functions " + ", ".join(functions)
            raise _error(text, offset + at, f"unknown name {_short(name)} in {what}; known names: {listing}")
    return {name for name, _ in found}


# numexpr folds constant subexpressions with Python ints, so 9**9**9 would compute a 370-million-digit number (and
# hang Blender) before failing on "too large for C long". Anything near this many bits is refused up front.
_MAX_CONSTANT_BITS = 4096


def _int_bits(node: ast.AST, bits: dict[int, float | None]) -> float | None:
    """An upper bound on the bit length of a constant integer subexpression; None if it is not one. Its children's
    bounds are already in bits (by id), so a whole tree costs one pass, however deep."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            return float(max(1, abs(node.value).bit_length()))
        return None
    if isinstance(node, ast.UnaryOp):
        return bits.get(id(node.operand))
    if isinstance(node, ast.BinOp):
        a, b = bits.get(id(node.left)), bits.get(id(node.right))
        if a is None or b is None:
            return None
        op = node.op
        if isinstance(op, (ast.Add, ast.Sub, ast.BitOr, ast.BitAnd, ast.BitXor)):
            return max(a, b) + 1
        if isinstance(op, ast.Mult):
            return a + b
        if isinstance(op, ast.Pow):
            return a * 2.0 ** min(b, 1024.0)
        if isinstance(op, ast.LShift):
            return a + 2.0 ** min(b, 1024.0)
        if isinstance(op, (ast.FloorDiv, ast.Mod, ast.RShift)):
            return a
        return None  # true division gives a float
    return None


class _ConstantTooLarge(OverflowError):
    pass


class _TooDeep(RecursionError):
    """Operators nested deeper than MAX_DEPTH (e.g. 900 unary minus signs): refused at a fixed depth, not wherever
    the process's recursion limit happens to stand (a library may raise it)."""


MAX_DEPTH = 200  # operator nesting of one expression; parentheses have their own limit (MAX_NESTING)


@functools.lru_cache(maxsize=256)  # per-frame evaluation (reductions) checks one expression once per frame
def _guard_constants(expr: str) -> None:
    try:
        with warnings.catch_warnings():  # SyntaxWarning for 1if and the like; numexpr judges the text
            warnings.simplefilter("ignore")
            tree = ast.parse(expr, mode="eval")  # parsing only; nothing is evaluated
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return  # numexpr compiles it the same way and reports it
    bits: dict[int, float | None] = {}
    depth: dict[int, int] = {}
    for node in reversed(list(ast.walk(tree))):  # breadth-first, reversed: children before their parents
        depth[id(node)] = 1 + max((depth[id(child)] for child in ast.iter_child_nodes(node)), default=0)
        if depth[id(node)] > MAX_DEPTH:
            raise _TooDeep(f"operators nested more than {MAX_DEPTH} deep")
        bits[id(node)] = _int_bits(node, bits)
        if (bits[id(node)] or 0.0) > _MAX_CONSTANT_BITS:
            raise _ConstantTooLarge("an integer constant in it is far too large")


def _why(exc: Exception) -> str:
    """What a numexpr failure means, for the message."""
    if isinstance(exc, (RecursionError, MemoryError)):
        return "it is too long or nested too deeply to evaluate"
    if isinstance(exc, NotImplementedError) and "opcode" in str(exc):
        return (f"{exc}: t, max_f and s are decimal numbers here (so that a huge value becomes inf, never a "
                "wrapped-around one); bitwise operators (&, |, ~, <<, >>) work on comparisons only, such as "
                "(t > 5) & (t < 9); write t % 2 for t & 1 and t * 4 for t << 2")
    if isinstance(exc, _ConstantTooLarge):
        return str(exc)
    if isinstance(exc, OverflowError):
        return "a whole number in it is too large for 64 bits; write it as a decimal, such as 2.0**70 or 1e20"
    return f"{type(exc).__name__}: {exc}"


_NON_FINITE = ("; it must be a finite number: look for a division by zero (also % 0 and // 0), the "
               "log or square root of a negative number, or a result too large")


def _seed(seed: int) -> float:
    """s as numexpr sees it: float64, like t and max_f, so that s**s**s overflows to inf instead of wrapping."""
    try:
        value = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise ScheduleError(f"the seed must be a whole number, got {seed!r}") from None
    if abs(value) > 2**63:
        raise ScheduleError(f"the seed {value} is too large; seeds are within -2**63..2**63")
    return float(value)


def _numexpr_evaluate(expr: str, local: dict[str, Any]) -> np.ndarray:
    ne = _numexpr()
    _guard_constants(expr)
    # numexpr folds constants with numpy (log(-1) would warn); the result is checked for finiteness instead.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ne.evaluate(expr, local_dict=local, global_dict={}))


def _as_real(result: np.ndarray) -> np.ndarray | None:
    if result.dtype.kind not in "biuf":
        return None  # complex, strings
    return result.astype(np.float64)


def _clean(expr: str) -> str:
    # numexpr rejects newlines and leading whitespace (IndentationError); both mean nothing here.
    return " ".join(expr.split())


def _eval_scalar_expr(text: str, expr: str, offset: int, local: dict[str, Any], what: str) -> float:
    """A constant expression (frame expressions, prompt frame keys) as a finite float."""
    try:
        result = _numexpr_evaluate(_clean(expr), local)
    except ScheduleError:
        raise
    except Exception as exc:  # numexpr raises SyntaxError, KeyError, TypeError, ZeroDivisionError, ...
        raise _error(text, offset, f"cannot evaluate {what} {_short(expr)}: {_why(exc)}") from None
    real = _as_real(result)
    if real is None or real.size != 1:
        raise _error(text, offset, f"{what} {_short(expr)} is not a single real number")
    value = float(real.reshape(-1)[0])
    if not math.isfinite(value):
        raise _error(text, offset, f"{what} {_short(expr)} is {value}{_NON_FINITE}")
    return value


def _check_max_frames(max_frames: int) -> None:
    if (isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer))
            or not 1 <= max_frames <= MAX_FRAME + 1):
        raise ScheduleError(f"max_frames must be a whole number from 1 to {MAX_FRAME + 1} (Blender's frame range), "
                            f"got {max_frames!r}")


def _whole_frame(digits: str) -> int | None:
    """The frame an ASCII digit string names, or None beyond MAX_FRAME. The length is judged before int(), which
    raises a bare ValueError on 4,301+ digits (Python's int-string conversion limit)."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(MAX_FRAME)):
        return None
    frame = int(significant or "0")
    return frame if frame <= MAX_FRAME else None


def _out_of_range(frame: str) -> str:
    digits = f" (a number of {len(frame)} digits)" if len(frame) > 24 else ""
    return (f"frame {_short(frame, 24)}{digits} is out of range: frames go from 0 to {MAX_FRAME}, Blender's last "
            "frame")


def _literal_frame(text: str, digits: str, position: int) -> int:
    frame = _whole_frame(digits)
    if frame is None:
        raise _error(text, position, _out_of_range(digits))
    return frame


# --------------------------------------------------------------------------------------------------------------------
# Deforum keyframe strings: parsing

# The '.' is required before the fraction's digits: with it optional ([0-9]+\.?[0-9]*), fullmatch backtracks
# quadratically on a long run of digits that ends in a letter (100,000 digits: minutes).
_PLAIN_FRAME = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _too_deep(text: str, position: int) -> ScheduleError:
    return _error(text, position, f"parentheses nested more than {MAX_NESTING} levels deep")


def _match_paren(text: str, open_pos: int) -> int:
    """Index of the ')' closing the '(' at open_pos."""
    stack = [open_pos]
    for match in _PARENS.finditer(text, open_pos + 1):
        i = match.start()
        if text[i] == "(":
            stack.append(i)
            if len(stack) > MAX_NESTING:
                raise _too_deep(text, i)
        else:
            stack.pop()
            if not stack:
                return i
    raise _error(text, stack[-1], "this '(' is never closed")


def _scan_frame(text: str, i: int) -> tuple[str, int, int, bool]:
    """Reads a frame up to and including its ':'. Returns (frame text, its position, index after ':', literal?)."""
    n = len(text)
    c = text[i]
    if c == ",":
        raise _error(text, i, "expected a frame number, found ','")
    if c == ")":
        raise _error(text, i, "unexpected ')'")
    if c in "\"'":
        end = text.find(c, i + 1)
        if end < 0:
            raise _error(text, i, f"quote {c} is never closed")
        after = _skip_ws(text, end + 1)
        if after >= n or text[after] != ":":
            raise _error(text, after, f"expected ':' after frame {_short(text[i:end + 1])[1:-1]}")
        return text[i + 1:end], i + 1, after + 1, False
    if _is_digit(c):
        j = _DIGITS.match(text, i).end()
        k = _skip_ws(text, j)
        if k < n and text[k] == ":":
            return text[i:j], i, k + 1, True
        if k >= n or text[k] in "(),":
            raise _error(text, k, f"expected ':' after frame {_short(text[i:j])[1:-1]}")
        # otherwise a bare expression that starts with a number (1.5, 2*max_f): read it below
    j, depth = n, 0
    for match in _FRAME_STOPS.finditer(text, i):
        j = match.start()
        if text[j] in ":,":
            break
        depth += 1 if text[j] == "(" else -1
        if depth > MAX_NESTING:
            raise _too_deep(text, j)
        if depth < 0:
            raise _error(text, j, "unexpected ')'")
    else:
        j = n
    if j >= n or text[j] == ",":
        raise _error(text, j, f"expected ':' after frame {_short(text[i:j].strip())}")
    if depth:
        raise _error(text, i, f"unbalanced parentheses in frame {_short(text[i:j].strip())}")
    return text[i:j], i, j + 1, False


def _frame_value(text: str, raw: str, raw_pos: int, literal: bool,
                 max_frames: int | None, seed: int) -> tuple[int, str | None]:
    if literal:
        return _literal_frame(text, raw, raw_pos), None
    lead = len(raw) - len(raw.lstrip())
    frame_text = raw.strip()
    pos = raw_pos + lead
    if not frame_text:
        raise _error(text, raw_pos, "expected a frame number")
    if _PLAIN_FRAME.fullmatch(frame_text):
        if frame_text.isascii() and frame_text.isdigit():
            return _literal_frame(text, frame_text, pos), None
        raise _error(text, pos, f"frame {_short(frame_text)} must be a whole number >= 0")
    _check_names(text, frame_text, pos, FRAME_NAMES, "frame expression")
    if max_frames is None:
        return -1, frame_text
    value = _eval_scalar_expr(text, frame_text, pos, {"max_f": float(max_frames - 1), "s": _seed(seed)},
                              "frame expression")
    if abs(value) > MAX_FRAME:
        raise _error(text, pos, f"frame expression {_short(frame_text)} is {value:g}, beyond Blender's frame range "
                                f"-{MAX_FRAME}..{MAX_FRAME}")
    return int(value), frame_text  # int() truncates towards zero, as Deforum's int(numexpr.evaluate(...))


def parse_keyframes(text: str, max_frames: int | None = None, seed: int = 0) -> list[Key]:
    """The keys of a Deforum keyframe string in text order, checked for syntax and names (nothing is evaluated).

    ``max_frames`` and ``seed`` are needed only to resolve frame expressions such as ``"max_f-1"``; without them
    such a key has ``frame == -1`` and its text in ``frame_expr``.
    """
    if not isinstance(text, str):
        raise ScheduleError(f"a keyframe schedule must be text, got {type(text).__name__}")
    if max_frames is not None:
        _check_max_frames(max_frames)
    n = len(text)
    i = _skip_ws(text, 0)
    if i >= n:
        raise ScheduleError("position 0: the schedule is empty; write at least one key such as 0:(1.0)", text, 0)
    keys: list[Key] = []
    seen: set[str] = set()  # different expressions, frames' and values'
    while True:
        start = i
        raw, raw_pos, i, literal = _scan_frame(text, i)
        frame, frame_expr = _frame_value(text, raw, raw_pos, literal, max_frames, seed)
        if frame_expr is not None:
            _count_expression(text, seen, "frame " + frame_expr, raw_pos)
        label = _short(frame_expr)[1:-1] if frame_expr is not None else str(frame)
        i = _skip_ws(text, i)
        if i >= n or text[i] != "(":
            raise _error(text, i, f"expected '(' after '{label}:'")
        close = _match_paren(text, i)
        inner = text[i + 1:close]
        value = inner.strip()
        if not value:
            raise _error(text, i, f"empty value for frame {label}")
        value_position = i + 1 + (len(inner) - len(inner.lstrip()))
        keys.append(Key(frame, value, start, _plain_number(_unwrap(value)), value_position, frame_expr))
        i = _skip_ws(text, close + 1)
        if i >= n:
            break
        c = text[i]
        if c == ",":
            i = _skip_ws(text, i + 1)
            if i >= n:
                break  # trailing comma
            continue
        if c == ")":
            raise _error(text, i, "unexpected ')'")
        raise _error(text, i, f"expected ',' between keys, found {c!r}")
    for key in keys:  # names are checked after the syntax so a syntax error is reported first
        if key.number is None:
            _check_names(text, key.value, key.value_position, VALUE_NAMES, f"the value of frame {key.frame}")
            _count_expression(text, seen, _clean(key.value), key.value_position)
    return keys


def _count_expression(text: str, seen: set[str], expr: str, position: int) -> None:
    seen.add(expr)
    if len(seen) > MAX_EXPRESSIONS:
        raise _error(text, position, f"more than {MAX_EXPRESSIONS} different expressions in one schedule; write "
                                     "plain numbers for per-frame values")


# --------------------------------------------------------------------------------------------------------------------
# Deforum keyframe strings: evaluation


def _resolve(text: str, keys: list[Key], max_frames: int) -> tuple[list[Key], list[str]]:
    """Keys inside the frame range, one per frame (the later wins), sorted; and the warnings that explains."""
    warns: list[str] = []
    by_frame: dict[int, Key] = {}
    for key in keys:
        label = f"{_short(key.frame_expr)} = {key.frame}" if key.frame_expr is not None else str(key.frame)
        if key.frame < 0:
            warns.append(f"position {key.position}: key at frame {label} is before frame 0; ignored")
            continue
        if key.frame >= max_frames:
            warns.append(f"position {key.position}: key at frame {label} is beyond the last frame "
                         f"({max_frames - 1}); ignored")
            continue
        if key.frame in by_frame:
            warns.append(f"position {key.position}: frame {key.frame} has another key at position "
                         f"{by_frame[key.frame].position}; the later one wins")
        by_frame[key.frame] = key
    if not by_frame:
        raise ScheduleError(f"position {keys[0].position}: no key falls inside frames 0..{max_frames - 1}",
                            text, keys[0].position)
    resolved = [by_frame[f] for f in sorted(by_frame)]
    if resolved[0].frame > 0:
        warns.append(f"the schedule starts at frame {resolved[0].frame}; its first value holds over frames "
                     f"0..{resolved[0].frame - 1}")
    return resolved, warns


def _eval_span(text: str, key: Key, frames: np.ndarray, max_frames: int, seed: int) -> np.ndarray:
    """The expression of key at the given frames, as float64 (finite or not: see _check_finite)."""
    expr = _clean(key.value)
    used = {name for name, _ in _names(expr)}
    # Every name is float64: numexpr's int64 arithmetic wraps around silently (2**t, s**s**s) and gives 0 for t % 0
    # and t // 0, where float64 overflows to inf and gives nan, both refused below. Frames and seeds are exact in it.
    local: dict[str, Any] = {}
    if "max_f" in used:
        local["max_f"] = float(max_frames - 1)
    if "s" in used:
        local["s"] = _seed(seed)
    count = frames.size
    try:
        if used & _REDUCTIONS:
            out = np.empty(count, dtype=np.float64)
            for idx, frame in enumerate(frames):
                local["t"] = float(frame)
                real = _as_real(_numexpr_evaluate(expr, local))
                if real is None or real.size != 1:
                    raise _error(text, key.value_position, f"the value of frame {key.frame} is not a real number")
                out[idx] = real.reshape(-1)[0]
        else:
            local["t"] = frames
            real = _as_real(_numexpr_evaluate(expr, local))
            if real is None:
                raise _error(text, key.value_position, f"the value of frame {key.frame} is not a real number")
            if real.ndim == 0:
                real = np.full(count, float(real))
            if real.shape != (count,):
                raise _error(text, key.value_position, f"the value of frame {key.frame} is not one number per frame")
            out = real
    except ScheduleError:
        raise
    except ZeroDivisionError:  # numexpr folds constants (1 % 0) with Python numbers
        raise _error(text, key.value_position,
                     f"the value at frame {key.frame} divides by zero ({_short(key.value)})") from None
    except Exception as exc:  # numexpr's own errors: syntax, types, reductions, ...
        raise _error(text, key.value_position,
                     f"cannot evaluate {_short(key.value)} (frame {key.frame}): {_why(exc)}") from None
    return out


def _check_finite(text: str, key: Key, span: np.ndarray) -> np.ndarray:
    """span: the key's values from its own frame on."""
    bad = np.flatnonzero(~np.isfinite(span))
    if bad.size:
        frame = key.frame + int(bad[0])
        raise _error(text, key.value_position,
                     f"the value at frame {frame} is {span[bad[0]]} ({_short(key.value)}){_NON_FINITE}")
    return span


def _spans_of(text: str, key: Key, members: list[tuple[Key, int]], max_frames: int,
              seed: int) -> dict[int, np.ndarray]:
    """The spans of every key with key's expression (members: (key, end) pairs), from one evaluation, by frame.

    A schedule that repeats one expression over thousands of keys costs one numexpr call, not thousands; the values
    are the same, as every numexpr function but the reductions (evaluated frame by frame anyway) is elementwise.
    """
    frames = np.concatenate([np.arange(k.frame, end, dtype=np.float64) for k, end in members])
    out = _eval_span(text, key, frames, max_frames, seed)
    bounds = np.cumsum([0] + [end - k.frame for k, end in members]).tolist()
    return {k.frame: out[a:b] for (k, _), a, b in zip(members, bounds[:-1], bounds[1:])}


def _compute(text: str, max_frames: int, seed: int) -> tuple[np.ndarray, list[Key], list[int], list[str]]:
    _check_max_frames(max_frames)
    max_frames = int(max_frames)
    keys = parse_keyframes(text, max_frames, seed)
    resolved, warns = _resolve(text, keys, max_frames)
    ends = [k.frame for k in resolved[1:]] + [max_frames]
    values = np.full(max_frames, np.nan)
    groups: dict[str, list[tuple[Key, int]]] = {}
    for key, end in zip(resolved, ends):
        if key.number is None:
            groups.setdefault(_clean(key.value), []).append((key, end))
    spans: dict[int, np.ndarray] = {}
    for key, end in zip(resolved, ends):  # in frame order, so the first bad frame is the one reported
        if key.number is not None:
            values[key.frame] = key.number
            continue
        if key.frame not in spans:  # the first key of its expression
            spans.update(_spans_of(text, key, groups[_clean(key.value)], max_frames, seed))
        values[key.frame:end] = _check_finite(text, key, spans.pop(key.frame))
    known = np.flatnonzero(~np.isnan(values))
    if known.size < max_frames:
        # hold before the first and after the last known value; linear between (pandas' "linear", both directions)
        with np.errstate(all="ignore"):
            values = np.interp(np.arange(max_frames), known, values[known])
        _check_in_betweens(text, values, resolved, known)
    return values, resolved, ends, warns


def _check_in_betweens(text: str, values: np.ndarray, resolved: list[Key], known: np.ndarray) -> None:
    """In-betweens of finite keys overflow when the keys are near float64's limit with opposite signs."""
    bad = np.flatnonzero(~np.isfinite(values))
    if not bad.size:
        return
    frame = int(bad[0])
    before, after = int(known[known < frame][-1]), int(known[known > frame][0])
    key = next(k for k in resolved if k.frame > frame)
    raise _error(text, key.position, f"the in-between at frame {frame} is {values[frame]}: the values at frames "
                                     f"{before} ({values[before]:g}) and {after} ({values[after]:g}) are too far apart "
                                     "to interpolate; a schedule value must be a finite number")


def evaluate(text: str, max_frames: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """The schedule's value at frames 0..max_frames-1 (float64) and the warnings (ignored keys and the like)."""
    values, _, _, warns = _compute(text, max_frames, seed)
    return values, warns


def fcurve_keys(text: str, max_frames: int, seed: int = 0) -> tuple[list[tuple[int, float]], list[str]]:
    """Keys that reproduce :func:`evaluate` under linear interpolation with constant extrapolation.

    One key per numeric key, one key per frame across each expression's span; sorted by frame.
    """
    values, resolved, ends, warns = _compute(text, max_frames, seed)
    out: list[tuple[int, float]] = []
    for key, end in zip(resolved, ends):
        if key.number is not None:
            out.append((key.frame, float(key.number)))
        else:
            out.extend((f, float(values[f])) for f in range(key.frame, end))
    return out, warns


def _format_number(value: float) -> str:
    # Positional, never 1e-05: Deforum would read an exponent as an expression and hold it instead of in-betweening.
    text = np.format_float_positional(float(value), precision=7, unique=True, fractional=False, trim="-")
    return "0" if text == "-0" else text


def format_keyframes(keys: Sequence[tuple[int, float]]) -> str:
    """``0:(1), 10:(2.5)``: keys in frame order, values to 7 significant digits (enough for float32)."""
    if not keys:
        raise ScheduleError("no keys to write; a schedule needs at least one")
    cleaned: list[tuple[int, float]] = []
    for frame, value in keys:
        if isinstance(frame, bool) or not float(frame).is_integer() or frame < 0:
            raise ScheduleError(f"frame {frame!r} must be a whole number >= 0")
        if not math.isfinite(float(value)):
            raise ScheduleError(f"the value at frame {frame} is {value}; a schedule holds finite numbers only")
        cleaned.append((int(frame), float(value)))
    cleaned.sort(key=lambda kv: kv[0])
    for (a, _), (b, _) in zip(cleaned, cleaned[1:]):
        if a == b:
            raise ScheduleError(f"frame {a} has two keys")
    return ", ".join(f"{frame}:({_format_number(value)})" for frame, value in cleaned)


def simplify(frames: Sequence[int], values: Sequence[float], tolerance: float = 1e-6) -> list[tuple[int, float]]:
    """The fewest of the given keys whose linear in-betweens stay within tolerance of every value.

    The first and last keys are always kept. Exact (a shortest path over the segments that fit), not greedy. A
    segment from key i to key j fits when its slope lies inside every intermediate point's tolerance band, which is
    an interval of slopes that only narrows as j moves on, so each i is scanned until the interval is empty.
    """
    x = np.asarray(frames, dtype=np.float64).reshape(-1)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ScheduleError(f"{x.size} frames but {y.size} values")
    if x.size == 0:
        return []
    if not (np.all(np.isfinite(x)) and np.all(x == np.round(x))):
        raise ScheduleError("frames must be whole numbers")
    if np.any(np.diff(x) <= 0):
        raise ScheduleError("frames must be strictly increasing")
    if not np.all(np.isfinite(y)):
        raise ScheduleError("values must be finite")
    tolerance = float(tolerance)
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ScheduleError(f"tolerance must be a finite number >= 0, got {tolerance}")
    n = x.size
    # rounding slack so exactly collinear keys still count as collinear
    tol = tolerance + 8 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(y))))
    big = n + 1
    best = np.full(n, big, dtype=np.int64)
    prev = np.full(n, -1, dtype=np.int64)
    best[0] = 0
    for i in range(n - 1):
        if best[i] + 1 >= best[n - 1]:
            continue  # no path through i can beat the one already found
        step = best[i] + 1
        if best[i + 1] > step:
            best[i + 1], prev[i + 1] = step, i
        lo, hi = -np.inf, np.inf
        start, width = i + 1, 32
        while start < n - 1:
            end = min(n - 1, start + width)  # intermediates k in [start, end); candidate ends j = k + 1
            dx = x[start:end] - x[i]
            lo_acc = np.maximum(np.maximum.accumulate((y[start:end] - tol - y[i]) / dx), lo)
            hi_acc = np.minimum(np.minimum.accumulate((y[start:end] + tol - y[i]) / dx), hi)
            j = np.arange(start + 1, end + 1)
            slope = (y[j] - y[i]) / (x[j] - x[i])
            fits = j[(slope >= lo_acc) & (slope <= hi_acc)]
            better = fits[best[fits] > step]
            best[better] = step
            prev[better] = i
            lo, hi = lo_acc[-1], hi_acc[-1]
            if lo > hi:
                break
            start, width = end, width * 2
    path = [n - 1]
    while path[-1] != 0:
        path.append(int(prev[path[-1]]))
    return [(int(x[k]), float(y[k])) for k in reversed(path)]


# --------------------------------------------------------------------------------------------------------------------
# prompt schedules


def split_negative(prompt: str) -> tuple[str, str]:
    """(positive, negative) of a prompt with Deforum's " --neg " marker (the negative follows the first one)."""
    positive, *rest = prompt.split(_NEG)
    return positive.strip(), "".join(rest).strip()


def prompt_frame(key: Any, max_frames: int | None) -> int:
    """A Deforum prompt key as a frame: a number, or an expression of max_f (= max_frames, as Deforum's prompt
    code has it, unlike schedules where max_f is max_frames - 1)."""
    if isinstance(key, bool):
        raise ScheduleError(f"frame key {key!r} must be a whole number >= 0")
    if isinstance(key, (int, np.integer)):
        shown = str(key) if int(key).bit_length() <= 64 else f"of {int(key).bit_length()} bits"  # str() has a limit
        if key < 0:
            raise ScheduleError(f"frame key {shown} must be a whole number >= 0")
        if key > MAX_FRAME:
            raise ScheduleError(f"prompt key: frame {shown} is out of range: frames go from 0 to {MAX_FRAME}, "
                                "Blender's last frame")
        return int(key)
    if not isinstance(key, str):
        raise ScheduleError(f"frame key {key!r} must be a whole number >= 0")
    text = key.strip()
    if text.isascii() and text.isdigit():
        frame = _whole_frame(text)
        if frame is None:
            raise ScheduleError(f"prompt key: {_out_of_range(text)}")
        return frame
    if not text or _PLAIN_FRAME.fullmatch(text):
        raise ScheduleError(f"frame key {_short(key)} must be a whole number >= 0")
    _check_names(key, text, key.find(text), PROMPT_FRAME_NAMES, "the frame key")
    if max_frames is None:
        raise ScheduleError(f"frame key {_short(key)} is an expression; it needs the frame count (max_frames)")
    value = _eval_scalar_expr(key, text, key.find(text), {"max_f": float(max_frames)}, "frame key")
    if abs(value) > MAX_FRAME:
        raise ScheduleError(f"frame key {_short(key)} is {value:g}, beyond Blender's frame range "
                            f"-{MAX_FRAME}..{MAX_FRAME}", key, key.find(text))
    frame = int(value)
    if frame < 0:
        raise ScheduleError(f"frame key {_short(key)} is {frame} with {max_frames} frames; frames start at 0")
    return frame


def _json_int(digits: str) -> int | float:
    # int() refuses 4,301+ digits with a bare ValueError; such a number is no prompt, and is refused as one below
    return int(digits) if len(digits) <= 4000 else float(digits)


def parse_deforum_prompts(source: str | Mapping[str, Any], max_frames: int | None = None) -> list[PromptKey]:
    """Deforum's JSON prompt schedule (text or an already parsed dict) as keys sorted by frame.

    Frame keys beyond ``max_frames`` are kept; the caller decides what to do with them.
    """
    if max_frames is not None:
        _check_max_frames(max_frames)
    if isinstance(source, str):
        try:
            data = json.loads(source, parse_int=_json_int)
        except json.JSONDecodeError as exc:
            raise ScheduleError(f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}",
                                source, exc.pos) from None
        except RecursionError:
            raise ScheduleError("not valid JSON: nested too deeply", source) from None
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ScheduleError(f"a prompt schedule must be a JSON object of frame: prompt, got {type(data).__name__}",
                            source if isinstance(source, str) else "")
    if not data:
        raise ScheduleError("the prompt schedule is empty; write at least one frame such as {\"0\": \"a corgi\"}",
                            source if isinstance(source, str) else "")
    by_frame: dict[int, PromptKey] = {}
    for key, prompt in data.items():
        frame = prompt_frame(key, max_frames)
        if not isinstance(prompt, str):
            raise ScheduleError(f"the prompt for frame {_short(str(key))} must be text, got {type(prompt).__name__}")
        positive, negative = split_negative(prompt)
        by_frame[frame] = PromptKey(frame, positive, negative)  # later wins, as in Deforum's series
    return [by_frame[f] for f in sorted(by_frame)]


def format_deforum_prompts(keys: Sequence[PromptKey]) -> dict[str, str]:
    """The inverse of :func:`parse_deforum_prompts`: ``{"0": "a corgi", "30": "a lion --neg blurry"}``."""
    out: dict[str, str] = {}
    for key in sorted(keys, key=lambda k: k.frame):
        if _NEG in key.text:
            raise ScheduleError(f"the prompt at frame {key.frame} contains {_NEG!r}, which would be read as a "
                                "negative prompt")
        out[str(key.frame)] = f"{key.text} {_NEG} {key.negative}" if key.negative else key.text
    return out


_GIFFUSION_LINE = re.compile(r"\s*([0-9]+)\s*:(.*)", re.DOTALL)


def parse_giffusion_prompts(text: str) -> list[PromptKey]:
    """Giffusion's prompt box, one ``FRAME: prompt`` per line, as keys sorted by frame (a repeated frame: the later
    line wins)."""
    if not isinstance(text, str):
        raise ScheduleError(f"a prompt list must be text, got {type(text).__name__}")
    by_frame: dict[int, PromptKey] = {}
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        body = line.rstrip("\r\n")
        if body.strip():
            match = _GIFFUSION_LINE.fullmatch(body)
            if not match:
                at = offset + len(body) - len(body.lstrip())
                raise ScheduleError(f"line {number} (position {at}): expected 'FRAME: prompt', such as "
                                    f"'0: a corgi', near \"{_excerpt(text, at)}\"", text, at)
            frame = _whole_frame(match.group(1))
            if frame is None:
                at = offset + match.start(1)
                raise ScheduleError(f"line {number} (position {at}): {_out_of_range(match.group(1))}", text, at)
            by_frame[frame] = PromptKey(frame, match.group(2).strip(), "")
        offset += len(line)
    if not by_frame:
        raise ScheduleError("position 0: the prompt list is empty; write one 'FRAME: prompt' per line", text, 0)
    return [by_frame[f] for f in sorted(by_frame)]


# --------------------------------------------------------------------------------------------------------------------
# Giffusion transitions


def parse_frequencies(text: str) -> list[float]:
    """Giffusion's sine frequencies, ``"1.0, 2.0"``; empty text means ``[1.0]``."""
    if not isinstance(text, str):
        raise ScheduleError(f"frequencies must be text, got {type(text).__name__}")
    if not text.strip():
        return [1.0]
    out: list[float] = []
    offset = 0
    for item in text.split(","):
        stripped = item.strip()
        at = offset + len(item) - len(item.lstrip())
        if not stripped:
            raise _error(text, at, "expected a frequency (a number) here")
        value = _plain_number(stripped)
        if value is None:
            raise _error(text, at, f"frequency {_short(stripped)} is not a finite number")
        out.append(value)
        offset += len(item) + 1
    return out


def giffusion_sine(num_frames: int, frequencies: Sequence[float]) -> np.ndarray:
    """The mix from the start prompt (0) to the end prompt (1) over a segment of num_frames frames, keys included."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ScheduleError(f"num_frames must be a whole number >= 1, got {num_frames!r}")
    freqs = [float(f) for f in frequencies] or [1.0]
    if not all(math.isfinite(f) for f in freqs):
        raise ScheduleError(f"frequencies must be finite, got {freqs}")
    x = np.arange(num_frames, dtype=np.float64) / num_frames
    mix = np.zeros(num_frames)
    for f in freqs:
        mix += np.sin(np.pi * x * f) ** 2
    span = float(mix.max() - mix.min())
    if span <= 1e-9 * len(freqs):  # one frame, or frequencies that land on whole periods: stay on the start prompt
        return np.zeros(num_frames)
    return (mix - mix.min()) / span


def giffusion_curve(text: str, start: int, end: int, max_frames: int) -> np.ndarray:
    """A keyframe-string curve at frames start..end (inclusive); every value must lie in [0, 1]."""
    _check_max_frames(max_frames)
    if not (0 <= start <= end < max_frames):
        raise ScheduleError(f"frames {start}..{end} are not inside 0..{max_frames - 1}")
    values, _ = evaluate(text, max_frames)
    part = values[start:end + 1]
    outside = np.flatnonzero((part < 0) | (part > 1))
    if outside.size:
        frame = start + int(outside[0])
        raise ScheduleError(f"the curve is {part[outside[0]]:g} at frame {frame}; a transition curve must stay "
                            "within 0..1", text)
    return part
