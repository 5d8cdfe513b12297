"""The real worker subprocess and its line protocol: render, cancel, kill, bad plans, missing models."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from common import ROOT, make_plan, write_plan

from engine.frames import FrameStore
from engine_link.worker_client import WorkerClient


def wait_for(client, kinds, timeout=120):
    """Collect events until one of `kinds` arrives."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        for event in client.events(0.2):
            seen.append(event)
            if event["event"] in kinds:
                return seen
    raise AssertionError(f"no {kinds} within {timeout}s; saw {[e['event'] for e in seen]}")


@pytest.fixture
def client():
    c = WorkerClient(ROOT)
    c.start()
    yield c
    c.stop()


def test_worker_renders_then_serves_again(client, tmp_path):
    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=3))
    assert wait_for(client, {"ready"})[-1]["pid"] == client.process.pid
    client.render(plan)
    events = wait_for(client, {"finished", "error"})
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finished", events
    assert "progress" in kinds
    assert [e["frame"] for e in events if e["event"] == "frame"] == [1, 2, 3]
    client.render(plan, (2, 3))
    events = wait_for(client, {"finished", "error"})
    assert events[-1]["rendered"] == 0 and events[-1]["skipped"] == 2
    assert "loading" not in [e["event"] for e in events]  # the model stayed loaded


def test_malformed_plan_and_missing_model_are_errors_not_crashes(client, tmp_path):
    bad = make_plan(str(tmp_path / "out"))
    bad["frames"][1]["steps"] = "four"
    client.render(write_plan(tmp_path / "bad.json", bad))
    error = wait_for(client, {"error", "finished"})[-1]
    assert error["event"] == "error" and error["kind"] == "plan"
    assert "frames[1] (frame 2): field 'steps' must be an integer" in error["message"]

    client.render(write_plan(tmp_path / "missing.json", make_plan(str(tmp_path / "m"), model="nobody/no-model")))
    error = wait_for(client, {"error", "finished"})[-1]
    assert error["kind"] == "model" and "nobody/no-model" in error["message"]

    client.render(str(tmp_path / "does-not-exist.json"))
    error = wait_for(client, {"error", "finished"})[-1]
    assert error["kind"] == "plan" and "not found" in error["message"]
    assert client.alive()


def test_cancel_within_a_denoising_step(client, tmp_path):
    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=3, steps=200, batch_size=1))
    client.render(plan)
    wait_for(client, {"progress"})
    sent = time.time()
    client.cancel()
    events = wait_for(client, {"finished", "error"})
    assert events[-1]["event"] == "finished" and events[-1]["cancelled"]
    steps = [e["step"] for e in events if e["event"] == "progress"]
    assert not steps or max(steps) < 200  # it never ran to the end of the frame
    assert time.time() - sent < 10
    assert FrameStore(str(tmp_path / "out")).finished_frames() == []
    assert client.alive()


def test_killed_worker_loses_only_the_frame_in_flight(tmp_path):
    out = str(tmp_path / "out")
    plan = write_plan(tmp_path / "plan.json", make_plan(out, frames=6, steps=20, batch_size=1))
    client = WorkerClient(ROOT)
    client.start()
    client.render(plan)
    done = [e["frame"] for e in wait_for(client, {"frame"}) if e["event"] == "frame"]
    os.kill(client.process.pid, signal.SIGKILL)
    events = wait_for(client, {"exit"})
    assert events[-1]["code"] == -signal.SIGKILL
    finished = FrameStore(out).finished_frames()
    assert done[0] in finished and len(finished) < 6
    # A new worker resumes: it renders only what is missing.
    client = WorkerClient(ROOT)
    client.start()
    try:
        client.render(plan)
        events = wait_for(client, {"finished", "error"})
        assert events[-1]["event"] == "finished"
        assert events[-1]["rendered"] == 6 - len(finished) and events[-1]["skipped"] == len(finished)
    finally:
        client.stop()


