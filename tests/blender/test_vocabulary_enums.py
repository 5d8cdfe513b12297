"""The Blender enums are the engine's vocabularies (engine/vocabulary.py), item for item: a choice added to the engine
shows in Blender, and Blender never offers one the engine would refuse."""

from __future__ import annotations

import pytest
from common import make_plan

from engine import plan, vocabulary as vocab

bpy = pytest.importorskip("bpy")

# (property group, property) -> the vocabulary its items must equal.
ENUMS = {
    ("KD_Settings", "mode"): vocab.MODES,
    ("KD_Settings", "motion_mode"): vocab.MOTION_MODES,
    ("KD_Settings", "camera_source"): vocab.CAMERA_SOURCES,
    ("KD_Settings", "depth_source"): vocab.DEPTH_SOURCES,
    ("KD_Settings", "border"): vocab.BORDERS,
    ("KD_Settings", "color_coherence"): vocab.COLOR_MODES,
    ("KD_Settings", "latent_source"): vocab.LATENT_SOURCES,
    ("KD_Settings", "scheduler"): vocab.SCHEDULER_MENU,  # the engine's names and "other" (a class, below)
    ("KD_Settings", "precision"): vocab.PRECISIONS,
    ("KD_Settings", "device"): vocab.DEVICES,
    ("KD_Settings", "seed_behavior"): vocab.SEED_BEHAVIORS,
    ("KD_Settings", "memory_mode"): vocab.MEMORY_MODES,
    ("KD_Settings", "video_cache"): vocab.VIDEO_CACHES,
    ("KD_Settings", "video_control"): vocab.VIDEO_CONTROLS,
    ("KD_Pin", "source"): vocab.PIN_SOURCES,
    ("KD_ControlUnit", "preprocessor"): vocab.IMAGE_PREPROCESSORS,
    ("KD_AudioLink", "feature"): vocab.AUDIO_FEATURES,
    ("KD_AudioLink", "part"): vocab.AUDIO_PARTS,
    ("KD_AudioLink", "reduce"): vocab.AUDIO_REDUCES,
    ("KD_AudioLink", "shape"): vocab.AUDIO_SHAPES,
}


@pytest.mark.parametrize(("group", "prop"), sorted(ENUMS))
def test_blender_enum_equals_the_engine_vocabulary(extension, group, prop):
    items = getattr(extension.settings.properties, group).bl_rna.properties[prop].enum_items
    assert [(i.identifier, i.name, i.description) for i in items] == list(ENUMS[group, prop])


def test_every_settings_enum_that_reaches_the_plan_comes_from_a_vocabulary(extension):
    """Every enum of the scene settings the bake writes into the plan's settings is one of the checked ones."""
    settings = extension.settings.properties.KD_Settings
    settings_enums = {p.identifier for p in settings.bl_rna.properties if p.type == "ENUM"}
    in_plan = settings_enums & set(plan.SETTINGS_FIELDS)
    assert in_plan <= {prop for group, prop in ENUMS if group == "KD_Settings"}, in_plan


def test_the_plan_accepts_exactly_the_blender_choices(extension, tmp_path):
    """What the enums offer, the plan validator accepts; one more word it refuses."""
    mode = extension.settings.properties.KD_Settings.bl_rna.properties["mode"]
    assert plan.MODES == tuple(i.identifier for i in mode.enum_items)
    assert plan.BORDERS == vocab.names(vocab.BORDERS) and plan.COLOR_MODES == vocab.names(vocab.COLOR_MODES)
    plan.validate(make_plan(str(tmp_path), mode="INTERPOLATE"))
    known = ", ".join(i.identifier for i in mode.enum_items)
    with pytest.raises(plan.PlanError, match=f"unknown mode 'WARP' \\(known: {known}\\)"):
        plan.validate(make_plan(str(tmp_path), mode="WARP"))


def test_the_scheduler_menu_or_any_diffusers_class_reaches_the_plan(extension, scene):
    """The menu's names go into the plan as they are; "Other" puts the class named in Scheduler Class there, which
    the engine takes when it fits the model (tests/engine/test_schedulers.py)."""
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    settings = scene.keyframe_diffusion
    bake = extension.bake.scene.bake_scene
    settings.scheduler = "euler_a"
    settings.scheduler_class = "DEISMultistepScheduler"  # ignored unless Other is chosen
    assert bake(scene, passes=False)["settings"]["scheduler"] == "euler_a"
    settings.scheduler = vocab.SCHEDULER_OTHER
    assert bake(scene, passes=False)["settings"]["scheduler"] == "DEISMultistepScheduler"
    settings.scheduler_class = "  "
    with pytest.raises(extension.bake.scene.BakeError, match="Scheduler Class is empty: name a diffusers scheduler "
                                                            "class, e.g. DEISMultistepScheduler"):
        bake(scene, passes=False)
