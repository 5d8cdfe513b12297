"""Audio-reactive animation in real Blender (bpy 5.0): sound strips drive F-curves, beats become markers and prompt
keys, a moved strip moves the keys, and the driven scene generates."""

import math
import os
import wave

import numpy as np
import pytest

from engine import audio as engine_audio

bpy = pytest.importorskip("bpy")

SR = 22050


def click_track(path, times, duration):
    """Short decaying noise bursts at `times` (seconds) in silence, as 16-bit mono WAV."""
    y = np.zeros(int(SR * duration), dtype=np.float32)
    burst = np.random.default_rng(0).normal(0, 0.8, int(0.004 * SR)) * np.exp(-np.linspace(0, 6, int(0.004 * SR)))
    for t in times:
        i = int(t * SR)
        y[i:i + len(burst)] += burst[: len(y) - i]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    return str(path)


def mid_frame_times(frames, fps):
    return [(f + 0.5) / fps for f in frames]


def strips_of(scene):
    editor = scene.sequence_editor_create()
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def add_sound(scene, path, frame_start=1, channel=5, name="clicks"):
    return strips_of(scene).new_sound(name, path, channel, frame_start)


@pytest.fixture
def clicks(tmp_path):
    audio_frames = [3, 9, 15, 20]  # audio frames (0-based) at 24 fps
    return click_track(tmp_path / "clicks.wav", mid_frame_times(audio_frames, 24), 1.0), audio_frames


def fcurve_values(extension, scene, path, frames):
    fc = extension.settings.compat.find_fcurve(scene, path)
    return [fc.evaluate(f) for f in frames]


def test_sound_strip_drives_zoom_and_a_prompt_transition_then_generates(scene, extension, clicks):
    path, audio_frames = clicks
    scene.frame_start, scene.frame_end = 1, 24
    scene.render.fps, scene.render.fps_base = 24, 1.0
    settings = scene.keyframe_diffusion
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=24)
    add_sound(scene, path, frame_start=1)
    assert bpy.ops.keyframe_diffusion.audio_link_add(strip="clicks", data_path="keyframe_diffusion.zoom",
                                                     shape="pulse", low=1.0, high=1.1) == {"FINISHED"}
    for index, (low, high) in enumerate(((1.0, 0.0), (0.0, 1.0))):
        assert bpy.ops.keyframe_diffusion.audio_link_add(
            strip="clicks", data_path=f"keyframe_diffusion.prompts[{index}].weight", shape="ramp", low=low,
            high=high) == {"FINISHED"}
    plan = extension.bake.scene.bake_scene(scene)
    zoom = [r["motion"]["zoom"] for r in plan["frames"]]
    expected = engine_audio.curve(path, 24.0, 0, 24, kind="pulse", low=1.0, high=1.1)["values"]
    assert zoom == pytest.approx(expected, abs=1e-5)
    # Pulses peak on the clicks: scene frame = strip start (1) + audio frame.
    peaks = [i for i in range(1, 23) if zoom[i] > zoom[i - 1] and zoom[i] >= zoom[i + 1] and zoom[i] > 1.05]
    assert peaks == audio_frames
    blue = [next((p["weight"] for p in r["prompts"] if p["text"] == "a blue square"), 0.0) for r in plan["frames"]]
    assert blue[0] == pytest.approx(0.0, abs=1e-6) and blue[-1] == pytest.approx(1.0, abs=1e-6)
    assert all(a <= b + 1e-6 for a, b in zip(blue, blue[1:]))
    steps = np.diff(blue)
    assert max(steps[f - 1] for f in audio_frames) > 5 * np.median(steps)  # the ramp jumps on the beats
    # The keys are ordinary keys: one per frame in the strip's span.
    fc = extension.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom")
    assert len(fc.keyframe_points) == 24
    settings.steps, settings.width, settings.height = 2, 64, 64
    assert bpy.ops.keyframe_diffusion.generate(frames="1-4") == {"FINISHED"}
    assert all(os.path.isfile(os.path.join(settings.output_dir, f"frame_{f:06d}.png")) for f in range(1, 5))


