"""The wheel builds: the light one (every engine requirement but torch, as wheels from PyPI, one zip per platform) and
the full one (with torch): what goes in, that they install in the bpy 5.0 and 4.2 modules from their zips, that
their wheels import there and that the engine renders with Blender's own Python and those wheels."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import types
import zipfile

import pytest
from common import ROOT, SESSION_TMP, make_plan, write_plan
from packaging.utils import canonicalize_name, parse_wheel_filename

from engine.environment import pins

BPY42_PYTHON = os.path.join(ROOT, ".venv-bpy42", "bin", "python")
BUILD = os.path.join(ROOT, "scripts", "build_extension.py")


def _builder():
    """scripts/build_extension.py as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_extension", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(flavour: str) -> str:
    out = os.path.join(SESSION_TMP, f"{flavour}-build")
    done = subprocess.run([sys.executable, BUILD, "--flavour", flavour, "--platform", "linux-x64", "--output-dir", out],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def light_zip() -> str:
    path = _build("light")
    assert os.path.basename(path) == "keyframe_diffusion-0.1.0-light-py311-linux_x64.zip"
    return path


@pytest.fixture
def plan_file(tmp_path) -> str:
    return write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "frames"), frames=2, steps=2))


def test_light_build_holds_every_pinned_engine_wheel_but_torch_and_a_manifest_that_lists_them(light_zip):
    with zipfile.ZipFile(light_zip) as z:
        names = z.namelist()
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    wheels = sorted(n for n in names if n.startswith("wheels/"))
    assert sorted(w.removeprefix("./") for w in manifest["wheels"]) == wheels
    assert manifest["platforms"] == ["linux-x64"]
    assert (manifest["blender_version_min"], manifest["blender_version_max"]) == ("4.2.0", "5.1.0")  # Python 3.11
    parsed = {canonicalize_name(parse_wheel_filename(os.path.basename(w))[0]): parse_wheel_filename(
        os.path.basename(w)) for w in wheels}
    # Every pin of requirements/engine.txt is there at its version, but torch and what Blender itself ships.
    for name, version in pins(os.path.join(ROOT, "requirements", "engine.txt")).items():
        if name in ("torch", "numpy"):
            continue
        assert str(parsed[canonicalize_name(name)][1]) == version, name
    assert not {"torch", "sympy", "triton", "numpy", "requests"} & set(parsed)
    assert not [n for n in parsed if n.startswith("nvidia")]
    assert {"colorama"}.isdisjoint(parsed)  # a Windows-only dependency of tqdm/click: markers are for the target
    # Each wheel runs on Linux x86_64 with CPython 3.11 and glibc 2.28 (Blender 4.2's floor).
    for name, (_, _, _, tags) in parsed.items():
        assert any(t.platform == "any" or _glibc(t.platform) <= (2, 28) for t in tags), name
        assert any(t.interpreter in ("py3", "cp311") or t.abi == "abi3" for t in tags), name
    # The extension itself is there, its tests and build scripts are not.
    assert "engine/renderer.py" in names and "requirements/engine.txt" in names
    assert not [n for n in names if n.startswith(("tests/", "scripts/", ".venv"))]


def _glibc(platform_tag: str) -> tuple[int, int]:
    """The glibc a Linux x86_64 wheel needs; (99, 0) for any other platform."""
    legacy = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12), "manylinux2014_x86_64": (2, 17)}
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform_tag)
    return (int(match[1]), int(match[2])) if match else legacy.get(platform_tag, (99, 0))


