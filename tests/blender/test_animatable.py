"""Every animatable property of the extension is baked per frame, so the plan never depends on the playhead.

A setting that accepts keys but is read once, wherever the playhead stands when the bake runs, gives a plan (and frame
hashes) that change with the playhead: LoRA scale, cadence, plane distance, coherence every-N, mask blur, seed every-N
and the upscaler's noise level all did. Now each animatable property is either in the frame records (and the engine
uses the frame's value) or not animatable at all (options without 'ANIMATABLE', its tooltip says why). The walk below
finds every animatable property of the extension's property groups on the real bpy wheel, keys each with two values
at two frames, and bakes with the playhead at either: the plans are identical and the records carry the keyed
values."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

A, B = 1, 3  # the two keyed frames (the range is 1-3)


def _prompt_weight(record):
    return record["prompts"][0]["weight"] / record["prompts"][1]["weight"]  # the second prompt stays at weight 1


# (property group, property) -> where its value is in a frame record. Baked per frame, and used per frame by the engine.
PER_FRAME = {
    ("KD_PromptKey", "weight"): _prompt_weight,
    ("KD_PromptKey", "seed"): lambda r: r["prompts"][0]["seed"],
    ("KD_ControlUnit", "scale"): lambda r: r["control"][0]["scale"],
    ("KD_ControlUnit", "start"): lambda r: r["control"][0]["start"],
    ("KD_ControlUnit", "end"): lambda r: r["control"][0]["end"],
    ("KD_Settings", "seed"): lambda r: r["seed"],  # seed behaviour Schedule: the keyed seed
    ("KD_Settings", "restart_chain"): lambda r: bool(r.get("restart")),
    ("KD_Settings", "mask_index"): lambda r: r["mask"]["select"][0],
    ("KD_Settings", "mask_invert"): lambda r: r["mask"]["invert"],
    ("KD_Settings", "mask_blur"): lambda r: r["mask"]["blur"],
}


def _frame_params(extension) -> dict:
    def reader(group, key):
        return (lambda r: r[key]) if group is None else (lambda r: r[group][key])

    return {("KD_Settings", name): reader(group, key)
            for name, (group, key) in extension.settings.properties.FRAME_PARAMS.items()}


def _animatable(extension) -> set[tuple[str, str]]:
    return {(cls.__name__, prop.identifier) for cls in extension.settings.properties.classes
            for prop in cls.bl_rna.properties if prop.is_animatable}


def _two_values(prop) -> tuple:
    """Two different values inside the property's (soft) range."""
    if prop.type == "BOOLEAN":
        return False, True
    low, high = max(prop.soft_min, prop.hard_min), min(prop.soft_max, prop.hard_max)
    if high - low > 1e5:
        values = (prop.default, prop.default + 1)
    else:
        values = (low + 0.25 * (high - low), low + 0.75 * (high - low))
    return tuple(round(v) for v in values) if prop.type == "INT" else values


def _scene(scene):
    """Frames 1-3, feedback with an object index mask (a cube with pass index 1) and one ControlNet unit on the init
    frame, two prompts: every per-frame property reaches the plan."""
    scene.frame_end = 3
    settings = scene.keyframe_diffusion
    settings.width = settings.height = 16
    for text in ("a red circle", "a blue square"):
        settings.prompts.add().text = text
    settings.mode, settings.motion_mode = "FEEDBACK", "2D"
    settings.mask_source = "OBJECT_INDEX"
    unit = settings.controlnets.add()
    unit.name, unit.model, unit.source = "Unit 1", "some/controlnet", "INIT"
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 0))
    bpy.context.active_object.pass_index = 1
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location, camera.rotation_euler = (0.0, -6.0, 0.0), (1.5708, 0.0, 0.0)
    scene.render.engine = "CYCLES"
    return {"KD_Settings": settings, "KD_PromptKey": settings.prompts[0], "KD_ControlUnit": unit}


