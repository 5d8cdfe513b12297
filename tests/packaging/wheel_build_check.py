"""Run inside a bpy wheel's Python (5.0 or 4.2): install a light build's zip the way a user does, then, in a new
Blender session (as after a restart, when Blender puts the extensions' site-packages ahead of its own), import the
bundled wheels and run the engine check with Blender's Python and those wheels. Prints JSON on the last line.

    python tests/packaging/wheel_build_check.py ZIP [PLAN]

With PLAN, and an engine the check calls ready, also renders it that way (Blender's Python, the bundled wheels).
"""

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile

zip_path = sys.argv[1]
plan_path = sys.argv[2] if len(sys.argv) > 2 else ""
installing = not os.environ.get("BLENDER_USER_RESOURCES")
if installing:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kd-user-")
import bpy  # noqa: E402

package = "bl_ext.user_default.keyframe_diffusion"
if installing:
    installed = sorted(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                                enable_on_install=True))
    enabled = package in bpy.context.preferences.addons
    # Blender loads wheels installed in this session from the end of sys.path; the next session puts them first.
    done = subprocess.run([sys.executable, __file__, *sys.argv[1:]], capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": done.stdout[-2000:] + done.stderr[-2000:]}
    result.update(installed=installed, enabled=enabled)
    shutil.rmtree(os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)  # a full build unpacks to ~1.5 GB
    print(json.dumps(result))
    sys.exit(0)

result = {"blender": bpy.app.version_string}
site = os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                    "python{}.{}".format(*sys.version_info[:2]), "site-packages")
result["site"] = site
result["site_on_path"] = site in sys.path
result["distributions"] = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions(path=[site]))

# The engine's libraries that import without torch, each from where it was loaded.
result["modules"] = {}
for name in ("diffusers", "transformers", "tokenizers", "safetensors", "huggingface_hub", "cv2", "skimage", "librosa",
             "soundfile", "imageio_ffmpeg", "filelock", "PIL", "numexpr"):
    try:
        result["modules"][name] = os.path.dirname(importlib.import_module(name).__file__)
    except Exception as e:  # noqa: BLE001 - the test reads which one failed and why
        result["modules"][name] = f"error: {type(e).__name__}: {e}"

# What the engine check says with Blender's Python and the bundled wheels (the empty Engine Python preference).
extension = os.path.join(bpy.utils.user_resource("EXTENSIONS"), "user_default", "keyframe_diffusion")
env = dict(os.environ, PYTHONPATH=os.pathsep.join([extension, *[p for p in sys.path if p and os.path.isdir(p)]]))
done = subprocess.run([sys.executable, "-m", "engine", "check"], cwd=extension, env=env, capture_output=True,
                      text=True, timeout=300)
result["check_rc"] = done.returncode
result["check"] = json.loads(done.stdout) if done.stdout.strip().startswith("{") else done.stdout + done.stderr
if plan_path and isinstance(result["check"], dict) and result["check"]["ok"]:
    rendered = subprocess.run([sys.executable, "-m", "engine", "render", plan_path], cwd=extension, env=env,
                              capture_output=True, text=True, timeout=600)
    result["render_rc"] = rendered.returncode
    result["render_tail"] = (rendered.stdout + rendered.stderr)[-1500:]
    result["torch"] = subprocess.run([sys.executable, "-c", "import torch; print(torch.__file__)"], env=env,
                                     capture_output=True, text=True).stdout.strip()
print(json.dumps(result))
