"""Bake and Generate. Generate is modal in the UI (progress, Esc cancels, frames appear as they finish) and
blocking from scripts and in background mode, where timers and modal handlers never run."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ..bake.scene import BakeError, write_plan
from ..engine.plan import parse_frame_range
from ..engine_link import workers
from ..run.generate import GenerateError, GenerateJob

_active_job: GenerateJob | None = None


def _tag_redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {"SEQUENCE_EDITOR", "STATUSBAR"}:
                area.tag_redraw()


def _set_status(context, job: GenerateJob | None) -> None:
    status = context.window_manager.keyframe_diffusion_status
    status.running = job is not None and not job.finished
    if job is not None:
        status.progress = job.progress
        status.message = job.error.splitlines()[0] if job.error else job.message


def _draw_status_bar(header, context):
    status = context.window_manager.keyframe_diffusion_status
    row = header.layout.row(align=True)
    row.label(text="Keyframe Diffusion", icon="RENDER_ANIMATION")
    bar = row.row()
    bar.ui_units_x = 18  # wide enough for "12/48 done, frames 13-16: step 3/4"
    bar.progress(factor=status.progress, type="BAR", text=status.message or "Generating")
    row.label(text="Esc to cancel")


class KD_OT_bake(bpy.types.Operator):
    """Evaluate the timeline at every frame and write the plan (plan.json in the output folder)"""

    bl_idname = "keyframe_diffusion.bake"
    bl_label = "Bake Plan"

    output: StringProperty(name="Output", description="Output folder (default: the scene's)", default="")
    model: StringProperty(name="Model", description="Model override (default: the scene's)", default="")

    def execute(self, context):
        try:
            path, plan = write_plan(context.scene, self.output or None, self.model or None)
        except BakeError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Baked {len(plan['frames'])} frames to {path}")
        return {"FINISHED"}


class KD_OT_generate(bpy.types.Operator):
    """Bake the timeline and render the missing frames into the Sequencer strip"""

    bl_idname = "keyframe_diffusion.generate"
    bl_label = "Generate"

    current_frame: BoolProperty(name="Current Frame Only", default=False,
                                description="Render only the frame under the playhead")
    frames: StringProperty(name="Frames", description="A-B: render only these frames (empty: all)", default="")
    model: StringProperty(name="Model", description="Model override (default: the scene's)", default="")
    output: StringProperty(name="Output", description="Output folder override", default="")
    use_ray: BoolProperty(name="Distribute with Ray", description="Spread the frames over a Ray cluster (default: "
                          "the scene's setting)", default=False)
    ray_address: StringProperty(name="Ray Cluster", description="Ray cluster address (default: the scene's; empty "
                                "there starts Ray on this machine)", default="")

    _timer = None

    def _make_job(self, context) -> GenerateJob:
        scene = context.scene
        if self.current_frame:
            frame_range = (scene.frame_current, scene.frame_current)
        else:
            frame_range = parse_frame_range(self.frames) if self.frames.strip() else None
        # Set on the operator (a script, a keymap), the Ray choice overrides the scene's.
        props = self.properties
        use_ray = self.use_ray if props.is_property_set("use_ray") else None
        address = self.ray_address if props.is_property_set("ray_address") else None
        return GenerateJob(scene, frame_range, self.model or None, self.output or None, use_ray, address)

    def _busy(self) -> bool:
        if _active_job is not None and not _active_job.finished:
            self.report({"ERROR"}, "A generation is already running (Esc or Cancel stops it)")
            return True
        return False

    def execute(self, context):
        global _active_job
        if self._busy():
            return {"CANCELLED"}
        try:
            job = self._make_job(context)
            _active_job = job
            job.run_blocking(context)
        except (GenerateError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        finally:
            _active_job = None
        self.report({"INFO"}, job.message)
        return {"FINISHED"} if not job.cancelled else {"CANCELLED"}

    def invoke(self, context, event):
        global _active_job
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if self._busy():
            return {"CANCELLED"}
        try:
            job = self._make_job(context)
            job.start(context)
        except (GenerateError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        _active_job = job
        _set_status(context, job)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        context.workspace.status_text_set(_draw_status_bar)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = _active_job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
            job.message = "Cancelling..."
            return {"RUNNING_MODAL"}  # Esc is ours while generating; don't let it reach other tools
        if event.type == "TIMER":
            job.poll()
            _set_status(context, job)
            _tag_redraw(context)
            context.workspace.status_text_set(_draw_status_bar)  # setting it again redraws the status bar
            if job.finished:
                return self._finish(context, job)
        return {"PASS_THROUGH"}

    def _finish(self, context, job):
        global _active_job
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        _active_job = None
        _set_status(context, job)
        _tag_redraw(context)
        if job.error:
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        self.report({"INFO"}, job.message)
        return {"FINISHED"} if not job.cancelled else {"CANCELLED"}


class KD_OT_cancel(bpy.types.Operator):
    """Stop the running generation after the current denoising step (finished frames stay)"""

    bl_idname = "keyframe_diffusion.cancel"
    bl_label = "Cancel Generation"

    def execute(self, context):
        if _active_job is None:
            return {"CANCELLED"}
        _active_job.cancel()
        _active_job.message = "Cancelling..."
        return {"FINISHED"}


class KD_OT_release(bpy.types.Operator):
    """Stop the engine worker and free the memory of its loaded model"""

    bl_idname = "keyframe_diffusion.release"
    bl_label = "Release Engine"

    def execute(self, context):
        if _active_job is not None and not _active_job.finished:
            self.report({"ERROR"}, "Cancel the running generation first")
            return {"CANCELLED"}
        workers.release_worker()
        return {"FINISHED"}


classes = (KD_OT_bake, KD_OT_generate, KD_OT_cancel, KD_OT_release)
