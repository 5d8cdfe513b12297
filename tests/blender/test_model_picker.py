"""Choosing a model in Blender (bpy 5.0 wheel, the extension installed from its zip): the sidebar's model picker lists
the built-in model and what the last Refresh found (or says why it lists nothing), choosing one applies its
recommended settings while keyed properties keep their F-curves, and the Settings panel's preset menu lists the
presets the extension ships, which set what they are about."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy")


class Recorder:
    """A UILayout stand-in that records labels and operator buttons (with the properties set on them)."""

    def __init__(self, items: list):
        self.items = items

    def _child(self, *args, **kwargs):
        return Recorder(self.items)

    row = column = box = split = _child

    def operator(self, idname, text="", icon="NONE", **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), f"no operator {idname}"
        props = SimpleNamespace()
        self.items.append(("operator", idname, text, props))
        return props

    def label(self, text="", icon="NONE", **kwargs):
        self.items.append(("label", text))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties
        self.items.append(("prop", name))

    def separator(self, **kwargs):
        pass


def draw(cls, context) -> list:
    items: list = []
    cls.draw(SimpleNamespace(layout=Recorder(items), bl_idname=cls.__name__, **{
        k: getattr(cls, k) for k in ("preset_operator", "preset_add_operator", "preset_subdir") if hasattr(cls, k)}),
        context)
    return items


# Entries as `python -m engine models` gives them (engine/model_index.py), recommendations included.
LISTED = [
    {"kind": "pipeline", "name": "stabilityai/sd-turbo", "ref": "stabilityai/sd-turbo", "source": "hf-cache",
     "size_mb": 5000.0, "detail": "StableDiffusionPipeline, SD2.x",
     "recommended": {"family": "SD-Turbo", "steps": 1, "guidance": 0.0, "width": 512, "height": 512,
                     "scheduler": "default", "notes": "", "source": "https://huggingface.co/stabilityai/sd-turbo",
                     "prompts": []}},
    {"kind": "checkpoint", "name": "xl.safetensors", "ref": "/models/xl.safetensors", "source": "folder",
     "size_mb": 6000.0, "detail": "SDXL", "recommended": None},
    {"kind": "lora", "name": "style.safetensors", "ref": "/models/style.safetensors", "source": "folder",
     "size_mb": 10.0, "detail": "LoRA, SD1.x"},
]


@pytest.fixture
def listed(extension):
    session = extension.engine_link.session
    session.state.models.clear()  # as in a new Blender session: earlier tests' Refreshes are not this one's
    session.state.models_listed = False
    yield session
    session.state.models.clear()
    session.state.models_listed = False
    extension.operators.models.forget_recommended()


def test_the_picker_lists_the_built_in_and_refreshed_models(scene, extension, listed):
    picker = bpy.types.KD_MT_model_picker
    context = SimpleNamespace(scene=scene)
    items = draw(picker, context)
    uses = [(text, props.ref) for kind, *rest in items if kind == "operator" for _, text, props in [rest]
            if rest[0] == "keyframe_diffusion.model_use"]
    assert uses == [("Shapes (built in, 64x64: a COLOUR SHAPE on a COLOUR background)", "embedded:shapes")]
    models = extension.operators.models
    assert ("label", models.NOT_LISTED) in items  # before any Refresh: how to list them
    assert any(i[0] == "operator" and i[1] == "keyframe_diffusion.models_refresh" for i in items)

    listed.state.models_listed = True  # a Refresh that found nothing
    assert ("label", "No downloaded models found: Refresh, or set a Models Folder in the preferences") in draw(
        picker, context)

    listed.state.models[:] = LISTED
    items = draw(picker, context)
    refs = [i[3].ref for i in items if i[0] == "operator" and i[1] == "keyframe_diffusion.model_use"]
    assert refs == ["embedded:shapes", "stabilityai/sd-turbo", "/models/xl.safetensors"]  # LoRAs are no model
    assert not [i for i in items if i[0] == "label" and i[1].startswith("No downloaded")]

    # The preferences' Models box lists the built-in model too, and says when a Refresh found nothing.
    from test_panels import Layout

    prefs = extension.settings.preferences.get()
    calls: list = []
    prefs.draw_models(Layout(calls))
    assert ("label", "Built In (1)") in calls and calls.count(("operator", "keyframe_diffusion.model_use")) == 3
    listed.state.models.clear()
    calls = []
    prefs.draw_models(Layout(calls))
    assert ("label", models.EMPTY_LIST_HERE) in calls


def test_choosing_a_model_applies_its_recommended_settings(scene, extension, listed):
    settings = scene.keyframe_diffusion
    models = extension.operators.models
    listed.state.models[:] = LISTED
    settings.model, settings.steps, settings.guidance, settings.scheduler = "embedded:shapes", 2, 7.5, "euler"
    assert models.recommended_differs(settings) == "Recommended for this model: 30 steps, guidance 6, 64x64"
    assert bpy.ops.keyframe_diffusion.model_recommended() == {"FINISHED"}
    assert (settings.steps, settings.guidance, settings.width, settings.height, settings.scheduler) == (
        30, 6.0, 64, 64, "default")
    assert models.recommended_differs(settings) == ""

    # Guidance is keyed: choosing SD-Turbo from the picker sets the rest and leaves the keys as they are.
    settings.guidance = 4.0
    settings.keyframe_insert("guidance", frame=1)
    settings.guidance = 9.0
    settings.keyframe_insert("guidance", frame=6)
    compat = extension.settings.compat
    before = [tuple(k.co) for k in compat.find_fcurve(scene, "keyframe_diffusion.guidance").keyframe_points]
    assert bpy.ops.keyframe_diffusion.model_use(ref="stabilityai/sd-turbo") == {"FINISHED"}
    assert settings.model == "stabilityai/sd-turbo"
    assert (settings.steps, settings.width, settings.height) == (1, 512, 512)
    curve = compat.find_fcurve(scene, "keyframe_diffusion.guidance")
    assert [tuple(k.co) for k in curve.keyframe_points] == before
    scene.frame_set(6)
    assert settings.guidance == pytest.approx(9.0)
    # The keyed guidance differs, but it is the user's: no standing hint for it.
    assert models.recommended_differs(settings) == ""
    changed, keyed = models.apply_recommended(scene, models.scene_recommended(settings))
    assert changed == [] and keyed == ["Guidance"]
    assert models.describe_applied(models.scene_recommended(settings), changed, keyed) == (
        "SD-Turbo: already at its recommended settings; Guidance left as keyed (recommended: 1 step, guidance 0, "
        "512x512)")

    # A model of no known family keeps the user's settings.
    assert bpy.ops.keyframe_diffusion.model_use(ref="/models/xl.safetensors", apply_recommended=False) == {"FINISHED"}
    settings.model, settings.steps = "someone/unknown-model", 7
    assert models.recommended_differs(settings) == ""
    assert bpy.ops.keyframe_diffusion.model_recommended() == {"CANCELLED"} and settings.steps == 7


def test_the_preset_menu_lists_the_shipped_presets(scene, extension):
    presets = extension.operators.presets
    for cls in (bpy.types.KD_MT_presets, bpy.types.KD_PT_presets):
        items = draw(cls, SimpleNamespace(scene=scene))
        shipped = {i[2]: i[3].filepath for i in items if i[0] == "operator" and i[1] == "script.execute_preset"}
        assert set(shipped) >= {"Preview", "Final", "Turbo", "Mode Interpolate", "Mode Feedback", "Mode Video",
                                "Mode Clip"}, cls
        names = {"Preview", "Final", "Turbo", "Mode Interpolate", "Mode Feedback", "Mode Video", "Mode Clip"}
        # (a user preset an earlier test saved may be listed too, from the user's folder)
        assert all(os.path.dirname(shipped[name]) == presets.SHIPPED_PRESETS for name in names)
    # The popover keeps the row that saves the user's own preset (no user preset folder exists yet).
    assert any(i[0] == "operator" and i[1] == "keyframe_diffusion.preset_add" for i in items)
    assert ("label", "* Missing Paths *") not in items

    settings = scene.keyframe_diffusion

    def apply(name: str) -> None:
        path = os.path.join(presets.SHIPPED_PRESETS, name + ".py")
        assert bpy.ops.script.execute_preset(filepath=path, menu_idname="KD_MT_presets") == {"FINISHED"}

    settings.batch_size = 3
    apply("Turbo")
    assert (settings.model, settings.steps, settings.guidance, settings.width, settings.height) == (
        "stabilityai/sd-turbo", 1, 0.0, 512, 512)
    assert settings.batch_size == 3  # a preset sets only what it is about
    apply("Mode_Feedback")
    assert (settings.mode, settings.motion_mode, settings.color_coherence) == ("FEEDBACK", "2D", "LAB")
    assert settings.zoom == pytest.approx(1.02) and settings.model == "stabilityai/sd-turbo"
    apply("Preview")
    assert (settings.steps, settings.batch_size) == (20, 1)
    for name in ("Final", "Mode_Interpolate", "Mode_Video", "Mode_Clip"):
        apply(name)
    assert (settings.mode, settings.motion_adapter) == ("CLIP", "guoyww/animatediff-motion-adapter-v1-5-2")
    apply("Mode_Shot")
    assert (settings.mode, settings.model, settings.video_control, settings.width, settings.height) == (
        "SHOT", "Wan-AI/Wan2.1-VACE-1.3B-diffusers", "DEPTH", 832, 480)
