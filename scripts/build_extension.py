"""Build the extension zips with Blender's own extension tool (blender_ext.py from the bpy wheel).

    python scripts/build_extension.py [--output-dir build]
        source build: the extension alone, no wheels (the engine runs in a Python you point it to)
    python scripts/build_extension.py --flavour light [--platform linux-x64 ...] [--python 3.11]
        light build: every engine requirement but torch as wheels, one zip per platform (--split-platforms)
    python scripts/build_extension.py --flavour full [--torch-index URL] [--find-links DIR] ...
        full build: the light wheels plus torch for the platform (PyPI's torch: CUDA on Linux, CPU on Windows,
        CPU+MPS on macOS; --torch-index https://download.pytorch.org/whl/cpu or .../cu128 for another build)

The wheel builds resolve requirements/engine.txt for the target platform and Python with uv (which evaluates
environment markers for the target, not for this machine), download the exact wheels unmodified into wheels/
(a cache reused between builds), and build from a staged copy whose manifest lists those wheels and platforms, so
the committed manifest stays wheel-free. Modules Blender bundles (numpy, requests, ...) are left out. The last
lines printed are the built zips. Run it with the dev venv's Python (it has bpy and uv).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "requirements", "engine.txt")
WHEEL_CACHE = os.path.join(ROOT, "wheels")

# Blender platform -> (uv's --python-platform, the wheel architecture). Blender 4.2+ needs glibc 2.28; on macOS the
# builds need 13 (OpenCV 4.11's wheels do), above Blender's own floor of 11.2.
MACOS_TARGET = "13.0"
PLATFORMS = {
    "linux-x64": ("x86_64-manylinux_2_28", "x86_64"),
    "linux-arm64": ("aarch64-manylinux_2_28", "aarch64"),
    "windows-x64": ("x86_64-pc-windows-msvc", "amd64"),
    "macos-arm64": ("aarch64-apple-darwin", "arm64"),
    "macos-x64": ("x86_64-apple-darwin", "x86_64"),
}
# Python minor version -> the Blender releases that run it (blender_version_max is exclusive).
BLENDER_FOR_PYTHON = {"3.11": ("4.2.0", "5.1.0"), "3.13": ("5.1.0", None)}
# Blender ships these in its own Python (bpy's own requirements and theirs): a second copy would only shadow them.
BLENDER_BUNDLED = {"numpy", "requests", "urllib3", "certifi", "idna", "charset-normalizer", "zstandard", "cython"}
# numpy==1.26 (the pin for Blender 4.2-5.0) has no 3.13 wheels; there the resolution follows Blender's newer numpy.
OVERRIDES_FOR_PYTHON = {"3.13": ["numpy>=2.1"]}
NEVER = 'sys_platform == "never"'


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


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=ROOT, **kwargs)
    if done.returncode:
        errors = done.stderr if isinstance(done.stderr, str) else ""
        detail = "\n".join(line for line in errors.splitlines() if line.strip() and not line.startswith("WARNING"))
        raise SystemExit(f"{' '.join(args[:4])} ... failed ({done.returncode}){': ' + detail if detail else ''}")
    return done


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv() -> list[str]:
    path = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
    if not path:
        raise SystemExit("uv is not installed in this Python (make setup installs it)")
    return [path]


def source_options(args) -> list[str]:
    """--find-links for uv and pip: the given folders and pip's own configured ones (uv doesn't read pip's)."""
    folders = list(args.find_links) + os.environ.get("PIP_FIND_LINKS", "").split()
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                                capture_output=True, text=True)
    folders += configured.stdout.split() if configured.returncode == 0 else []
    opts = []
    for folder in dict.fromkeys(os.path.abspath(f) if "://" not in f else f for f in folders):
        opts += ["--find-links", folder]
    return opts


def lock(platform: str, args, tmp: str, with_torch: bool) -> list[str]:
    """Exact `name==version` pins of every engine requirement for one platform, torch included or not."""
    overrides = os.path.join(tmp, f"overrides-{platform}-{with_torch}.txt")
    with open(overrides, "w") as f:
        f.write("\n".join(OVERRIDES_FOR_PYTHON.get(args.python, []) + ([] if with_torch else [f"torch ; {NEVER}"])))
    cmd = [*uv(), "pip", "compile", REQUIREMENTS, "--python-platform", PLATFORMS[platform][0], "--python-version",
           args.python, "--only-binary", ":all:", "--no-header", "--no-annotate", "--quiet", "--override", overrides,
           *source_options(args)]
    if with_torch and args.torch_index:
        # The torch index first for torch, PyPI's newest matching release for the rest (pins decide anyway).
        cmd += ["--index-url", args.torch_index, "--extra-index-url", "https://pypi.org/simple",
                "--index-strategy", "unsafe-best-match"]
    env = dict(os.environ, MACOSX_DEPLOYMENT_TARGET=MACOS_TARGET)
    done = run(cmd, capture_output=True, text=True, env=env)
    pins = [line.strip() for line in done.stdout.splitlines() if line.strip() and not line.startswith("#")]
    return [p for p in pins if canonical(p.split("==")[0]) not in BLENDER_BUNDLED]


