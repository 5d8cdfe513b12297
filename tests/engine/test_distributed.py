"""Rendering a plan over Ray: a local cluster started by the tests (2 CPUs, one worker per CPU), the real Ray
workers (actors), the real engine. Same frames as the local renderer, retries when a worker dies, cancel, CLI and
worker protocol."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from common import ROOT, make_plan, ray_cluster, wait_for_free_cpus, write_plan
from PIL import Image

from engine import plan as plan_mod
from engine.distributed import DistributedError, RayRenderer, require_ray, units
from engine.frames import FrameStore
from engine.renderer import Renderer

ray = pytest.importorskip("ray", reason="Ray is part of requirements/dev.txt")


def feedback_plan(output_dir: str, frames: int = 9, restarts=(4, 7), **settings) -> dict:
    plan = make_plan(output_dir, frames=frames, steps=2, mode="FEEDBACK", **settings)
    for record in plan["frames"]:
        record["motion"] = {"translation_x": 2.0}
        if record["frame"] in restarts:
            record["restart"] = True
    return plan_mod.validate(plan)


def pixels(folder, frame: int) -> np.ndarray:
    with Image.open(os.path.join(folder, f"frame_{frame:06d}.png")) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def local_reference(plan: dict, folder: str) -> dict:
    """The single-machine render, with the one torch thread each Ray worker here has (CPU kernels round in a
    thread-count dependent order; with the same count the frames are bit-identical)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return Renderer().render({**plan, "settings": {**plan["settings"], "output_dir": folder}}, None,
                                 lambda e: None)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for this module, started the way `--ray` without an address starts one."""
    with ray_cluster(2) as address:
        yield address


@pytest.fixture(scope="module")
def renderer(cluster):
    r = RayRenderer()
    yield r
    r.release()


def collect(events):
    return lambda e: events.append(e)


# -- units (no cluster) ------------------------------------------------------------------------------------------

def test_units_follow_local_batches_and_whole_chains(tmp_path):
    plan = plan_mod.validate(make_plan(str(tmp_path), frames=7))
    plan["settings"]["batch_size"] = 3
    todo = [r for r in plan["frames"] if r["frame"] != 2]
    assert [u.frames for u in units(plan, todo, plan["frames"])] == [[1, 3, 4], [5, 6, 7]]
    fb = feedback_plan(str(tmp_path), frames=9, restarts=(4, 7))
    records = [r for r in fb["frames"] if 5 <= r["frame"] <= 8]
    todo = [r for r in records if r["frame"] != 5]
    got = [(u.frames, u.frame_range) for u in units(fb, todo, records)]
    # Chains 4-6 (up to the range's last frame in it) and 7-9 (cut at 8); chain 1-3 has nothing to do.
    assert got == [([4, 5, 6], (5, 6)), ([7, 8], (7, 8))]


def test_missing_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DistributedError, match="pip install -r requirements/ray.txt"):
        require_ray()


def test_an_unreachable_or_malformed_address_fails_fast():
    from engine.distributed import check_reachable

    started = time.monotonic()
    with pytest.raises(DistributedError, match="can't reach the Ray cluster at '127.0.0.1:1'"):
        check_reachable("127.0.0.1:1")
    assert time.monotonic() - started < 10
    with pytest.raises(DistributedError, match="is not HOST:PORT"):
        check_reachable("head-node")
    done = subprocess.run([sys.executable, "-m", "engine", "render", "nope.json", "--ray", "127.0.0.1:1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "plan file not found" in done.stderr  # the plan is read before the cluster


# -- on the cluster ----------------------------------------------------------------------------------------------

def test_interpolate_matches_local_and_spreads(renderer, tmp_path):
    plan = plan_mod.validate(make_plan(str(tmp_path / "ray"), frames=8, steps=3, batch_size=2))
    local_reference(plan, str(tmp_path / "local"))
    events = []
    summary = renderer.render(plan, None, collect(events))
    assert summary["rendered"] == 8 and not summary["cancelled"]
    for f in range(1, 9):
        assert np.array_equal(pixels(tmp_path / "ray", f), pixels(tmp_path / "local", f)), f"frame {f} differs"
    frames = [e for e in events if e["event"] == "frame"]
    assert sorted(e["frame"] for e in frames) == list(range(1, 9))
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and all(e["total"] == 8 and e["steps"] == 3 for e in progress)
    assert {e["step"] for e in progress} == {1, 2, 3}
    assert [e["done"] for e in frames] == list(range(1, 9))  # progress counts as in a local run
    assert len({e["worker"] for e in frames}) == 2  # both workers rendered
    workers = next(e for e in events if e["event"] == "workers")
    assert workers["count"] == 2 and workers["per_worker"] == {"num_cpus": 1}
    # The manifest is the local run's: same hashes, every frame current; a second run renders nothing.
    local = json.load(open(tmp_path / "local" / "manifest.json"))["frames"]
    remote = json.load(open(tmp_path / "ray" / "manifest.json"))["frames"]
    assert {k: v["hash"] for k, v in remote.items()} == {k: v["hash"] for k, v in local.items()}
    again = renderer.render(plan, None, lambda e: None)
    assert again["rendered"] == 0 and again["skipped"] == 8


def test_upscale_pass_runs_beside_the_frames_after_a_ray_render(renderer, tmp_path):
    from engine.tiny_model import make_tiny_upscaler

    upscaler = make_tiny_upscaler(str(tmp_path / "x2"), kind="x2")
    plan = plan_mod.validate(make_plan(str(tmp_path / "ray"), frames=3, steps=2, batch_size=2, upscale={
        "model": upscaler, "steps": 2, "output_dir": str(tmp_path / "ray" / "upscaled")}))
    events = []
    summary = renderer.render(plan, None, collect(events))
    assert summary["rendered"] == 3 and summary["upscaled"] == 3, {k: v for k, v in summary.items() if "upscal" in k}
    upscaled = [e for e in events if e["event"] == "upscaled"]
    assert [e["frame"] for e in upscaled] == [1, 2, 3]
    assert all(Image.open(e["path"]).size == (128, 128) for e in upscaled)
    assert renderer.render(plan, None, lambda e: None)["upscale_skipped"] == 3


def test_feedback_chains_run_whole_on_one_worker(renderer, tmp_path):
    plan = feedback_plan(str(tmp_path / "ray"), frames=9, restarts=(4, 7))
    local_reference(plan, str(tmp_path / "local"))
    events = []
    summary = renderer.render(plan, None, collect(events))
    assert summary["rendered"] == 9
    for f in range(1, 10):
        assert np.array_equal(pixels(tmp_path / "ray", f), pixels(tmp_path / "local", f)), f"frame {f} differs"
    by_frame = {e["frame"]: e["worker"] for e in events if e["event"] == "frame"}
    for chain in ((1, 2, 3), (4, 5, 6), (7, 8, 9)):
        assert len({by_frame[f] for f in chain}) == 1, by_frame
    # A range inside a chain resumes from the chain's frames on disk: delete frame 5 and ask for 5-6 only.
    os.remove(tmp_path / "ray" / "frame_000005.png")
    os.remove(tmp_path / "ray" / "frame_000006.png")
    resumed = renderer.render(plan, (5, 6), lambda e: None)
    assert resumed["rendered"] == 2
    for f in (5, 6):
        assert np.array_equal(pixels(tmp_path / "ray", f), pixels(tmp_path / "local", f))


@pytest.fixture
def shared(renderer):
    """The module's workers, writing into the output folder themselves (shared storage)."""
    renderer.shared = True
    yield renderer
    renderer.shared = False


