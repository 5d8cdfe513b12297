"""Run inside another bpy wheel (the 4.2 LTS venv, as blender_version_check.py is): a ControlNet unit fed by Blender's
Normal pass, baked and generated through a worker on an external engine Python; prints what came out as JSON on the
last line.

    python tests/blender/normal_pass_check.py ZIP ENGINE_PYTHON OUTPUT_DIR CONTROLNET_FOLDER
"""

import json
import os
import sys
import tempfile

zip_path, engine_python, out, controlnet = sys.argv[1:5]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kd-user-")
import bpy  # noqa: E402

result = {"blender": bpy.app.version_string}
installed = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
result["installed"] = sorted(installed)
package = "bl_ext.user_default.keyframe_diffusion"
bpy.context.preferences.addons[package].preferences.python_path = engine_python

bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 2
bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(camera)
scene.camera = camera
camera.location, camera.rotation_euler = (0.0, -8.0, 4.0), (1.1, 0.0, 0.0)
scene.render.engine = "CYCLES"
bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
settings = scene.keyframe_diffusion
settings.model, settings.output_dir, settings.steps, settings.batch_size = "embedded:tiny", out, 2, 2
settings.mode, settings.init_source, settings.strength = "VIDEO", "SCENE", 0.5
bpy.ops.keyframe_diffusion.item_add(kind="CONTROLNET")
unit = settings.controlnets[0]
unit.model, unit.source = controlnet, "NORMAL"
try:
    result["generate"] = sorted(bpy.ops.keyframe_diffusion.generate())
except RuntimeError as e:
    result["generate"] = str(e)
with open(os.path.join(out, "plan.json")) as f:
    plan = json.load(f)
result["normals"] = [r["control"][0].get("image", "") for r in plan["frames"]]
result["frames"] = sorted(name for name in os.listdir(out) if name.startswith("frame_"))
print(json.dumps(result))
