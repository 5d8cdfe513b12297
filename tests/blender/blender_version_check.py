"""Run inside another bpy wheel (4.2 LTS): install the built zip, key prompts, bake, generate through a worker
on an external engine Python (the preference), and print what came out as JSON on the last line.

    python tests/blender/blender_version_check.py ZIP ENGINE_PYTHON OUTPUT_DIR
"""

import json
import os
import sys
import tempfile

zip_path, engine_python, out = sys.argv[1:4]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kd-user-")
import bpy  # noqa: E402

result = {"blender": bpy.app.version_string}
installed = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
result["installed"] = sorted(installed)
package = "bl_ext.user_default.keyframe_diffusion"
result["enabled"] = package in bpy.context.preferences.addons
bpy.context.preferences.addons[package].preferences.python_path = engine_python

scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 4
bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=4)
settings = scene.keyframe_diffusion
settings.output_dir = out
settings.steps = 2
scene.frame_set(2)
result["weights_at_2"] = [round(p.weight, 4) for p in settings.prompts]
result["bake"] = sorted(bpy.ops.keyframe_diffusion.bake())
result["generate"] = sorted(bpy.ops.keyframe_diffusion.generate())
editor = scene.sequence_editor
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strip = strips["Keyframe Diffusion"]
result["strip"] = {"start": strip.frame_final_start, "duration": strip.frame_final_duration,
                   "files": [e.filename for e in strip.elements], "directory": bpy.path.abspath(strip.directory)}

# The timeline features on this Blender: schedules, transitions, text strips, Deforum files, presets.
result["schedule"] = sorted(bpy.ops.keyframe_diffusion.schedule_import(prop="zoom", text="0:(1), 2:(1+t/10)"))
result["steps_schedule"] = sorted(bpy.ops.keyframe_diffusion.schedule_import(prop="steps", text="0:(2), 3:(4)"))
result["transitions"] = sorted(bpy.ops.keyframe_diffusion.prompt_transitions(transition="GIFFUSION_SINE"))
package_module = sys.modules[package]
plan = package_module.bake.scene.bake_scene(scene)
result["zoom"] = [round(r["motion"]["zoom"], 5) for r in plan["frames"]]
result["steps"] = [r["steps"] for r in plan["frames"]]
settings.prompt_source, settings.prompt_channel = "TEXT_STRIPS", 5
for name, channel, start, length in (("a corgi", 5, 1, 3), ("a lion", 6, 3, 2)):
    span = {"length": length} if bpy.app.version >= (4, 4, 0) else {"frame_end": start + length}
    strips.new_effect(name=name, type="TEXT", channel=channel, frame_start=start, **span).text = name
plan = package_module.bake.scene.bake_scene(scene)
result["strip_prompts"] = [{p["text"]: round(p["weight"], 4) for p in r["prompts"]} for r in plan["frames"]]
deforum_file = os.path.join(out, "deforum.txt")
with open(deforum_file, "w") as f:
    json.dump({"max_frames": 4, "W": 64, "H": 64, "angle": "0:(0), 3:(3)", "prompts": {"0": "a", "2": "b"}}, f)
result["deforum"] = sorted(bpy.ops.keyframe_diffusion.deforum_import(filepath=deforum_file))
result["deforum_prompts"] = [(p.frame, p.text) for p in settings.prompts]
result["preset"] = sorted(bpy.ops.keyframe_diffusion.preset_add(name="check"))

# Audio: this wheel is built without audio support (no sound strips), so a strip link says so; a file works.
import wave  # noqa: E402

wav = os.path.join(out, "click.wav")
with wave.open(wav, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(22050)
    samples = bytearray(2 * 22050)
    for i in range(60):  # a click at 0.0625 s: mid audio frame 1 at 24 fps (scene frame 2)
        samples[2 * (1378 + i): 2 * (1378 + i) + 2] = int(30000 * (1 - i / 60)).to_bytes(2, "little", signed=True)
    w.writeframes(bytes(samples))
result["audio_support"] = bool(bpy.app.build_options.audaspace)
try:
    bpy.ops.keyframe_diffusion.audio_link_add(strip="Music", data_path="keyframe_diffusion.zoom")
    result["strip_link"] = "no error"
except RuntimeError as e:
    result["strip_link"] = str(e)
result["file_link"] = sorted(bpy.ops.keyframe_diffusion.audio_link_add(filepath=wav, data_path="keyframe_diffusion.zoom",
                                                                       low=1.0, high=2.0))
fc = package_module.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom")
result["audio_zoom"] = [round(fc.evaluate(f), 3) for f in range(1, 5)]

# The scene's depth pass on this Blender (the compositor and File Output node differ from 5.0): 3D feedback bake.
settings.prompt_source = "KEYS"
for obj in [o for o in scene.objects if o.type == "MESH"]:  # the startup cube would enclose the camera at the origin
    bpy.data.objects.remove(obj)
bpy.ops.mesh.primitive_plane_add(size=50, location=(0, 0, -6))
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(camera)
scene.camera = camera
scene.render.engine = "CYCLES"
settings.mode, settings.motion_mode, settings.camera_source = "FEEDBACK", "3D", "SCENE"
plan = package_module.bake.scene.bake_scene(scene)
result["depth_files"] = [os.path.isfile(r.get("depth", "")) and r["depth"].endswith(".exr") for r in plan["frames"]]
result["engine_restored"] = scene.render.engine
result["depth_path"] = plan["frames"][0]["depth"]

# Masks on this Blender: the object index pass (its Render Layers output is "IndexOB" before 5.0) and a mask strip
# rasterised by the compositor's Mask node (which has a size of its own here).
bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, -4))
bpy.context.active_object.pass_index = 3
settings.mode, settings.motion_mode, settings.mask_source, settings.mask_index = "FEEDBACK", "2D", "OBJECT_INDEX", 3
plan = package_module.bake.scene.bake_scene(scene)
result["index_mask"] = plan["frames"][0]["mask"]
mask = bpy.data.masks.new("Blob")
spline = mask.layers.new().splines.new()
spline.points.add(3)
for point, co in zip(spline.points, ((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7))):
    point.co = point.handle_left = point.handle_right = co
spline.use_cyclic = True
strips.new_mask("Mask", mask, channel=8, frame_start=1)
settings.mask_source, settings.mask_strip = "STRIP", "Mask"
plan = package_module.bake.scene.bake_scene(scene)
result["strip_mask"] = plan["frames"][0]["mask"]
print(json.dumps(result))