def test_video_mode_matches_local(renderer, tmp_path):
    """Video input: each frame img2img of its own init image, which every worker reads from the same path."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        path = str(tmp_path / f"init_{i}.png")
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        records.append({"frame": 10 + i, "seed": i, "steps": 4, "guidance": 5.0, "strength": 0.5,
                        "prompts": [{"text": "a red circle", "weight": 1.0}], "init": {"path": path}})
    plan = plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION, "frames": records,
                              "settings": {"mode": "VIDEO", "model": "embedded:tiny", "width": 64, "height": 64,
                                           "output_dir": str(tmp_path / "ray"), "batch_size": 2}})
    local_reference(plan, str(tmp_path / "local"))
    assert renderer.render(plan, None, lambda e: None)["rendered"] == 4
    for f in range(10, 14):
        assert np.array_equal(pixels(tmp_path / "ray", f), pixels(tmp_path / "local", f)), f"frame {f} differs"


def test_a_missing_model_on_the_workers_is_the_same_error_as_locally(renderer, tmp_path):
    from engine.errors import ModelError

    plan = plan_mod.validate(make_plan(str(tmp_path / "out"), frames=4, model="nobody/missing-model"))
    with pytest.raises(ModelError, match="nobody/missing-model"):
        renderer.render(plan, None, lambda e: None)
    assert not any(n.startswith("frame_") for n in os.listdir(tmp_path / "out"))
    # The workers stay up and render the next plan.
    ok = plan_mod.validate(make_plan(str(tmp_path / "ok"), frames=2))
    assert renderer.render(ok, None, lambda e: None)["rendered"] == 2


def test_shared_storage_workers_write_the_folder(shared, tmp_path):
    plan = plan_mod.validate(make_plan(str(tmp_path / "ray"), frames=6, steps=2, batch_size=1))
    local_reference(plan, str(tmp_path / "local"))
    summary = shared.render(plan, None, lambda e: None)
    assert summary["rendered"] == 6
    store = FrameStore(str(tmp_path / "ray"))
    hashes = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    # Two workers wrote into one manifest at once; no entry was lost.
    assert all(store.is_current(f, hashes[f]) for f in range(1, 7))
    for f in range(1, 7):
        assert np.array_equal(pixels(tmp_path / "ray", f), pixels(tmp_path / "local", f))


def test_killed_worker_has_its_frames_retried(renderer, tmp_path):
    plan = plan_mod.validate(make_plan(str(tmp_path / "ray"), frames=10, steps=4, batch_size=1))
    local_reference(plan, str(tmp_path / "local"))
    events, killed = [], []

    def on_event(event):
        events.append(event)
        if event["event"] == "frame" and not killed:
            pid = int(event["worker"].rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)  # the worker that just delivered a frame dies mid-run
            killed.append(event["worker"])

    summary = renderer.render(plan, None, on_event)
    assert summary["rendered"] == 10 and not summary["cancelled"] and summary["retried"] >= 1
    for f in range(1, 11):
        assert np.array_equal(pixels(tmp_path / "ray", f), pixels(tmp_path / "local", f)), f"frame {f} differs"
    after = [e["worker"] for e in events[events.index(next(e for e in events if e["event"] == "frame")) + 1:]
             if e["event"] == "frame"]
    assert killed[0] not in after
    assert len(set(after)) >= 1


def test_cancel_stops_every_worker(shared, tmp_path):
    # Workers write the folder themselves: nothing may appear in it after the cancel.
    plan = plan_mod.validate(make_plan(str(tmp_path / "ray"), frames=40, steps=8, batch_size=1))
    cancel = threading.Event()
    events = []

    def on_event(event):
        events.append(event)
        if event["event"] == "frame":
            cancel.set()

    started = time.monotonic()
    summary = shared.render(plan, None, on_event, cancel)
    elapsed = time.monotonic() - started
    assert summary["cancelled"] and summary["rendered"] < 40
    assert all(ray.get(a.busy.remote()) == 0 for a in shared._actors)
    written = sorted(os.listdir(tmp_path / "ray"))
    time.sleep(2.0)
    assert sorted(os.listdir(tmp_path / "ray")) == written
    assert len([n for n in written if n.startswith("frame_")]) <= summary["rendered"] + 2
    assert elapsed < 120


@pytest.fixture
def idle_cluster(cluster, renderer):
    """The cluster with the module's workers stopped, so another process's workers get its CPUs."""
    renderer.release()
    wait_for_free_cpus(2)
    return cluster


def test_workers_that_cannot_start_are_a_clear_error(idle_cluster, tmp_path, monkeypatch):
    """A worker whose set-up fails (here: options its engine doesn't know, as with a mismatched engine on a node) is
    reported with its cause instead of being replaced forever."""
    from engine.distributed import FrameWorker

    def broken(self):
        return ray.remote(FrameWorker).options(num_cpus=1).remote({"no_such_option": 1}, 1)

    monkeypatch.setattr(RayRenderer, "_new_actor", broken)
    plan = plan_mod.validate(make_plan(str(tmp_path / "out"), frames=2))
    with pytest.raises(DistributedError, match=r"(?s)Ray workers fail to start.*no_such_option"):
        RayRenderer().render(plan, None, lambda e: None)
    assert not os.path.exists(tmp_path / "out" / "frame_000001.png")


def test_command_line_joins_a_running_cluster(idle_cluster, tmp_path):
    cluster = idle_cluster
    plan = write_plan(tmp_path / "plan.json", make_plan("frames", frames=4, steps=2))
    done = subprocess.run([sys.executable, "-m", "engine", "render", plan, "--ray", cluster], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["rendered"] == 4
    assert f"Ray cluster {cluster}: 2 workers" in done.stderr
    assert all(os.path.isfile(tmp_path / "frames" / f"frame_{f:06d}.png") for f in range(1, 5))


def test_worker_protocol_renders_over_ray(idle_cluster, tmp_path):
    cluster = idle_cluster
    from engine_link.worker_client import WorkerClient

    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=3, steps=2))
    long_plan = write_plan(tmp_path / "long.json", make_plan(str(tmp_path / "long"), frames=30, steps=10,
                                                            batch_size=1))
    ray_option = {"address": cluster, "workers": 2, "shared": False}

    def until(client, kinds, on_event=None):
        events, deadline = [], time.time() + 240
        while time.time() < deadline and not any(e["event"] in kinds for e in events):
            for event in client.events(0.2):
                events.append(event)
                if on_event:
                    on_event(event)
        return events

    client = WorkerClient(ROOT)
    client.start()
    try:
        client.render(plan, None, ray_option)
        events = until(client, ("finished", "error"))
        assert events[-1]["event"] == "finished", events[-3:]
        assert next(e for e in events if e["event"] == "workers")["count"] == 2
        assert sorted(e["frame"] for e in events if e["event"] == "frame") == [1, 2, 3]
        # Cancel, as Esc in Blender sends it, reaches every Ray worker: the render ends early, frames kept.
        client.render(long_plan, None, ray_option)
        events = until(client, ("finished", "error"),
                       lambda e: e["event"] == "frame" and client.cancel())
    finally:
        client.stop()
    assert events[-1]["event"] == "finished" and events[-1]["cancelled"], events[-3:]
    assert events[-1]["rendered"] < 30
    assert len([n for n in os.listdir(tmp_path / "long") if n.startswith("frame_")]) == events[-1]["rendered"]


# -- the manifest under concurrent writers (no cluster) -----------------------------------------------------------

def _write_frames(folder: str, start: int, count: int) -> None:
    from PIL import Image as PILImage

    store = FrameStore(folder)
    for f in range(start, start + count):
        store.write(f, PILImage.new("RGB", (8, 8), (f, 0, 0)), f"hash{f}")


def test_two_processes_writing_one_folder_keep_every_manifest_entry(tmp_path):
    folder = str(tmp_path / "out")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_frames, args=(folder, start, 40)) for start in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = FrameStore(folder)
    assert store.finished_frames() == list(range(0, 40)) + list(range(100, 140))
    assert all(store.is_current(f, f"hash{f}") for f in store.finished_frames())


# -- chains restart (no cluster) ----------------------------------------------------------------------------------

def test_a_restart_makes_the_chain_independent(tmp_path):
    """A restarted chain's frames are those of a plan that starts there, and editing an earlier chain leaves the
    later chain's hashes (so its frames on disk) alone."""
    plan = feedback_plan(str(tmp_path / "whole"), frames=6, restarts=(4,))
    Renderer().render(plan, None, lambda e: None)
    tail = {**plan, "frames": [r for r in plan["frames"] if r["frame"] >= 4],
            "settings": {**plan["settings"], "output_dir": str(tmp_path / "tail")}}
    Renderer().render(tail, None, lambda e: None)
    for f in (4, 5, 6):
        assert np.array_equal(pixels(tmp_path / "whole", f), pixels(tmp_path / "tail", f))
    before = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    plan["frames"][1]["guidance"] = 7.5  # frame 2, in the first chain
    after = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    assert [f for f in range(1, 7) if before[f] != after[f]] == [2, 3]
    del plan["frames"][3]["restart"]  # one chain again: frames 4-6 follow frame 3 now
    joined = plan_mod.frame_hashes(plan["settings"], plan["frames"])
    assert all(joined[f] != after[f] for f in (4, 5, 6))


def test_restart_must_be_true_or_false(tmp_path):
    plan = feedback_plan(str(tmp_path), frames=3, restarts=())
    plan["frames"][1]["restart"] = 1
    with pytest.raises(plan_mod.PlanError, match=r"frames\[1\] \(frame 2\): field 'restart' must be true or false"):
        plan_mod.validate(plan)


def test_shots_are_units_of_work_and_match_local(renderer, tmp_path):
    """Shot mode (a tiny Wan text-to-video model): each shot is made whole by one worker, as a local render makes it."""
    from engine.tiny_video_models import make_tiny_wan_t2v

    model = make_tiny_wan_t2v(str(tmp_path / "wan"))
    records = [{"frame": f, "seed": 10 + f, "steps": 2, "guidance": 4.0, "restart": f == 6,
                "prompts": [{"text": "a red circle", "weight": 1.0}]} for f in range(1, 11)]
    plan = plan_mod.validate({"schema": plan_mod.SCHEMA, "version": plan_mod.VERSION, "frames": records,
                              "settings": {"mode": "SHOT", "model": model, "width": 32, "height": 32,
                                           "output_dir": str(tmp_path / "ray")}})
    local_reference(plan, str(tmp_path / "local"))
    events = []
    summary = renderer.render(plan, None, collect(events))
    assert summary["rendered"] == 10
    by_frame = {e["frame"]: e["worker"] for e in events if e["event"] == "frame"}
    assert len({by_frame[f] for f in range(1, 6)}) == 1 and len({by_frame[f] for f in range(6, 11)}) == 1
    for f in range(1, 11):
        assert np.abs(pixels(tmp_path / "ray", f) - pixels(tmp_path / "local", f)).max() <= 1, f"frame {f} differs"
