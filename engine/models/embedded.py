"""The embedded models: the trained shapes model shipped inside the engine package ('embedded:shapes') and the
random-weight tiny model built on first use ('embedded:tiny'), in the engine's own cache folder."""

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
    from ..tiny_model import make_tiny_model

    folder = os.path.join(cache_dir(), "models", "tiny-sd")
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        make_tiny_model(folder)
    return folder
