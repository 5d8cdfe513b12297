"""Shot mode on the Blender side (bpy 5.0 wheel): its settings, pins as timeline markers the user moves, the bake
(pins resolved to files, Blender's passes as each frame's control picture, shots split at cuts), the errors, and the
whole path through the worker with a tiny Wan VACE model."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from engine import plan as plan_mod
from engine import vocabulary as vocab
from engine.frames import frame_filename

from test_blender_modes import _geometry_scene

bpy = pytest.importorskip("bpy")

SHOT_SETTINGS = ("shot_window", "shot_overlap", "chain_shots", "memory_mode", "memory_limit_gb", "video_cache",
                 "video_control", "control_scale")


@pytest.fixture
def shot(scene):
    """The fixture scene over frames 1-24 in shot mode at 32x32, one prompt."""
    scene.frame_end = 24
    settings = scene.keyframe_diffusion
    settings.mode = "SHOT"
    settings.width = settings.height = 32
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    return scene


def _geometry(scene):
    """A camera dollying past a cube over a floor over the shot's 24 frames (Cycles, few samples)."""
    return _geometry_scene(scene, last_frame=24, samples=2)


def _marker(scene, pin):
    return scene.timeline_markers.get(pin.marker)


def _bake(extension, scene, passes=False) -> dict:
    plan = extension.bake.scene.bake_scene(scene, passes=passes)
    plan_mod.validate(json.loads(json.dumps(plan)))  # what the engine reads validates too
    return plan


# --- settings -----------------------------------------------------------------------------------------------------

def test_shot_settings_default_to_the_plans_defaults_and_take_one_value(scene):
    settings = scene.keyframe_diffusion
    for name in SHOT_SETTINGS:
        prop = settings.bl_rna.properties[name]
        assert getattr(settings, name) == pytest.approx(plan_mod.SETTINGS_DEFAULTS[name]), name
        assert not prop.is_animatable, name
    pin = settings.pins.add()
    for name in ("source", "strength", "frame"):
        assert not pin.bl_rna.properties[name].is_animatable, name
    assert [i.identifier for i in pin.bl_rna.properties["source"].enum_items] == list(vocab.names(vocab.PIN_SOURCES))


def test_shot_settings_reach_the_plan_only_in_shot_mode(shot, extension):
    settings = shot.keyframe_diffusion
    settings.shot_window, settings.shot_overlap, settings.chain_shots = 17, 40, True  # overlap: below the window
    settings.memory_mode, settings.memory_limit_gb, settings.video_cache = "FP8_OFFLOAD", 11.5, "FIRST_BLOCK"
    settings.video_control, settings.control_scale = "NONE", 0.7
    s = _bake(extension, shot)["settings"]
    assert (s["mode"], s["shot_window"], s["shot_overlap"], s["chain_shots"]) == ("SHOT", 17, 16, True)
    assert (s["memory_mode"], s["memory_limit_gb"], s["video_cache"]) == ("FP8_OFFLOAD", 11.5, "FIRST_BLOCK")
    assert (s["video_control"], s["control_scale"]) == ("NONE", pytest.approx(0.7))
    settings.mode = "INTERPOLATE"
    s = _bake(extension, shot)["settings"]
    assert "pins" not in s and (s["chain_shots"], s["video_control"]) == (False, "NONE")  # the plan's defaults


def test_settings_a_video_model_has_no_place_for_are_hidden_and_not_baked(shot, extension):
    """ControlNet units, LoRAs, the fast decoder and the scheduler stay in the scene but shot mode sends none (the
    engine would refuse them) and its panels don't show them."""
    settings = shot.keyframe_diffusion
    bpy.ops.keyframe_diffusion.item_add(kind="CONTROLNET")
    settings.controlnets[0].model, settings.controlnets[0].source = "some/controlnet", "DEPTH"
    bpy.ops.keyframe_diffusion.item_add(kind="LORA")
    settings.loras[0].path = "//style.safetensors"
    settings.decoder, settings.scheduler = "madebyollin/taesd", "euler_a"
    plan = _bake(extension, shot)
    s = plan["settings"]
    assert (s["controlnets"], s["loras"], s["decoder"], s["scheduler"]) == ([], [], "", "default")
    assert all("control" not in r for r in plan["frames"])
    panels = extension.panels.sequencer
    context = SimpleNamespace(scene=shot)
    assert panels.KD_PT_shot.poll(context)
    assert not any(p.poll(context) for p in (panels.KD_PT_controlnet, panels.KD_PT_clip, panels.KD_PT_inpaint,
                                             panels.KD_PT_motion, panels.KD_PT_input))
    from test_panels import Layout

    calls = []
    for panel in (panels.KD_PT_model, panels.KD_PT_speed, panels.KD_PT_advanced):
        panel.draw(SimpleNamespace(layout=Layout(calls)), context)
    drawn = {name for kind, name in calls}
    assert not {"loras", "decoder", "scheduler"} & drawn and {"precision", "pipeline_kwargs"} <= drawn
    settings.mode = "VIDEO"
    assert panels.KD_PT_controlnet.poll(context) and not panels.KD_PT_shot.poll(context)