def test_worker_exits_when_its_parent_goes_away(tmp_path):
    client = WorkerClient(ROOT)
    client.start()
    wait_for(client, {"ready"})
    client.process.stdin.close()  # what the OS does when Blender dies
    assert client.process.wait(30) == 0


def test_bad_engine_python_is_a_clear_error():
    from engine_link.worker_client import WorkerError

    with pytest.raises(WorkerError, match="does not exist"):
        WorkerClient(ROOT, python="/nowhere/python3").start()


def test_render_command_line(tmp_path):
    plan = write_plan(tmp_path / "plan.json", make_plan("frames", frames=2))
    done = subprocess.run([sys.executable, "-m", "engine", "render", plan, "--frames", "2-2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["rendered"] == 1 and os.path.isfile(tmp_path / "frames" / "frame_000002.png")
    bad = subprocess.run([sys.executable, "-m", "engine", "render", str(tmp_path / "nope.json")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "plan file not found" in bad.stderr


def test_make_tiny_model_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine", "make-tiny-model", str(tmp_path / "tiny")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "tiny"), local_files_only=True)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size


def test_model_from_hugging_face_cache_id(tiny_model_dir, tmp_path):
    """A Hugging Face id found in the local cache loads offline through from_pretrained."""
    import shutil

    snapshot = tmp_path / "hub" / "models--kd-test--tiny-sd" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (tmp_path / "hub" / "models--kd-test--tiny-sd" / "refs").mkdir()
    (tmp_path / "hub" / "models--kd-test--tiny-sd" / "refs" / "main").write_text("0" * 40)
    plan = write_plan(tmp_path / "plan.json", make_plan("frames", frames=1, model="kd-test/tiny-sd"))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "engine", "render", plan], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert os.path.isfile(tmp_path / "frames" / "frame_000001.png")
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-hub")
    shutil.rmtree(tmp_path / "frames")  # with the frame up to date the model would not even be needed
    missing = subprocess.run([sys.executable, "-m", "engine", "render", plan], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "'kd-test/tiny-sd' is not in the Hugging Face cache" in missing.stderr


def test_engine_python_without_torch_says_how_to_fix(tmp_path):
    # The bare interpreter this venv was made from has none of the engine's libraries.
    base = getattr(sys, "_base_executable", None)
    assert base and sys.prefix != sys.base_prefix
    client = WorkerClient(ROOT, python=base)
    client.start()
    try:
        client.render(write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"))))
        error = wait_for(client, {"error", "finished", "exit"})[-1]
        assert error["event"] == "error" and error["kind"] == "environment", error
        # Every missing requirement is named, torch among them, whichever import failed first.
        missing = error["message"].split("(missing there: ")[1].split(")")[0].split(", ")
        assert "torch" in missing and "diffusers" in missing and "Engine Python" in error["message"]
    finally:
        client.stop()


def test_an_external_python_of_blenders_version_gets_the_bundled_wheels(tmp_path):
    # The light build: the user's Python brings torch, the wheels Blender installed bring the rest.
    wheels = tmp_path / "site-packages"
    wheels.mkdir()
    same = WorkerClient(ROOT, python=sys.executable, wheels_dir=str(wheels))
    assert same._env()["PYTHONPATH"].split(os.pathsep) == [ROOT, str(wheels)]
    # Compiled wheels only load in the Python version they were built for: another version goes without them.
    other = tmp_path / "python3.99"
    other.write_text("#!/bin/sh\necho 3.99\n")
    other.chmod(0o755)
    assert WorkerClient(ROOT, python=str(other), wheels_dir=str(wheels))._env()["PYTHONPATH"] == ROOT
    # No wheels installed (a source build): nothing is added.
    assert WorkerClient(ROOT, python=sys.executable, wheels_dir=str(tmp_path / "none"))._env()["PYTHONPATH"] == ROOT
