"""Example prompts a model knows, for a user's first render: the sidebar's empty prompt list and the Add Prompt dialog
offer them, and recommend.py hands them on with a model's recommended settings (a model card's own prompts win there).
Pure Python (no torch, no diffusers): Blender's side imports it."""

from __future__ import annotations

from dataclasses import dataclass

from ..plan import EMBEDDED_MODEL, TINY_RANDOM_MODEL


@dataclass(frozen=True)
class Examples:
    prompts: tuple[str, str]  # a first key and a last key: two that crossfade well
    knows: str  # what the model can draw, said before the user types; '' for a general model


# Combinations the shapes model was trained on (not the held-out ones: engine/shapes/dataset.split_triples), far
# apart in colour and shape so the crossfade between them reads.
SHAPES_EXAMPLES = Examples(
    ("a large orange circle on a black background", "a large blue square on a yellow background"),
    "The built-in model knows only 'a COLOUR SHAPE on a COLOUR background' (red, green, blue, yellow, orange, "
    "purple, white, black; circle, square, triangle)",
)
TINY_EXAMPLES = Examples(SHAPES_EXAMPLES.prompts, "The tiny test model has random weights: its frames are noise")
GENERAL_EXAMPLES = Examples(
    ("a lighthouse on a cliff at sunset, oil painting", "a lighthouse in a snowstorm at night, oil painting"), "")


def examples_for(model: str) -> Examples:
    """The example prompts for the model a scene uses (its Model field)."""
    ref = model.strip()
    if ref == EMBEDDED_MODEL:
        return SHAPES_EXAMPLES
    if ref == TINY_RANDOM_MODEL:
        return TINY_EXAMPLES
    return GENERAL_EXAMPLES
