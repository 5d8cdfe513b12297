"""The frame store's record: an append-only journal folded into manifest.json, so recording a frame costs the same
at frame 1000 as at frame 1, and nothing recorded is lost to a crash, a second writer or a fold."""

import io
import json
import os

from PIL import Image

from engine.frames import FORMAT, JOURNAL, MANIFEST, FrameStore


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_write_appends_one_line_and_a_compaction_folds_it_into_the_manifest(tmp_path):
    store = FrameStore(str(tmp_path))
    store.write_png(1, _png(1), "h1", {"steps": 2})
    store.write_png(2, _png(2), "h2")
    lines = (tmp_path / JOURNAL).read_bytes().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [1, 2]
    # The store claimed the folder when it opened it (a marked, empty manifest); frames go to the journal.
    assert json.loads((tmp_path / MANIFEST).read_text()) == {"format": FORMAT, "version": 2, "frames": {}}
    # A store opened now (another process, a resumed render) sees both from the journal alone.
    other = FrameStore(str(tmp_path))
    assert other.is_current(1, "h1") and other.is_current(2, "h2") and not other.is_current(2, "h1")
    store.compact()
    manifest = json.loads((tmp_path / MANIFEST).read_text())["frames"]
    assert manifest == {"1": {"hash": "h1", "size": len(_png(1)), "params": {"steps": 2}},
                        "2": {"hash": "h2", "size": len(_png(2))}}
    assert (tmp_path / JOURNAL).read_bytes() == b""
    assert FrameStore(str(tmp_path)).finished_frames() == [1, 2]


def test_recording_cost_does_not_grow_with_the_frames_written(tmp_path, monkeypatch):
    store = FrameStore(str(tmp_path))
    folds = []
    fold = FrameStore._fold
    monkeypatch.setattr(FrameStore, "_fold", lambda self: (folds.append(len(self._entries)), fold(self))[1])
    data = _png(0)
    for f in range(1, 2001):
        store.write_png(f, data, f"h{f}")
    # The manifest is rewritten when the journal is as long as it: each fold at least doubles what it holds, so
    # 2000 frames cost a handful of rewrites (the old store rewrote it 2000 times).
    assert folds == [64, 128, 256, 512, 1024, 2000][:len(folds)] and 4 <= len(folds) <= 6
    assert all(b >= 2 * a for a, b in zip(folds, folds[1:]))
    reopened = FrameStore(str(tmp_path))
    assert reopened.finished_frames() == list(range(1, 2001))
    assert all(reopened.is_current(f, f"h{f}") for f in (1, 64, 65, 1000, 2000))


def test_a_line_cut_short_by_a_killed_writer_is_ignored_and_later_frames_are_kept(tmp_path):
    store = FrameStore(str(tmp_path))
    store.write_png(1, _png(1), "h1")
    with open(tmp_path / JOURNAL, "ab") as f:
        f.write(b'{"frame": 2, "hash": "h2", "si')  # the process died here
    reopened = FrameStore(str(tmp_path))
    assert reopened.finished_frames() == [1]
    # The next writer starts a new line after the torn one, and nothing before it is lost.
    reopened.write_png(3, _png(3), "h3")
    assert FrameStore(str(tmp_path)).finished_frames() == [1, 3]


def test_a_store_sees_what_another_store_folded_while_it_was_open(tmp_path):
    first, second = FrameStore(str(tmp_path)), FrameStore(str(tmp_path))
    first.write_png(1, _png(1), "h1")
    second.refresh()
    assert second.is_current(1, "h1")
    for f in range(2, 100):  # enough for `first` to fold the journal (a new file) while `second` holds its offset
        first.write_png(f, _png(f), f"h{f}")
    assert json.loads((tmp_path / MANIFEST).read_text())["frames"].keys() >= {"1", "64"}
    second.refresh()
    assert [f for f in range(1, 100) if not second.is_current(f, f"h{f}")] == []
    # And a write from `second` keeps `first`'s frames in the record.
    second.write_png(200, _png(200), "h200")
    second.compact()
    manifest = json.loads((tmp_path / MANIFEST).read_text())["frames"]
    assert sorted(int(k) for k in manifest) == list(range(1, 100)) + [200]
    assert os.path.getsize(tmp_path / JOURNAL) == 0
