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


def test_a_cancel_while_idle_never_reaches_the_next_render(client, tmp_path):
    """Esc just after a render ended (or with nothing running) used to cancel the next render at once."""
    wait_for(client, {"ready"})
    client.send({"cmd": "cancel"})  # nothing is running: dropped
    first = client.render(write_plan(tmp_path / "a.json", make_plan(str(tmp_path / "a"), frames=2)))
    assert wait_for(client, {"finished", "error"})[-1]["rendered"] == 2
    client.cancel()  # names the render just finished: dropped
    assert client.render_id == first
    client.render(write_plan(tmp_path / "b.json", make_plan(str(tmp_path / "b"), frames=3)))
    events = wait_for(client, {"finished", "error"})
    assert events[-1]["event"] == "finished" and not events[-1]["cancelled"] and events[-1]["rendered"] == 3
    assert [e["frame"] for e in events if e["event"] == "frame"] == [1, 2, 3]


def test_a_cancel_stops_only_the_render_it_names(client, tmp_path):
    """Renders queue in order; a cancel with an id stops that one (even before it starts), one without an id every
    render sent before it."""
    first = client.render(write_plan(tmp_path / "a.json", make_plan(str(tmp_path / "a"), frames=3)))
    second = client.render(write_plan(tmp_path / "b.json", make_plan(str(tmp_path / "b"), frames=3)))
    client.cancel(second)  # arrives while the first renders: the first goes on, the second never starts
    assert second != first and client.render_id == second
    ends = [wait_for(client, {"finished", "error"})[-1] for _ in range(2)]
    assert [(e["event"], e.get("cancelled"), e.get("rendered")) for e in ends] == [("finished", False, 3),
                                                                          ("finished", True, 0)], ends
    assert FrameStore(str(tmp_path / "b")).finished_frames() == []
    long = make_plan(str(tmp_path / "c"), frames=3, steps=200, batch_size=1)
    client.render(write_plan(tmp_path / "c.json", long))
    client.render(write_plan(tmp_path / "d.json", make_plan(str(tmp_path / "d"), frames=2)))
    wait_for(client, {"progress"})
    client.send({"cmd": "cancel"})  # no id: the running render and the one queued behind it
    ends = [wait_for(client, {"finished", "error"})[-1] for _ in range(2)]
    assert [(e["event"], e["cancelled"]) for e in ends] == [("finished", True), ("finished", True)]
    assert ends[1]["rendered"] == 0
    client.send({"cmd": "cancel", "id": [1]})
    assert "id" in wait_for(client, {"error"})[-1]["message"]
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
    # Its last words say how it ended, not the libraries' warnings (transformers' torchvision notice, progress bars).
    assert events[-1]["message"].startswith("killed by signal 9 (SIGKILL: out of memory?)")
    assert "torchvision" not in events[-1]["message"] and "%|" not in events[-1]["message"]
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


# A worker that warns like the engine's libraries, then dies of an exception nothing handles, then warns again while
# the interpreter shuts down (progress bars, leaked-resource warnings).
CRASHING_WORKER = r"""
import atexit, json, sys, warnings
print(json.dumps({"event": "ready", "pid": 0}), flush=True)
print("[transformers] `CLIPImageProcessor` requires torchvision (not installed); falling back to "
      "`CLIPImageProcessorPil` for backward compatibility.", file=sys.stderr)
warnings.warn("`resume_download` is deprecated", FutureWarning)

def shutdown_noise():
    for i in range(6):
        print(f"Loading weights: {i * 20}%|##        | {i}/5 [00:00<00:00, 9.72it/s]", file=sys.stderr)
    warnings.warn("resource_tracker: There appear to be 1 leaked semaphore objects", UserWarning)

atexit.register(shutdown_noise)

def deep(n):
    if n == 0:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    deep(n - 1)

sys.stdin.readline()
deep(12)
"""


class CrashingClient(WorkerClient):
    def worker_command(self):
        return [sys.executable, "-c", CRASHING_WORKER]


def test_a_crash_reports_the_exception_not_the_warnings(tmp_path):
    client = CrashingClient(ROOT)
    client.start()
    try:
        wait_for(client, {"ready"})
        client.render(str(tmp_path / "plan.json"))
        exit_event = wait_for(client, {"exit"}, timeout=30)[-1]
    finally:
        client.stop()
    words = exit_event["message"].splitlines()
    assert words[-1] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert exit_event["code"] == 1 and words[0] == "exited with code 1"
    assert words[1] == "Traceback (most recent call last):"
    assert all("Warning" not in w and "torchvision" not in w and "%|" not in w for w in words), words
    assert len(words) <= 13  # the traceback's last lines, not all of stderr


def test_last_words_keep_what_explains_the_end():
    from engine_link.worker_client import last_words

    noise = ["[transformers] `SiglipImageProcessor` requires torchvision (not installed); falling back",
             "/venv/diffusers/utils/deprecation.py:49: FutureWarning: `upcast_vae` is deprecated",
             "  deprecate(\"upcast_vae\", \"1.0.0\", deprecation_message)",
             "Loading pipeline components...:  60%|######    | 3/5 [00:00<00:00, 10.68it/s]"]
    assert last_words(noise, -9) == "killed by signal 9 (SIGKILL: out of memory?)"
    assert last_words(noise, -15) == "killed by signal 15 (SIGTERM)"
    assert last_words(["loading", "Killed"] + noise, 137) == "exited with code 137\nloading\nKilled"
    traceback = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "MemoryError"]
    assert last_words(["old line"] + traceback + noise) == "\n".join(traceback)
