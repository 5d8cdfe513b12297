"""Validate and build the extension zip with Blender's own extension tool (blender_ext.py from the bpy wheel).

    python scripts/build_extension.py [--output-dir build]

Prints the path of the built zip. Run it with a Python that has the bpy wheel installed (the dev venv).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blender_tools() -> tuple[str, str]:
    """Paths of blender_ext.py and the valid-tags file inside the installed bpy wheel."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the bpy wheel is not installed in this Python (make setup installs it)")
    base = list(spec.submodule_search_locations)[0]
    ext = glob.glob(os.path.join(base, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py"))
    tags = glob.glob(os.path.join(base, "*", "scripts", "modules", "_bpy_internal", "extensions", "tags.py"))
    if not ext or not tags:
        raise SystemExit(f"blender_ext.py or tags.py not found under {base}")
    return ext[0], tags[0]


def run(args: list[str]) -> None:
    done = subprocess.run([sys.executable, *args], cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.returncode)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    blender_ext, tags = blender_tools()
    os.makedirs(args.output_dir, exist_ok=True)
    run([blender_ext, "validate", ROOT, f"--valid-tags={tags}"])
    run([blender_ext, "build", "--source-dir", ROOT, "--output-dir", args.output_dir, f"--valid-tags={tags}"])
    zips = sorted(glob.glob(os.path.join(args.output_dir, "keyframe_diffusion-*.zip")), key=os.path.getmtime)
    print(zips[-1])


if __name__ == "__main__":
    main()
