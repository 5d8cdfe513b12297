"""Bake and Generate. Generate is modal in the UI (progress, Esc cancels, frames appear as they finish) and
blocking from scripts and in background mode, where timers and modal handlers never run."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ..bake.scene import BakeError, write_plan
from ..engine.events import timing
from ..engine.plan import parse_frame_range
from ..engine_link import workers
from ..run import estimate
from ..run.generate import GenerateError, GenerateJob
from ..timeline import pins
from ..timeline.frame_range import describe_range, render_range
from .messages import report

_active_job: GenerateJob | None = None


def _tag_redraw(context, whole: bool = True) -> None:
    """Redraw the status bar and the Sequencer: whole (its preview too: a frame landed), or only its sidebar."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "STATUSBAR" or area.type == "SEQUENCE_EDITOR" and whole:
                area.tag_redraw()
            elif area.type == "SEQUENCE_EDITOR":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


def _view(job: GenerateJob) -> tuple:
    """What the sidebar and the status bar show of a job, to the second: they redraw only when it changes. (Redrawn
    on every timer tick, Blender's drawing took CPU time from the engine worker beside it.)"""
    elapsed, eta = job.timing()
    return (job.finished, round(job.progress, 3), job.message, job.detail, job.error, int(elapsed),
            None if eta is None else int(eta), job.previews)


def _set_status(context, job: GenerateJob | None) -> None:
    status = context.window_manager.keyframe_diffusion_status
    status.running = job is not None and not job.finished
    if job is not None:
        status.progress = job.progress
        status.message = job.error or job.message
        status.error = job.error  # shown in full with its fix-it buttons (operators/messages.py)
        # Elapsed and left, ticking between events (panels/progress.py); the live preview's caption.
        status.detail = job.detail
        elapsed, eta = job.timing()
        status.elapsed, status.eta = elapsed, -1.0 if eta is None else eta
        status.preview = job.preview


