"""The bake: evaluate the scene at every frame and write what the engine needs as a plan (plain JSON).

Values come from Blender's own evaluation (`frame_set`), so F-curves, modifiers, drivers, NLA and constraints all
count exactly as they do in Blender's render.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass

import bpy
import numpy as np

from ..engine import plan as plan_mod
from ..engine import seeds
from ..engine.frames import frame_filename
from ..engine import vocabulary as vocab
from ..settings import compat
from ..settings.properties import FRAME_PARAMS
from ..timeline import frame_range, pins as timeline_pins, text_prompts
from . import inputs
from . import passes as scene_passes

WEIGHT_EPSILON = 1e-6
CUT_MARKERS = ("cut", "restart")  # timeline markers whose names start so restart a feedback chain (or a clip)
MASK_PASSES = {"OBJECT_INDEX": "object_index", "MATERIAL_INDEX": "material_index"}
UPSCALE_FOLDER = "upscaled"  # inside the output folder
# Shot mode: the pass each kind of control video is made of, and where generated frames pinned are kept (a copy: the
# shot renders the pinned frame again, and a pin on the frame file itself would change with every render).
CONTROL_PASSES = {"DEPTH": "depth", "FLOW": "vector", "INDEX": "object_index", "RENDER": "image"}
PINS_FOLDER = "pins"  # inside the output folder


class BakeError(ValueError):
    """The scene can't be baked; the message says what to fix and at which frame."""


def output_dir(scene: bpy.types.Scene, override: str | None = None) -> str:
    path = override or scene.keyframe_diffusion.output_dir
    if path.startswith("//") and not bpy.data.filepath:
        # An unsaved .blend has no folder for '//' to mean; use a temp folder rather than the working directory.
        return os.path.join(tempfile.gettempdir(), "keyframe_diffusion", bpy.path.clean_name(scene.name))
    return os.path.normpath(bpy.path.abspath(path))


def _camera_record(scene: bpy.types.Scene, depsgraph) -> dict | None:
    cam = scene.camera
    if cam is None:
        return None
    evaluated = cam.evaluated_get(depsgraph)
    record = {"name": cam.name, "matrix_world": [list(row) for row in evaluated.matrix_world]}
    data = evaluated.data
    if cam.type == "CAMERA":
        record.update(
            type=data.type,
            lens=data.lens,
            sensor_width=data.sensor_width,
            sensor_height=data.sensor_height,
            sensor_fit=data.sensor_fit,
            shift_x=data.shift_x,
            shift_y=data.shift_y,
            clip_start=data.clip_start,
            clip_end=data.clip_end,
        )
    return record


def _settings(scene: bpy.types.Scene, folder: str, model: str | None) -> dict:
    s = scene.keyframe_diffusion
    fps = scene.render.fps / scene.render.fps_base
    first, last = frame_range.render_range(scene)  # the Frame Range: by default the prompt keys', not Start-End
    return {
        "mode": s.mode,
        "model": (model or s.model).strip(),
        "width": s.width,
        "height": s.height,
        "output_dir": folder,
        "scheduler": _scheduler(s),
        "batch_size": s.batch_size,
        "device": s.device,
        "latent_source": s.latent_source,
        "pace": s.mode == "INTERPOLATE" and s.pace,
        "fps": fps,
        "frame_start": first,
        "frame_end": last,
        "motion_mode": s.motion_mode,
        "border": s.border,
        "cadence": s.cadence,
        "color_coherence": s.color_coherence,
        "camera_source": s.camera_source,
        "depth_source": s.depth_source,
        "depth_kind": "planar",  # Blender's Z pass is the distance along the view axis
        "color_reference": _abspath(s.color_reference),
        "init_image": _abspath(s.init_image) if s.mode == "FEEDBACK" else "",
        # A folder (Blender-relative paths resolved) or a Hugging Face id.
        "decoder": _abspath(s.decoder) if os.path.isdir(_abspath(s.decoder)) else s.decoder.strip(),
        "precision": s.precision,
        "channels_last": s.channels_last,
        "vae_slicing": s.vae_slicing,
        "vae_tiling": s.vae_tiling,
        "compile": s.compile,
        "feature_reuse": s.feature_reuse,
        "background_writes": s.background_writes,
        "stream_batch": s.stream_batch,
        "overlap_decode": s.overlap_decode,
        "controlnets": [{"model": u.model.strip(), "preprocessor": _unit_preprocessor(u), "name": u.name}
                        for u in _units(s)],
        "loras": [{"path": _abspath(lora.path), "scale": lora.scale} for lora in s.loras if lora.path.strip()],
        "scheduler_kwargs": _json_object(s.scheduler_kwargs, "Scheduler Options"),
        "pipeline_kwargs": _json_object(s.pipeline_kwargs, "Pipeline Options"),
        "context_length": s.context_length,
        "context_overlap": min(s.context_overlap, s.context_length - 1),
        "free_noise": s.free_noise,
        "flow_guide": follows_motion(s),
        "warp_noise": s.flow_guide and s.mode == "VIDEO" and s.warp_noise,
        "fusion": s.fusion if s.flow_guide and s.mode == "VIDEO" else 0.0,
        "anchor_attention": s.flow_guide and s.mode == "VIDEO" and s.anchor_attention,
        "cpu_offload": s.cpu_offload,
        **_clip_settings(s),
        **_shot_settings(s),
        **_upscale_settings(s, folder),
    }


