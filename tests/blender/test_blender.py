"""The extension in real Blender (bpy 5.0 wheel), installed from its built zip."""

import os
import signal
import subprocess
import wave

import numpy as np
import pytest
from PIL import Image

from engine import plan as plan_mod
from engine.frames import frame_filename

bpy = pytest.importorskip("bpy")


def two_prompt_scene(scene, interpolation="LINEAR"):
    bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1, transition=interpolation)
    bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=6, transition=interpolation)
    return scene.keyframe_diffusion


def strip_files(strip):
    return [os.path.join(bpy.path.abspath(strip.directory), e.filename) for e in strip.elements]


def test_installed_extension_registers_its_api(extension):
    assert hasattr(bpy.types.Scene, "keyframe_diffusion")
    for op in ("prompt_add", "prompt_remove", "bake", "generate", "cancel", "export", "release"):
        assert hasattr(bpy.ops.keyframe_diffusion, op)


def test_prompt_keys_crossfade_with_neighbours(scene):
    settings = two_prompt_scene(scene)
    bpy.ops.keyframe_diffusion.prompt_add(text="a green triangle", frame=3)
    weights = {}
    for f in (1, 2, 3, 4, 6):
        scene.frame_set(f)
        weights[f] = [round(p.weight, 4) for p in settings.prompts]
    assert weights[1] == [1, 0, 0] and weights[3] == [0, 0, 1] and weights[6] == [0, 1, 0]
    assert weights[2] == [0.5, 0, 0.5]
    assert weights[4] == [0, round(1 / 3, 4), round(2 / 3, 4)]
    bpy.ops.keyframe_diffusion.prompt_remove(index=2)
    assert [p.text for p in settings.prompts] == ["a red circle", "a blue square"]
    scene.frame_set(3)
    assert [round(p.weight, 4) for p in settings.prompts] == [0.6, 0.4]