def test_the_lock_follows_the_target_platform_not_this_machine(tmp_path, monkeypatch):
    # PyPI alone: no local wheel folders from pip's configuration (this machine has a CPU torch in one).
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    build = _builder()
    args = types.SimpleNamespace(python="3.11", torch_index="", find_links=[])
    windows = build.lock("windows-x64", args, str(tmp_path), with_torch=False)
    linux = build.lock("linux-x64", args, str(tmp_path), with_torch=False)
    names = lambda lock: {canonicalize_name(p.split("==")[0]) for p in lock}  # noqa: E731
    assert "colorama" in names(windows) and "colorama" not in names(linux)
    assert "torch" not in names(windows) | names(linux) and "numpy" not in names(windows) | names(linux)
    # The full build: PyPI's torch is the CUDA one on Linux (its nvidia wheels come along), CPU-only on Windows.
    full_linux = names(build.lock("linux-x64", args, str(tmp_path), with_torch=True))
    full_windows = names(build.lock("windows-x64", args, str(tmp_path), with_torch=True))
    assert "torch" in full_linux and any(n.startswith("nvidia") for n in full_linux)
    assert "torch" in full_windows and not any(n.startswith("nvidia") for n in full_windows)
    # Blender 5.1+ (Python 3.13): numpy follows Blender's newer one, the rest keep their pins.
    args13 = types.SimpleNamespace(python="3.13", torch_index="", find_links=[])
    assert "diffusers==0.42.1" in build.lock("linux-x64", args13, str(tmp_path), with_torch=False)


def _install(python: str, zip_path: str, plan: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BLENDER_USER_RESOURCES", "PYTHONPATH")}
    done = subprocess.run([python, os.path.join(ROOT, "tests", "packaging", "wheel_build_check.py"), zip_path, plan],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert "error" not in result, result.get("error")
    return result


def _assert_wheels_import_from_the_extension(result: dict, numexpr_elsewhere: bool = False) -> None:
    assert result["installed"] == ["FINISHED"] and result["enabled"]
    assert result["site_on_path"]
    assert {"diffusers", "transformers", "opencv-python-headless", "librosa", "compel", "peft", "accelerate"} <= set(
        result["distributions"])
    for name, where in result["modules"].items():
        assert not where.startswith("error"), (name, where)
        if name == "numexpr" and numexpr_elsewhere:
            continue
        assert where.startswith(result["site"]), (name, where)


def _assert_rendered(result: dict, plan: str) -> None:
    assert result.get("render_rc") == 0, result.get("render_tail")
    frames = json.load(open(plan))["settings"]["output_dir"]
    assert sorted(f for f in os.listdir(frames) if f.endswith(".png")) == ["frame_000001.png", "frame_000002.png"]


def test_light_build_installs_in_bpy_5_0_and_renders_with_a_python_that_brings_torch(light_zip, plan_file):
    result = _install(sys.executable, light_zip, plan_file)
    assert result["blender"].startswith("5.0")
    _assert_wheels_import_from_the_extension(result)
    # This bpy's Python has torch of its own (the light build's case): with the bundled wheels it is a ready engine.
    assert result["check"]["ok"] and result["check"]["missing"] == [], result["check"]
    assert not result["torch"].startswith(result["site"])
    _assert_rendered(result, plan_file)


def test_light_build_installs_in_bpy_4_2_and_only_torch_is_missing(light_zip):
    assert os.path.isfile(BPY42_PYTHON), "the bpy 4.2 venv is missing: run `make setup`"
    result = _install(BPY42_PYTHON, light_zip)
    assert result["blender"].startswith("4.2")
    # The bpy 4.2 venv holds only bpy, numpy and numexpr: everything else comes from the zip's wheels.
    _assert_wheels_import_from_the_extension(result, numexpr_elsewhere=False)
    check = result["check"]
    assert check["missing"] == ["torch"] and not check["ok"]
    assert "light build" in check["problems"][0] and "torch==2.13.0" in check["problems"][0]


def test_full_build_renders_in_bpy_4_2_with_nothing_but_blenders_python(plan_file):
    # bpy 4.2's venv holds only bpy, numpy and numexpr: torch and everything else come from the full build's wheels.
    path = _build("full")
    assert os.path.basename(path) == "keyframe_diffusion-0.1.0-full-cpu-py311-linux_x64.zip"  # which torch is inside
    with zipfile.ZipFile(path) as z:
        assert any(os.path.basename(n).startswith("torch-2.13.0") for n in z.namelist())
    result = _install(BPY42_PYTHON, path, plan_file)
    _assert_wheels_import_from_the_extension(result)
    assert result["check"]["ok"] and result["check"]["device"]["kind"] == "cpu", result["check"]
    assert result["torch"].startswith(result["site"])
    _assert_rendered(result, plan_file)