def download(pins: list[str], platform: str, args, tmp: str) -> list[str]:
    """The wheel files for those pins (pip download, unmodified, cached in wheels/); returns their paths."""
    os.makedirs(WHEEL_CACHE, exist_ok=True)
    req = os.path.join(tmp, f"lock-{platform}.txt")
    with open(req, "w") as f:
        f.write("\n".join(pins) + "\n")
    abi = "cp" + args.python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest",
           WHEEL_CACHE, "--python-version", args.python, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
           "--abi", "none", "-r", req, *source_options(args)]
    for tag in pip_platform_tags(platform):
        cmd += ["--platform", tag]
    if args.torch_index:
        cmd += ["--extra-index-url", args.torch_index]
    run(cmd, capture_output=True, text=True)
    by_name = {}
    for path in glob.glob(os.path.join(WHEEL_CACHE, "*.whl")):
        name, version = os.path.basename(path).split("-")[:2]
        by_name.setdefault((canonical(name), version), []).append(path)
    files = []
    for pin in pins:
        name, version = pin.split("==")
        candidates = [p for p in by_name.get((canonical(name), version), []) if wheel_fits(p, platform, args.python)]
        if not candidates:
            raise SystemExit(f"no {platform} wheel of {pin} for Python {args.python} in {WHEEL_CACHE}")
        files.append(sorted(candidates)[-1])
    return files


def pip_platform_tags(platform: str) -> list[str]:
    """Every platform tag a wheel for that Blender platform may carry: pip download matches them literally."""
    arch = PLATFORMS[platform][1]
    if platform.startswith("linux"):
        legacy = [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
        return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 4, -1)] + legacy
    if platform.startswith("windows"):
        return ["win_amd64"]
    versions = ["13_0", "12_0", "11_0"] + ([] if arch == "arm64" else [f"10_{minor}" for minor in range(16, 8, -1)])
    return [f"macosx_{v}_{a}" for v in versions for a in (arch, "universal2")]


def wheel_fits(path: str, platform: str, python: str) -> bool:
    """Whether a wheel's tags suit the platform and Python (the cache holds every platform's wheels)."""
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(os.path.basename(path))
    abi = "cp" + python.replace(".", "")
    arch = PLATFORMS[platform][1]
    for tag in tags:
        python_ok = tag.interpreter in ("py3", abi) or (tag.abi == "abi3" and _cp(tag.interpreter) <= _cp(abi))
        if tag.platform == "any":
            platform_ok = True
        elif platform.startswith("linux"):
            platform_ok = "linux" in tag.platform and tag.platform.endswith(arch)
        elif platform.startswith("windows"):
            platform_ok = tag.platform == "win_amd64"
        else:
            platform_ok = tag.platform.startswith("macosx") and (tag.platform.endswith(arch) or
                                                                tag.platform.endswith("universal2"))
        if python_ok and platform_ok:
            return True
    return False


def _cp(tag: str) -> tuple[int, int]:
    """cp311 -> (3, 11), so that cp37 sorts before cp311."""
    return (int(tag[2]), int(tag[3:] or 0)) if tag.startswith("cp") and tag[2:].isdigit() else (9, 99)


def copy_source(tmp: str) -> str:
    """The extension's files without what a checkout gathers around them (venvs, the wheel cache, test and build
    output), so a zip holds the same files on a developer's machine as on a clean clone."""
    staged = os.path.join(tmp, "keyframe_diffusion")
    shutil.copytree(ROOT, staged, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "out", "wheels", "__pycache__", ".pytest_cache", ".hypothesis", "docs",
        "tests", "bench"))
    return staged


def stage(tmp: str, wheels: list[str], platforms: list[str], python: str) -> str:
    """A copy of the extension whose manifest lists the wheels, the platforms and the Blender range for Python."""
    staged = copy_source(tmp)
    os.makedirs(os.path.join(staged, "wheels"))
    for path in wheels:
        shutil.copy2(path, os.path.join(staged, "wheels"))
    manifest_path = os.path.join(staged, "blender_manifest.toml")
    with open(manifest_path) as f:
        text = f.read()
    low, high = BLENDER_FOR_PYTHON[python]
    lines = [f'blender_version_min = "{low}"']
    if high:
        lines.append(f'blender_version_max = "{high}"')
    lines.append("platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]")
    lines.append("wheels = [\n" + "".join(f'  "./wheels/{os.path.basename(p)}",\n' for p in sorted(wheels)) + "]")
    text, count = re.subn(r'^blender_version_min = ".*"$', "\n".join(lines), text, flags=re.M)
    if count != 1:
        raise SystemExit("blender_manifest.toml has no blender_version_min line to extend")
    with open(manifest_path, "w") as f:
        f.write(text)
    tomllib.loads(text)  # a broken manifest fails here, not inside Blender's tool
    return staged


