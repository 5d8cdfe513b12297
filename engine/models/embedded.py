"""The embedded models: the trained shapes model shipped inside the engine package ('embedded:shapes') and the
random-weight tiny models built on first use ('embedded:tiny', and the tiny video pipelines of
engine.tiny_video_models), in the engine's own cache folder."""

from __future__ import annotations

import os

from ..errors import ModelError
from ..plan import EMBEDDED_MODEL


def cache_dir() -> str:
    """Where the engine keeps what it builds itself (the random tiny model). Blender points it at the extension's
    user folder; standalone runs use ~/.cache/keyframe_diffusion."""
    return os.environ.get("KEYFRAME_DIFFUSION_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keyframe_diffusion"
    )


# The trained shapes model shipped inside the engine package (built by scripts/train_shapes_model.py): engine/shapes.
SHAPES_MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shapes", "model")


def shapes_model_dir() -> str:
    """The shipped shapes model's folder; a missing one says how to get it back rather than failing in diffusers."""
    folder = SHAPES_MODEL_DIR
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise ModelError(f"the embedded model '{EMBEDDED_MODEL}' is missing from {folder}; rebuild it with "
                         "`python scripts/train_shapes_model.py` or reinstall the extension")
    return folder


def tiny_model_dir() -> str:
    """The random-weight tiny model, built into the cache on first use."""
    folder = os.path.join(cache_dir(), "models", "tiny-sd")
    if os.path.isfile(os.path.join(folder, "model_index.json")):
        return folder
    from ..tiny_model import make_tiny_model

    return _build_once(folder, make_tiny_model)


def _build_once(folder: str, make) -> str:
    """`make(folder)` unless the folder already holds a pipeline; under a file lock, as several processes (Ray workers,
    a CLI render beside Blender's worker) may ask at once: one builds, the others wait and then find it, so nobody
    swaps the folder out from under a process that is loading it."""
    from filelock import FileLock

    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with FileLock(folder + ".lock"):
        if not os.path.isfile(os.path.join(folder, "model_index.json")):
            make(folder)
    return folder


def tiny_video_model_dir(kind: str) -> str:
    """The random-weight tiny video pipeline of `kind` ('wan-t2v', 'wan-i2v', 'wan22-i2v', 'wan-vace',
    'ltx-condition' or 'ltx-t2v'; engine.tiny_video_models), built into the cache on first use."""
    from ..tiny_video_models import BUILDERS, make_tiny_video_model

    if kind not in BUILDERS:
        raise ModelError(f"unknown tiny video model '{kind}' (known: {', '.join(BUILDERS)})")
    folder = os.path.join(cache_dir(), "models", f"tiny-{kind}")
    if os.path.isfile(os.path.join(folder, "model_index.json")):
        return folder
    return _build_once(folder, lambda target: make_tiny_video_model(target, kind))
