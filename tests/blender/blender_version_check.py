"""Run inside another bpy wheel (4.2 LTS, 4.5 LTS, 5.2 LTS): install the built zip, key prompts, bake, generate
through a worker on an external engine Python (the preference), and print what came out as JSON on the last line.

    python tests/blender/blender_version_check.py ZIP ENGINE_PYTHON OUTPUT_DIR

Every DeprecationWarning is recorded with where it came from (result["deprecations"]), so the test sees the day a
Blender deprecates something the extension uses.
"""

import json
import os
import sys
import tempfile
import warnings

from blender_helpers import new_effect  # beside this script

zip_path, engine_python, out = sys.argv[1:4]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kd-user-")
deprecations = []


def _record(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, DeprecationWarning):
        deprecations.append(f"{filename}:{lineno}: {message}")
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


warnings.showwarning = _record
warnings.simplefilter("always", DeprecationWarning)
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
# The check changes the scene range to regenerate; the default Frame Range (the prompt keys') has its own tests.
settings.frame_range = "SCENE"
# '//' paths (relative to the .blend) take no "does not support blend relative" warning where Blender knows the option.
settings.output_dir = "//frames/"
settings.output_dir = out
settings.steps = 2
scene.frame_set(2)
result["weights_at_2"] = [round(p.weight, 4) for p in settings.prompts]
result["bake"] = sorted(bpy.ops.keyframe_diffusion.bake())
result["generate"] = sorted(bpy.ops.keyframe_diffusion.generate())
package_module = sys.modules[package]
compat = package_module.settings.compat
editor = scene.sequence_editor
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strip = strips["Keyframe Diffusion"]


def strip_state(strip):
    return {"start": compat.strip_start(strip), "duration": compat.strip_duration(strip),
            "files": [e.filename for e in strip.elements], "directory": bpy.path.abspath(strip.directory)}


result["strip"] = strip_state(strip)


def pixels(path):
    image = bpy.data.images.load(path, check_existing=False)
    values = [round(v * 255) for v in image.pixels[:]]
    bpy.data.images.remove(image)
    return values


# The Sequencer's final render shows frame 1 as generated (the first strip switched the factory AgX to Standard).
result["view"] = [scene.view_settings.view_transform, scene.get(package_module.run.strips.VIEW_MARK)]
# The first Generate set the factory 1920x1080 render size to the frames' 64x64 (once) and fitted the strip to it.
result["render_size"] = [scene.render.resolution_x, scene.render.resolution_y,
                         list(scene.get(package_module.run.strips.SIZE_MARK) or [])]
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 64, 100
compat.set_image_output(scene.render.image_settings, "PNG")
scene.render.filepath = os.path.join(out, "sequencer_render.png")
scene.frame_set(1)
bpy.ops.render.render(write_still=True)
rendered, generated = pixels(scene.render.filepath), pixels(os.path.join(out, "frame_000001.png"))
result["render_difference"] = max(abs(a - b) for i, (a, b) in enumerate(zip(rendered, generated)) if i % 4 != 3)

# The user picks 128x96 (another shape): the next Generate keeps it and fits the strip to its height (scale 1.5, the
# picture in columns 16-111 between black bars); the Sequencer renders it so.
scene.render.resolution_x, scene.render.resolution_y = 128, 96
bpy.ops.keyframe_diffusion.generate()
scene.render.filepath = os.path.join(out, "sequencer_fit.png")
bpy.ops.render.render(write_still=True)
fitted = pixels(scene.render.filepath)