def _shot_settings(s) -> dict:
    if s.mode != "SHOT":
        return {}
    window = s.shot_window
    # The video model has its own scheduler and VAE and takes no ControlNet or LoRA (engine/video_setup.py): those
    # settings are hidden in shot mode (panels/sequencer.py) and not baked.
    return {"controlnets": [], "loras": [], "decoder": "", "scheduler": "default", "shot_window": window,
            "shot_overlap": min(s.shot_overlap, window - 1) if window else s.shot_overlap,
            "chain_shots": s.chain_shots, "memory_mode": s.memory_mode, "memory_limit_gb": s.memory_limit_gb,
            "video_cache": s.video_cache, "video_control": s.video_control, "control_scale": s.control_scale}


def _clip_settings(s) -> dict:
    if s.mode != "CLIP":
        return {}
    return {"motion_adapter": _abspath(s.motion_adapter) if os.path.isdir(_abspath(s.motion_adapter))
            else s.motion_adapter.strip(),
            "motion_loras": [{"path": _abspath(lora.path), "scale": lora.scale} for lora in s.motion_loras
                             if lora.path.strip()]}


def _upscale_settings(s, folder: str) -> dict:
    if not s.use_upscale:
        return {}
    model = _abspath(s.upscale_model) if os.path.isdir(_abspath(s.upscale_model)) else s.upscale_model.strip()
    return {"upscale": {"model": model, "steps": s.upscale_steps, "guidance": s.upscale_guidance,
                        "noise_level": s.upscale_noise_level, "output_dir": os.path.join(folder, UPSCALE_FOLDER)}}


def _abspath(path: str) -> str:
    return os.path.normpath(bpy.path.abspath(path)) if path.strip() else ""


def _scheduler(s) -> str:
    """The plan's scheduler: the menu's name, or with "Other" the diffusers class named in Scheduler Class."""
    if s.mode == "SHOT":
        return "default"  # the video model's own (_shot_settings)
    if s.scheduler != vocab.SCHEDULER_OTHER:
        return s.scheduler
    if not s.scheduler_class.strip():
        raise BakeError("Scheduler is 'Other (diffusers class)' but Scheduler Class is empty: name a diffusers "
                        "scheduler class, e.g. DEISMultistepScheduler, or choose a scheduler from the menu")
    return s.scheduler_class.strip()