def test_the_shot_panel_draws_its_settings_and_pins(shot, extension):
    from test_panels import Layout

    settings = shot.keyframe_diffusion
    settings.video_control = "RENDER"
    bpy.ops.keyframe_diffusion.pin_add(source="FILE", filepath="//key.png")
    context = SimpleNamespace(scene=shot, window_manager=bpy.context.window_manager)
    calls = []
    extension.panels.sequencer.KD_PT_shot.draw(SimpleNamespace(layout=Layout(calls)), context)
    drawn = {name for kind, name in calls if kind in ("prop", "list")}
    assert set(SHOT_SETTINGS) - {"chain_shots"} <= drawn and {"chain_shots", "strength", "pins", "filepath",
                                                                "frame", "source"} <= drawn
    ops = {name for kind, name in calls if kind == "operator"}
    assert {"keyframe_diffusion.pin_add", "keyframe_diffusion.pin_remove", "keyframe_diffusion.pin_jump"} <= ops
    labels = " ".join(name for kind, name in calls if kind == "label")
    assert "Wan 2.x" in labels  # the model field holds an image model: the hint says what to put there
    calls.clear()
    row = extension.panels.sequencer.KD_UL_pins.draw_item
    row(None, context, Layout(calls), settings, settings.pins[0], 0, settings, "active_pin", 0)
    assert calls == [("label", "1"), ("prop", "name"), ("label", ""), ("prop", "strength")]
    assert "marker was deleted" not in labels
    shot.timeline_markers.remove(_marker(shot, settings.pins[0]))
    calls.clear()
    extension.panels.sequencer.KD_PT_shot.draw(SimpleNamespace(layout=Layout(calls)), context)
    labels = " ".join(name for kind, name in calls if kind == "label")
    assert "marker was deleted or renamed: the pin stays at frame 1" in labels
    assert ("operator", "keyframe_diffusion.pin_restore_marker") in calls
    settings.model = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    calls.clear()
    extension.panels.sequencer.KD_PT_shot.draw(SimpleNamespace(layout=Layout(calls)), context)
    assert "Wan 2.x" not in " ".join(name for kind, name in calls if kind == "label")


# --- pins and their markers ---------------------------------------------------------------------------------------

def test_a_pin_is_a_marker_the_user_moves(shot):
    settings = shot.keyframe_diffusion
    shot.frame_set(5)
    assert bpy.ops.keyframe_diffusion.pin_add(source="RENDER") == {"FINISHED"}
    pin = settings.pins[0]
    assert (pin.name, pin.frame, pin.marker) == ("Render", 5, "Pin: Render")
    marker = _marker(shot, pin)
    assert marker.frame == 5 and marker.camera is None
    # Moving the marker in the timeline moves the pin; setting the pin's frame moves its marker.
    marker.frame = 9
    assert pin.frame == 9
    pin.frame = 12
    assert marker.frame == 12 and pin.stored_frame == 12
    # A second pin gets a label of its own (and so a marker of its own); renaming a pin renames its marker.
    assert bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=20) == {"FINISHED"}
    second = settings.pins[1]
    assert (second.name, second.marker, settings.active_pin) == ("Render 2", "Pin: Render 2", 1)
    second.name = "Ending"
    assert _marker(shot, second).name == "Pin: Ending" and second.frame == 20
    second.name = "Render"  # the first pin's label: numbered
    assert second.name == "Render 2" and _marker(shot, second).name == "Pin: Render 2"
    # One picture a frame.
    with pytest.raises(RuntimeError, match="frame 12 has a pin already \\('Render'\\)"):
        bpy.ops.keyframe_diffusion.pin_add(source="FILE", frame=12, filepath="//a.png")
    # Jump to a pin.
    assert bpy.ops.keyframe_diffusion.pin_jump(index=0) == {"FINISHED"} and shot.frame_current == 12
    # Removing a pin removes its marker and no other.
    shot.timeline_markers.new("cut", frame=8)
    settings.active_pin = 0
    assert bpy.ops.keyframe_diffusion.pin_remove() == {"FINISHED"}
    assert [p.name for p in settings.pins] == ["Render 2"]
    assert sorted(m.name for m in shot.timeline_markers) == ["Pin: Render 2", "cut"]