def test_moving_or_trimming_the_strip_moves_the_keys(scene, extension, clicks, monkeypatch):
    path, audio_frames = clicks
    scene.frame_start, scene.frame_end = 1, 40
    scene.render.fps, scene.render.fps_base = 24, 1.0
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    strip = add_sound(scene, path, frame_start=1)
    bpy.ops.keyframe_diffusion.audio_link_add(strip="clicks", data_path="keyframe_diffusion.zoom", low=1.0, high=2.0)
    before = fcurve_values(extension, scene, "keyframe_diffusion.zoom", range(1, 41))
    strip.frame_start += 7
    # The bake is a read of the scene: it neither starts the engine nor rewrites keys, even for a moved strip.
    with monkeypatch.context() as m:
        def no_engine(*_args, **_kwargs):
            raise AssertionError("the bake reached for the engine")

        m.setattr(extension.engine_link.worker_client.WorkerClient, "run_command", no_engine)
        m.setattr(extension.engine_link.worker_client.WorkerClient, "start", no_engine)
        plan = extension.bake.scene.bake_scene(scene)
    assert fcurve_values(extension, scene, "keyframe_diffusion.zoom", range(1, 41)) == before
    assert [r["motion"]["zoom"] for r in plan["frames"]] == pytest.approx(before, abs=1e-5)
    # Apply Audio with Only Changed (what Generate runs first) notices the move and writes the keys again.
    assert bpy.ops.keyframe_diffusion.audio_apply(all=True, changed_only=True) == {"FINISHED"}
    after = fcurve_values(extension, scene, "keyframe_diffusion.zoom", range(1, 41))
    assert after[7:31] == pytest.approx(before[0:24], abs=1e-5)
    assert after[:7] == pytest.approx([1.0] * 7)  # before the strip: at rest (Low)
    peaks = [f for f in range(2, 40) if after[f - 1] > 1.5]
    assert peaks == [8 + f for f in audio_frames]
    # Trim the first 10 frames off: those clicks leave the curve.
    strip.frame_offset_start = 10
    scene.keyframe_diffusion.steps, scene.keyframe_diffusion.width, scene.keyframe_diffusion.height = 1, 64, 64
    assert bpy.ops.keyframe_diffusion.generate(frames="1-1") == {"FINISHED"}  # Generate refreshes the links first
    trimmed = fcurve_values(extension, scene, "keyframe_diffusion.zoom", range(1, 41))
    assert [f for f in range(2, 40) if trimmed[f - 1] > 1.5] == [8 + f for f in audio_frames if f >= 10]


def test_onsets_become_markers_and_prompt_keys_at_29_97_fps(scene, extension, tmp_path):
    fps = 30 / 1.001
    audio_frames = [4, 12, 21, 33]
    path = click_track(tmp_path / "c.wav", mid_frame_times(audio_frames, fps), 1.5)
    scene.frame_start, scene.frame_end = 1, 45
    scene.render.fps, scene.render.fps_base = 30, 1.001
    add_sound(scene, path, frame_start=3)
    for text, frame in (("a", 1), ("b", 10), ("c", 20)):
        bpy.ops.keyframe_diffusion.prompt_add(text=text, frame=frame)
    assert bpy.ops.keyframe_diffusion.audio_markers(strip="clicks", events="onsets", part="full",
                                                    prompts_every=1, transition="SINE") == {"FINISHED"}
    expected = [3 + f for f in audio_frames]
    assert sorted(m.frame for m in scene.timeline_markers if m.name == "onset") == expected
    assert [p.frame for p in sorted(scene.keyframe_diffusion.prompts, key=lambda p: p.frame)] == expected[:3]
    # Again: markers are replaced, not doubled.
    bpy.ops.keyframe_diffusion.audio_markers(strip="clicks", events="onsets", part="full")
    assert len([m for m in scene.timeline_markers if m.name == "onset"]) == 4
    with pytest.raises(RuntimeError, match="need 3 onsets"):
        bpy.ops.keyframe_diffusion.audio_markers(strip="clicks", events="onsets", part="full", prompts_every=3)


