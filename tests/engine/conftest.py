"""Engine fixtures: engine code only, never bpy (`make test-engine` runs these tests with bpy blocked)."""

from __future__ import annotations

import os

import pytest
from common import SESSION_TMP


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    from engine.tiny_model import make_tiny_model

    return make_tiny_model(os.path.join(SESSION_TMP, "tiny-model"))
