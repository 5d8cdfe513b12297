"""What the engine's Python can do: `python -m engine check` (the preferences' Check Engine button runs it with the
chosen interpreter). Reads installed versions from package metadata, so a missing or broken torch is reported, not
raised; imports torch only to ask for the device and its free memory.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata

EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(EXTENSION_DIR, "requirements", "engine.txt")
OPTIONAL = os.path.join(EXTENSION_DIR, "requirements", "ray.txt")  # only for Distribute with Ray
MIN_PYTHON = (3, 10)
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


def pins(path: str) -> dict[str, str]:
    """name -> pinned version of a requirements file's `name==version` lines."""
    try:
        with open(path, encoding="utf-8") as f:
            return {m.group(1): m.group(2) for m in map(_PIN.match, f) if m}
    except FileNotFoundError:
        return {}


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _free_ram() -> float | None:
    """Available system memory in GiB (Linux, macOS, Windows), or None when the platform won't say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        import psutil  # present in many Pythons, not required

        return psutil.virtual_memory().available / 2**30
    except ImportError:
        return None


def device(choice: str = "auto") -> dict:
    """The device the engine will use for `choice` (auto, cuda, mps, cpu) and its free memory."""
    try:
        import torch
    except Exception as e:  # not installed, or a broken install (a wrong CUDA build raises at import)
        return {"kind": None, "error": f"torch can't be imported: {e}"}
    info: dict = {"torch_cuda": torch.version.cuda}
    if choice in ("auto", "cuda") and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        info.update(kind="cuda", name=torch.cuda.get_device_name(0), free_gb=round(free / 2**30, 2),
                    total_gb=round(total / 2**30, 2))
    elif choice in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        ram = _free_ram()
        info.update(kind="mps", name="Apple GPU (shares system memory)", free_gb=None if ram is None else round(ram, 2))
    else:
        ram = _free_ram()
        info.update(kind="cpu", name=platform.processor() or platform.machine(),
                    free_gb=None if ram is None else round(ram, 2))
        if choice in ("cuda", "mps"):
            info["error"] = f"{choice} was chosen but this torch can't use it (torch {torch.__version__})"
    return info


def missing_packages() -> list[str]:
    """The engine requirements this Python doesn't have (by package metadata: nothing is imported)."""
    return [name for name in pins(REQUIREMENTS) if _installed(name) is None]


def check(device_choice: str = "auto") -> dict:
    """Everything the Check Engine button shows, and `problems` (each with how to fix it); `ok` when there are none."""
    problems: list[str] = []
    python = {"executable": sys.executable, "version": platform.python_version()}
    if sys.version_info < MIN_PYTHON:
        problems.append(f"Python {python['version']} is too old: the engine needs Python "
                        f"{'.'.join(map(str, MIN_PYTHON))} or newer (Blender 4.2-5.0 bring 3.11)")
    required = pins(REQUIREMENTS)
    packages = {name: {"required": version, "installed": _installed(name)} for name, version in required.items()}
    missing = missing_packages()
    # A local build label (torch 2.13.0+cpu / +cu124) is the same release.
    different = [f"{name} {p['installed']} (tested with {p['required']})" for name, p in packages.items()
                 if p["installed"] is not None and p["installed"].split("+")[0] != p["required"]]
    fix = f'"{sys.executable}" -m pip install -r "{REQUIREMENTS}"'
    if missing == ["torch"]:
        # The light build's case: its wheels bring everything but torch, which is large and specific to the GPU.
        version = "%d.%d" % sys.version_info[:2]
        problems.append(f"missing: torch (the light build bundles everything else); set Engine Python to a Python "
                        f"{version} that has torch, install the full build, or install it with "
                        f'"{sys.executable}" -m pip install torch=={required["torch"]}')
    elif missing:
        problems.append(f"missing: {', '.join(missing)}; install them with {fix}")
    if not required:
        problems.append(f"the engine's requirement list {REQUIREMENTS} is missing; reinstall the extension")
    info = device(device_choice)
    if info.get("error") and "torch" not in missing:
        problems.append(info["error"])
    ray = _installed("ray")
    optional = {name: {"required": v, "installed": _installed(name)} for name, v in pins(OPTIONAL).items()}
    return {"ok": not problems, "python": python, "packages": packages, "missing": missing,
            "different_versions": different, "optional": optional, "ray": ray, "device": info,
            "problems": problems, "fix": fix if missing else ""}


def summary_lines(report: dict) -> list[str]:
    """The report as short lines for Blender's preferences and the terminal."""
    p, d = report["python"], report["device"]
    packages = report["packages"]
    version = lambda name: (packages.get(name) or {}).get("installed") or "missing"  # noqa: E731
    lines = [f"Python {p['version']} ({p['executable']})",
             f"torch {version('torch')}, diffusers {version('diffusers')}, transformers {version('transformers')}"]
    if d.get("kind"):
        memory = f", {d['free_gb']} GiB free" if d.get("free_gb") is not None else ""
        lines.append(f"Device: {d['kind'].upper()} {d.get('name', '')}{memory}")
    lines.append(f"Ray: {report['ray'] or 'not installed (only needed to distribute over machines)'}")
    if report["different_versions"]:
        lines.append("Other versions than tested: " + ", ".join(report["different_versions"]))
    lines += [f"Problem: {problem}" for problem in report["problems"]]
    if report["ok"]:
        lines.append("Ready")
    return lines
