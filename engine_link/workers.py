"""The engine's worker process as Blender keeps it: one client configured from the preferences, kept loaded between
jobs so a second Generate doesn't reload the model, and released when the preferences change or the extension stops.
Every Blender-side caller reaches the engine through here."""

from __future__ import annotations

import os
import sys
import tempfile

import bpy

from ..settings import preferences
from .worker_client import WorkerClient

_worker: WorkerClient | None = None


def cache_dir() -> str:
    """Where the engine keeps what it builds (the embedded models): the extension's user folder."""
    try:
        return bpy.utils.extension_path_user(preferences.ADDON_PACKAGE, path="cache", create=True)
    except (ValueError, AttributeError):  # loaded as a legacy add-on, not an extension
        return os.path.join(tempfile.gettempdir(), "keyframe_diffusion_cache")


def wheels_site_packages() -> str:
    """The folder Blender installs extensions' bundled wheels into (for this Blender's Python version)."""
    return os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                        "python%d.%d" % sys.version_info[:2], "site-packages")


def make_client(context=None) -> WorkerClient:
    """A (not yet started) worker client configured from the preferences; also runs one-off engine commands."""
    prefs = preferences.get(context)
    python = bpy.path.abspath(prefs.python_path.strip()) if prefs and prefs.python_path.strip() else None
    env = {}
    if "KEYFRAME_DIFFUSION_CACHE" not in os.environ:
        env["KEYFRAME_DIFFUSION_CACHE"] = cache_dir()
    return WorkerClient(
        preferences.EXTENSION_DIR,
        python,
        allow_download=bool(prefs and prefs.allow_downloads and bpy.app.online_access),
        allow_unsafe=bool(prefs and prefs.allow_unsafe_weights),
        env=env,
        wheels_dir=wheels_site_packages(),
    )


def get_worker(context=None) -> WorkerClient:
    """The running worker if it fits the current preferences, else a fresh one."""
    global _worker
    client = make_client(context)
    if _worker is not None and _worker.alive() and _worker.key == client.key:
        return _worker
    release_worker()
    client.start()
    _worker = client
    return client


def forget(worker: WorkerClient | None) -> None:
    """The worker exited by itself: the next job starts a fresh one."""
    global _worker
    if _worker is worker:
        _worker = None


def release_worker() -> None:
    """Stop the worker (frees the model's memory)."""
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None