def _json_object(text: str, what: str) -> dict:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BakeError(f"{what}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(value, dict):
        raise BakeError(f"{what}: must be a JSON object like {{\"name\": value}}, got {type(value).__name__}")
    return value


def _units(settings) -> list:
    if settings.mode == "SHOT":
        return []  # a video model takes no ControlNet (SHOT_HIDDEN)
    return [u for u in settings.controlnets if u.enabled]


def _unit_preprocessor(unit) -> str:
    # Passes carry their own meaning; images (render, init, strip) go through the unit's preprocessor.
    return {"DEPTH": "DEPTH", "NORMAL": "NORMAL"}.get(unit.source, unit.preprocessor)


def _is_mask_strip(scene, name: str) -> bool:
    return any(strip.name == name and strip.type == "MASK" for strip in compat.all_strips(scene))


def follows_motion(settings) -> bool:
    """Follow Motion applies: the video mode, or feedback 3D with the scene camera (along its Vector pass)."""
    feedback_3d = (settings.mode == "FEEDBACK" and settings.motion_mode == "3D"
                   and settings.camera_source == "SCENE")
    return settings.flow_guide and (settings.mode == "VIDEO" or feedback_3d)


def _needed_passes(scene, settings) -> set[str]:
    passes = set()
    if settings.mode == "FEEDBACK" and follows_motion(settings):
        passes.add("vector")  # the scene's true motion moves the previous frame, objects' own motion included
    if (settings.mode == "FEEDBACK" and settings.motion_mode == "3D" and settings.depth_source == "SCENE"
            and settings.camera_source == "SCENE"):
        passes.add("depth")
    if settings.mode == "VIDEO" and settings.init_source == "SCENE":
        passes.add("image")
        if settings.flow_guide:
            passes.add("vector")  # the true motion; a strip's is estimated by the engine from its frames
    if settings.use_scene_depth and settings.mode in ("VIDEO", "FEEDBACK"):
        passes.add("depth")
    if _masking(settings):
        passes.add(MASK_PASSES.get(settings.mask_source, ""))
        if settings.mask_source == "STRIP" and _is_mask_strip(scene, settings.mask_strip):
            passes.add("mask")
    for unit in _units(settings):
        passes.add({"DEPTH": "depth", "NORMAL": "normal", "RENDER": "image"}.get(unit.source, ""))
    if settings.mode == "SHOT":
        passes.add(CONTROL_PASSES.get(settings.video_control, ""))
    passes.discard("")
    return passes


def _masking(settings) -> bool:
    return settings.mask_source != "NONE" and settings.mode in ("VIDEO", "FEEDBACK")


def _mask_strip(scene, settings):
    """The Mask Source strip: a mask strip (its Mask is rasterised with the passes) or a movie or image strip."""
    if not _masking(settings) or settings.mask_source != "STRIP":
        return None
    name = settings.mask_strip
    for strip in compat.all_strips(scene):
        if strip.name == name and strip.type == "MASK":
            if strip.mask is None:
                raise BakeError(f"mask strip '{name}' has no mask: choose one in its strip properties")
            return strip
    try:
        return inputs.find_input_strip(scene, name)
    except inputs.InputError as e:
        raise BakeError(f"mask: {e}") from None


def _mask_image_file(settings, folder: str) -> str | None:
    """The Mask Image's grey values as a .npy in the output folder: a painted image may exist only in memory, and
    Image.save would mark the user's unsaved painting as saved."""
    if not _masking(settings) or settings.mask_source != "IMAGE":
        return None
    image = settings.mask_image
    if image is None:
        raise BakeError("mask: no Mask Image chosen (paint one in the Image Editor or open a file)")
    width, height = image.size
    if width == 0 or height == 0:
        raise BakeError(f"mask image '{image.name}' has no pixels (is its file missing?)")
    pixels = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height, width, image.channels)
    grey = pixels[..., :3].mean(axis=2) if image.channels >= 3 else pixels[..., 0]
    path = os.path.join(folder, "masks", bpy.path.clean_name(image.name) + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, np.ascontiguousarray(grey[::-1]))  # Blender's rows go bottom-up
    scene_passes.place_file(tmp, path)  # unchanged pixels keep the file's date, so frames stay current
    return path


def _mask_entry(settings, strip, image_path: str | None, frame: int) -> dict | None:
    if not _masking(settings) or settings.mask_source in MASK_PASSES:
        return None  # index passes are attached after they render
    if strip is not None and strip.type == "MASK":
        return None  # rasterised with the passes
    if strip is not None:
        try:
            entry = inputs.strip_frame(strip, frame)
        except inputs.InputError as e:
            raise BakeError(f"mask: {e}") from None
    else:
        entry = {"path": image_path}
    return {**entry, "invert": settings.mask_invert, "blur": settings.mask_blur}


