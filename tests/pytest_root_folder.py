"""pytest plugin, loaded by pytest.ini (-p tests.pytest_root_folder; `python -m pytest` has the root on sys.path). The repository root is also the extension's package (it has
__init__.py), which pytest would collect as a Python package and import outside Blender, failing on its relative
imports whenever the clone's folder name isn't a valid module name. Collect the root as a plain folder instead;
the tests install and import the real extension themselves."""

from pathlib import Path

import pytest

_ROOT = Path(__file__).parent.parent  # tests/ -> the repository root


def pytest_collect_directory(path, parent):
    if path == _ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