def test_new_pins_are_named_after_their_source(shot):
    settings = shot.keyframe_diffusion
    strips = shot.sequence_editor_create().strips
    strips.new_image("Keys", "//keys/k_000.png", 3, 1)
    for i, (source, extra) in enumerate((("FILE", {"filepath": "//art/hero_pose.png"}), ("STRIP", {"strip": "Keys"}),
                                         ("GENERATED", {}), ("RENDER", {}))):
        bpy.ops.keyframe_diffusion.pin_add(source=source, frame=i + 1, **extra)
    assert [p.name for p in settings.pins] == ["hero_pose", "Keys", "Generated", "Render"]
    assert [(p.source, p.frame) for p in settings.pins] == [("FILE", 1), ("STRIP", 2), ("GENERATED", 3),
                                                             ("RENDER", 4)]


def test_a_pin_whose_marker_is_gone_stays_at_its_frame_until_it_gets_one_again(shot, extension):
    settings = shot.keyframe_diffusion
    _geometry(shot)
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=4)
    pin = settings.pins[0]
    _marker(shot, pin).frame = 10  # moved in the timeline; the stored frame follows at the next bake
    assert pin.frame == 10 and pin.stored_frame == 4
    assert bpy.ops.keyframe_diffusion.bake() == {"FINISHED"}
    assert pin.stored_frame == 10
    shot.timeline_markers.remove(_marker(shot, pin))
    assert pin.frame == 10  # where it was baked
    assert _bake(extension, shot)["settings"]["pins"][0]["frame"] == 10
    pin.frame = 11  # with no marker the pin still moves
    assert bpy.ops.keyframe_diffusion.pin_restore_marker() == {"FINISHED"}
    assert _marker(shot, pin).frame == 11 and pin.frame == 11


# --- the bake -----------------------------------------------------------------------------------------------------

def test_bake_render_pins_and_depth_control_with_shots_split_at_cuts(shot, extension):
    """Scene Render pins at 1 and 24 and a depth control video: the pins are Blender's renders at their frames, every
    frame's control picture is its depth pass, the shot splits at a cut marker, a camera cut and a strip cut in the
    edit, and the pins' own markers cut nothing."""
    settings = shot.keyframe_diffusion
    camera = _geometry(shot)
    settings.video_control = "DEPTH"
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=1)
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=24, label="restart")  # marker "Pin: restart"
    settings.pins[1].strength = 0.8
    shot.timeline_markers.new("cut", frame=9)
    other = bpy.data.objects.new("Other", camera.data)
    other.location, other.rotation_euler = (0.0, -9.0, 4.0), camera.rotation_euler
    shot.collection.objects.link(other)
    shot.timeline_markers.new("A", frame=1).camera = camera
    shot.timeline_markers.new("B", frame=17).camera = other
    # The edit: a scene strip showing frames 1-4 of another scene, cut to this one's at 5 (its own frames 5-24 play
    # beneath nothing; a strip's start and its end are cuts). Muted strips, image strips and text strips cut nothing.
    insert = bpy.data.scenes.new("Insert")
    insert.frame_start, insert.frame_end = 1, 4
    strips = shot.sequence_editor_create().strips
    strips.new_scene("Insert", insert, 1, 1)
    strips.new_scene("Muted", insert, 2, 19).mute = True
    strips.new_image("Still", "//still.png", 3, 21)
    assert bpy.ops.keyframe_diffusion.bake() == {"FINISHED"}
    folder = bpy.path.abspath(settings.output_dir)
    with open(os.path.join(folder, "plan.json")) as f:
        plan = json.load(f)
    pins = plan["settings"]["pins"]
    assert [(p["frame"], p["strength"]) for p in pins] == [(1, 1.0), (24, pytest.approx(0.8))]
    for pin in pins:
        assert pin["path"].endswith(frame_filename(pin["frame"])) and os.path.isfile(pin["path"])
        picture = np.asarray(Image.open(pin["path"]).convert("RGB"))
        assert picture.shape == (32, 32, 3) and picture.std() > 1  # the cube over the floor, not a blank
    assert len(plan["frames"]) == 24
    for record in plan["frames"]:
        path = record["control_frame"]["path"]
        assert path.endswith(".exr") and os.path.isfile(path) and f"{os.sep}depth{os.sep}" in path
    assert [r["frame"] for r in plan["frames"] if r.get("restart")] == [5, 9, 17]
    assert [[r["frame"] for r in s] for s in plan_mod.chain_segments(plan["frames"])] == [
        [1, 2, 3, 4], list(range(5, 9)), list(range(9, 17)), list(range(17, 25))]
    assert plan_mod.shot_pins(plan["settings"], plan_mod.chain_segments(plan["frames"])[3])[0]["frame"] == 24
    # Only the pins' frames were rendered with the scene's engine.
    assert sorted(os.listdir(os.path.join(folder, "passes", "image"))) == [frame_filename(1), frame_filename(24)]
    # Baked again, the renders keep their files (Cycles' render time in the PNG's text is not a new picture), so the
    # shots' hashes stay and nothing renders again.
    stamps = [os.stat(p["path"]).st_mtime_ns for p in pins]
    assert bpy.ops.keyframe_diffusion.bake() == {"FINISHED"}
    assert [os.stat(p["path"]).st_mtime_ns for p in pins] == stamps


