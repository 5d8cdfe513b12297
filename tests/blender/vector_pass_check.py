"""Run inside a bpy wheel (4.2 LTS, 4.5 LTS, 5.0, 5.2 LTS): install the built zip and render Blender's Vector pass (with
depth) through bake/passes.py for a cube moving 4 pixels right and 2 up per frame before an orthographic camera (8
units over 64 pixels: 8 pixels a unit); print the pass files as JSON on the last line. test_vector_pass.py reads them.

    python tests/blender/vector_pass_check.py ZIP OUTPUT_DIR
"""

import json
import os
import sys
import tempfile

zip_path, out = sys.argv[1:3]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kd-user-")
import bpy  # noqa: E402

import blender_helpers  # noqa: E402 (beside this script)

bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
package = sys.modules["bl_ext.user_default.keyframe_diffusion"]
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
camera.data.type, camera.data.ortho_scale = "ORTHO", 8.0
camera.location, camera.rotation_euler = (0.0, -10.0, 0.0), (1.5707963, 0.0, 0.0)
scene.collection.objects.link(camera)
scene.camera = camera
cube = blender_helpers.cube()
scene.collection.objects.link(cube)
for frame, x, z in ((1, -1.0, 0.0), (5, 1.0, 1.0)):  # 0.5 units right and 0.25 up per frame
    cube.location = (x, 0.0, z)
    cube.keyframe_insert("location", frame=frame)
for fcurve in package.settings.compat.action_fcurves(cube):
    for key in fcurve.keyframe_points:
        key.interpolation = "LINEAR"
scene.render.use_motion_blur = True  # the user's setting: the pass render turns it off (no Vector pass with it)
paths = package.bake.passes.render_passes(scene, out, [2, 3], {"vector", "depth"}, (64, 64))
print(json.dumps({"blender": bpy.app.version_string, "paths": paths, "motion_blur_after": scene.render.use_motion_blur}))
