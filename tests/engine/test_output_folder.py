"""The output folder: ours and recognisably so (another program's files are refused, never overwritten), held by one
render at a time, swept of what killed writers leave, a full disk said plainly, and frames that say how they were made.
The kill -9 checks run a real writer process and SIGKILL it at chosen points."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from common import ROOT, make_plan, write_plan
from PIL import Image

from engine import frames as frames_mod
from engine import plan as plan_mod
from engine.errors import DiskFullError, FolderInUseError, OutputFolderError
from engine.frames import FORMAT, JOURNAL, MANIFEST, RENDER_NOTE, FrameStore, parameters_text
from engine.latents import seeded_noise, slerp
from engine.modes.interpolate import frame_latent
from engine.renderer import Renderer


def _png(value: int, params: bool = True) -> bytes:
    """An encoded frame as our writer makes it (with our text chunk unless `params` is False)."""
    buffer = io.BytesIO()
    store_params = {"frame": value}
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if params:
        info.add_text("keyframe_diffusion", json.dumps(store_params))
    Image.new("RGB", (8, 8), (value % 256, 0, 0)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _files(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _render(renderer, plan, frames=None):
    events = []
    summary = renderer.render(plan_mod.validate(plan), frames, events.append)
    return summary, events


# -- 1. whose folder it is ------------------------------------------------------------------------------------------

WEB_MANIFEST = {"name": "My App", "short_name": "app", "icons": [{"src": "icon.png", "sizes": "192x192"}],
                "start_url": "/", "display": "standalone"}


def test_a_folder_with_another_programs_manifest_is_refused_and_left_as_it_was(tmp_path, renderer):
    (tmp_path / MANIFEST).write_text(json.dumps(WEB_MANIFEST))
    (tmp_path / "index.html").write_text("<html></html>")
    before = _files(tmp_path)
    with pytest.raises(OutputFolderError) as caught:
        FrameStore(str(tmp_path))
    message = str(caught.value)
    assert str(tmp_path) in message and "manifest.json" in message and "not Keyframe Diffusion's" in message
    assert "choose another output folder" in message
    # A render is refused the same way, before it loads a model or writes anything.
    with pytest.raises(OutputFolderError, match="manifest.json"):
        _render(renderer, make_plan(str(tmp_path), frames=1))
    assert _files(tmp_path) == before


@pytest.mark.parametrize("content", [b'{"event": "click", "x": 1}\n', b"not json at all\n"])
def test_a_folder_with_another_programs_manifest_jsonl_is_refused(tmp_path, content):
    (tmp_path / JOURNAL).write_bytes(content)
    with pytest.raises(OutputFolderError, match=re.escape(JOURNAL)):
        FrameStore(str(tmp_path))
    assert _files(tmp_path) == {JOURNAL: content}


def test_frame_files_we_did_not_make_are_refused_by_name(tmp_path):
    theirs = _png(1, params=False)
    (tmp_path / "frame_000001.png").write_bytes(theirs)
    (tmp_path / "frame_1.png").write_bytes(theirs)  # a name we never write: no conflict
    with pytest.raises(OutputFolderError) as caught:
        FrameStore(str(tmp_path))
    assert "frame_000001.png" in str(caught.value) and "frame_1.png" not in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["frame_000001.png", "frame_1.png"]
    # Frames that carry our parameters chunk (a folder of ours whose manifest was lost) are ours: they re-render.
    (tmp_path / "frame_000001.png").write_bytes(_png(1))
    store = FrameStore(str(tmp_path))
    assert store.finished_frames() == [] and not store.is_current(1, "h1")


def test_a_new_folder_is_claimed_at_once_and_a_marked_manifest_is_recognised(tmp_path):
    folder = tmp_path / "new" / "out"
    store = FrameStore(str(folder))
    assert json.loads((folder / MANIFEST).read_text()) == {"format": FORMAT, "version": 2, "frames": {}}
    store.write_png(1, _png(1), "h1")
    store.compact()
    data = json.loads((folder / MANIFEST).read_text())
    assert data["format"] == FORMAT and data["version"] == 2 and data["frames"]["1"]["hash"] == "h1"
    assert FrameStore(str(folder)).is_current(1, "h1")


def test_a_version_1_manifest_of_ours_still_resumes_and_is_upgraded(tmp_path):
    data = _png(1)
    (tmp_path / "frame_000001.png").write_bytes(data)
    (tmp_path / MANIFEST).write_text(json.dumps({"version": 1, "frames": {"1": {"hash": "h1", "size": len(data)}}},
                                                indent=1, sort_keys=True))
    store = FrameStore(str(tmp_path))
    assert store.is_current(1, "h1")
    store.write_png(2, _png(2), "h2")
    store.compact()
    upgraded = json.loads((tmp_path / MANIFEST).read_text())
    assert upgraded["format"] == FORMAT and upgraded["version"] == 2 and set(upgraded["frames"]) == {"1", "2"}
    # A version-1 look-alike whose entries are not ours is someone else's.
    (tmp_path / MANIFEST).write_text(json.dumps({"version": 1, "frames": {"a": "b"}}))
    with pytest.raises(OutputFolderError):
        FrameStore(str(tmp_path))


def test_a_manifest_from_a_newer_version_is_not_written_over(tmp_path):
    newer = json.dumps({"format": FORMAT, "version": 3, "frames": {}, "shots": []})
    (tmp_path / MANIFEST).write_text(newer)
    with pytest.raises(OutputFolderError, match="newer Keyframe Diffusion"):
        FrameStore(str(tmp_path))
    assert (tmp_path / MANIFEST).read_text() == newer


def test_a_damaged_manifest_of_ours_costs_only_re_rendering(tmp_path):
    store = FrameStore(str(tmp_path))
    for f in (1, 2):
        store.write_png(f, _png(f), f"h{f}")
    store.compact()
    os.remove(tmp_path / JOURNAL)
    text = (tmp_path / MANIFEST).read_text()
    (tmp_path / MANIFEST).write_text(text[:len(text) // 2])  # cut short: the marker is in its first line
    reopened = FrameStore(str(tmp_path))
    assert reopened.finished_frames() == [] and not reopened.is_current(1, "h1")
    reopened.write_png(1, _png(1), "h1")
    reopened.compact()
    assert json.loads((tmp_path / MANIFEST).read_text())["frames"].keys() == {"1"}


def test_a_damaged_manifest_beside_our_journal_is_ours_and_one_with_no_sign_of_us_is_refused(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    store = FrameStore(str(ours))
    store.write_png(1, _png(1), "h1")  # in the journal
    (ours / MANIFEST).write_bytes(b"\x00\x00\x00")
    assert FrameStore(str(ours)).is_current(1, "h1")
    theirs.mkdir()
    (theirs / MANIFEST).write_text('{"name": "My App", "icons": [')
    with pytest.raises(OutputFolderError, match="not valid JSON.*delete it"):
        FrameStore(str(theirs))


def test_reading_a_folder_claims_nothing_and_reads_anyones(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps(WEB_MANIFEST))
    before = _files(tmp_path)
    assert FrameStore(str(tmp_path), writable=False).finished_frames() == []
    assert FrameStore(str(tmp_path / "missing"), writable=False).finished_frames() == []
    assert _files(tmp_path) == before and not (tmp_path / "missing").exists()


# -- 2. one render at a time ----------------------------------------------------------------------------------------

def test_a_second_render_into_a_held_folder_is_refused_naming_the_first(tmp_path, renderer):
    store = FrameStore(str(tmp_path))
    with store.rendering():
        note = json.loads((tmp_path / RENDER_NOTE).read_text())
        assert note["pid"] == os.getpid() and note["host"] and note["started"] and note["command"]
        with pytest.raises(FolderInUseError) as caught:
            with FrameStore(str(tmp_path)).rendering():
                pass
        message = str(caught.value)
        assert f"'{tmp_path}' is in use by another render, process {os.getpid()} on {note['host']} since " \
               f"{note['started']}: wait for it to finish" in message
        assert note["command"] in message and "choose another output folder" in message
        # The renderer refuses too, before loading a model or touching a frame.
        with pytest.raises(FolderInUseError):
            _render(renderer, make_plan(str(tmp_path), frames=1))
        # Readers need no lock: the frames on disk can be read (and exported) meanwhile.
        store.write_png(1, _png(1), "h1")
        assert FrameStore(str(tmp_path), writable=False).finished_frames() == [1]
    assert not (tmp_path / RENDER_NOTE).exists()
    with FrameStore(str(tmp_path)).rendering():  # free again
        pass


def test_the_upscaling_pass_holds_its_own_folder_and_needs_one_of_its_own(tmp_path):
    from engine import upscale

    main = FrameStore(str(tmp_path / "frames"))
    settings = {"output_dir": str(tmp_path / "frames"), "batch_size": 1, "width": 8, "height": 8,
                "upscale": {"model": "x", "output_dir": str(tmp_path / "frames" / "upscaled")}}

    def load():
        raise AssertionError("refused before loading the upscaler")

    with FrameStore(settings["upscale"]["output_dir"]).rendering():
        with pytest.raises(FolderInUseError, match="upscaled"):
            upscale.run_pass(load, settings, [], {}, main, lambda e: None, None, "x4")
    same = {**settings, "upscale": {**settings["upscale"], "output_dir": str(tmp_path / "frames") + os.sep}}
    with pytest.raises(OutputFolderError, match="is the output folder itself"):
        upscale.run_pass(load, same, [], {}, main, lambda e: None, None, "x4")


# -- 3. stale temporary files and a full disk -----------------------------------------------------------------------

def test_taking_the_folder_sweeps_only_our_stale_temporary_files(tmp_path):
    FrameStore(str(tmp_path))
    ours = ["frame_000003.png.4242.139872.tmp", "frame_-0002.png.1.2.tmp", "manifest.json.4242.139872.tmp",
            "manifest.jsonl.77.88.tmp", "manifest.render.json.5.6.tmp"]
    others = ["frame_000003.png.tmp", "notes.txt.12.34.tmp", "frame_000003.png.a.b.tmp", "plan.json"]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"x" * 100)
    os.mkdir(tmp_path / "manifest.json.1.2.tmp")  # a folder of that name is not ours to remove
    with FrameStore(str(tmp_path)).rendering():
        left = set(os.listdir(tmp_path))
    assert not left & set(ours) and set(others) | {"manifest.json.1.2.tmp"} <= left


class _FullDisk:
    """open() for engine.frames whose files (those `when` picks) take `room` bytes and then fail as a full disk
    does."""

    def __init__(self, room: int, when=lambda path: True):
        self.room, self.when = room, when

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return _Filling(f, self.room) if "w" in mode and self.when(str(path)) else f


class _Filling:
    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[:self.room])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_writing_a_frame_says_what_it_needs_and_keeps_the_finished_frames(tmp_path, monkeypatch):
    store = FrameStore(str(tmp_path))
    store.expect(10)
    for f in (1, 2):
        store.write_png(f, _png(f), f"h{f}")
    data = _png(3)
    monkeypatch.setattr(frames_mod, "open", _FullDisk(len(data) // 2), raising=False)
    with pytest.raises(DiskFullError) as caught:
        store.write_png(3, data, "h3")
    monkeypatch.undo()
    message = str(caught.value)
    assert str(tmp_path) in message and "No space left on device" in message
    assert "frame 3 (frame_000003.png)" in message and f"{len(data)} bytes" in message
    assert "the 8 frames left" in message and "2 finished frames are kept" in message
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] and not (tmp_path / "frame_000003.png").exists()
    reopened = FrameStore(str(tmp_path))
    assert reopened.finished_frames() == [1, 2] and reopened.is_current(2, "h2")


def test_a_full_disk_appending_the_journal_keeps_what_was_recorded(tmp_path, monkeypatch):
    store = FrameStore(str(tmp_path))
    store.write_png(1, _png(1), "h1")
    real_write = os.write

    def write(fd, data):  # the disk fills in the middle of the journal line
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(DiskFullError, match="the record of frame 2"):
        store.write_png(2, _png(2), "h2")
    monkeypatch.undo()
    # Space freed: the next frame's line starts after the torn one; frame 2 (unrecorded) renders again.
    reopened = FrameStore(str(tmp_path))
    assert reopened.finished_frames() == [1] and not reopened.is_current(2, "h2")
    reopened.write_png(3, _png(3), "h3")
    assert FrameStore(str(tmp_path)).finished_frames() == [1, 3]


def test_a_full_disk_folding_the_manifest_loses_no_record(tmp_path, monkeypatch):
    store = FrameStore(str(tmp_path))
    for f in range(1, 6):
        store.write_png(f, _png(f), f"h{f}")
    monkeypatch.setattr(frames_mod, "open", _FullDisk(50, lambda p: MANIFEST + "." in os.path.basename(p)),
                        raising=False)
    with pytest.raises(DiskFullError, match=r"manifest\.json"):
        store.compact()
    monkeypatch.undo()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert json.loads((tmp_path / MANIFEST).read_text())["frames"] == {}  # the old snapshot, whole
    assert FrameStore(str(tmp_path)).finished_frames() == [1, 2, 3, 4, 5]  # the journal still has every record


def test_a_full_disk_during_a_render_is_one_clear_error(tmp_path, renderer, monkeypatch, tiny_model_dir):
    plan = make_plan(str(tmp_path), frames=4)
    plan["settings"]["batch_size"] = 1
    real = frames_mod.FrameStore._write_file

    def full_third(self, path, data, what):
        if os.path.basename(path) == "frame_000003.png":
            raise self._disk_full(OSError(errno.ENOSPC, "No space left on device"), what, len(data))
        return real(self, path, data, what)

    monkeypatch.setattr(frames_mod.FrameStore, "_write_file", full_third)
    with pytest.raises(DiskFullError) as caught:
        _render(renderer, plan)
    monkeypatch.undo()
    assert "the 2 frames left" in str(caught.value) and "2 finished frames are kept" in str(caught.value)
    summary, _ = _render(renderer, plan)
    assert summary["rendered"] == 2 and summary["skipped"] == 2  # exactly the missing ones


# -- 4. the parameters line reproduces the frame --------------------------------------------------------------------

def _latent_from_text(line: str, shape) -> torch.Tensor:
    """The first noise the parameters line describes, rebuilt from it alone."""
    seeds = re.search(r"Seed: ([^,]+)", line).group(1).split(" -> ")
    latent = seeded_noise(int(seeds[0]), shape)
    for step in seeds[1:]:
        seed, share = step.split(" at ")
        latent = slerp(latent, seeded_noise(int(seed), shape), float(share))
    return latent


@pytest.mark.parametrize("weights,seeds", [((0.75, 0.25), (12, 99)), ((0.5, 0.3, 0.2), (12, 99, 7)),
                                           ((0.0, 1.0), (12, 99)), ((1.0,), (5,))])
def test_the_seed_in_the_parameters_line_rebuilds_the_interpolated_noise(weights, seeds):
    record = {"frame": 1, "seed": 0, "prompts": [{"text": f"p{i}", "weight": w, "seed": s}
                                                  for i, (w, s) in enumerate(zip(weights, seeds))]}
    settings = {"latent_source": "PROMPT_SEEDS"}
    line = parameters_text({"mode": "INTERPOLATE", "latent_source": "PROMPT_SEEDS", **record})
    assert "Seed: 0," not in line
    shape = (4, 8, 8)
    assert torch.equal(_latent_from_text(line, shape), frame_latent(record, settings, shape))
    if weights == (0.75, 0.25):
        assert "Seed: 12 -> 99 at 0.25, Sampler seed: 0" in line
    fixed = parameters_text({"mode": "INTERPOLATE", "latent_source": "FIXED", **record})
    assert "Seed: 0," in fixed and "->" not in fixed


def test_rendered_interpolate_frames_say_their_seeds(tmp_path, renderer, tiny_model_dir):
    _render(renderer, make_plan(str(tmp_path), frames=3))  # prompt seeds 1 and 2, frame seed 0
    store = FrameStore(str(tmp_path))
    lines = {}
    for f in (1, 2, 3):
        with Image.open(store.path(f)) as im:
            lines[f] = im.text["parameters"]
    assert "Seed: 1, Sampler seed: 0," in lines[1]
    assert "Seed: 1 -> 2 at 0.5, Sampler seed: 0," in lines[2]
    assert "Seed: 2, Sampler seed: 0," in lines[3]


# -- 5. kill -9 at chosen points, and two real renders at once ------------------------------------------------------

# A writer process: records frames 1..N (each with our parameters chunk) and SIGKILLs itself at the chosen call.
WRITER = textwrap.dedent('''
    import io, json, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from PIL import Image
    from engine import frames

    folder, point, at, count = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_open, real_write, real_replace = open, os.write, os.replace

    class HalfThenDie:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            die()

    def frame_open(path, mode="r", *args, **kwargs):  # half of the frame's temporary file, then killed
        f = real_open(path, mode, *args, **kwargs)
        if "w" in mode and os.path.basename(str(path)).startswith("frame_%06d.png." % at):
            return HalfThenDie(f)
        return f

    def journal_write(fd, data):  # part of the journal line of frame `at`, then killed
        if b'"frame": %d,' % at in bytes(data):
            real_write(fd, bytes(data[:len(data) // 2]))
            die()
        return real_write(fd, data)

    def replace(src, dst):  # the fold: before its manifest lands ("fold"), or between manifest and journal ("fold2")
        name = os.path.basename(dst)
        if point == "fold" and name == "manifest.json" or point == "fold2" and name == "manifest.jsonl":
            calls["n"] += 1
            if calls["n"] == at:
                die()
        if point == "renamed" and name == "frame_%06d.png" % at:  # the frame is in place, its record is not
            real_replace(src, dst)
            die()
        return real_replace(src, dst)

    if point == "frame":
        frames.open = frame_open
    elif point == "journal":
        os.write = journal_write
    else:
        os.replace = replace
    store = frames.FrameStore(folder)
    for f in range(1, count + 1):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (f % 256, 7, 9)).save(buffer, format="PNG")
        store.write(f, Image.open(buffer), "h%d" % f, {"frame": f})
    store.compact()
''')


def _killed_writer(tmp_path, folder, point: str, at: int, count: int) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    done = subprocess.run([sys.executable, str(script), ROOT, str(folder), point, str(at), str(count)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _check_after_kill(folder, count: int) -> list[int]:
    """Nothing corrupt is current, everything recorded is whole; returns the frames a resume must render."""
    store = FrameStore(str(folder))  # still ours, never refused
    for f in store.finished_frames():
        if store.is_current(f, f"h{f}"):
            with Image.open(store.path(f)) as im:
                im.load()  # whole: decodes to the end
                assert im.text["keyframe_diffusion"] == json.dumps({"frame": f})
    missing = [f for f in range(1, count + 1) if not store.is_current(f, f"h{f}")]
    with store.rendering():  # a resume takes the folder: the killed writer's temporary file goes
        assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]
        for f in missing:
            store.write_png(f, _png(f), f"h{f}")
    assert all(FrameStore(str(folder)).is_current(f, f"h{f}") for f in range(1, count + 1))
    return missing


@pytest.mark.parametrize("point,at,count,missing", [
    ("frame", 3, 5, [3, 4, 5]),  # half-written frame 3 (its temporary file)
    ("renamed", 1, 3, [1, 2, 3]),  # the first frame in place, the folder claimed, no record yet
    ("journal", 4, 6, [4, 5, 6]),  # frame 4's journal line cut in half
    ("fold", 2, 70, list(range(65, 71))),  # the first fold's manifest written but not renamed (1: the claim)
    ("fold2", 1, 70, list(range(65, 71))),  # the fold's manifest in place, its journal not yet emptied
])
def test_a_writer_killed_at_a_chosen_point_loses_only_what_was_in_flight(tmp_path, point, at, count, missing):
    folder = tmp_path / "out"
    _killed_writer(tmp_path, folder, point, at, count)
    if point == "frame":
        assert [n for n in os.listdir(folder) if n.startswith("frame_000003.png.")]  # the half file is there
    assert _check_after_kill(folder, count) == missing


# A render process (`python -m engine render`, the tiny model) with a test-only patch applied in the child: it stops
# (SIGKILL, or waiting for a file) right after a chosen frame file is renamed into place.
RENDER = textwrap.dedent('''
    import os, signal, sys, time
    sys.path.insert(0, sys.argv[1])
    action, name, argv = sys.argv[2], sys.argv[3], sys.argv[4:]
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if os.path.basename(dst) == name:
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            while not os.path.exists(action):  # hold the render here until the test lets it go on
                time.sleep(0.05)

    os.replace = replace
    from engine.__main__ import main
    sys.exit(main(argv))
''')


def _render_process(tmp_path, action: str, name: str, *argv: str) -> subprocess.Popen:
    script = tmp_path / "render.py"
    script.write_text(RENDER)
    return subprocess.Popen([sys.executable, str(script), ROOT, action, name, *argv], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_render_killed_after_a_frame_lands_resumes_with_exactly_the_missing_frames(tmp_path, renderer,
                                                                                        tiny_model_dir):
    plan = make_plan("frames", frames=3)
    plan["settings"]["batch_size"] = 1
    path = write_plan(tmp_path / "plan.json", plan)
    child = _render_process(tmp_path, "kill", "frame_000002.png", "render", path)
    _, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, err
    assert os.path.isfile(tmp_path / "frames" / "frame_000002.png")  # on disk, never recorded
    summary, events = _render(renderer, plan_mod.load(path))
    rendered = [e["frame"] for e in events if e["event"] == "frame" and not e["skipped"]]
    assert rendered == [2, 3] and summary["skipped"] == 1


def test_two_real_renders_into_one_folder_the_second_is_refused_naming_the_first(tmp_path):
    path = write_plan(tmp_path / "plan.json", make_plan("frames", frames=3))
    go = tmp_path / "go"
    first = _render_process(tmp_path, str(go), "frame_000001.png", "render", path, "--frames", "1-2")
    try:
        note = tmp_path / "frames" / RENDER_NOTE
        deadline = time.monotonic() + 240
        while not (tmp_path / "frames" / "frame_000001.png").exists():  # the first holds the folder mid-render
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        held = json.loads(note.read_text())
        second = subprocess.run([sys.executable, "-m", "engine", "render", path], cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2
        assert f"process {first.pid} on {held['host']} since {held['started']}" in second.stderr
        assert "choose another output folder" in second.stderr and "plan.json" in held["command"]
    finally:
        go.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["rendered"] == 2
    # The folder is free again: a render works, and makes only the frame the first left.
    third = subprocess.run([sys.executable, "-m", "engine", "render", path], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout.strip().splitlines()[-1])
    assert summary["rendered"] == 1 and summary["skipped"] == 2
