"""Prompts from text strips: the text strips on a band of Sequencer channels are the prompt schedule.

A strip holds its prompt over its span; "--neg" in its text starts the negative prompt, as in Deforum. Blender
keeps the strips of one channel from overlapping, so the schedule reads a band of channels (two by default) and
prompts overlap the way video crossfades do, on neighbouring channels. Where two strips overlap they crossfade across
the overlap: the earlier one ramps down and the later one ramps up, sampled at frame centres so no frame of the
overlap is all one prompt. A strip that lies wholly inside another fades in over its whole length. Muting a strip
takes it out of the schedule; mute the channels instead (the channel region's checkboxes) to keep the text out of the
render but in the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.schedule import split_negative
from ..settings import compat


@dataclass(frozen=True)
class Span:
    start: int  # first frame
    end: int  # one past the last frame (Blender's frame_final_end)
    text: str
    negative: str
    seed: int


def channel_label(first: int, count: int) -> str:
    return f"channel {first}" if count == 1 else f"channels {first}-{first + count - 1}"


def spans(scene, first: int, count: int = 1) -> list[Span]:
    """The unmuted text strips on channels first..first+count-1, in time order; each gets a seed by that order."""
    strips = [s for s in compat.top_strips(scene)
              if first <= s.channel < first + count and s.type == "TEXT" and not s.mute]
    strips.sort(key=lambda s: (compat.strip_start(s), compat.strip_end(s), s.name))
    out = []
    for i, strip in enumerate(strips):
        positive, negative = split_negative(strip.text)
        out.append(Span(compat.strip_start(strip), compat.strip_end(strip), positive, negative, i))
    return out


def _ramp_lengths(span: Span, others: list[Span]) -> tuple[int, int]:
    """Frames over which `span` fades in (overlap with a strip already running) and out (overlap with a later one)."""
    running = [o.end for o in others if o.start <= span.start < o.end and (o.start, o.end) < (span.start, span.end)]
    fade_in = min(span.end, max(running)) - span.start if running else 0
    later = [o.start for o in others if span.start < o.start < span.end and o.end > span.end]
    fade_out = span.end - min(later) if later else 0
    return fade_in, fade_out


def weights(all_spans: list[Span], frame: int) -> list[tuple[Span, float]]:
    """(span, weight) of the strips covering `frame`, weights summing to 1; empty when none covers it."""
    out = []
    for span in all_spans:
        if not span.start <= frame < span.end:
            continue
        others = [o for o in all_spans if o is not span]
        fade_in, fade_out = _ramp_lengths(span, others)
        w = 1.0
        if fade_in:
            w = min(w, (frame - span.start + 0.5) / fade_in)
        if fade_out:
            w = min(w, (span.end - frame - 0.5) / fade_out)
        if w > 0:
            out.append((span, w))
    total = sum(w for _, w in out)
    return [(span, w / total) for span, w in out]
