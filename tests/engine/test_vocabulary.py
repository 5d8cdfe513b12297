"""Every engine module that acts on a closed list of choices takes it from engine/vocabulary.py: the lists agree, so
a choice added there reaches the plan validator, the code that acts on it and the Blender enums
(tests/blender/test_vocabulary_enums.py) at once."""

from __future__ import annotations

import numpy as np
import pytest

from engine import audio, deforum, image_ops, plan, seeds, vocabulary as vocab, warp
from engine.models import device, schedulers


@pytest.mark.parametrize(("used", "choices"), [
    (plan.MODES, vocab.MODES),
    (plan.MOTION_MODES, vocab.MOTION_MODES),
    (plan.CAMERA_SOURCES, vocab.CAMERA_SOURCES),
    (plan.DEPTH_SOURCES, vocab.DEPTH_SOURCES),
    (plan.BORDERS, vocab.BORDERS),
    (warp.BORDERS, vocab.BORDERS),
    (deforum.BORDERS, vocab.BORDERS),
    (plan.COLOR_MODES, vocab.COLOR_MODES),
    (image_ops.COLOR_MODES, vocab.COLOR_MODES),
    (deforum.COLOR_COHERENCE, vocab.COLOR_MODES),
    (deforum.MOTION_MODES, vocab.MOTION_MODES),
    (plan.CONTROL_PREPROCESSORS, vocab.CONTROL_PREPROCESSORS),
    (plan.LATENT_SOURCES, vocab.LATENT_SOURCES),
    (device.PRECISIONS, vocab.PRECISIONS),
    (seeds.BEHAVIORS, vocab.SEED_BEHAVIORS),
    (tuple(schedulers.SCHEDULERS), vocab.SCHEDULERS),
    (audio.FEATURES, vocab.AUDIO_FEATURES),
    (audio.PARTS, vocab.AUDIO_PARTS),
    (audio.REDUCES, vocab.AUDIO_REDUCES),
    (audio.SHAPES, vocab.AUDIO_SHAPES),
])
def test_the_engine_lists_are_the_vocabulary(used, choices):
    assert tuple(used) == vocab.names(choices)


def test_the_scheduler_menu_is_the_engine_names_and_other():
    """Blender's Scheduler menu adds "other" (the bake writes the class named beside it instead); the engine, which
    takes friendly names and diffusers class names, has no scheduler called "other"."""
    assert vocab.SCHEDULER_MENU[:-1] == vocab.SCHEDULERS
    assert vocab.names(vocab.SCHEDULER_MENU)[-1] == vocab.SCHEDULER_OTHER not in schedulers.SCHEDULERS


def test_every_choice_is_acted_on():
    """The code behind each list knows every word in it: OpenCV borders, colour matching, image preprocessors."""
    for border in vocab.names(vocab.BORDERS):
        warp.border_mode(border)
    assert set(vocab.names(vocab.CONTROL_PREPROCESSORS)) <= set(image_ops.PREPROCESSORS)
    for mode in vocab.names(vocab.COLOR_MODES):
        image = np.full((4, 4, 3), 100, np.uint8)
        assert image_ops.match_colors(image, image, mode).shape == image.shape


def test_choices_are_unique_and_described():
    for name in dir(vocab):
        choices = getattr(vocab, name)
        if name.isupper() and isinstance(choices, tuple):
            ids = vocab.names(choices)
            assert len(set(ids)) == len(ids), name
            assert all(label for _, label, _ in choices), name