def _unit_strips(scene, settings) -> dict[int, object]:
    strips = {}
    for i, unit in enumerate(_units(settings)):
        if unit.source == "STRIP":
            try:
                strips[i] = inputs.find_input_strip(scene, unit.strip)
            except inputs.InputError as e:
                raise BakeError(f"ControlNet unit '{unit.name}': {e}") from None
    return strips


def _control_entries(settings, strips: dict, frame: int) -> list[dict]:
    """Each enabled unit's scale, start and end as evaluated now, and its image when it comes from a strip."""
    entries = []
    for i, unit in enumerate(_units(settings)):
        entry = {"scale": unit.scale, "start": min(unit.start, unit.end), "end": max(unit.start, unit.end)}
        if i in strips:
            try:
                found = inputs.strip_frame(strips[i], frame)
            except inputs.InputError as e:
                raise BakeError(f"ControlNet unit '{unit.name}': {e}") from None
            entry["image"] = found["path"]
            if "index" in found:
                entry["index"] = found["index"]
        entries.append(entry)
    return entries


def _attach_passes(scene, settings, records: list[dict], masks: list[dict], folder: str, progress=None) -> None:
    """Render the scene passes the settings need and point the frame records at them; `masks` holds each frame's
    mask settings as evaluated there (_evaluate_frames)."""
    passes = _needed_passes(scene, settings)
    pin_frames = [] if "image" in passes else _render_pin_frames(settings, records)
    total = len(records) * bool(passes) + len(pin_frames)
    if pin_frames:  # Scene Render pins (with a scene render control video, the passes below make them)
        _render(scene, settings, folder, pin_frames, {"image"}, _offset(progress, len(records) * bool(passes), total))
    if not passes:
        return
    strip = _mask_strip(scene, settings) if "mask" in passes else None
    rendered = _render(scene, settings, folder, [r["frame"] for r in records], passes, _offset(progress, 0, total),
                       mask=strip.mask if strip is not None else None)
    units = _units(settings)
    for record, mask in zip(records, masks):
        paths = rendered[record["frame"]]
        if "depth" in paths and (settings.mode == "FEEDBACK" or settings.use_scene_depth):
            record["depth"] = paths["depth"]
        index_pass = MASK_PASSES.get(settings.mask_source, "mask")
        if _masking(settings) and index_pass in paths:
            record["mask"] = {"path": paths[index_pass], "invert": mask["invert"], "blur": mask["blur"]}
            if index_pass != "mask":
                record["mask"]["select"] = [mask["index"]]
        if settings.mode == "VIDEO" and settings.init_source == "SCENE":
            record["init"] = {"path": paths["image"]}
        if "vector" in paths:
            record["flow"] = paths["vector"]
        for unit, entry in zip(units, record.get("control", [])):
            source = {"DEPTH": "depth", "NORMAL": "normal", "RENDER": "image"}.get(unit.source)
            if source:
                entry["image"] = paths[source]


def _render(scene, settings, folder: str, frames: list[int], passes: set[str], progress, mask=None) -> dict:
    try:
        return scene_passes.render_passes(scene, folder, frames, passes, (settings.width, settings.height), progress,
                                          mask=mask)
    except scene_passes.PassError as e:
        raise BakeError(str(e)) from None


def _offset(progress, done: int, total: int):
    """A progress(done, total) callback for one of several renders: counted on from `done`, out of `total`."""
    if progress is None:
        return None
    return lambda n, _count: progress(done + n, total)


def _render_pin_frames(settings, records: list[dict]) -> list[int]:
    """The baked frames that Scene Render pins need Blender's render of (a pin elsewhere the plan check refuses)."""
    if settings.mode != "SHOT":
        return []
    baked = {r["frame"] for r in records}
    return sorted({pin.frame for pin in settings.pins if pin.source == "RENDER"} & baked)


def _pins(scene, settings, folder: str) -> list[dict]:
    """Shot mode's pins as the plan holds them: each picture as a file (and a movie's frame index)."""
    if settings.mode != "SHOT":
        return []
    return [_pin_entry(scene, pin, folder) for pin in settings.pins]


