"""The engine check (`python -m engine check`, behind the preferences' Check Engine button): versions, the device,
and what is missing, with how to fix it. The button in Blender: tests/blender/test_blender_engine_check.py."""

import json
import subprocess
import sys

from common import ROOT

BASE_PYTHON = getattr(sys, "_base_executable", None)


def run_check(python: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "engine", "check", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_a_complete_engine_python_is_ready():
    done = run_check(sys.executable)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and not report["missing"] and not report["problems"]
    assert report["python"]["executable"] == sys.executable
    assert report["packages"]["torch"]["installed"].startswith("2.13.0")
    assert report["packages"]["diffusers"]["installed"] == report["packages"]["diffusers"]["required"]
    assert report["device"]["kind"] == "cpu" and report["device"]["free_gb"] > 0  # this machine has no GPU
    text = run_check(sys.executable, "--text").stdout
    assert "torch 2.13.0" in text and "Device: CPU" in text and text.strip().endswith("Ready")


def test_a_python_without_the_engine_libraries_says_what_is_missing_and_how_to_fix_it():
    assert BASE_PYTHON and sys.prefix != sys.base_prefix  # the bare interpreter this venv was made from
    report = json.loads(run_check(BASE_PYTHON).stdout)
    assert not report["ok"]
    assert {"torch", "diffusers", "transformers"} <= set(report["missing"])
    assert report["device"]["kind"] is None and "torch can't be imported" in report["device"]["error"]
    assert BASE_PYTHON in report["fix"] and "requirements/engine.txt" in report["fix"]
    assert report["fix"] in report["problems"][0]
    text = run_check(BASE_PYTHON, "--text").stdout
    assert "torch missing" in text and "Problem: missing: torch" in text and "Ready" not in text


def test_a_cuda_choice_without_cuda_is_a_problem():
    report = json.loads(run_check(sys.executable, "--device", "cuda").stdout)
    assert not report["ok"] and report["device"]["kind"] == "cpu"
    assert any("cuda was chosen but this torch can't use it" in p for p in report["problems"])