def check_zip(path: str, pins: list[str]) -> None:
    """Every pinned package has exactly one wheel in the platform's zip (a wheel the split dropped would be missing);
    Blender's tool also puts other platforms' pure-Python wheels in every zip (colorama), which is harmless."""
    with zipfile.ZipFile(path) as z:
        names = [os.path.basename(n) for n in z.namelist() if n.startswith("wheels/") and n.endswith(".whl")]
    have = [canonical(n.split("-")[0]) for n in names]
    want = {canonical(p.split("==")[0]) for p in pins}
    doubled = sorted({n for n in have if have.count(n) > 1})
    missing = sorted(want - set(have))
    foreign = sorted(n for n, name in zip(have, names) if n not in want and not name.endswith("-none-any.whl"))
    if doubled or missing or foreign:
        raise SystemExit(f"{os.path.basename(path)}: wheels missing {missing}, doubled {doubled}, "
                         f"for another platform {foreign}")


def torch_label(pins: list[str], platform: str) -> str:
    """cpu / cu128 from torch's local version label; PyPI's own builds: CUDA on Linux, CPU on Windows, MPS on macOS."""
    version = next(p.split("==")[1] for p in pins if canonical(p.split("==")[0]) == "torch")
    if "+" in version:
        return version.split("+")[1]
    return {"linux": "cuda", "windows": "cpu", "macos": "mps"}[platform.split("-")[0]]


def build(source_dir: str, output: list[str], blender_ext: str, tags: str) -> None:
    run([sys.executable, blender_ext, "validate", source_dir, f"--valid-tags={tags}"])
    run([sys.executable, blender_ext, "build", "--source-dir", source_dir, *output, f"--valid-tags={tags}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--flavour", choices=("source", "light", "full"), default="source")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS), dest="platforms",
                        help="repeat for several; default linux-x64")
    parser.add_argument("--python", choices=sorted(BLENDER_FOR_PYTHON), default="3.11",
                        help="Blender 4.2-5.0 run Python 3.11, 5.1 and later 3.13")
    parser.add_argument("--torch-index", default="", help="full build: the index torch comes from (default PyPI)")
    parser.add_argument("--find-links", action="append", default=[], help="a folder of extra wheels (e.g. torch)")
    args = parser.parse_args()
    blender_ext, tags = blender_tools()
    os.makedirs(args.output_dir, exist_ok=True)
    if args.flavour == "source":
        with tempfile.TemporaryDirectory(prefix="kd-build-") as tmp:
            build(copy_source(tmp), ["--output-dir", args.output_dir], blender_ext, tags)
        zips = sorted(glob.glob(os.path.join(args.output_dir, "keyframe_diffusion-*.zip")), key=os.path.getmtime)
        print(zips[-1])
        return

    platforms = args.platforms or ["linux-x64"]
    with tempfile.TemporaryDirectory(prefix="kd-build-") as tmp:
        pins, wheels = {}, set()
        for platform in platforms:
            pins[platform] = lock(platform, args, tmp, with_torch=args.flavour == "full")
            wheels.update(download(pins[platform], platform, args, tmp))
            print(f"{platform}: {len(pins[platform])} wheels", file=sys.stderr)
        staged = stage(tmp, sorted(wheels), platforms, args.python)
        version = tomllib.load(open(os.path.join(staged, "blender_manifest.toml"), "rb"))["version"]
        py = "py" + args.python.replace(".", "")
        base = os.path.join(os.path.abspath(args.output_dir), f"keyframe_diffusion-{version}-{args.flavour}-{py}.zip")
        build(staged, ["--output-filepath", base, "--split-platforms"], blender_ext, tags)
    built = []
    for platform in platforms:
        path = base[:-len(".zip")] + "-" + platform.replace("-", "_") + ".zip"
        check_zip(path, pins[platform])
        if args.flavour == "full":  # say which torch is inside: ...-full-cpu-py311-..., -full-cu128-..., -full-cuda-...
            named = path.replace("-full-", f"-full-{torch_label(pins[platform], platform)}-")
            os.replace(path, named)
            path = named
        built.append(path)
    for path in built:
        print(path)


if __name__ == "__main__":
    main()
