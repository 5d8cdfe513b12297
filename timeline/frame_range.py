"""The frames Generate renders: the one answer to Frame Range, for the bake, the Generate operator, the CLI, the
render hook and the sidebar.

By default the range runs from the first to the last prompt key, so prompts keyed at 1 and 24 in a 1-250 scene give
24 frames, not 226 frames more of the last prompt. Fewer than two prompt frames fall back to the scene range (a single
prompt means "this prompt everywhere"); with Prompts From: Text Strips the range is the strips' span.
"""

from __future__ import annotations

from . import text_prompts

# What chose the range, as the sidebar and the terminal say it ("Frames 1-24 (24 frames, from the prompt keys)").
SOURCES = {
    "PROMPTS": "from the prompt keys",
    "TEXT_STRIPS": "from the prompt strips",
    "SCENE": "the scene range",
    "ONE_PROMPT": "the scene range: one prompt frame",
    "PREVIEW": "the preview range",
    "NO_PREVIEW": "the scene range: the preview range is off",
    "CUSTOM": "custom range",
}


def _choose(scene) -> tuple[int, int, str]:
    """(first, last, what chose it: a SOURCES key)."""
    s = scene.keyframe_diffusion
    scene_range = (scene.frame_start, scene.frame_end)
    if s.frame_range == "CUSTOM":
        low, high = sorted((s.frame_custom_start, s.frame_custom_end))
        return low, high, "CUSTOM"
    if s.frame_range == "PREVIEW":
        if scene.use_preview_range:
            return scene.frame_preview_start, scene.frame_preview_end, "PREVIEW"
        return *scene_range, "NO_PREVIEW"
    if s.frame_range == "PROMPTS":
        if s.prompt_source == "TEXT_STRIPS":
            spans = text_prompts.spans(scene, s.prompt_channel, s.prompt_channels)
            if spans:  # a strip has a length of its own: even one strip is a range
                return min(sp.start for sp in spans), max(sp.end for sp in spans) - 1, "TEXT_STRIPS"
            return *scene_range, "SCENE"  # no strips: the bake says what to add
        frames = {p.frame for p in s.prompts}
        if len(frames) >= 2:
            return min(frames), max(frames), "PROMPTS"
        return *scene_range, ("ONE_PROMPT" if frames else "SCENE")
    return *scene_range, "SCENE"


def render_range(scene) -> tuple[int, int]:
    """The first and last frame Generate renders (both included)."""
    first, last, _source = _choose(scene)
    return first, last


def source(scene) -> str:
    """Where the range comes from, in words: "from the prompt keys", "the preview range", ..."""
    return SOURCES[_choose(scene)[2]]


def frame_count(scene) -> int:
    first, last = render_range(scene)
    return last - first + 1


def describe_range(scene) -> str:
    """One line for the sidebar: "Frames 1-24 (24 frames, from the prompt keys)"."""
    first, last, chosen = _choose(scene)
    count = last - first + 1
    frames = f"Frame {first}" if count == 1 else f"Frames {first}-{last}"
    return f"{frames} ({count} frame{'' if count == 1 else 's'}, {SOURCES[chosen]})"