def _frame_previews(context) -> None:
    """Zoom every Sequencer Preview to the whole picture: after a first Generate changed the render size, the Preview
    keeps its old zoom and would show the new, smaller picture as a dot until the user presses Home."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type != "SEQUENCE_EDITOR" or area.spaces.active.view_type == "SEQUENCER":
                continue
            region = next((r for r in area.regions if r.type == "PREVIEW"), None)
            if region is not None:
                with context.temp_override(window=window, area=area, region=region):
                    bpy.ops.sequencer.view_all_preview()


def _show_failure(context, error: str) -> None:
    """A Generate that failed before it started says why in the sidebar too (with its fix-it buttons)."""
    status = context.window_manager.keyframe_diffusion_status
    status.running = False
    status.message = status.error = error
    _tag_redraw(context)


def _check_inside(scene, frames: tuple[int, int]) -> None:
    """Frames asked for (Current Frame, Frames A-B) must meet the Frame Range: the plan has no others."""
    first, last = render_range(scene)
    if frames[1] < first or frames[0] > last:
        asked = f"frame {frames[0]}" if frames[0] == frames[1] else f"frames {frames[0]}-{frames[1]}"
        raise GenerateError(f"{asked[0].upper()}{asked[1:]} lies outside the Frame Range ({describe_range(scene)}): "
                            "move the playhead into it, or choose another Frame Range in the panel")


def _draw_status_bar(header, context):
    status = context.window_manager.keyframe_diffusion_status
    row = header.layout.row(align=True)
    row.label(text="Keyframe Diffusion", icon="RENDER_ANIMATION")
    bar = row.row()
    bar.ui_units_x = 18  # wide enough for "12/48 done, frames 13-16: step 30/30"
    bar.progress(factor=status.progress, type="BAR", text=status.detail or status.message or "Generating")
    said = timing(status.elapsed, status.eta)  # "0:42 elapsed, about 2:10 left", as the sidebar and terminal say
    if said:
        row.label(text=said, icon="TIME")
    row.label(text="Esc to cancel")


class KD_OT_bake(bpy.types.Operator):
    """Evaluate the timeline at every frame and write the plan (plan.json in the output folder)"""

    bl_idname = "keyframe_diffusion.bake"
    bl_label = "Bake Plan"

    output: StringProperty(name="Output", description="Output folder (default: the scene's)", default="")
    model: StringProperty(name="Model", description="Model override (default: the scene's)", default="")

    def execute(self, context):
        pins.sync_stored_frames(context.scene)  # a pin whose marker is deleted later stays where it was baked
        try:
            path, plan = write_plan(context.scene, self.output or None, self.model or None)
        except BakeError as e:
            report(self, "ERROR", str(e))
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
    # Set once the user said yes to a long render (run/estimate.py's is_long), so the render starts without asking.
    confirmed: BoolProperty(name="Confirmed", default=False, options={"HIDDEN", "SKIP_SAVE"},
                            description="Start without asking, even when the render is long")

    _timer = None

    @classmethod
    def poll(cls, context):
        settings = context.scene.keyframe_diffusion if context.scene else None
        if settings is not None and settings.prompt_source == "KEYS" and not any(
                key.text.strip() for key in settings.prompts):
            cls.poll_message_set("Add a prompt first: what the frames should show (Prompts, +)")
            return False
        return True

    def _make_job(self, context) -> GenerateJob:
        scene = context.scene
        if self.current_frame:
            frame_range = (scene.frame_current, scene.frame_current)
        else:
            frame_range = parse_frame_range(self.frames) if self.frames.strip() else None
        if frame_range is not None:
            _check_inside(scene, frame_range)
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

    def _ask(self, context, event):
        """Before a long render, Blender's confirmation with the frame count and estimate; None: no need to ask.
        OK there calls execute(), which starts the render the way the button does (_start_confirmed)."""
        if self.confirmed or self.current_frame:
            return None
        try:
            frames = parse_frame_range(self.frames) if self.frames.strip() else None
        except ValueError:
            return None  # _make_job reports it
        est = estimate.estimate(context.scene, self.model or None, frames)
        if not estimate.is_long(est):
            return None
        title, message = estimate.confirm_text(est)
        self.confirmed = True
        return context.window_manager.invoke_confirm(self, event, title=title, message=message,
                                                     confirm_text="Generate", icon="QUESTION")

    def _start_confirmed(self):
        """The render the user confirmed, started modal as from the button (execute() would block the UI)."""
        props = self.properties
        names = ["current_frame", "frames", "model", "output"]
        names += [name for name in ("use_ray", "ray_address") if props.is_property_set(name)]
        return bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT", confirmed=True,
                                                   **{name: getattr(self, name) for name in names})

    def execute(self, context):
        global _active_job
        if self.confirmed and not bpy.app.background and context.window is not None:
            return self._start_confirmed()
        if self._busy():
            return {"CANCELLED"}
        try:
            job = self._make_job(context)
            _active_job = job
            job.run_blocking(context)
        except (GenerateError, ValueError) as e:
            report(self, "ERROR", str(e))
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
        asked = self._ask(context, event)
        if asked is not None:
            return asked
        try:
            job = self._make_job(context)
            job.start(context)
        except (GenerateError, ValueError) as e:
            report(self, "ERROR", str(e))
            _show_failure(context, str(e))
            return {"CANCELLED"}
        _active_job = job
        _set_status(context, job)
        if "size" in job.first_use:
            # From a timer: inside this operator call the Preview still fits the old size (its view is set at redraw).
            bpy.app.timers.register(lambda: _frame_previews(bpy.context), first_interval=0.3)
        self._shown, self._landed = _view(job), 0
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)  # 4 polls a second: see _view
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
            shown, landed = _view(job), len(job.rendered) + len(job.upscaled)
            if shown != self._shown or landed != self._landed:
                _set_status(context, job)
                _tag_redraw(context, whole=landed != self._landed)  # the Sequencer's preview: only for a new frame
                context.workspace.status_text_set(_draw_status_bar)  # setting it again redraws the status bar
                self._shown, self._landed = shown, landed
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
            report(self, "ERROR", job.error)
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
