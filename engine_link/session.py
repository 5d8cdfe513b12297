"""What the preference screen shows about the engine while Blender runs (never saved): the last Check Engine report,
the engine-environment installation in progress, and the models the engine found. The operators change it, the
preference screen draws it; both import it, neither imports the other."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import bpy

from ..engine.environment import summary_lines
from ..settings import preferences
from .venv_installer import VenvInstaller
from .worker_client import WorkerError
from .workers import make_client

ENGINE_REQUIREMENTS = os.path.join(preferences.EXTENSION_DIR, "requirements", "engine.txt")
# Messages say where the fix is from where they are shown: inside the preferences (PREFERENCES) the setting is a
# few lines up; anywhere else (the sidebar, an operator's report, the console) they name the whole way there.
PREFERENCES, ELSEWHERE = "preferences", "elsewhere"
PREFS_PATH = "Edit > Preferences > Add-ons > Keyframe Diffusion"
OFFLINE = "Blender's online access is off (Edit > Preferences > System > Network): allow it, or set Install From " \
          f"Wheels to a folder of wheels in {PREFS_PATH}"
OFFLINE_HERE = "Blender's online access is off (System > Network in these preferences): allow it, or set Install " \
               "From Wheels above to a folder of wheels"
DOWNLOAD_TIMEOUT = 6 * 3600  # a large model on a slow line; the command itself stops on network errors


@dataclass
class Session:
    check_lines: list[str] = field(default_factory=list)  # the last Check Engine report
    installer: VenvInstaller | None = None  # Create Engine Environment, running or last run
    install: dict = field(default_factory=lambda: {"running": False, "progress": 0.0, "message": "", "error": ""})
    models: list[dict] = field(default_factory=list)  # entries from engine/model_index.py
    model_warnings: list[str] = field(default_factory=list)
    models_listed: bool = False  # a Refresh has answered (an empty list then means none were found)


state = Session()


# Check Engine.

def check(context=None) -> tuple[bool, list[str]]:
    """(ready, lines) for the Engine Python the preferences name; a wrong interpreter path is a line, not a crash.
    The lines are kept for the preference screen."""
    client = make_client(context)
    try:
        report = json.loads(client.run_command(["check"], timeout=120))
        ready, lines = report["ok"], summary_lines(report)
    except WorkerError as e:
        ready, lines = False, [f"Problem: {e}"]
    except json.JSONDecodeError:
        ready, lines = False, [f"Problem: the engine Python ({client.python}) did not answer the check"]
    state.check_lines[:] = lines
    return ready, lines


# Create Engine Environment.

def installing() -> bool:
    return state.installer is not None and not state.installer.finished


def install_blocker(prefs, where: str = ELSEWHERE) -> str:
    """Why Create Engine Environment can't run now, or '', worded for `where` it is shown."""
    if not bpy.app.online_access and not (prefs and prefs.venv_wheels_dir.strip()):
        return OFFLINE_HERE if where == PREFERENCES else OFFLINE
    return ""


def venv_folder(prefs) -> str:
    folder = prefs.venv_dir.strip() if prefs else ""
    if folder:
        return bpy.path.abspath(folder)
    return bpy.utils.extension_path_user(preferences.ADDON_PACKAGE, path="engine-venv", create=True)


def new_installer(prefs, requirements: str, find_links: str, torch_index: str) -> VenvInstaller:
    """An installer for these settings (raises ValueError with the reason it can't run), kept as the current one."""
    if installing():
        raise ValueError("An engine environment is already being created (Esc or Cancel stops it)")
    if not bpy.app.online_access and not find_links:
        raise ValueError(OFFLINE)
    if find_links and not os.path.isdir(find_links):
        raise ValueError(f"The wheels folder {find_links} does not exist")
    requirements = requirements or ENGINE_REQUIREMENTS
    if not os.path.isfile(requirements):
        raise ValueError(f"The requirements file {requirements} does not exist")
    state.installer = VenvInstaller(venv_folder(prefs), sys.executable, [requirements], find_links=find_links,
                                    torch_index=torch_index)
    return state.installer


def follow_installer() -> None:
    """Copy the installer's progress into what the preference screen draws."""
    installer = state.installer
    state.install.update(running=not installer.finished, progress=installer.progress, message=installer.message,
                         error=installer.error)


# The Models box.

def models_folder(context=None) -> str:
    prefs = preferences.get(context)
    folder = prefs.models_folder.strip() if prefs else ""
    return bpy.path.abspath(folder) if folder else ""


def refresh_models(context=None) -> None:
    """Ask the engine Python what models it finds; raises WorkerError with a message for the user."""
    args = ["models"]
    folder = models_folder(context)
    if folder:
        args += ["--folder", folder]
    output = make_client(context).run_command(args, timeout=300)
    try:
        result = json.loads(output)
    except json.JSONDecodeError as e:
        raise WorkerError("the engine Python did not answer the models listing (see the console)") from e
    state.models[:] = result["models"]
    state.model_warnings[:] = result.get("warnings", [])
    state.models_listed = True


def grouped_models() -> list[tuple[str, list[dict]]]:
    """The entries by kind, in the engine's kind order (it sorts them so)."""
    groups: dict[str, list[dict]] = {}
    for entry in state.models:
        groups.setdefault(entry["kind"], []).append(entry)
    return list(groups.items())


def download_blocker(prefs, where: str = ELSEWHERE) -> str:
    """Why downloads are off, or '' when they are allowed, worded for `where` it is shown."""
    here = where == PREFERENCES
    if not (prefs and prefs.allow_downloads):
        if here:
            return "Tick Allow Model Downloads above to download"
        return f"Downloads are off: enable Allow Model Downloads in {PREFS_PATH}"
    if not bpy.app.online_access:
        network = "System > Network in these preferences" if here else "Edit > Preferences > System > Network"
        return f"Blender's online access is off ({network}): downloads stay disabled until it is allowed"
    return ""


def download(context, repo_id: str, allow_unsafe: bool) -> dict:
    """Download a Hugging Face model into its cache through the engine; raises WorkerError."""
    args = ["download", repo_id, "--allow-download"] + (["--allow-unsafe"] if allow_unsafe else [])
    try:
        return json.loads(make_client(context).run_command(args, timeout=DOWNLOAD_TIMEOUT))
    except json.JSONDecodeError as e:
        raise WorkerError("the engine Python did not answer the download (see the console)") from e
