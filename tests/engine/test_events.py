"""The engine's events (engine/events.py): every event a small real render, the upscaling pass, the worker protocol,
the Ray driver and the worker client send matches its record (keys and types, and it survives JSON), and describe()
says each kind for a person as the Blender side and the CLIs print it."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import threading
import time
import types
import typing

import pytest
from common import ROOT, make_plan, write_plan

from engine import events
from engine import plan as plan_mod
from engine.__main__ import main
from engine.frames import FrameStore
from engine.progress import Pace
from engine.renderer import Renderer
from engine.tiny_model import make_tiny_upscaler


def fits(value, tp) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, t) for t in args)
    if origin is list:
        return isinstance(value, list) and all(fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
    if tp is bool:
        return type(value) is bool
    if tp is int:
        return type(value) is int
    if tp is float:
        return type(value) in (int, float)
    return isinstance(value, tp)


def check(event: dict) -> dict:
    """The event matches its record: every required key, no unknown key, each value of its type; JSON round-trips."""
    record = events.schema(event)
    hints = typing.get_type_hints(record)
    keys = set(event)
    assert record.__required_keys__ <= keys, (event, record.__required_keys__ - keys)
    assert keys <= record.__required_keys__ | record.__optional_keys__, (event, keys - set(hints))
    for key, value in event.items():
        assert fits(value, hints[key]), (event["event"], key, value, hints[key])
    assert json.loads(json.dumps(event)) == event
    return event


def collect(renderer, plan, frames=None, cancel=None, upscale_only=False):
    seen = []
    run = renderer.upscale if upscale_only else renderer.render
    summary = run(plan_mod.validate(plan), frames, lambda e: seen.append(check(e)), cancel)
    assert seen[-1] is summary
    return seen


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    return make_tiny_upscaler(str(tmp_path_factory.mktemp("upscaler") / "x4"), kind="x4")


def test_a_real_render_sends_only_well_formed_events(tiny_model_dir, upscaler, tmp_path):
    plan = make_plan(str(tmp_path / "out"), frames=3, model=tiny_model_dir)
    plan["settings"]["upscale"] = {"model": upscaler, "steps": 2, "output_dir": str(tmp_path / "up")}
    renderer = Renderer()
    first = collect(renderer, plan)
    assert {e["event"] for e in first} == {"start", "loading", "progress", "frame", "upscale_start", "upscaled",
                                           "finished"}
    assert any(e["event"] == "progress" and e.get("pass") == "upscale" for e in first)
    assert first[-1]["upscaled"] == 3 and not first[-1]["cancelled"]
    # Again: every frame current, so skipped frame and upscaled events; then the upscaling pass alone.
    again = collect(renderer, plan)
    assert [e["skipped"] for e in again if e["event"] in ("frame", "upscaled")] == [True] * 6
    alone = collect(renderer, plan, upscale_only=True)
    assert alone[-1]["pass"] == "upscale" and events.schema(alone[-1]) is events.UpscaleFinished
    # A cancelled render still ends with a well-formed summary.
    cancel = threading.Event()
    cancel.set()
    plan["frames"][0]["seed"] = 99
    cancelled = collect(renderer, plan, cancel=cancel)
    assert cancelled[-1]["cancelled"]


def test_the_worker_protocol_sends_well_formed_events(tiny_model_dir, tmp_path):
    from engine.worker import serve

    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=1, model=tiny_model_dir))
    commands = ["not json", json.dumps({"cmd": "dance"}), json.dumps({"cmd": "render", "plan": "/nowhere.json"}),
                json.dumps({"cmd": "render", "plan": plan, "frames": None, "ray": None})]
    out = io.StringIO()

    def stdin():  # Blender keeps the pipe open while it waits: end of stdin would cancel the render
        yield from (c + "\n" for c in commands)
        deadline = time.time() + 300
        while '"finished"' not in out.getvalue() and time.time() < deadline:
            time.sleep(0.05)

    assert serve(Renderer().options, stdin(), out) == 0
    sent = [check(json.loads(line)) for line in out.getvalue().splitlines()]
    assert sent[0]["event"] == "ready"
    errors = [e for e in sent if e["event"] == "error"]
    assert [e["kind"] for e in errors] == ["protocol", "protocol", "plan"]
    assert sent[-1]["event"] == "finished" and sent[-1]["rendered"] == 1


def test_the_ray_driver_tags_its_workers_events(tmp_path):
    """What a Ray render adds (the cluster, "worker" on loading, progress and frames), without a cluster."""
    from engine.distributed import _Run

    check(events.workers(2, "local", {"CPU": 2.0}, {"num_cpus": 1}))
    run = _Run.__new__(_Run)
    sent = []
    run.emit, run.names, run.store = sent.append, {"actor": "host:12"}, FrameStore(str(tmp_path))
    run.done, run.total, run.rendered, run.by_frame = 1, 3, 0, {}
    run.pace = Pace([2, 3])  # the driver's own elapsed and estimate, over all the workers' frames
    for event in (events.loading("embedded:tiny"), events.progress([2, 3], 1, 2, 0, 2),
                  events.frame(2, "/scratch/frame_000002.png", False, 1, 2)):
        run._on_event("actor", None, event)
    assert [check(e)["worker"] for e in sent] == ["host:12"] * 3
    assert sent[1]["done"] == 1 and sent[2]["done"] == 2 and sent[2]["total"] == 3
    assert "elapsed" in sent[1] and "elapsed" in sent[2]


def _fake_python(tmp_path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.parametrize("script, code, words", [("echo 'no torch here' >&2\nsleep 0.5\nexit 3\n", 3,
                                                   "exited with code 3\nno torch here"),
                                                  ("exit 0\n", 0, "")])
def test_the_worker_clients_exit_event(tmp_path, script, code, words):
    from engine_link.worker_client import WorkerClient

    client = WorkerClient(ROOT, python=_fake_python(tmp_path, "python", script))
    client.start()
    seen, deadline = [], time.time() + 30
    while time.time() < deadline and not seen:
        seen = list(client.events(0.2))
    exit_event = check(seen[-1])
    assert exit_event == events.exited(code, words)
    text = events.describe(exit_event)
    assert text.startswith(f"The engine worker stopped (exit code {code}); finished frames are kept.")
    assert text.endswith("\nno torch here" if words else "kept.")


def test_the_engine_command_line_says_the_events(tiny_model_dir, tmp_path, capsys):
    plan = write_plan(tmp_path / "plan.json", make_plan(str(tmp_path / "out"), frames=2, model=tiny_model_dir))
    assert main(["render", plan]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["rendered"] == 2
    path = os.path.join(str(tmp_path / "out"), "frame_00000{}.png")
    said = ["2 of 2 frames to render", f"Loading {tiny_model_dir}", f"[1/2] frame 1 -> {path.format(1)}",
            f"[2/2] frame 2 -> {path.format(2)}"]
    lines = [line.split(" \u00b7 ")[0] for line in err.splitlines()]  # frame lines end with the elapsed time
    assert [line for line in lines if line in said] == said  # libraries may print between them
    # The last line sums up, with the frames' flicker (engine/flicker.py: no input here, so no input figure).
    assert re.fullmatch(r"Done: 2 rendered, 0 up to date; flicker \d\.\d{4}", lines[-1]), lines[-1]


PATH = "/out/frame_000002.png"
TEXTS = [
    (events.ready(42), "Engine worker ready (pid 42)"),
    (events.start([1, 2, 3], [2, 3]), "2 of 3 frames to render"),
    (events.loading("embedded:tiny"), "Loading embedded:tiny"),
    (events.on_worker(events.loading("embedded:tiny"), "gpu1:77"), "Loading embedded:tiny on gpu1:77"),
    (events.workers(2, "local", {"CPU": 2.0}, {"num_cpus": 1}), "Ray cluster local: 2 workers, 1 CPU each"),
    (events.workers(4, "10.0.0.1:6379", {"CPU": 8.0, "GPU": 4.0}, {"num_gpus": 1, "num_cpus": 2}),
     "Ray cluster 10.0.0.1:6379: 4 workers, 1 GPU and 2 CPUs each"),
    (events.progress([4], 1, 2, 3, 5), "3/5 done, frame 4: step 1/2"),
    (events.progress([4, 5, 6], 2, 2, 3, 8), "3/8 done, frames 4-6: step 2/2"),
    (events.on_worker(events.progress([4, 5], 1, 4, 0, 8), "gpu1:77"), "0/8 done, frames 4-5: step 1/4"),
    (events.progress([2], 1, 20, 1, 3, upscale=True), "1/3 upscaled, frame 2: step 1/20"),
    (events.progress([2, 3], 20, 20, 1, 3, upscale=True), "1/3 upscaled, frames 2-3: step 20/20"),
    (events.frame(2, PATH, False, 2, 3), f"[2/3] frame 2 -> {PATH}"),
    (events.frame(2, PATH, True, 2, 3), ""),
    (events.frame(2, PATH, False, 2, 3, timing={"elapsed": 61.2, "eta": None}), f"[2/3] frame 2 -> {PATH} \u00b7 1:01 "
                                                                                "elapsed"),
    (events.progress([4], 3, 30, 3, 5, timing={"elapsed": 42.0, "eta": 130.0}),
     "3/5 done, frame 4: step 3/30 \u00b7 0:42 elapsed, about 2:10 left"),
    (events.preview(4, 3, 30, "/out/manifest.preview.png"), ""),
    (events.upscale_start([1, 2, 3], [2, 3], [], "/up"), "Upscaling 2 of 3 frames"),
    (events.upscale_start([1, 2], [2], [3, 4], "/up"),
     "Upscaling 1 of 2 frames; 2 frames skipped: no current main frame on disk (render them first)"),
    (events.upscaled(2, PATH, False, 1, 2), f"[1/2] upscaled frame 2 -> {PATH}"),
    (events.upscaled(2, PATH, True, 1, 2), ""),
    (events.finished(3, 1, False, "/out"), "Done: 3 rendered, 1 up to date"),
    (events.finished(1, 0, True, "/out"), "Cancelled: 1 rendered, 0 up to date"),
    ({**events.finished(2, 1, False, "/out"), "upscaled": 3, "upscale_skipped": 0, "upscale_missing": 0,
      "upscale_dir": "/up"}, "Done: 2 rendered, 1 up to date, 3 upscaled"),
    ({**events.finished(0, 3, False, "/out"), "retried": 1}, "Done: 0 rendered, 3 up to date"),
    (events.upscale_finished(2, 1, 0, "/up", False, "/out"), "Done: 2 upscaled, 1 up to date"),
    (events.upscale_finished(1, 0, 2, "/up", True, "/out"), "Cancelled: 1 upscaled, 0 up to date, 2 without a "
                                                            "current main frame"),
    (events.error("model", "'x' is not a diffusers model"), "'x' is not a diffusers model"),
    (events.exited(-9, ""), "The engine worker stopped (exit code -9); finished frames are kept."),
    (events.exited(1, "Traceback (most recent call last):\nMemoryError"),
     "The engine worker stopped (exit code 1); finished frames are kept.\nTraceback (most recent call last):\n"
     "MemoryError"),
]


@pytest.mark.parametrize("event, text", TEXTS, ids=[f"{i}-{e['event']}" for i, (e, _) in enumerate(TEXTS)])
def test_describe(event, text):
    assert events.describe(check(event)) == text


def test_every_kind_is_built_and_said_here():
    assert {e["event"] for e, _ in TEXTS} == set(events.KINDS)
    assert events.describe({"event": "something new"}) == ""
