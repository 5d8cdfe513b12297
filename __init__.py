"""Keyframe Diffusion: Stable Diffusion animation on Blender's timeline. Registration only."""

from . import cli, handlers, operators, panels, preferences, properties

_modules = (preferences, properties, operators, panels, cli, handlers)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    from . import jobs

    jobs.release_worker()
    for module in reversed(_modules):
        module.unregister()
