"""Keyframe Diffusion: Stable Diffusion animation on Blender's timeline. Registration only.

The folders are the layers, each importing only those before it (tests/packaging/test_layers.py holds it):
engine <- settings <- engine_link <- timeline <- bake <- run <- operators <- panels <- this file.
"""

from .engine_link import workers
from .run import cli, compositor, render_hook
from .settings import properties
from . import operators, panels

# Properties first (operators and panels refer to them), the preferences with the panels.
_modules = (properties, operators, panels, cli, render_hook, compositor)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    workers.release_worker()
    for module in reversed(_modules):
        module.unregister()
