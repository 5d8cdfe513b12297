"""Engine fixtures: engine code only, never bpy (`make test-engine` runs these tests with bpy blocked)."""

from __future__ import annotations

import pytest
from common import tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    return tiny_model()
