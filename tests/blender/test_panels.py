"""Every sidebar panel draws against the real properties and operators (bpy has no window, so a stand-in layout
records the calls and checks that each property and operator it names exists)."""

from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy")


class Layout:
    """Accepts UILayout calls; fails on a property or operator that doesn't exist."""

    def __init__(self, calls):
        self.calls = calls

    def __getattr__(self, name):  # use_property_split, scale_y, enabled, ...: plain attributes
        raise AttributeError(name)

    def _child(self, *args, **kwargs):
        return Layout(self.calls)

    row = column = box = split = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property '{name}'"
        self.calls.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and hasattr(search_data, search_name)
        self.calls.append(("prop_search", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), f"no operator {idname}"
        self.calls.append(("operator", idname))
        return SimpleNamespace()

    def operator_menu_enum(self, idname, prop, **kwargs):
        module, name = idname.split(".")
        op = getattr(getattr(bpy.ops, module), name)
        assert prop in op.get_rna_type().properties, f"{idname} has no property '{prop}'"
        self.calls.append(("operator", idname))

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs):
        assert hasattr(bpy.types, list_type) and prop in data.bl_rna.properties
        self.calls.append(("list", prop))

    def template_ID(self, data, prop, **kwargs):
        assert prop in data.bl_rna.properties
        for op in (kwargs.get("new"), kwargs.get("open")):
            if op:
                self.operator(op)
        self.calls.append(("template_ID", prop))

    def menu(self, menu, **kwargs):
        assert hasattr(bpy.types, menu), f"no menu {menu}"
        self.calls.append(("menu", menu))

    def label(self, **kwargs):
        self.calls.append(("label", kwargs.get("text", "")))

    def progress(self, **kwargs):
        self.calls.append(("progress", ""))

    def template_icon(self, icon_value=0, scale=1.0):  # the live preview (panels/progress.py)
        assert isinstance(icon_value, int) and icon_value >= 0  # (0 without a window: Blender makes no icons)
        self.calls.append(("icon", icon_value))

    def separator(self, **kwargs):
        pass


def draw_all(extension, context):
    calls = []
    for cls in extension.panels.sequencer.classes:
        if issubclass(cls, bpy.types.Panel):
            cls.draw(SimpleNamespace(layout=Layout(calls)), context)
    return calls


@pytest.mark.parametrize("source, seed_behavior, motion_mode, link", [
    ("KEYS", "ITER", "2D", False), ("TEXT_STRIPS", "SCHEDULE", "3D", True)])
def test_every_panel_draws(scene, extension, source, seed_behavior, motion_mode, link):
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    settings.prompt_source, settings.seed_behavior, settings.motion_mode = source, seed_behavior, motion_mode
    settings.color_coherence = "LAB"
    settings.camera_source = "MOTION"  # Deforum's 3D values are drawn only when they move the camera
    if link:
        item = settings.audio_links.add()
        item.filepath, item.data_path = "//song.wav", "keyframe_diffusion.zoom"
    context = SimpleNamespace(scene=scene, window_manager=bpy.context.window_manager)
    calls = draw_all(extension, context)
    drawn = {name for kind, name in calls if kind == "prop"}
    assert {"model", "width", "steps", "guidance_rescale", "noise", "color_coherence_amount"} <= drawn
    assert ("seed_iter_n" in drawn) == (seed_behavior == "ITER")
    assert ("translation_z" in drawn) == (motion_mode == "3D") and ("zoom" in drawn) == (motion_mode == "2D")
    assert ("prompt_channel" in drawn) == (source == "TEXT_STRIPS")
    assert ("shape" in drawn) == link
    ops = {name for kind, name in calls if kind == "operator"}
    assert {"keyframe_diffusion.generate", "keyframe_diffusion.audio_link_add", "keyframe_diffusion.deforum_import",
            "keyframe_diffusion.schedule_import"} <= ops


@pytest.mark.parametrize("mask_source", ["OBJECT_INDEX", "STRIP", "IMAGE"])
def test_clip_inpaint_and_upscale_panels_draw(scene, extension, mask_source):
    settings = scene.keyframe_diffusion
    settings.mask_source = mask_source
    bpy.ops.keyframe_diffusion.item_add(kind="MOTION_LORA")
    context = SimpleNamespace(scene=scene, window_manager=bpy.context.window_manager)
    calls = draw_all(extension, context)
    panel = extension.panels.sequencer.KD_PT_upscale
    panel.draw_header(SimpleNamespace(layout=Layout(calls)), context)
    drawn = {name for kind, name in calls if kind in ("prop", "prop_search", "template_ID")}
    assert {"motion_adapter", "context_length", "context_overlap", "free_noise", "cpu_offload", "mask_source",
            "mask_invert", "mask_blur", "use_scene_depth", "use_upscale", "upscale_model", "upscale_noise_level",
            "path"} <= drawn
    assert ("mask_index" in drawn) == (mask_source == "OBJECT_INDEX")
    assert ("mask_strip" in drawn) == (mask_source == "STRIP")
    assert ("mask_image" in drawn) == (mask_source == "IMAGE")
    assert ("list", "motion_loras") in calls
    settings.mode = "CLIP"
    assert extension.panels.sequencer.KD_PT_clip.poll(context)
    assert not extension.panels.sequencer.KD_PT_inpaint.poll(context)
