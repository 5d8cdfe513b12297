"""Audio on the timeline drives F-curves: a sound strip (or a file) is analysed by the engine and written as keys.

Timing: a sound strip's audio time 0 sits at `strip.frame_start`; only its visible span (after trims) and the
scene's frame range are keyed. Audio frame i of the engine (audio time i/fps .. (i+1)/fps, fps = render.fps /
fps_base) is scene frame `strip.frame_start + i`. A file without a strip starts at the scene's first frame.

Each link remembers where its strip was when its keys were written; `refresh` re-applies links whose strip moved,
was trimmed, or whose settings changed (Generate and the Refresh Audio Links operator call it), so a strip moved
in the timeline moves the result.
The analysis itself runs in the engine's Python (librosa), as `python -m engine audio`, cached per file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import bpy

from ..engine_link.worker_client import WorkerError
from ..engine_link.workers import make_client
from ..settings import compat
from . import fcurves
from .prompt_keys import set_transitions

# bpy.data collection for an ID's id_type, for links made from any property's context menu.
ID_COLLECTIONS = {"SCENE": "scenes", "OBJECT": "objects", "CAMERA": "cameras", "MATERIAL": "materials",
                  "LIGHT": "lights", "WORLD": "worlds", "NODETREE": "node_groups", "MESH": "meshes",
                  "TEXTURE": "textures", "IMAGE": "images"}
_ANALYSIS = ("feature", "part", "margin", "reduce", "fmin", "fmax", "shape", "low", "high", "attack", "release",
             "smooth")
# The analysis settings of a new link, for one-off analyses (markers) that have no link.
LINK_DEFAULTS = {"feature": "onset", "part": "full", "margin": 1.0, "reduce": "max", "fmin": 0.0, "fmax": 0.0,
                 "shape": "pulse", "low": 0.0, "high": 1.0, "attack": 0.0, "release": 0.0, "smooth": 0}


class AudioError(ValueError):
    """The audio can't drive the property; the message says which strip, file or property and what to do."""


def sound_strips(scene) -> list:
    return [s for s in compat.top_strips(scene) if s.type == "SOUND"]


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def _unpacked(sound) -> str:
    """A packed sound written to a temporary file (librosa reads files), reused while its bytes are the same."""
    data = sound.packed_file.data
    ext = os.path.splitext(sound.filepath)[1] or ".wav"
    digest = hashlib.sha1(data).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), "keyframe_diffusion_audio")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{bpy.path.clean_name(sound.name)}_{digest}{ext}")
    if not os.path.isfile(path):
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return path


def strip_file(strip) -> str:
    sound = getattr(strip, "sound", None)
    if sound is None:
        raise AudioError(f"sound strip '{strip.name}' has no sound data")
    if sound.packed_file is not None:
        return _unpacked(sound)
    path = os.path.normpath(bpy.path.abspath(sound.filepath, library=sound.library))
    if not os.path.isfile(path):
        raise AudioError(f"sound strip '{strip.name}' points to '{path}', which doesn't exist: relink or pack it")
    return path


def window(scene, link) -> tuple[str, int, int, int, str]:
    """(audio file, first scene frame, first audio frame, frame count, placement state) of a link."""
    first_scene, last_scene = scene.frame_start, scene.frame_end
    if link.strip:
        strip = compat.top_strips(scene).get(link.strip)
        if strip is None:
            if not compat.has_audio():
                raise AudioError(f"no sound strip '{link.strip}': this Blender build has no audio support "
                                 "(bpy.app.build_options.audaspace is off), so it has no sound strips; "
                                 "use the audio file instead")
            raise AudioError(f"no sound strip named '{link.strip}' in scene '{scene.name}'")
        if strip.type != "SOUND":
            raise AudioError(f"strip '{link.strip}' is a {strip.type.lower()} strip, not a sound strip")
        path = strip_file(strip)
        origin = round(compat.content_start(strip))
        start = max(round(compat.strip_start(strip)), first_scene)
        end = min(round(compat.strip_end(strip)), last_scene + 1)
        if end <= start:
            raise AudioError(f"sound strip '{strip.name}' (frames {round(compat.strip_start(strip))}-"
                             f"{round(compat.strip_end(strip)) - 1}) lies outside the scene's frames "
                             f"{first_scene}-{last_scene}")
    else:
        if not link.filepath:
            raise AudioError("the audio link names neither a sound strip nor an audio file")
        path = os.path.normpath(bpy.path.abspath(link.filepath))
        origin, start, end = first_scene, first_scene, last_scene + 1
    settings = {name: getattr(link, name) for name in _ANALYSIS}
    state = json.dumps([path, origin, start, end, scene_fps(scene), settings], sort_keys=True)
    return path, start, start - origin, end - start, state