def test_packed_sound_and_audio_file_sources(scene, extension, clicks, tmp_path):
    path, audio_frames = clicks
    scene.frame_start, scene.frame_end = 1, 24
    scene.render.fps, scene.render.fps_base = 24, 1.0
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    strip = add_sound(scene, path)
    strip.sound.pack()
    os.remove(path)  # only the packed copy is left
    assert bpy.ops.keyframe_diffusion.audio_link_add(strip="clicks", data_path="keyframe_diffusion.noise",
                                                     low=0.0, high=0.5) == {"FINISHED"}
    noise = [r["image"]["noise"] for r in extension.bake.scene.bake_scene(scene)["frames"]]
    assert max(range(24), key=lambda i: noise[i]) in audio_frames
    other = click_track(tmp_path / "other.wav", mid_frame_times([5], 24), 0.5)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    # Any animatable property of any ID: here the camera object's Z location, from a file placed at the scene start.
    assert bpy.ops.keyframe_diffusion.audio_link_add(filepath=other, id_type="objects", id_name="Cam",
                                                     data_path="location", index=2, high=3.0) == {"FINISHED"}
    fc = extension.settings.compat.find_fcurve(cam, "location", 2)
    assert max(range(1, 25), key=fc.evaluate) == 1 + 5


def test_audio_errors_are_clear_and_change_nothing(scene, extension, tmp_path):
    bpy.ops.keyframe_diffusion.prompt_add(text="a", frame=1)
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is not audio")
    with pytest.raises(RuntimeError, match="can't read audio from .*not_audio.wav"):
        bpy.ops.keyframe_diffusion.audio_link_add(filepath=str(bad), data_path="keyframe_diffusion.zoom")
    with pytest.raises(RuntimeError, match="audio file not found"):
        bpy.ops.keyframe_diffusion.audio_link_add(filepath=str(tmp_path / "gone.wav"))
    with pytest.raises(RuntimeError, match="no sound strip named 'nope'"):
        bpy.ops.keyframe_diffusion.audio_link_add(strip="nope")
    with pytest.raises(RuntimeError, match="'keyframe_diffusion.zooom' is not a property"):
        bpy.ops.keyframe_diffusion.audio_link_add(filepath=str(bad), data_path="keyframe_diffusion.zooom")
    silent = click_track(tmp_path / "silent.wav", [], 1.0)
    add_sound(scene, silent, frame_start=100, name="late")
    with pytest.raises(RuntimeError, match="outside the scene's frames 1-6"):
        bpy.ops.keyframe_diffusion.audio_link_add(strip="late")
    assert len(scene.keyframe_diffusion.audio_links) == 0
    assert extension.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom") is None
    # Silence: flat keys at Low, no NaN.
    assert bpy.ops.keyframe_diffusion.audio_link_add(filepath=silent, low=1.0, high=2.0) == {"FINISHED"}
    zoom = [r["motion"]["zoom"] for r in extension.bake.scene.bake_scene(scene)["frames"]]
    assert zoom == [1.0] * 6 and not any(math.isnan(z) for z in zoom)


def test_right_click_menu_offers_drive_from_audio_for_any_number_property(scene, extension):
    from types import SimpleNamespace

    class Layout:
        def __init__(self):
            self.ops = []

        def separator(self):
            pass

        def operator(self, idname, text="", icon="NONE"):
            self.ops.append((idname, text, SimpleNamespace()))
            return self.ops[-1][2]

    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    menu = SimpleNamespace(layout=Layout())
    prop = cam.bl_rna.properties["location"]
    context = SimpleNamespace(button_pointer=cam, button_prop=prop, property=(cam, "location", 2))
    extension.operators.audio.context_menu(menu, context)
    idname, text, op = menu.layout.ops[0]
    assert idname == "keyframe_diffusion.audio_link_add" and text == "Drive from Audio..."
    assert (op.id_type, op.id_name, op.data_path, op.index) == ("objects", "Cam", "location", 2)
    settings = scene.keyframe_diffusion
    menu = SimpleNamespace(layout=Layout())
    extension.operators.audio.context_menu(menu, SimpleNamespace(
        button_pointer=settings, button_prop=settings.bl_rna.properties["zoom"], property=None))
    assert (menu.layout.ops[0][2].id_type, menu.layout.ops[0][2].data_path) == ("scenes", "keyframe_diffusion.zoom")
    # Not for text or enum properties.
    menu = SimpleNamespace(layout=Layout())
    extension.operators.audio.context_menu(menu, SimpleNamespace(
        button_pointer=settings, button_prop=settings.bl_rna.properties["model"], property=None))
    assert menu.layout.ops == []
