"""Generate before render: `blender -b scene.blend -a` first renders the missing frames, then the Sequencer."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from ..bake import passes
from .generate import GenerateJob


@persistent
def generate_before_render(scene, *_args) -> None:
    if not scene.keyframe_diffusion.generate_before_render or passes.rendering():
        return  # (the scene passes a generate renders are renders too: they must not start another generate)
    print("keyframe_diffusion: generating missing frames before render", flush=True)
    job = GenerateJob(scene)
    # An exception here makes Blender cancel the render, which is right: rendering stale frames silently is not.
    job.run_blocking()
    print(f"keyframe_diffusion: {job.message}", flush=True)


def register() -> None:
    bpy.app.handlers.render_init.append(generate_before_render)


def unregister() -> None:
    if generate_before_render in bpy.app.handlers.render_init:
        bpy.app.handlers.render_init.remove(generate_before_render)