def resolve_target(scene, link):
    """(ID, data path, index) of the property a link animates; AudioError when it can't be keyed."""
    collection = getattr(bpy.data, link.id_type, None)
    if collection is None:
        raise AudioError(f"unknown data collection '{link.id_type}'")
    id_data = scene if link.id_type == "scenes" and not link.id_name else collection.get(link.id_name)
    if id_data is None:
        raise AudioError(f"no {link.id_type[:-1]} named '{link.id_name}' to animate")
    if not link.data_path:
        raise AudioError("the audio link has no property path (e.g. keyframe_diffusion.zoom)")
    try:
        value = id_data.path_resolve(link.data_path)
    except ValueError:
        raise AudioError(f"'{link.data_path}' is not a property of {id_data.name}") from None
    if hasattr(value, "__len__") and not isinstance(value, str) and link.index >= len(value):
        raise AudioError(f"{link.data_path} has {len(value)} components; index {link.index} is out of range")
    return id_data, link.data_path, link.index


def analyse(scene, link, path: str, audio_start: int, count: int, context=None) -> dict:
    """The engine's per-frame curve (JSON of `python -m engine audio`) for a link's window."""
    args = ["audio", path, "--fps", repr(scene_fps(scene)), "--start", str(audio_start), "--frames", str(count),
            "--part", link.part, "--margin", repr(link.margin), "--feature", link.feature, "--reduce", link.reduce,
            "--fmin", repr(link.fmin), "--fmax", repr(link.fmax), "--shape", link.shape, "--low", repr(link.low),
            "--high", repr(link.high), "--attack", repr(link.attack), "--release", repr(link.release),
            "--smooth", str(link.smooth)]
    try:
        out = make_client(context).run_command(args, timeout=900)
    except WorkerError as e:
        raise AudioError(str(e).removeprefix("error: ")) from e
    return json.loads(out)


def apply_link(scene, link, context=None) -> dict:
    """Analyse a link's audio and write its keys (replacing the keys it wrote before); returns the analysis."""
    id_data, data_path, index = resolve_target(scene, link)
    path, first, audio_start, count, state = window(scene, link)
    result = analyse(scene, link, path, audio_start, count, context)
    keys = [(first + i, v) for i, v in enumerate(result["values"])]
    last = first + count - 1
    # Outside the audio the property rests: at Low before (pulse and ramp), at Low (pulse) or High (ramp) after.
    if first - 1 >= scene.frame_start:
        keys.insert(0, (first - 1, link.low))
    if last + 1 <= scene.frame_end:
        keys.append((last + 1, link.low if link.shape == "pulse" else link.high))
    lo = min(keys[0][0], link.applied_first) if link.applied_last >= link.applied_first else keys[0][0]
    hi = max(keys[-1][0], link.applied_last) if link.applied_last >= link.applied_first else keys[-1][0]
    fcurves.splice_keys(fcurves.id_fcurve(id_data, data_path, index), keys, lo, hi)
    link.applied_first, link.applied_last, link.applied_state = keys[0][0], keys[-1][0], state
    return result


def refresh(scene, only_changed: bool = True, context=None) -> int:
    """Re-apply the links whose strip moved or was trimmed, or whose settings changed; returns how many ran."""
    count = 0
    for link in scene.keyframe_diffusion.audio_links:
        if only_changed and window(scene, link)[4] == link.applied_state:
            continue
        apply_link(scene, link, context)
        count += 1
    if count:
        scene.frame_set(scene.frame_current)
    return count


def place_markers(scene, frames: list[int], name: str) -> None:
    """Timeline markers named `name` at `frames`, replacing the earlier ones of that name."""
    for marker in [m for m in scene.timeline_markers if m.name == name]:
        scene.timeline_markers.remove(marker)
    for frame in frames:
        scene.timeline_markers.new(name, frame=frame)


def retime_prompts(scene, frames: list[int], every: int = 1, transition: str = "LINEAR") -> None:
    """Move the prompt keys, in frame order, onto every `every`-th of `frames`, then crossfade them."""

    items = sorted(scene.keyframe_diffusion.prompts, key=lambda p: p.frame)
    chosen = sorted(frames)[::every]
    if len(chosen) < len(items):
        raise AudioError(f"{len(items)} prompt keys need {len(items)} onsets, but every {every} of "
                         f"{len(frames)} onsets gives {len(chosen)}: lower 'every' or use fewer prompts")
    for item, frame in zip(items, chosen):
        item.frame = frame
    set_transitions(scene, transition)
