"""Export the generated strip: MP4 through Blender's own FFmpeg render of the Sequencer (so the Sequencer's sound
comes along), GIF through the engine (Pillow)."""

from __future__ import annotations

import os

import bpy
from bpy.props import EnumProperty, StringProperty

from ..bake.scene import output_dir
from ..engine_link.worker_client import WorkerError
from ..engine_link.workers import make_client
from ..run import strips
from ..settings import compat

_KEEP_UNMUTED = {"SOUND"}  # strip types that stay audible in the export


def export_mp4_with_sound(scene, strip, filepath: str) -> str:
    """Render the Sequencer over the strip's range with only our strip and the sound strips unmuted."""
    render = scene.render
    saved = {
        "filepath": render.filepath,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "use_sequencer": render.use_sequencer,
        "use_file_extension": render.use_file_extension,
        "ffmpeg": (render.ffmpeg.format, render.ffmpeg.codec, render.ffmpeg.audio_codec),
    }
    image_state = compat.image_output_state(render)
    muted = {s.name: s.mute for s in compat.all_strips(scene)}
    try:
        for s in compat.all_strips(scene):
            if s != strip and s.type not in _KEEP_UNMUTED:
                s.mute = True
        strip.mute = False
        compat.set_video_output(render)
        render.ffmpeg.format = "MPEG4"
        render.ffmpeg.codec = "H264"
        render.ffmpeg.audio_codec = "AAC"
        render.use_sequencer = True
        render.filepath = filepath
        render.use_file_extension = False
        scene.frame_start = compat.strip_start(strip)
        scene.frame_end = compat.strip_end(strip) - 1
        bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        for s in compat.all_strips(scene):
            if s.name in muted:
                s.mute = muted[s.name]
        compat.restore_image_output(render, image_state)
        render.ffmpeg.format, render.ffmpeg.codec, render.ffmpeg.audio_codec = saved["ffmpeg"]
        render.filepath = saved["filepath"]
        render.use_sequencer = saved["use_sequencer"]
        render.use_file_extension = saved["use_file_extension"]
        scene.frame_start, scene.frame_end = saved["frame_start"], saved["frame_end"]
    return filepath


class KD_OT_export(bpy.types.Operator):
    """Export the generated frames as an MP4 (with the Sequencer's sound) or a GIF"""

    bl_idname = "keyframe_diffusion.export"
    bl_label = "Export Animation"

    format: EnumProperty(name="Format", items=[("MP4", "MP4", "H.264 with the Sequencer's sound"),
                                               ("GIF", "GIF", "Looping GIF")], default="MP4",
                          description="File format of the exported animation")
    filepath: StringProperty(name="File", description="Where to write (default: the output folder)",
                             default="", subtype="FILE_PATH")

    def execute(self, context):
        scene = context.scene
        strip = strips.find_strip(scene)
        if strip is None:
            self.report({"ERROR"}, "Nothing to export: generate frames first")
            return {"CANCELLED"}
        folder = output_dir(scene)
        ext = ".mp4" if self.format == "MP4" else ".gif"
        path = bpy.path.abspath(self.filepath) if self.filepath else os.path.join(folder, "animation" + ext)
        path = os.path.splitext(path)[0] + ext
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fps = scene.render.fps / scene.render.fps_base
        if self.format == "MP4" and bpy.app.build_options.codec_ffmpeg:
            export_mp4_with_sound(scene, strip, path)
        else:
            if self.format == "MP4":
                self.report({"WARNING"}, "This Blender has no FFmpeg: the MP4 is written without sound")
            first, last = compat.strip_start(strip), compat.strip_end(strip) - 1
            try:
                make_client(context).run_command(
                    ["export", strip.directory, path, "--fps", str(fps), "--frames", f"{first}-{last}"])
            except WorkerError as e:
                self.report({"ERROR"}, f"Export failed: {e}")
                return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}


classes = (KD_OT_export,)