def test_every_animatable_property_is_baked_per_frame_whatever_the_playhead(scene, extension):
    readers = {**_frame_params(extension), **PER_FRAME}
    animatable = _animatable(extension)
    assert animatable == set(readers), (
        "animatable but not baked per frame (bake it per frame or make it options=FIXED): "
        f"{sorted(animatable - set(readers))}; per frame but not animatable: {sorted(set(readers) - animatable)}")
    owners = _scene(scene)
    keyed = {}
    for cls, name in sorted(readers):
        owner = owners[cls]
        first, second = _two_values(owner.bl_rna.properties[name])
        for frame, value in ((A, first), (B, second)):
            setattr(owner, name, value)
            assert owner.keyframe_insert(name, frame=frame), (cls, name)
        keyed[cls, name] = (first, second)
    plans = {}
    for playhead in (A, B):
        scene.frame_set(playhead)
        plans[playhead] = extension.bake.scene.bake_scene(scene)
        assert scene.frame_current == playhead
    assert plans[A] == plans[B]  # nothing of the plan depends on where the playhead stood
    records = {r["frame"]: r for r in plans[A]["frames"]}
    for (cls, name), (first, second) in keyed.items():
        got = (readers[cls, name](records[A]), readers[cls, name](records[B]))
        assert got == pytest.approx((first, second), abs=1e-4), (cls, name, got)


def test_settings_read_once_refuse_keys_and_say_why(scene, extension):
    settings = scene.keyframe_diffusion
    for name in ("cadence", "seed_iter_n", "upscale_noise_level", "upscale_steps", "context_length", "batch_size"):
        prop = settings.bl_rna.properties[name]
        assert not prop.is_animatable and "Not animatable" in prop.description, name
        with pytest.raises(TypeError, match="not animatable"):
            settings.keyframe_insert(name, frame=1)
    lora = settings.loras.add()
    assert not lora.bl_rna.properties["scale"].is_animatable
    assert "Not animatable" in lora.bl_rna.properties["scale"].description
    for name in ("mode", "motion_mode", "scheduler", "use_upscale", "width"):
        assert not settings.bl_rna.properties[name].is_animatable, name


def test_unkeyed_per_frame_settings_keep_the_plans_settings_and_frame_hashes(scene, extension):
    # Settings that became per frame are also the plan's settings (the first frame's value), and a frame whose value
    # equals them hashes as before they were per frame: frames rendered earlier stay current.
    from engine import plan as plan_mod

    _scene(scene)
    settings = scene.keyframe_diffusion
    settings.plane_distance, settings.coherence_every, settings.mask_blur = 7.5, 3, 6
    scene.frame_set(2)
    plan = extension.bake.scene.bake_scene(scene)
    assert (plan["settings"]["plane_distance"], plan["settings"]["coherence_every"]) == (7.5, 3)
    assert plan["settings"]["mask_blur"] == 6
    old = {**plan, "frames": [dict(r) for r in plan["frames"]]}
    for record in old["frames"]:
        record["motion"] = {k: v for k, v in record["motion"].items() if k != "plane_distance"}
        record["image"] = {k: v for k, v in record["image"].items() if k != "coherence_every"}
        record["mask"] = {k: v for k, v in record["mask"].items() if k != "blur"}
    hashes = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    assert hashes == plan_mod.frame_hashes(old["settings"], old["frames"])
    settings.keyframe_insert("plane_distance", frame=1)
    settings.plane_distance = 9.0
    settings.keyframe_insert("plane_distance", frame=3)
    keyed = extension.bake.scene.bake_scene(scene)
    assert [r["motion"]["plane_distance"] for r in keyed["frames"]] == pytest.approx([7.5, 8.25, 9.0])
    changed = plan_mod.frame_hashes(keyed["settings"], keyed["frames"])
    assert changed[1] == hashes[1] and changed[2] != hashes[2] and changed[3] != hashes[3]