def test_moving_a_pins_marker_moves_the_baked_pin(shot, extension):
    settings = shot.keyframe_diffusion
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=6)
    assert _bake(extension, shot)["settings"]["pins"][0]["frame"] == 6
    _marker(shot, settings.pins[0]).frame = 15
    plan = _bake(extension, shot)
    assert plan["settings"]["pins"][0]["frame"] == 15
    assert plan["settings"]["pins"][0]["path"].endswith(os.path.join("passes", "image", frame_filename(15)))


@pytest.mark.parametrize("control, folder", [("FLOW", "vector"), ("INDEX", "object_index"), ("RENDER", "image")])
def test_each_control_video_is_its_pass(shot, extension, control, folder):
    settings = shot.keyframe_diffusion
    shot.frame_end = 3
    _geometry(shot)
    settings.video_control = control
    plan = _bake(extension, shot, passes=True)
    for record in plan["frames"]:
        path = record["control_frame"]["path"]
        assert os.path.isfile(path) and os.path.basename(os.path.dirname(path)) == folder
        assert path.endswith(".png" if control == "RENDER" else ".exr")


def test_file_strip_and_generated_pins_resolve_to_files(shot, extension, tmp_path):
    settings = shot.keyframe_diffusion
    art = tmp_path / "art.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(art)
    keys = tmp_path / "keys"
    keys.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 50 * i, np.uint8)).save(keys / f"k_{i}.png")
    strip = shot.sequence_editor_create().strips.new_image("Keys", str(keys / "k_0.png"), 2, 5)
    strip.elements.append("k_1.png")
    strip.elements.append("k_2.png")
    out = bpy.path.abspath(settings.output_dir)
    os.makedirs(out, exist_ok=True)
    generated = os.path.join(out, frame_filename(20))
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(generated)
    bpy.ops.keyframe_diffusion.pin_add(source="FILE", frame=2, filepath=str(art))
    bpy.ops.keyframe_diffusion.pin_add(source="STRIP", frame=7, strip="Keys")  # content frame 2: k_2
    bpy.ops.keyframe_diffusion.pin_add(source="GENERATED", frame=20)
    pins = _bake(extension, shot)["settings"]["pins"]
    assert [p["frame"] for p in pins] == [2, 7, 20]
    assert pins[0]["path"] == str(art) and pins[1]["path"] == str(keys / "k_2.png")
    # A generated frame is pinned as a copy taken at the first bake: the shot renders that frame again, and the pin
    # must not change with it.
    copy = pins[2]["path"]
    assert copy != generated and copy.startswith(os.path.join(out, "pins")) and os.path.isfile(copy)
    Image.fromarray(np.full((32, 32, 3), 10, np.uint8)).save(generated)
    assert _bake(extension, shot)["settings"]["pins"][2]["path"] == copy
    assert np.asarray(Image.open(copy))[0, 0, 0] == 90


