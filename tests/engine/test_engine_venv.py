"""Create Engine Environment: `venv_installer.VenvInstaller` makes a virtual environment and pip-installs requirements
into it on a background thread (progress events, cancel kills pip's process group, a failed or cancelled run leaves
nothing usable behind). Real venv, real pip, offline from a local wheels folder. The operator in Blender:
tests/blender/test_blender_engine_env.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from engine_link.venv_installer import MARKER, VenvInstaller, requirement_pins, venv_python, venv_ready


def _collect(installer: VenvInstaller, timeout: float = 120) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while not installer.finished:
        assert time.monotonic() < deadline, f"installer still running: {events}"
        events += installer.poll()
        time.sleep(0.02)
    return events + installer.poll()


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (Linux /proc; empty elsewhere)."""
    pids = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{name}/stat") as f:
                state, _ppid, group = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            pids.append(int(name))
    return pids


def _group_gone(pgid: int, timeout: float = 10) -> bool:
    """True once no live process of the group is left. Killed grandchildren stay zombies until init reaps them (in
    a container that can take seconds), so on Linux count the live ones; elsewhere ask the group."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir("/proc"):
            if not _group_members(pgid):
                return True
        else:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


def test_requirement_pins_follow_includes(requirements):
    assert requirement_pins([requirements]) == ["numpy==1.26.4", "numexpr==2.14.2"]


def test_offline_install_from_a_wheels_folder(tmp_path, wheels, requirements):
    target = str(tmp_path / "venv")
    installer = VenvInstaller(target, sys.executable, [requirements], find_links=wheels)
    installer.start()
    events = _collect(installer)
    stages = [e["stage"] for e in events]
    firsts = [stages.index(s) for s in ("venv", "download", "install", "done")]
    assert firsts == sorted(firsts) and stages[-1] == "done" and "error" not in stages, events
    assert all(e["total"] == 2 for e in events)
    assert [e["done"] for e in events] == sorted(e["done"] for e in events) and events[-1]["done"] == 2
    assert any(e["message"].startswith("Processing numexpr-2.14.2") for e in events)
    assert installer.progress == 1.0 and not installer.error
    assert installer.python == venv_python(target) and os.path.isfile(installer.python)
    assert venv_ready(target)
    with open(os.path.join(target, MARKER)) as f:
        assert f.read().split() == ["numpy==1.26.4", "numexpr==2.14.2"]
    done = subprocess.run([installer.python, "-c", "import numexpr; print(numexpr.__version__)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "2.14.2", done.stderr
    assert all(_group_gone(pid, 0.5) for pid in installer.pids)


def test_cancel_while_the_venv_is_made_kills_it_and_removes_the_folder(tmp_path, wheels, requirements):
    target = str(tmp_path / "venv")
    installer = VenvInstaller(target, sys.executable, [requirements], find_links=wheels)
    installer.start()
    events: list[dict] = []
    while not any(e["stage"] == "venv" for e in events):
        assert not installer.finished, events
        events += installer.poll()
        time.sleep(0.01)
    [pid] = installer.pids  # only `python -m venv` has started
    if sys.platform.startswith("linux"):  # let venv start ensurepip's pip, so the cancel has grandchildren to kill
        deadline = time.monotonic() + 10
        while len(_group_members(pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(_group_members(pid)) >= 2 and not installer.finished
    installer.cancel()
    events += _collect(installer, 30)
    assert [e["stage"] for e in events] == ["venv", "cancelled"]
    assert installer.cancelled and not installer.error
    assert installer.pids == [pid]  # pip never started
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _group_gone(pid, 1)  # ensurepip and the pip it runs went with it (not left to finish on their own)
    assert not os.path.exists(target) and not venv_ready(target)


# An sdist whose in-tree build backend (no build requirements, so pip needs no index) hangs in its first hook after
# starting a grandchild: a cancel must take pip, the hook process and the grandchild.
SLOW_BACKEND = """
import os, subprocess, sys, time

def get_requires_for_build_wheel(config_settings=None):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(PIDS + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(PIDS + ".tmp", PIDS)
    time.sleep(120)
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("never reached")
"""


def _slow_sdist(folder, pids_file: str) -> None:
    import io
    import tarfile

    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": f"PIDS = {pids_file!r}\n" + SLOW_BACKEND,
        "PKG-INFO": "Metadata-Version: 2.1\nName: kd-slow-build\nVersion: 1.0\n",
    }
    with tarfile.open(os.path.join(folder, "kd_slow_build-1.0.tar.gz"), "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"kd_slow_build-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_during_pip_kills_its_build_processes(tmp_path):
    folder = tmp_path / "sdists"
    folder.mkdir()
    pids_file = str(tmp_path / "build-pids")
    _slow_sdist(str(folder), pids_file)
    (tmp_path / "slow.txt").write_text("kd-slow-build==1.0\n")
    target = str(tmp_path / "venv")
    installer = VenvInstaller(target, sys.executable, [str(tmp_path / "slow.txt")], find_links=str(folder))
    installer.start()
    deadline = time.monotonic() + 60
    while not os.path.exists(pids_file):
        assert not installer.finished and time.monotonic() < deadline, installer.poll()
        time.sleep(0.05)
    hook, grandchild = map(int, open(pids_file).read().split())
    pip = installer.pids[-1]
    assert _alive(hook) and _alive(grandchild) and pip not in (hook, grandchild)
    installer.cancel()
    assert installer.wait(30)
    events = installer.poll()
    assert events[-1]["stage"] == "cancelled" and "download" in [e["stage"] for e in events]
    deadline = time.monotonic() + 2
    while any(map(_alive, (pip, hook, grandchild))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, (pip, hook, grandchild)))
    assert not os.path.exists(target)


def test_a_missing_requirement_is_an_error_naming_it(tmp_path, wheels):
    path = tmp_path / "missing.txt"
    path.write_text("numpy==1.26.4\nnonexistent-package-kd==1.0\n")
    target = str(tmp_path / "venv")
    installer = VenvInstaller(target, sys.executable, [str(path)], find_links=wheels)
    assert not installer.run_blocking(120)
    events = installer.poll()
    assert events[-1]["stage"] == "error" and "error" not in [e["stage"] for e in events[:-1]]
    assert "No matching distribution found for nonexistent-package-kd==1.0" in events[-1]["message"]
    assert installer.error == events[-1]["message"]
    assert not venv_ready(target) and not os.path.exists(target)  # this run made the venv, so it is gone


def test_a_folder_of_other_files_is_never_used(tmp_path, requirements):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    installer = VenvInstaller(str(target), sys.executable, [requirements])
    assert not installer.run_blocking(60)
    assert "not empty" in installer.error and installer.pids == []
    assert (target / "notes.txt").read_text() == "keep me"
