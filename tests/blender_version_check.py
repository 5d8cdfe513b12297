"""Run inside another bpy wheel (4.2 LTS): install the built zip, key prompts, bake, generate through a worker
on an external engine Python (the preference), and print what came out as JSON on the last line.

    python tests/blender_version_check.py ZIP ENGINE_PYTHON OUTPUT_DIR
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
print(json.dumps(result))