def _pin_entry(scene, pin, folder: str) -> dict:
    frame = pin.frame
    where = f"pin '{pin.name}' at frame {frame}"
    entry = {"frame": frame, "strength": pin.strength}
    if pin.source == "FILE":
        path = _abspath(pin.filepath)
        if not path:
            raise BakeError(f"{where}: no image file chosen: pick the picture to pin (Image)")
        if not os.path.isfile(path):
            raise BakeError(f"{where}: image file not found: {path}")
        return {**entry, "path": path}
    if pin.source == "STRIP":
        if not pin.strip.strip():
            raise BakeError(f"{where}: no strip chosen: pick the image or movie strip to pin (Strip)")
        try:
            return {**entry, **inputs.strip_frame(inputs.find_input_strip(scene, pin.strip), frame)}
        except inputs.InputError as e:
            raise BakeError(f"{where}: {e}") from None
    if pin.source == "GENERATED":
        return {**entry, "path": _generated_pin(pin, folder, frame, where)}
    return {**entry, "path": scene_passes.pass_path(folder, "image", frame)}  # RENDER: rendered with the passes


def _generated_pin(pin, folder: str, frame: int, where: str) -> str:
    """A generated frame pinned: a copy of the output folder's frame, taken the first time the pin is baked at that
    frame and kept from then on (the shot renders that frame again; a new pin takes the frame as it is then)."""
    token = pin.token or bpy.path.clean_name(pin.name)
    copy = os.path.join(folder, PINS_FOLDER, token, frame_filename(frame))
    if os.path.isfile(copy):
        return copy
    source = os.path.join(folder, frame_filename(frame))
    if not os.path.isfile(source):
        raise BakeError(f"{where}: no generated frame there yet ({source}): generate the frames first, or pin "
                        "another source")
    os.makedirs(os.path.dirname(copy), exist_ok=True)
    tmp = copy + ".tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, copy)
    return copy


def _name_pins(message: str, settings) -> str:
    """A plan error about settings.pins[i] names the pin as the user knows it (its label)."""
    def name(match) -> str:
        index = int(match.group(1))
        return f"pin '{settings.pins[index].name}'" if index < len(settings.pins) else match.group(0)

    return re.sub(r"(?:settings\.)?pins\[(\d+)\]", name, message) if settings.mode == "SHOT" else message


def _key_prompts(settings) -> list[dict]:
    """The prompt keys' weights as evaluated at the current frame."""
    active = [p for p in settings.prompts if p.weight > WEIGHT_EPSILON]
    total = sum(p.weight for p in active)
    return [
        {"text": p.text, "negative": p.negative or settings.negative_prompt, "weight": p.weight / total, "seed": p.seed}
        for p in active
    ]


def _strip_prompts(settings, spans: list, frame: int) -> list[dict]:
    return [
        {"text": span.text, "negative": span.negative or settings.negative_prompt, "weight": w, "seed": span.seed}
        for span, w in text_prompts.weights(spans, frame)
    ]


def _frame_values(settings) -> dict:
    """The per-frame settings as evaluated now, grouped the way the plan's frame records hold them."""
    record: dict = {"motion": {}, "image": {}}
    for name, (group, key) in FRAME_PARAMS.items():
        value = getattr(settings, name)
        if group is None:
            record[key] = value
        else:
            record[group][key] = value
    return record


def _chain_restarts(scene: bpy.types.Scene, settings, records: list[dict], keyed: list[bool]) -> set[int]:
    """Frames where a feedback chain starts again, made like the first frame: where *Restart Chain* (`keyed`, its
    value at every frame) turns on, where the scene camera changes (markers bound to cameras), and at markers named
    "cut..." or "restart...". A cut shows something else, which warping the previous frame would only smear, and
    chains that share nothing render independently (on different machines with Ray). Never the range's first frame,
    which starts a chain anyway. Only in feedback mode, the one mode that chains, and clip and shot modes, where a cut
    ends one clip (shot) and starts the next. In shot mode also where a scene or movie strip of the edit starts or
    ends (a cut in the Sequencer); pins' markers are never cuts."""
    if settings.mode not in ("FEEDBACK", "CLIP", "SHOT"):
        return set()
    owned = timeline_pins.pin_markers(scene) if settings.mode == "SHOT" else set()
    marked = {m.frame for m in scene.timeline_markers
              if m.name.strip().lower().startswith(CUT_MARKERS) and m.name not in owned}
    if settings.mode == "SHOT":
        marked |= _strip_cuts(scene)
    cameras = [(r["camera"] or {}).get("name") for r in records]
    return {records[i]["frame"] for i in range(1, len(records))
            if (keyed[i] and not keyed[i - 1]) or cameras[i] != cameras[i - 1] or records[i]["frame"] in marked}