def mean_rgb(values, width, columns):
    """The mean of R, G and B over every row of the given columns of an RGBA image `width` pixels wide."""
    chosen = [v for i, v in enumerate(values) if i % 4 != 3 and (i // 4) % width in columns]
    return sum(chosen) / len(chosen)


result["fit"] = {"size": [scene.render.resolution_x, scene.render.resolution_y],
                 "transform": [round(v, 4) for v in compat.strip_transform(strip)],
                 "picture_minus_frame": mean_rgb(fitted, 128, range(16, 112)) - mean_rgb(generated, 64, range(64)),
                 "bars": mean_rgb(fitted, 128, [*range(0, 15), *range(113, 128)])}
scene.render.resolution_x, scene.render.resolution_y = 64, 64
bpy.ops.keyframe_diffusion.generate()

# Generating after the range changed updates our strip in place: an effect on it and its blend settings stay.
blur = new_effect(strips, "Blur", "GAUSSIAN_BLUR", 4, 1, 5, inputs=[strip])
strip.blend_alpha = 0.5
result["regenerated"] = []
for first, last in ((1, 6), (2, 3)):
    scene.frame_start, scene.frame_end = first, last
    done = sorted(bpy.ops.keyframe_diffusion.generate())
    strip = strips.get("Keyframe Diffusion")
    result["regenerated"].append({**strip_state(strip), "done": done, "alpha": strip.blend_alpha,
                                  "effect_input": blur.input_1.name if "Blur" in strips else None,
                                  "effect": [compat.strip_start(blur), compat.strip_end(blur)]})
scene.frame_start, scene.frame_end = 1, 4
strips.remove(blur)

# The timeline features on this Blender: schedules, transitions, text strips, Deforum files, presets.
result["schedule"] = sorted(bpy.ops.keyframe_diffusion.schedule_import(prop="zoom", text="0:(1), 2:(1+t/10)"))
result["steps_schedule"] = sorted(bpy.ops.keyframe_diffusion.schedule_import(prop="steps", text="0:(2), 3:(4)"))
result["transitions"] = sorted(bpy.ops.keyframe_diffusion.prompt_transitions(transition="GIFFUSION_SINE"))
plan = package_module.bake.scene.bake_scene(scene)
result["zoom"] = [round(r["motion"]["zoom"], 5) for r in plan["frames"]]
result["steps"] = [r["steps"] for r in plan["frames"]]
settings.prompt_source, settings.prompt_channel = "TEXT_STRIPS", 5
for name, channel, start, length in (("a corgi", 5, 1, 3), ("a lion", 6, 3, 2)):
    new_effect(strips, name, "TEXT", channel, start, start + length).text = name
plan = package_module.bake.scene.bake_scene(scene)
result["strip_prompts"] = [{p["text"]: round(p["weight"], 4) for p in r["prompts"]} for r in plan["frames"]]
deforum_file = os.path.join(out, "deforum.txt")
with open(deforum_file, "w") as f:
    json.dump({"max_frames": 4, "W": 64, "H": 64, "angle": "0:(0), 3:(3)", "prompts": {"0": "a", "2": "b"}}, f)
result["deforum"] = sorted(bpy.ops.keyframe_diffusion.deforum_import(filepath=deforum_file))
result["deforum_prompts"] = [(p.frame, p.text) for p in settings.prompts]
result["preset"] = sorted(bpy.ops.keyframe_diffusion.preset_add(name="check"))

# Audio: a sound strip drives keys where the wheel has audio (4.5 on); 4.2's has none, so a strip link says so; a file
# works everywhere.
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
if result["audio_support"]:
    strips.new_sound("Music", wav, 9, 1)
try:
    bpy.ops.keyframe_diffusion.audio_link_add(strip="Music", data_path="keyframe_diffusion.guidance", low=1.0,
                                              high=2.0)
    result["strip_link"] = "FINISHED"
except RuntimeError as e:
    result["strip_link"] = str(e)
result["file_link"] = sorted(bpy.ops.keyframe_diffusion.audio_link_add(filepath=wav, data_path="keyframe_diffusion.zoom",
                                                                       low=1.0, high=2.0))
fc = package_module.settings.compat.find_fcurve(scene, "keyframe_diffusion.zoom")
result["audio_zoom"] = [round(fc.evaluate(f), 3) for f in range(1, 5)]
if result["audio_support"]:
    fc = package_module.settings.compat.find_fcurve(scene, "keyframe_diffusion.guidance")
    result["audio_guidance"] = [round(fc.evaluate(f), 3) for f in range(1, 5)]

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

# Shot mode on this Blender: pins own timeline markers (a moved marker moves its pin), a Scene Render pin is Blender's
# render at its frame and every frame's control picture is its depth pass.
settings.mask_source, settings.mode, settings.video_control = "NONE", "SHOT", "DEPTH"
bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=1)
bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=2)
scene.timeline_markers[settings.pins[1].marker].frame = 4
plan = package_module.bake.scene.bake_scene(scene, output=os.path.join(out, "shot"))  # the depth above stays
result["shot"] = {"pins": [[p["frame"], os.path.isfile(p["path"])] for p in plan["settings"]["pins"]],
                  "markers": sorted(m.name for m in scene.timeline_markers),
                  "controls": [os.path.isfile(r["control_frame"]["path"]) for r in plan["frames"]]}
result["deprecations"] = deprecations
print(json.dumps(result))
