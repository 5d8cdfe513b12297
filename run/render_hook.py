"""Generate before render: `blender -b scene.blend -a` first renders the missing frames, then the Sequencer or the
compositor (which is pointed at the frames on disk before every render)."""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from ..bake import passes
from ..timeline import frame_range
from . import compositor
from .cli import printer
from .generate import GenerateJob


@persistent
def generate_before_render(scene, *_args) -> None:
    if passes.rendering():
        return  # (the scene passes a generate renders are renders too: they must not start another generate)
    if not scene.keyframe_diffusion.generate_before_render:
        compositor.sync(scene, reload=True)  # the compositor shows the frames on disk now, wherever the strip is
        return
    print("keyframe_diffusion: generating missing frames before render", flush=True)
    job = GenerateJob(scene)
    # An exception here makes Blender cancel the render, which is right: rendering stale frames silently is not.
    job.run_blocking(on_event=printer(job, _outside_note(scene)))
    print(f"keyframe_diffusion: {job.message}", flush=True)


def _outside_note(scene) -> str:
    """What the render shows beyond the Frame Range: the user chose the range, so those frames are left as they are
    (no generated frame there), and the printed line says so."""
    first, last = frame_range.render_range(scene)
    if first <= scene.frame_start and scene.frame_end <= last:
        return ""
    return (f"; the scene renders {scene.frame_start}-{scene.frame_end}: frames outside {first}-{last} have no "
            "generated frame (Frame Range: Scene generates them all)")


def register() -> None:
    bpy.app.handlers.render_init.append(generate_before_render)


def unregister() -> None:
    if generate_before_render in bpy.app.handlers.render_init:
        bpy.app.handlers.render_init.remove(generate_before_render)