SHOT_STRIPS = ("SCENE", "MOVIE")  # the strips an edit cuts between (not images, text, sound, effects or ours)


def _strip_cuts(scene) -> set[int]:
    """The frames where an unmuted scene or movie strip starts, or the frame after it ends: the edit's cuts."""
    cuts = set()
    for strip in compat.all_strips(scene):
        if strip.type in SHOT_STRIPS and not strip.mute:
            cuts.update((compat.strip_start(strip), compat.strip_end(strip)))
    return cuts


def _depsgraph(scene: bpy.types.Scene):
    # The CLI's --scene may name a scene that is not the context's; use that scene's own evaluation then.
    if scene == bpy.context.scene:
        return bpy.context.evaluated_depsgraph_get()
    return scene.view_layers[0].depsgraph


def _frame_seeds(settings, evaluated: list[int]) -> list[int]:
    """Per-frame seeds from the seed behaviour; `evaluated` is the seed property at every frame."""
    return seeds.seed_sequence(settings.seed_behavior, evaluated[0], len(evaluated), settings.seed_iter_n,
                               schedule=evaluated)


def bake_scene(scene: bpy.types.Scene, output: str | None = None, model: str | None = None,
               passes: bool = True, progress=None) -> dict:
    """Evaluate the scene's frame range and return a validated plan. A read of the scene: the current frame is
    restored afterwards and nothing in the .blend changes (audio-driven keys are refreshed by Generate, not here).

    With `passes`, Blender also renders what the settings take from the scene (depth for 3D motion, the scene
    image for scene input, depth/normal/render for ControlNet units); `progress(done, total)` follows that.
    """
    s = scene.keyframe_diffusion
    spans = _check_scene(scene, s)
    folder = output_dir(scene, output)
    settings = _settings(scene, folder, model)
    sources = _FrameSources(
        spans=spans,
        units=_unit_strips(scene, s),
        input_strip=_input_strip(scene, s),
        mask_strip=_mask_strip(scene, s),
        mask_image=_mask_image_file(s, folder),
    )
    if s.mode == "SHOT":
        settings["pins"] = _pins(scene, s, folder)
    records, evaluated = _evaluate_frames(scene, s, settings, sources)
    evaluated_seeds, keyed_restarts = [e["seed"] for e in evaluated], [e["restart"] for e in evaluated]
    _first_frame_settings(settings, records, evaluated)
    try:
        for record, seed in zip(records, _frame_seeds(s, evaluated_seeds)):
            record["seed"] = seed
    except ValueError as e:
        raise BakeError(f"seed behaviour: {e}") from e
    restarts = _chain_restarts(scene, s, records, keyed_restarts)
    for record in records:
        if record["frame"] in restarts:
            record["restart"] = True
    if passes:
        _attach_passes(scene, s, records, [e["mask"] for e in evaluated], folder, progress)
    plan = {
        "schema": plan_mod.SCHEMA,
        "version": plan_mod.VERSION,
        "source": {"blend": bpy.data.filepath, "scene": scene.name, "blender": bpy.app.version_string},
        "settings": settings,
        "frames": records,
    }
    try:
        return plan_mod.validate(plan)
    except plan_mod.PlanError as e:
        raise BakeError(_name_pins(str(e), s)) from e


@dataclass
class _FrameSources:
    """Where the frames' prompts and images come from, found once before the frames are evaluated."""

    spans: list  # text strips holding prompts (Prompts From: Text Strips), else empty
    units: dict  # ControlNet unit index -> its image or movie strip
    input_strip: object | None  # video mode's input strip
    mask_strip: object | None
    mask_image: str | None