def test_bake_matches_fcurves(scene, extension):
    settings = two_prompt_scene(scene, interpolation="BEZIER")
    bpy.ops.keyframe_diffusion.prompt_add(text="a green triangle", frame=4, transition="SINE")
    for frame, guidance, steps, seed in ((1, 3.0, 2, 10), (6, 11.0, 5, 40)):
        settings.guidance, settings.steps, settings.seed = guidance, steps, seed
        settings.keyframe_insert("guidance", frame=frame)
        settings.keyframe_insert("steps", frame=frame)
        settings.keyframe_insert("seed", frame=frame)
    cam_data = bpy.data.cameras.new("Cam")
    cam = bpy.data.objects.new("Cam", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    for frame, x in ((1, 0.0), (6, 5.0)):
        cam.location.x = x
        cam.keyframe_insert("location", index=0, frame=frame)
    scene.frame_set(1)

    plan = extension.bake.scene.bake_scene(scene)
    find = extension.settings.compat.find_fcurve
    curve = {name: find(scene, f"keyframe_diffusion.{name}") for name in ("guidance", "steps", "seed")}
    weight_curves = [find(scene, p.path_from_id("weight")) for p in settings.prompts]
    loc_x = find(cam, "location", 0)
    assert [r["frame"] for r in plan["frames"]] == list(range(1, 7))
    for record in plan["frames"]:
        f = record["frame"]
        assert record["guidance"] == pytest.approx(curve["guidance"].evaluate(f), abs=1e-5)
        assert record["steps"] == round(curve["steps"].evaluate(f))
        assert record["seed"] == round(curve["seed"].evaluate(f))
        raw = [max(0.0, c.evaluate(f)) for c in weight_curves]
        expected = {p.text: w / sum(raw) for p, w in zip(settings.prompts, raw) if w > 1e-6}
        assert {p["text"]: p["weight"] for p in record["prompts"]} == pytest.approx(expected, abs=1e-5)
        assert record["camera"]["matrix_world"][0][3] == pytest.approx(loc_x.evaluate(f), abs=1e-5)
    # The bake leaves the playhead where it was.
    assert scene.frame_current == 1
    assert len({r["steps"] for r in plan["frames"]}) > 2 and len({r["guidance"] for r in plan["frames"]}) == 6


def test_bake_writes_the_speed_settings(scene, extension, tmp_path):
    settings = two_prompt_scene(scene)
    assert extension.bake.scene.bake_scene(scene)["settings"]["decoder"] == ""
    settings.decoder = " madebyollin/taesd "
    assert extension.bake.scene.bake_scene(scene)["settings"]["decoder"] == "madebyollin/taesd"
    # A folder is written as an absolute path (Blender-relative ones resolved), so the worker finds it anywhere.
    (tmp_path / "taesd").mkdir()
    settings.decoder = str(tmp_path / "taesd")
    assert extension.bake.scene.bake_scene(scene)["settings"]["decoder"] == os.path.normpath(str(tmp_path / "taesd"))
    # The rest of the Speed panel travels with the plan too.
    baked = extension.bake.scene.bake_scene(scene)["settings"]
    assert (baked["precision"], baked["channels_last"], baked["vae_slicing"], baked["vae_tiling"],
            baked["compile"], baked["feature_reuse"]) == ("auto", False, False, False, False, 0)
    settings.feature_reuse = 3  # changes the pixels: part of the frames' hash
    baked = extension.bake.scene.bake_scene(scene)
    assert baked["settings"]["feature_reuse"] == 3
    hashes = plan_mod.frame_hashes(baked["settings"], baked["frames"])
    assert hashes != plan_mod.frame_hashes({**baked["settings"], "feature_reuse": 0}, baked["frames"])
    settings.feature_reuse = 0  # Compile and Feature Reuse don't go together (the plan refuses both)
    settings.precision, settings.channels_last, settings.vae_tiling, settings.compile = "bf16", True, True, True
    settings.background_writes = settings.stream_batch = settings.overlap_decode = True
    baked = extension.bake.scene.bake_scene(scene)["settings"]
    assert (baked["precision"], baked["channels_last"], baked["vae_slicing"], baked["vae_tiling"], baked["compile"],
            baked["background_writes"], baked["stream_batch"], baked["overlap_decode"]) == ("bf16", True, False, True,
                                                                                            True, True, True, True)


def test_bake_errors_name_the_frame(scene):
    with pytest.raises(RuntimeError, match="no prompts"):
        bpy.ops.keyframe_diffusion.bake()
    settings = two_prompt_scene(scene)
    settings.prompts[1].weight = 0.0
    settings.prompts[1].keyframe_insert("weight", frame=6)
    with pytest.raises(RuntimeError, match="frame 6: no prompt has a weight above 0"):
        bpy.ops.keyframe_diffusion.bake()


def test_generate_operator_fills_the_strip(scene):
    two_prompt_scene(scene)
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    strip = scene.sequence_editor.strips["Keyframe Diffusion"]
    assert strip.type == "IMAGE"
    assert (strip.frame_final_start, strip.frame_final_duration) == (1, 6)
    files = strip_files(strip)
    out = bpy.path.abspath(scene.keyframe_diffusion.output_dir)
    assert files == [os.path.join(out, frame_filename(f)) for f in range(1, 7)]
    assert all(Image.open(p).size == (64, 64) for p in files)
    assert os.path.isfile(os.path.join(out, "plan.json")) and os.path.isfile(os.path.join(out, "manifest.json"))
    # A second press renders nothing and leaves the strip as the user arranged it.
    mtimes = [os.path.getmtime(p) for p in files]
    strip.channel, strip.blend_alpha = 5, 0.5
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    assert [os.path.getmtime(p) for p in files] == mtimes
    assert len(scene.sequence_editor.strips) == 1
    strip = scene.sequence_editor.strips["Keyframe Diffusion"]
    assert (strip.channel, strip.blend_alpha) == (5, 0.5)
    # A longer scene rebuilds it on the same channel.
    scene.frame_end = 8
    bpy.ops.keyframe_diffusion.generate()
    strip = scene.sequence_editor.strips["Keyframe Diffusion"]
    assert (strip.channel, strip.frame_final_duration) == (5, 8)


def test_current_frame_generate(scene):
    two_prompt_scene(scene)
    scene.frame_set(4)
    bpy.ops.keyframe_diffusion.generate(current_frame=True)
    out = bpy.path.abspath(scene.keyframe_diffusion.output_dir)
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == [frame_filename(4)]
    assert scene.sequence_editor.strips["Keyframe Diffusion"].frame_final_duration == 6


def test_cli_generate_bake_and_save(scene, extension, tmp_path):
    two_prompt_scene(scene)
    blend = str(tmp_path / "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    out = str(tmp_path / "cli-out")
    assert extension.run.cli.main(["bake", "--output", out]) == 0
    assert os.listdir(out) == ["plan.json"]
    assert extension.run.cli.main(["generate", "--frames", "2-3", "--output", out, "--save"]) == 0
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == [frame_filename(2), frame_filename(3)]
    bpy.ops.wm.open_mainfile(filepath=blend)
    reopened = bpy.context.scene
    assert reopened.keyframe_diffusion.output_dir == out
    assert strip_files(reopened.sequence_editor.strips["Keyframe Diffusion"])[1] == os.path.join(out, frame_filename(2))
    assert extension.run.cli.main(["generate", "--frames", "x"]) == 1
    assert extension.run.cli.main(["dance"]) == 2


def test_missing_model_keeps_frames_and_blender(scene, extension, capsys):
    two_prompt_scene(scene)
    bpy.ops.keyframe_diffusion.generate(frames="1-2")
    scene.keyframe_diffusion.model = "nobody/missing-model"
    with pytest.raises(RuntimeError, match="nobody/missing-model"):
        bpy.ops.keyframe_diffusion.generate()
    assert extension.run.cli.main(["generate"]) == 1
    assert "nobody/missing-model" in capsys.readouterr().err
    out = bpy.path.abspath(scene.keyframe_diffusion.output_dir)
    assert os.path.isfile(os.path.join(out, frame_filename(1))) and os.path.isfile(os.path.join(out, frame_filename(2)))
    assert "Keyframe Diffusion" in scene.sequence_editor.strips


def test_killed_worker_is_reported_and_frames_stay(scene, extension):
    two_prompt_scene(scene)
    scene.keyframe_diffusion.steps = 30
    scene.keyframe_diffusion.batch_size = 1
    job = extension.run.generate.GenerateJob(scene)
    job.start()
    while not job.rendered:
        assert not job.poll(0.2)
    os.kill(job.worker.process.pid, signal.SIGKILL)
    while not job.poll(0.2):
        pass
    assert "engine worker stopped" in job.error
    out = bpy.path.abspath(scene.keyframe_diffusion.output_dir)
    assert os.path.isfile(os.path.join(out, frame_filename(job.rendered[0])))
    # Blender carries on, and the next generate starts a fresh worker and finishes the rest.
    scene.keyframe_diffusion.steps = 30
    assert bpy.ops.keyframe_diffusion.generate() == {"FINISHED"}
    assert all(os.path.isfile(p) for p in strip_files(scene.sequence_editor.strips["Keyframe Diffusion"]))


def test_generate_before_render(scene, tmp_path):
    two_prompt_scene(scene)
    scene.keyframe_diffusion.generate_before_render = True
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 64, 100
    render.image_settings.file_format = "PNG"
    render.filepath = str(tmp_path / "render" / "####")
    bpy.ops.render.render(animation=True)
    out = bpy.path.abspath(scene.keyframe_diffusion.output_dir)
    for f in range(1, 7):
        generated = np.asarray(Image.open(os.path.join(out, frame_filename(f))).convert("RGB"), dtype=float)
        rendered = np.asarray(Image.open(tmp_path / "render" / f"{f:04d}.png").convert("RGB"), dtype=float)
        # The Sequencer render shows the generated frame as it is: the strip's first Generate set the factory AgX
        # view transform to Standard (AgX made (220, 30, 30) about (201, 49, 26)).
        assert np.abs(generated - rendered).max() <= 2
    assert scene.view_settings.view_transform == "Standard"


def _write_tone(path, seconds=1.0, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def test_export_gif_and_mp4_with_sound(scene, tmp_path):
    import imageio_ffmpeg

    two_prompt_scene(scene)
    bpy.ops.keyframe_diffusion.generate()
    gif = str(tmp_path / "anim.gif")
    assert bpy.ops.keyframe_diffusion.export(format="GIF", filepath=gif) == {"FINISHED"}
    assert Image.open(gif).n_frames == 6
    _write_tone(tmp_path / "tone.wav")
    scene.sequence_editor.strips.new_sound("tone", str(tmp_path / "tone.wav"), 3, 1)
    scene.render.resolution_x = scene.render.resolution_y = 64
    mp4 = str(tmp_path / "anim.mp4")
    assert bpy.ops.keyframe_diffusion.export(format="MP4", filepath=mp4) == {"FINISHED"}
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", mp4], capture_output=True, text=True)
    assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    # Output settings are restored.
    assert scene.render.image_settings.file_format == "PNG" and scene.render.use_file_extension
    assert (scene.frame_start, scene.frame_end) == (1, 6)


def test_cli_bakes_a_scene_that_is_not_active(scene, extension, tmp_path):
    import json

    other = bpy.data.scenes.new("Other")
    other.frame_start, other.frame_end = 1, 3
    other.keyframe_diffusion.prompts.add().text = "elsewhere"
    cam = bpy.data.objects.new("OtherCam", bpy.data.cameras.new("OtherCam"))
    other.collection.objects.link(cam)
    other.camera = cam
    for frame, z in ((1, 1.0), (3, 3.0)):
        cam.location.z = z
        cam.keyframe_insert("location", index=2, frame=frame)
    out = str(tmp_path / "other")
    assert extension.run.cli.main(["bake", "--scene", "Other", "--output", out]) == 0
    with open(os.path.join(out, "plan.json")) as f:
        plan = json.load(f)
    assert [r["prompts"][0]["text"] for r in plan["frames"]] == ["elsewhere"] * 3
    assert [round(r["camera"]["matrix_world"][2][3], 4) for r in plan["frames"]] == [1.0, 2.0, 3.0]
    assert extension.run.cli.main(["bake", "--scene", "Nope"]) == 1