def test_bad_pins_say_which_pin_and_what_to_fix(shot, extension, tmp_path):
    settings = shot.keyframe_diffusion
    bake = extension.bake.scene.bake_scene
    error = extension.bake.scene.BakeError
    bpy.ops.keyframe_diffusion.pin_add(source="FILE", frame=3, label="Hero", filepath="")
    with pytest.raises(error, match="pin 'Hero' at frame 3: no image file chosen"):
        bake(shot, passes=False)
    settings.pins[0].filepath = str(tmp_path / "gone.png")
    with pytest.raises(error, match="pin 'Hero' at frame 3: image file not found: .*gone.png"):
        bake(shot, passes=False)
    settings.pins[0].source = "STRIP"
    with pytest.raises(error, match="pin 'Hero' at frame 3: no strip chosen"):
        bake(shot, passes=False)
    settings.pins[0].strip = "Nope"
    with pytest.raises(error, match="pin 'Hero' at frame 3: no strip named 'Nope'"):
        bake(shot, passes=False)
    settings.pins[0].source = "GENERATED"
    with pytest.raises(error, match="pin 'Hero' at frame 3: no generated frame there yet"):
        bake(shot, passes=False)
    # A pin past the frame range: the plan check's message, naming the pin, reaches the operator's report.
    settings.pins[0].source = "RENDER"
    settings.pins[0].frame = 30
    with pytest.raises(RuntimeError, match="(?s)pin 'Hero': the picture pinned at frame 30.*lies outside every shot "
                                           "\\(the shots are frames 1-24\\)"):
        bpy.ops.keyframe_diffusion.bake()
    with pytest.raises(RuntimeError, match="Bake failed: pin 'Hero': the picture pinned at frame 30"):
        bpy.ops.keyframe_diffusion.generate()
    # Two pins on one frame (a marker moved onto another pin's).
    settings.pins[0].frame = 5
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=6, label="Other")
    settings.pins[1].frame = 5
    with pytest.raises(error, match="pin 'Other': two pictures are pinned at frame 5 \\(pin 'Hero' too\\)"):
        bake(shot, passes=False)


# --- through the worker -------------------------------------------------------------------------------------------

def test_shot_mode_end_to_end_with_a_tiny_wan_vace_model(shot, extension):
    """Blender's render pinned at frames 1 and 24, its depth as the VACE control video, through the real worker:
    24 frames land in the strip at their frames and size."""
    settings = shot.keyframe_diffusion
    _geometry(shot)
    settings.model = "embedded:tiny-wan-vace"
    settings.steps = 2
    settings.video_control = "DEPTH"
    shot.view_settings.view_transform = "Standard"
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=1)
    bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=24)
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    strip = next(s for s in shot.sequence_editor.strips_all if s.name == settings.strip_name)
    files = [os.path.join(bpy.path.abspath(strip.directory), e.filename) for e in strip.elements]
    assert [os.path.basename(f) for f in files] == [frame_filename(f) for f in range(1, 25)]
    assert strip.frame_final_start == 1 and strip.frame_final_end == 25
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    assert all(i.shape == (32, 32, 3) for i in images)
    with open(os.path.join(bpy.path.abspath(settings.output_dir), "plan.json")) as f:
        plan = json.load(f)
    assert plan["settings"]["mode"] == "SHOT" and [p["frame"] for p in plan["settings"]["pins"]] == [1, 24]
    # A second Generate finds every frame current: the pins' renders and the depth passes hold the same pictures
    # (Cycles writes its render time into every PNG it saves; a pass file is replaced only when its picture changes).
    # (The view transform is Standard from the start: the first Generate's switch to it would change the pins' look,
    # and so their shot, once.)
    job = extension.run.generate.GenerateJob(shot)
    job.run_blocking()
    assert job.rendered == []


@pytest.mark.parametrize("model, pinned", [("embedded:tiny-wan-t2v", ()), ("embedded:tiny-wan-i2v", (1, 24)),
                                           ("embedded:tiny-ltx-condition", (1, 9, 24))])
def test_each_family_renders_through_the_worker_into_a_strip(shot, extension, tmp_path, model, pinned):
    """Wan text-to-video, Wan first/last frame (FLF2V) and LTX conditions: pictures from files pinned, 24 frames in
    the strip at their frames and size, in order."""
    settings = shot.keyframe_diffusion
    settings.model = model
    settings.steps = 2
    for i, frame in enumerate(pinned):
        art = tmp_path / f"pin_{frame}.png"
        Image.fromarray(np.full((32, 32, 3), 60 * i + 40, np.uint8)).save(art)
        bpy.ops.keyframe_diffusion.pin_add(source="FILE", frame=frame, filepath=str(art))
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    strip = next(s for s in shot.sequence_editor.strips_all if s.name == settings.strip_name)
    assert [e.filename for e in strip.elements] == [frame_filename(f) for f in range(1, 25)]
    assert strip.frame_final_start == 1 and strip.frame_final_end == 25
    folder = bpy.path.abspath(strip.directory)
    images = [np.asarray(Image.open(os.path.join(folder, e.filename)).convert("RGB")) for e in strip.elements]
    assert all(i.shape == (32, 32, 3) for i in images) and len({i.tobytes() for i in images}) > 1
    with open(os.path.join(bpy.path.abspath(settings.output_dir), "plan.json")) as f:
        assert [p["frame"] for p in json.load(f)["settings"]["pins"]] == list(pinned)