def _check_scene(scene, s) -> list:
    """Refuse what can't bake, before any frame is evaluated; returns the prompt text strips (if prompts come from
    text strips)."""
    from_strips = s.prompt_source == "TEXT_STRIPS"
    spans = text_prompts.spans(scene, s.prompt_channel, s.prompt_channels) if from_strips else []
    if from_strips and not spans:
        channels = text_prompts.channel_label(s.prompt_channel, s.prompt_channels)
        raise BakeError(f"no text strips on {channels}: add text strips there or choose other channels "
                        "(Prompts From: Text Strips)")
    if not from_strips and len(s.prompts) == 0:
        raise BakeError("the scene has no prompts: add one in the Keyframe Diffusion panel (Sequencer sidebar)")
    if s.width % 8 or s.height % 8:
        raise BakeError(f"width and height must be multiples of 8 (now {s.width}x{s.height})")
    return spans


def _input_strip(scene, s):
    if s.mode != "VIDEO" or s.init_source != "STRIP":
        return None
    try:
        return inputs.find_input_strip(scene, s.init_strip)
    except inputs.InputError as e:
        raise BakeError(f"video input: {e}") from None


def _evaluate_frames(scene, s, settings: dict, sources: _FrameSources) -> tuple[list[dict], list[dict]]:
    """One record per frame of the Frame Range, as Blender evaluates the scene there, and what else is read at every
    frame for the whole plan: the seed property, Restart Chain and the mask settings (for index passes, attached after
    they render). The current frame is put back afterwards."""
    current, subframe = scene.frame_current, scene.frame_subframe
    records, evaluated = [], []
    first, last = settings["frame_start"], settings["frame_end"]
    try:
        for frame in range(first, last + 1):
            scene.frame_set(frame)
            records.append(_frame_record(scene, s, settings, sources, frame))
            evaluated.append({"seed": s.seed, "restart": s.restart_chain,
                              "mask": {"index": s.mask_index, "invert": s.mask_invert, "blur": s.mask_blur}})
    finally:
        scene.frame_set(current, subframe=subframe)
    return records, evaluated


def _first_frame_settings(settings: dict, records: list[dict], evaluated: list[dict]) -> None:
    """The plan's settings-wide values of the settings that became per-frame: the first frame's (never the playhead's),
    for plans read by engines that predate the per-frame fields and so that unkeyed frames keep their hashes."""
    settings["plane_distance"] = records[0]["motion"]["plane_distance"]
    settings["coherence_every"] = records[0]["image"]["coherence_every"]
    settings["mask_blur"] = evaluated[0]["mask"]["blur"]


def _frame_record(scene, s, settings: dict, sources: _FrameSources, frame: int) -> dict:
    """The plan record of the frame the scene is at now."""
    from_strips = s.prompt_source == "TEXT_STRIPS"
    prompts = _strip_prompts(s, sources.spans, frame) if from_strips else _key_prompts(s)
    if not prompts:
        channels = text_prompts.channel_label(s.prompt_channel, s.prompt_channels)
        where = (f"no text strip on {channels} covers it" if from_strips
                 else "no prompt has a weight above 0 (add a prompt or key a weight there)")
        raise BakeError(f"frame {frame}: {where}")
    # Asked after frame_set: a scene that isn't the window's has its depsgraph only once evaluated.
    record = {"frame": frame, "prompts": prompts, **_frame_values(s),
              "camera": _camera_record(scene, _depsgraph(scene))}
    if settings["controlnets"]:
        record["control"] = _control_entries(s, sources.units, frame)
    if sources.input_strip is not None:
        try:
            record["init"] = inputs.strip_frame(sources.input_strip, frame)
        except inputs.InputError as e:
            raise BakeError(f"video input: {e}") from None
    mask = _mask_entry(s, sources.mask_strip, sources.mask_image, frame)
    if mask is not None:
        record["mask"] = mask
    if s.mode == "SHOT" and s.video_control in CONTROL_PASSES:  # rendered with the passes (_attach_passes)
        record["control_frame"] = {"path": scene_passes.pass_path(settings["output_dir"],
                                                                  CONTROL_PASSES[s.video_control], frame)}
    return record


def write_plan(scene: bpy.types.Scene, output: str | None = None, model: str | None = None,
               progress=None) -> tuple[str, dict]:
    """Bake (passes included) and write output_dir/plan.json; returns its path and the plan."""
    plan = bake_scene(scene, output, model, progress=progress)
    folder = plan["settings"]["output_dir"]
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "plan.json")
        plan_mod.save(plan, path)
    except OSError as e:
        raise BakeError(f"can't write the plan into '{folder}': {e.strerror}") from e
    return path, plan
