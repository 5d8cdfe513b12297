"""Engine fixtures: engine code only, never bpy (`make test-engine` runs these tests with bpy blocked)."""

from __future__ import annotations

import pytest
from common import tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    return tiny_model()


@pytest.fixture(scope="module")
def frozen_heap():
    """For modules that bound a call's CPU time: what earlier tests left alive (models, bpy, Ray) moves out of the
    garbage collector's view, so a full collection that happens to fall inside a timed call costs only what the call
    itself made (in the full suite such a collection took 1.2 s and failed a 0.05 s parse)."""
    import gc

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
