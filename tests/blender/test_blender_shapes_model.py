"""The embedded trained model ('embedded:shapes') is Blender's default and means what its prompts say there: two
keyed prompts generated in a scene are read back by the pixel scorer (the engine side:
tests/engine/test_shapes_model.py)."""

from __future__ import annotations

from engine import plan as plan_mod
from engine.frames import FrameStore
from engine.shapes import GUIDANCE, STEPS, dataset, scorer

SIZE = dataset.SIZE


def test_blender_generates_the_prompts_with_the_default_model(scene):
    import bpy

    settings = scene.keyframe_diffusion
    defaults = type(settings).bl_rna.properties
    assert defaults["model"].default == plan_mod.EMBEDDED_MODEL
    assert defaults["width"].default == defaults["height"].default == SIZE
    settings.model = plan_mod.EMBEDDED_MODEL
    settings.steps, settings.guidance = STEPS, GUIDANCE
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle on a white background", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square on a black background", frame=6)
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    store = FrameStore(bpy.path.abspath(settings.output_dir))
    first, last = scorer.score(store.read(1)), scorer.score(store.read(6))
    assert (first.color, first.shape, first.background) == ("red", "circle", "white"), first
    assert (last.color, last.shape, last.background) == ("blue", "square", "black"), last
