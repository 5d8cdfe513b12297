"""Even Pace (interpolate mode's paced crossfades, engine/pacing.py) on the Blender side: the property, where the
sidebar shows it, and the plan it bakes into."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_blender import two_prompt_scene
from test_panels import Layout

bpy = pytest.importorskip("bpy")


def test_even_pace_shows_in_interpolate_mode_and_bakes_into_the_plan(scene, extension):
    settings = two_prompt_scene(scene)
    assert extension.bake.scene.bake_scene(scene)["settings"]["pace"] is False
    settings.pace = True
    assert extension.bake.scene.bake_scene(scene)["settings"]["pace"] is True
    for mode, shown in (("INTERPOLATE", True), ("FEEDBACK", False), ("VIDEO", False), ("CLIP", False)):
        settings.mode = mode
        calls = []
        extension.panels.sequencer.KD_PT_advanced.draw(SimpleNamespace(layout=Layout(calls)),
                                                       SimpleNamespace(scene=scene))
        assert (("prop", "pace") in calls) == shown, mode
