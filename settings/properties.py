"""Scene settings (`scene.keyframe_diffusion`) and prompt keys. Numeric settings are animatable: keyframe them."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import compat
from ..engine import vocabulary as vocab
from ..engine.plan import EMBEDDED_MODEL, MAX_FRAME
from ..engine.plan import (CONTROL_RANGES, FRAME_RANGES, IMAGE_RANGES, LORA_RANGES, MOTION_RANGES, PIN_RANGES,
                           PROMPT_RANGES, SETTINGS_RANGES, UPSCALE_RANGES)

PATH_OPTIONS = compat.path_options()  # '//' (relative to the .blend) paths are welcome in these

# Every per-frame setting: property name -> (group in the plan's frame record or None for top level, key).
# The bake reads each at every frame, so F-curves, modifiers, drivers and NLA all count. New features add theirs here.
FRAME_PARAMS: dict[str, tuple[str | None, str]] = {
    "steps": (None, "steps"),
    "guidance": (None, "guidance"),
    "guidance_rescale": (None, "guidance_rescale"),
    "strength": (None, "strength"),
    "guide": (None, "guide"),  # flow-guided video: the share of the previous output carried along the motion
    "zoom": ("motion", "zoom"),
    "angle": ("motion", "angle"),
    "translation_x": ("motion", "translation_x"),
    "translation_y": ("motion", "translation_y"),
    "translation_z": ("motion", "translation_z"),
    "transform_center_x": ("motion", "transform_center_x"),
    "transform_center_y": ("motion", "transform_center_y"),
    "rotation_3d_x": ("motion", "rotation_3d_x"),
    "rotation_3d_y": ("motion", "rotation_3d_y"),
    "rotation_3d_z": ("motion", "rotation_3d_z"),
    "fov": ("motion", "fov"),
    "plane_distance": ("motion", "plane_distance"),  # 3D: the plane standing in for the world background
    "noise": ("image", "noise"),
    "contrast": ("image", "contrast"),
    "color_coherence_amount": ("image", "color_coherence_amount"),
    "coherence_scale": ("image", "coherence_scale"),
    "coherence_alpha": ("image", "coherence_alpha"),
    "coherence_every": ("image", "coherence_every"),
}
# Also baked per frame, into the frame's mask: mask_index, mask_invert and mask_blur; restart_chain as restart edges.
# Properties a user may keyframe (the seed is baked through its behaviour, see engine/seeds.py). Every other setting is
# made with options=FIXED: the engine takes one value of it for the whole render, and a key would make the plan (and
# its frame hashes) depend on where the playhead stood when it was baked (tests/blender/test_animatable.py).
ANIMATABLE = (*FRAME_PARAMS, "seed")
FIXED: set[str] = set()  # Blender's options without 'ANIMATABLE'
ONE_VALUE = "Not animatable: the engine uses one value for the whole render"



def _bounds(limits) -> dict:
    """A property's hard min and max: the plan's range for its field, so Blender never lets a user set a value the
    engine refuses (engine/plan.py)."""
    return {"min": limits.low, "max": limits.high}


def enum_items(choices: tuple[vocab.Choice, ...]) -> list[tuple[str, str, str]]:
    """EnumProperty items from one of the engine's vocabularies: the enum is the engine's list, never a copy."""
    return [tuple(choice) for choice in choices]


SEED_BEHAVIORS = enum_items(vocab.SEED_BEHAVIORS)


class KD_PromptKey(bpy.types.PropertyGroup):
    text: StringProperty(name="Prompt", description="What to show at this key")
    negative: StringProperty(name="Negative", description="What to avoid (empty: the scene's negative prompt)")
    frame: IntProperty(options=FIXED, name="Frame", description="Frame where this prompt is at full weight (not "
                       "animatable: key the Weight to move a prompt in time)")
    weight: FloatProperty(
        name="Weight",
        description="How much of this prompt is in the frame; keyframed to crossfade between prompts",
        default=1.0,
        min=0.0,
        max=PROMPT_RANGES["weight"].high,
        soft_max=1.0,
    )
    seed: IntProperty(name="Seed", description="Seed of this prompt's starting noise", default=0, min=0)


# Audio analysis choices, shared by audio links and the audio operators.
AUDIO_FEATURES = enum_items(vocab.AUDIO_FEATURES)
AUDIO_PARTS = enum_items(vocab.AUDIO_PARTS)
AUDIO_REDUCES = enum_items(vocab.AUDIO_REDUCES)
AUDIO_SHAPES = enum_items(vocab.AUDIO_SHAPES)


class KD_AudioLink(bpy.types.PropertyGroup):
    """Audio driving one animatable property: re-applied when its sound strip moves or is trimmed."""

    strip: StringProperty(name="Sound Strip", description="Sound strip whose audio drives the property")
    filepath: StringProperty(name="Audio File", subtype="FILE_PATH", options=PATH_OPTIONS,
                             description="Audio file (used when no strip is named); its time 0 is the scene's start")
    id_type: StringProperty(name="Data", default="scenes", description="bpy.data collection of the animated ID")
    id_name: StringProperty(name="ID", description="Name of the animated ID (empty: the link's scene)")
    data_path: StringProperty(name="Path", description="Property path from the ID, e.g. keyframe_diffusion.zoom")
    index: IntProperty(options=FIXED, name="Index", default=0, min=0,
                        description="Component of a vector property (0 for a single value)")
    feature: EnumProperty(options=FIXED, name="Feature", default="onset", items=AUDIO_FEATURES,
                          description="What of the sound drives the value")
    part: EnumProperty(options=FIXED, name="Part", default="full", items=AUDIO_PARTS,
                       description="Which part of the sound is analysed: all of it, or its drums or tones alone")
    margin: FloatProperty(options=FIXED, name="HPSS Margin", default=1.0, min=1.0, soft_max=10.0,
                          description="Above 1 separates percussive and harmonic parts more strictly")
    reduce: EnumProperty(options=FIXED, name="Reduce", default="max", items=AUDIO_REDUCES,
                         description="How the frequency bins of the band are combined into one value per frame")
    fmin: FloatProperty(options=FIXED, name="Low Hz", default=0.0, min=0.0, description="Band low edge (0: from 0 Hz)")
    fmax: FloatProperty(options=FIXED,
                        name="High Hz", default=0.0, min=0.0, description="Band high edge (0: up to Nyquist); "
                        "e.g. 20-150 Hz for kick drums")
    shape: EnumProperty(options=FIXED, name="Shape", default="pulse", items=AUDIO_SHAPES,
                        description="How the analysed sound becomes the curve of keys")
    low: FloatProperty(options=FIXED, name="Low", default=0.0, description="Value at silence (ramp: at the start)")
    high: FloatProperty(options=FIXED,
                        name="High", default=1.0, description="Value at the loudest frame (ramp: at the end)")
    attack: FloatProperty(options=FIXED, name="Attack", default=0.0, min=0.0, description="Frames to rise (0: instant)")
    release: FloatProperty(options=FIXED,
                           name="Release", default=0.0, min=0.0, description="Frames to fall back (0: instant)")
    smooth: IntProperty(options=FIXED,
                        name="Smooth", default=0, min=0, description="Moving-average width in frames (0: off)")
    # Where the keys were written and where the strip was then: a moved strip is re-applied.
    applied_first: IntProperty(options=FIXED, default=0, description="First frame the keys were written for")
    applied_last: IntProperty(options=FIXED, default=-1, description="Last frame the keys were written for")
    applied_state: StringProperty(default="", description="The sound strip's place and trims when the keys were "
                                   "written (a change re-applies them)")


CONTROL_SOURCES = [
    ("DEPTH", "Depth Pass", "Blender's depth (Z) pass of the scene from the camera, near = bright"),
    ("NORMAL", "Normal Pass", "Blender's normal pass of the scene, in camera space"),
    ("RENDER", "Scene Render", "Blender's render of the scene (with the unit's preprocessor, e.g. Canny)"),
    ("INIT", "Init Frame", "The frame's init image: the warped previous frame (Feedback) or the input frame (Video)"),
    ("STRIP", "Strip", "An image or movie strip's frame at the scene frame"),
]
CONTROL_PREPROCESSORS = enum_items(vocab.IMAGE_PREPROCESSORS)


class KD_ControlUnit(bpy.types.PropertyGroup):
    """One ControlNet unit: a model, where its conditioning image comes from, and an animatable scale."""

    model: StringProperty(name="ControlNet", description="ControlNet model folder or Hugging Face id, e.g. "
                          "lllyasviel/control_v11f1p_sd15_depth")
    source: EnumProperty(options=FIXED, name="Source", items=CONTROL_SOURCES, default="DEPTH",
                         description="Where the unit's conditioning image comes from at each frame")
    preprocessor: EnumProperty(options=FIXED, name="Preprocessor", items=CONTROL_PREPROCESSORS, default="NONE",
                               description="Applied to render, init and strip images (passes need none)")
    strip: StringProperty(name="Strip", description="Image or movie strip that gives the conditioning images")
    scale: FloatProperty(name="Scale", default=1.0, min=0.0, max=CONTROL_RANGES["scale"].high, soft_max=2.0,
                         description="Conditioning scale (animatable)")
    start: FloatProperty(name="Start", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                         description="Share of the denoising steps before the unit starts (animatable)")
    end: FloatProperty(name="End", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                       description="Share of the denoising steps after which the unit stops (animatable)")
    enabled: BoolProperty(options=FIXED, name="Enabled", default=True,
                          description="Use this ControlNet in the render")


class KD_Lora(bpy.types.PropertyGroup):
    path: StringProperty(name="LoRA", subtype="FILE_PATH", options=PATH_OPTIONS,
                         description="LoRA weights (.safetensors)")
    scale: FloatProperty(options=FIXED, name="Scale", default=1.0, soft_min=-1.0, soft_max=2.0,
                         **_bounds(LORA_RANGES["scale"]),
                         description="Weight of the adapter. " + ONE_VALUE + " (LoRAs are weighted once per render)")


# Shot mode's pins. A pin owns a timeline marker named PIN_MARKER_PREFIX + its label: the marker IS the pin's frame
# (move it in the timeline and the pin moves). A deleted or renamed marker leaves the pin at its stored frame, the
# frame it had when it was last set or synced (timeline/pins.py), and the panel says so.
PIN_MARKER_PREFIX = "Pin: "
PIN_SOURCES = enum_items(vocab.PIN_SOURCES)


def pin_marker(pin):
    """The timeline marker a pin owns, or None (deleted, renamed, or a pin not yet given one)."""
    return pin.id_data.timeline_markers.get(pin.marker) if pin.marker else None


def _pin_frame_get(self) -> int:
    marker = pin_marker(self)
    return marker.frame if marker is not None else self.stored_frame


def _pin_frame_set(self, value: int) -> None:
    marker = pin_marker(self)
    if marker is not None:
        marker.frame = value
    self.stored_frame = value


def unique_pin_label(scene, label: str, pin=None) -> str:
    """`label`, or `label 2`, `label 3`...: one no other pin (nor another marker) has, so each pin owns its marker."""
    own = pin.marker if pin is not None else None
    taken = {p.marker for p in scene.keyframe_diffusion.pins if pin is None or p.as_pointer() != pin.as_pointer()}
    taken |= {m.name for m in scene.timeline_markers if m.name != own}
    base, n = label.strip() or "Pin", 1
    label = base
    while PIN_MARKER_PREFIX + label in taken:
        n += 1
        label = f"{base} {n}"
    return label


def _pin_label_update(self, context) -> None:
    """A renamed pin renames its marker (and keeps owning it); a label another pin has gets a number."""
    name = PIN_MARKER_PREFIX + self.name
    if name == self.marker:
        return
    unique = unique_pin_label(self.id_data, self.name, self)
    if unique != self.name:
        self.name = unique  # updates again, with the free label
        return
    marker = pin_marker(self)
    if marker is not None:
        marker.name = name
    self.marker = name


class KD_Pin(bpy.types.PropertyGroup):
    """A picture pinned at a timeline frame: shot mode's video model holds the shot to it there."""

    name: StringProperty(name="Label", update=_pin_label_update,
                         description="The pin's name; its timeline marker is named \"" + PIN_MARKER_PREFIX
                         + "<label>\"")
    source: EnumProperty(options=FIXED, name="Source", items=PIN_SOURCES, default="RENDER",
                         description="Where the pinned picture comes from")
    filepath: StringProperty(name="Image", subtype="FILE_PATH", options=PATH_OPTIONS,
                             description="Image File: the picture pinned at the frame")
    strip: StringProperty(name="Strip", description="Strip: the image or movie strip whose picture at the pin's frame "
                          "is pinned")
    strength: FloatProperty(options=FIXED, name="Strength", default=1.0, min=0.0, max=PIN_RANGES["strength"].high,
                            subtype="FACTOR", description="How strongly the shot is held to the picture at its frame "
                            "(1: exactly; lower: a looser guide, where the model takes it). " + ONE_VALUE)
    frame: IntProperty(options=FIXED, name="Frame", get=_pin_frame_get, set=_pin_frame_set,
                       **_bounds(PIN_RANGES["frame"]),
                       description="The frame the picture is pinned at: its timeline marker's frame (move the marker "
                       "to move the pin)")
    stored_frame: IntProperty(options=FIXED, name="Stored Frame", **_bounds(PIN_RANGES["frame"]),
                              description="The pin's frame when its marker is gone (kept in step with the marker)")
    marker: StringProperty(name="Marker", description="Name of the timeline marker that is the pin's frame")
    token: StringProperty(name="Token", description="Names the folder where a Generated Frame pin keeps its copy of "
                          "the frame (a new pin takes a new copy)")


class KD_Settings(bpy.types.PropertyGroup):
    mode: EnumProperty(
        options=FIXED,
        name="Mode",
        description="How frames are made: crossfading prompts, each frame from the last, from a video or the scene, "
        "or whole clips by a video model",
        items=enum_items(vocab.MODES),
        default="INTERPOLATE",
    )
    camera_source: EnumProperty(
        options=FIXED,
        name="Camera", default="SCENE",
        description="3D motion: the scene camera's own movement, or the Translation and Rotation values below",
        items=enum_items(vocab.CAMERA_SOURCES))
    depth_source: EnumProperty(
        options=FIXED,
        name="Depth", default="SCENE",
        description="3D motion: where the depth that moves each pixel comes from",
        items=enum_items(vocab.DEPTH_SOURCES))
    plane_distance: FloatProperty(name="Plane Distance", default=10.0, min=0.001, soft_max=1000.0, unit="LENGTH",
                                  max=MOTION_RANGES["plane_distance"].high,
                                  description="3D: distance of the plane that stands in for the world background "
                                  "(and for everything when Depth is Plane)")
    init_source: EnumProperty(
        options=FIXED,
        name="Input", default="STRIP",
        description="Video mode: what each frame starts from",
        items=[("STRIP", "Strip", "A movie or image strip's frame at each scene frame (trims and offsets count)"),
               ("SCENE", "Scene Render", "Blender's render of the scene at each frame")])
    init_strip: StringProperty(name="Input Strip", description="Movie or image strip whose frames are the inputs")
    flow_guide: BoolProperty(
        options=FIXED, name="Follow Motion", default=False,
        description="Video mode: each frame starts from its input blended with the previous frame's output moved along "
        "the motion (Blender's Vector pass for the scene render, optical flow for a strip), where both frames see "
        "the same thing: less flicker. Frames then render in order, one at a time. Feedback 3D with the scene "
        "camera: the previous frame moves along Blender's Vector pass, so objects that move by themselves carry "
        "their look too, not only what the camera's motion and depth explain")
    guide: FloatProperty(
        name="Motion Guidance", default=0.5, min=0.0, max=1.0,
        description="Follow Motion: how much of the previous output, moved along the motion, each frame starts from "
        "(0: only its input). Animatable")
    warp_noise: BoolProperty(
        options=FIXED, name="Move Noise", default=False,
        description="Follow Motion: each frame's noise is the previous frame's moved along the motion too, so "
        "generated texture travels with the surface instead of staying on the screen")
    fusion: FloatProperty(
        options=FIXED, name="Latent Fusion", default=0.0, min=0.0, max=1.0,
        description="Follow Motion: after every denoising step, pull what the previous frame also saw towards its "
        "output moved along the motion (0: off; higher: steadier, less room for change)")
    anchor_attention: BoolProperty(
        options=FIXED, name="Anchor Attention", default=False,
        description="Follow Motion: the model's self-attention also looks at the first frame of the chain, so later "
        "frames draw their textures from the same source (costs memory for its features and a little time)")
    init_image: StringProperty(name="First Frame", subtype="FILE_PATH", options=PATH_OPTIONS,
                               description="Feedback: image the first frame starts from (empty: from noise)")
    color_reference: StringProperty(name="Color Reference", subtype="FILE_PATH", options=PATH_OPTIONS,
                                    description="Image whose colours frames keep (empty: the first frame)")
    coherence_every: IntProperty(name="Coherence Every", default=1, min=1, max=100,
                                 description="Apply the latent coherence pull every N denoising steps")
    scheduler_kwargs: StringProperty(name="Scheduler Options", description="Extra scheduler arguments as a JSON "
                                     "object, e.g. {\"use_karras_sigmas\": true}")
    pipeline_kwargs: StringProperty(name="Pipeline Options", description="Extra pipeline arguments as a JSON "
                                    "object, e.g. {\"eta\": 0.3}")
    controlnets: CollectionProperty(type=KD_ControlUnit, description="ControlNet units guiding every frame")
    active_controlnet: IntProperty(options=FIXED, default=0, description="The ControlNet unit shown for editing")
    loras: CollectionProperty(type=KD_Lora, description="LoRA adapters applied to the model")
    active_lora: IntProperty(options=FIXED, default=0, description="The LoRA shown for editing")
    model: StringProperty(
        name="Model",
        description=f"Diffusers model folder or Hugging Face id ('{EMBEDDED_MODEL}': the built-in model trained on "
        "flat shapes, 64x64)",
        default=EMBEDDED_MODEL,
    )
    output_dir: StringProperty(
        name="Output",
        description="Folder for the plan, the frames and their manifest",
        default="//keyframe_diffusion/",
        subtype="DIR_PATH",
        options=PATH_OPTIONS,
    )
    width: IntProperty(options=FIXED, name="Width", default=64, min=8, max=4096, step=8,
                       description="Frame width in pixels, a multiple of 8. " + ONE_VALUE)
    height: IntProperty(options=FIXED, name="Height", default=64, min=8, max=4096, step=8,
                        description="Frame height in pixels, a multiple of 8. " + ONE_VALUE)
    # Defaults: the default model's own settings (engine/shapes/model/training.json); other models' come from
    # Use Recommended Settings (engine/models/recommend.py).
    steps: IntProperty(name="Steps", description="Denoising steps (animatable)", default=30, min=1, max=200)
    guidance: FloatProperty(name="Guidance", description="Classifier-free guidance scale (animatable)",
                            default=6.0, min=0.0, soft_max=20.0, max=FRAME_RANGES["guidance"].high)
    strength: FloatProperty(
        name="Strength",
        description="How much of each frame is diffused again: 0 keeps the init frame, 1 ignores it (diffusers' "
        "direction; Deforum's strength is 1 minus this). Animatable; unused by Interpolate",
        default=0.6, min=0.0, max=1.0,
    )
    seed: IntProperty(name="Seed", description="Frame seed (animatable); with Fixed latents, the noise of every frame",
                      default=0, min=0)
    seed_behavior: EnumProperty(options=FIXED, name="Seed Behavior", items=SEED_BEHAVIORS, default="SCHEDULE",
                                description="How the frame seed changes from frame to frame")
    seed_iter_n: IntProperty(options=FIXED,
                             name="Every N Frames", description="Iter: frames per seed step. " + ONE_VALUE,
                             default=1, min=1)
    guidance_rescale: FloatProperty(
        name="CFG Rescale",
        description="Rescale of classifier-free guidance against over-exposure, 0 = off (animatable)",
        default=0.0, min=0.0, max=1.0)
    # Motion (feedback mode), per frame, with Deforum's names, units and meaning so schedules import one to one.
    motion_mode: EnumProperty(options=FIXED, name="Motion", items=enum_items(vocab.MOTION_MODES), default="2D",
                              description="Feedback: how the previous frame moves before the next is diffused")
    zoom: FloatProperty(
        name="Zoom", default=1.0, soft_min=0.5, soft_max=2.0, min=0.001, max=MOTION_RANGES["zoom"].high,
        description="Scale per frame, 1 = still, above 1 moves in (animatable)",
    )
    angle: FloatProperty(
        name="Angle", default=0.0, **_bounds(MOTION_RANGES["angle"]),
        description="Rotation per frame in degrees, positive is counter-clockwise (animatable)",
    )
    translation_x: FloatProperty(
        name="Translation X", default=0.0, **_bounds(MOTION_RANGES["translation_x"]),
        description="2D: pixels per frame, positive moves the image right; 3D: Deforum units per frame (animatable)",
    )
    translation_y: FloatProperty(
        name="Translation Y", default=0.0, **_bounds(MOTION_RANGES["translation_y"]),
        description="2D: pixels per frame, positive moves the image down (Deforum's sign); 3D: units (animatable)",
    )
    translation_z: FloatProperty(
        name="Translation Z", default=0.0, **_bounds(MOTION_RANGES["translation_z"]),
        description="3D: units per frame towards the view (animatable)",
    )
    transform_center_x: FloatProperty(
        name="Center X", default=0.5, **_bounds(MOTION_RANGES["transform_center_x"]),
        description="2D rotation and zoom centre, 0-1 of the width (animatable)",
    )
    transform_center_y: FloatProperty(
        name="Center Y", default=0.5, **_bounds(MOTION_RANGES["transform_center_y"]),
        description="2D rotation and zoom centre, 0-1 of the height (animatable)",
    )
    rotation_3d_x: FloatProperty(
        name="Rotation X", default=0.0, **_bounds(MOTION_RANGES["rotation_3d_x"]),
        description="3D: degrees per frame about X (animatable)",
    )
    rotation_3d_y: FloatProperty(
        name="Rotation Y", default=0.0, **_bounds(MOTION_RANGES["rotation_3d_y"]),
        description="3D: degrees per frame about Y (animatable)",
    )
    rotation_3d_z: FloatProperty(
        name="Rotation Z", default=0.0, **_bounds(MOTION_RANGES["rotation_3d_z"]),
        description="3D: degrees per frame about Z (animatable)",
    )
    fov: FloatProperty(
        name="FOV", default=40.0, min=1.0, max=179.0,
        description="3D: field of view in degrees when the scene has no camera (animatable)",
    )
    border: EnumProperty(options=FIXED, name="Border", items=enum_items(vocab.BORDERS), default="REPLICATE",
                         description="How 2D motion fills pixels that come from outside the frame")
    cadence: IntProperty(options=FIXED,
                         name="Cadence", default=1, min=1, max=50,
                         description="Diffuse every Nth frame (and the last), warp-blend the ones between: "
                         "feedback along its motion, Follow Motion along the flow. " + ONE_VALUE)
    restart_chain: BoolProperty(
        name="Restart Chain",
        description="Feedback: key it on at a frame to start the chain again there, made like the first frame (init "
                    "image or text-to-image); one restart for as long as it stays on (animatable)",
        default=False,
    )
    noise: FloatProperty(
        name="Noise", default=0.02, min=0.0, soft_max=1.0, max=IMAGE_RANGES["noise"].high,
        description="Noise added to the previous frame before img2img (animatable)",
    )
    contrast: FloatProperty(
        name="Contrast", default=1.0, min=0.0, soft_max=2.0, max=IMAGE_RANGES["contrast"].high,
        description="Contrast applied to the previous frame, 1 = unchanged (animatable)",
    )
    color_coherence: EnumProperty(options=FIXED, name="Color Coherence",
                                  items=enum_items(vocab.COLOR_MODES), default="NONE",
                                  description="Match each frame's colour histogram to the first frame's")
    color_coherence_amount: FloatProperty(
        name="Coherence Amount", default=1.0, min=0.0, max=1.0,
        description="How much of the colour match is applied, 0-1 (animatable)",
    )
    coherence_scale: FloatProperty(
        name="Latent Coherence", default=0.0, min=0.0, soft_max=1000.0, max=IMAGE_RANGES["coherence_scale"].high,
        description="Pull of the latents towards the previous frame's, 0 = off (animatable)",
    )
    coherence_alpha: FloatProperty(
        name="Coherence Alpha", default=1.0, min=0.0, max=1.0,
        description="How fast the coherence target follows new frames, 0-1 (animatable)",
    )
    prompt_source: EnumProperty(
        options=FIXED,
        name="Prompts From",
        description="Where the prompts come from: the prompt list, or text strips in the Sequencer",
        items=[("KEYS", "Prompt Keys", "The prompt list with its keyed weights"),
               ("TEXT_STRIPS", "Text Strips", "Text strips on one Sequencer channel: a strip holds its prompt over its "
                "span, overlapping strips crossfade")],
        default="KEYS",
    )
    prompt_channel: IntProperty(options=FIXED,
                                name="Text Channel", description="First Sequencer channel whose text strips are the "
                                "prompts", default=3, min=1, max=128)
    prompt_channels: IntProperty(options=FIXED,
                                 name="Channels", description="How many channels from the first one hold prompt "
                                 "strips (strips on neighbouring channels overlap to crossfade)", default=2, min=1,
                                 max=32)
    # The range to render (timeline/frame_range.py answers it for the bake, Generate, the CLI and the render hook).
    frame_range: EnumProperty(
        options=FIXED,
        name="Frame Range",
        description="Which frames Generate renders",
        items=[("PROMPTS", "Prompt Keys", "From the first to the last prompt key (with Prompts From: Text Strips, "
                "the span of the prompt strips). With fewer than two prompt frames, the scene range: a single "
                "prompt means that prompt everywhere"),
               ("SCENE", "Scene", "The scene's Start to End"),
               ("PREVIEW", "Preview Range", "The timeline's preview range when it is on, else the scene's Start to "
                "End"),
               ("CUSTOM", "Custom", "The frames set in Custom Start and Custom End")],
        default="PROMPTS",
    )
    frame_custom_start: IntProperty(options=FIXED, name="Custom Start", default=1, min=0, max=MAX_FRAME,
                                    description="First frame Generate renders when Frame Range is Custom")
    frame_custom_end: IntProperty(options=FIXED, name="Custom End", default=24, min=0, max=MAX_FRAME,
                                  description="Last frame Generate renders when Frame Range is Custom")
    latent_source: EnumProperty(
        options=FIXED,
        name="Latents",
        description="Where each frame's starting noise comes from",
        items=enum_items(vocab.LATENT_SOURCES),
        default="PROMPT_SEEDS",
    )
    pace: BoolProperty(options=FIXED,
                       name="Even Pace", description="Interpolate: move the frames between two prompt keys so the "
                       "picture changes by even steps along the weight curve (a model often holds one prompt's "
                       "picture and flips to the other within one frame). Searches each crossfade once by rendering "
                       "extra frames; the result is kept in the output folder", default=False)
    scheduler: EnumProperty(
        options=FIXED,
        name="Scheduler",
        description="The denoising method (sampler); Model Default uses the model's own",
        items=enum_items(vocab.SCHEDULER_MENU),
        default="default",
    )
    scheduler_class: StringProperty(
        name="Scheduler Class",
        description="With Scheduler 'Other': a diffusers scheduler class name, e.g. DEISMultistepScheduler. Any class "
        "diffusers exports that the model's own scheduler lists as compatible (its 'compatibles'; for Stable "
        "Diffusion models diffusers' KarrasDiffusionSchedulers, and LCM and TCD); one that doesn't fit is refused "
        "with the list of those that do",
    )
    negative_prompt: StringProperty(name="Negative Prompt", description="Used by prompt keys without their own")
    batch_size: IntProperty(options=FIXED,
                            name="Batch", description="Frames rendered together. " + ONE_VALUE, default=4, min=1,
                            max=64)
    precision: EnumProperty(
        options=FIXED,
        name="Precision",
        description="The weights' number format",
        items=enum_items(vocab.PRECISIONS),
        default="auto",
    )
    channels_last: BoolProperty(options=FIXED,
                                name="Channels Last", description="NHWC weight layout: faster convolutions on "
                                "recent GPUs and CPUs", default=False)
    vae_slicing: BoolProperty(options=FIXED,
                              name="VAE Slicing", description="Decode a batch one frame at a time (less memory)",
                              default=False)
    vae_tiling: BoolProperty(options=FIXED,
                             name="VAE Tiling", description="Decode and encode large frames in overlapping tiles "
                             "(less memory; faint seams possible)", default=False)
    background_writes: BoolProperty(options=FIXED,
                                    name="Write in Background", description="Encode and save frames on a thread "
                                    "while the next ones denoise (a cancel keeps every frame already made)",
                                    default=False)
    overlap_decode: BoolProperty(options=FIXED,
                                 name="Decode While Denoising", description="Interpolate and video modes: decode "
                                 "each batch (and read the next video frames) on a thread while the next batch "
                                 "denoises", default=False)
    stream_batch: BoolProperty(options=FIXED,
                               name="Stream Batch", description="Video mode: frames at different denoising steps "
                               "share each UNet call (Batch Size frames), so keyed strength, steps or guidance don't "
                               "break batches. Stable Diffusion 1.x/2.x and SDXL models", default=False)
    compile: BoolProperty(options=FIXED,
                          name="Compile", description="torch.compile the UNet (CUDA graphs on CUDA): the first "
                          "frames of a new size compile for a while, the rest run faster", default=False)
    feature_reuse: IntProperty(options=FIXED,
                               name="Feature Reuse", description="Run the whole UNet only every this many denoising "
                               "steps and its shallow branch in between, reusing the deep features (DeepCache): "
                               "about 1.7-2x faster at 2, 2.1-3x at 3, but it changes the pictures slightly "
                               "(finished frames render again; use 30 steps or more). 0 or 1: off. Image models' "
                               "UNets, not clip mode or Compile",
                               default=0, min=0, soft_max=5, max=100)
    decoder: StringProperty(
        name="Fast Decoder",
        description="A tiny autoencoder (folder or Hugging Face id: madebyollin/taesd for SD 1.x/2.x, "
        "madebyollin/taesdxl for SDXL) in place of the model's VAE: much faster decoding, slightly softer frames. "
        "Empty: the model's own VAE",
    )
    device: EnumProperty(
        options=FIXED,
        name="Device",
        description="Where the engine runs: Auto takes the GPU when there is one",
        items=enum_items(vocab.DEVICES),
        default="auto",
    )
    use_ray: BoolProperty(
        options=FIXED,
        name="Distribute with Ray",
        description="Spread the frames over a Ray cluster: independent frames in batches, feedback chains whole "
                    "(the engine Python needs Ray: pip install -r requirements/ray.txt)",
        default=False,
    )
    ray_address: StringProperty(
        name="Cluster",
        description="Ray cluster address: auto, HOST:PORT or ray://HOST:10001. Empty: start Ray on this machine",
        default="",
    )
    ray_workers: IntProperty(options=FIXED,
                             name="Workers", description="How many Ray workers; 0: one per GPU of the cluster "
                             "(one per CPU when it has none)", default=0, min=0, max=4096)
    strip_name: StringProperty(name="Strip", description="Name of the image strip that holds the frames",
                               default="Keyframe Diffusion")
    strip_channel: IntProperty(options=FIXED, name="Channel", default=2, min=1, max=128,
                               description="Sequencer channel of the strip (the upscaled strip goes one above)")
    generate_before_render: BoolProperty(
        options=FIXED,
        name="Generate Before Render",
        description="When Blender renders, first generate the frames that are missing or out of date (blocking)",
        default=False,
    )
    # Live preview (slice E: engine/preview.py, panels/progress.py)
    live_preview: BoolProperty(
        options=FIXED,
        name="Live Preview",
        description="While generating, show the frame being denoised as it forms, in the sidebar and in an Image "
        "Editor showing \"Keyframe Diffusion Preview\" (a rough, cheap picture every few steps)",
        default=True,
    )
    # Clip mode (AnimateDiff / text-to-video)
    motion_adapter: StringProperty(
        name="Motion Adapter",
        description="AnimateDiff motion adapter (folder or Hugging Face id, e.g. guoyww/animatediff-motion-adapter-"
        "v1-5-2) for an SD 1.5 model. Empty for a text-to-video model (damo-vilab/text-to-video-ms-1.7b)")
    motion_loras: CollectionProperty(type=KD_Lora, description="Clip mode: motion LoRAs of the motion adapter")
    active_motion_lora: IntProperty(options=FIXED, default=0, description="The motion LoRA shown for editing")
    context_length: IntProperty(options=FIXED,
                                name="Context", description="Frames the motion model sees at once (AnimateDiff: "
                                "16); longer shots are denoised in overlapping windows of this length. " + ONE_VALUE,
                                default=16, min=2, max=128)
    context_overlap: IntProperty(options=FIXED,
                                 name="Overlap", default=4, min=0, max=127,
                                 description="Frames shared by neighbouring context windows. " + ONE_VALUE)
    free_noise: BoolProperty(options=FIXED,
                             name="FreeNoise", description="Every context window starts from a shuffle of the "
                             "first window's noise (FreeNoise): long shots stay consistent", default=True)
    cpu_offload: BoolProperty(options=FIXED,
                              name="CPU Offload", description="Keep each model on the GPU only while it runs "
                              "(much less GPU memory, slower)", default=False)
    # Shot mode (Wan 2.x / LTX-Video): pins, windows, memory, cache and the control video (the plan's settings of the
    # same names, engine/plan.py)
    pins: CollectionProperty(type=KD_Pin, description="Shot mode: pictures pinned at timeline frames")
    active_pin: IntProperty(options=FIXED, default=0, description="The pin shown for editing")
    shot_window: IntProperty(options=FIXED, name="Window", default=0, min=0,
                             max=SETTINGS_RANGES["shot_window"].high, soft_max=257,
                             description="Frames the video model makes at once; longer shots are made in "
                             "overlapping windows of this length (0: the model's own length, Wan 81, LTX 121). "
                             + ONE_VALUE)
    shot_overlap: IntProperty(options=FIXED, name="Overlap", default=8, min=0,
                              max=SETTINGS_RANGES["shot_overlap"].high, soft_max=64,
                              description="Frames shared by neighbouring windows of a long shot: the next window "
                              "continues from them. " + ONE_VALUE)
    chain_shots: BoolProperty(options=FIXED, name="Chain Shots", default=False,
                              description="Each shot starts from the last frames of the shot before it (a continuous "
                              "take across cuts); off: every shot is made on its own")
    memory_mode: EnumProperty(options=FIXED, name="Memory", items=enum_items(vocab.MEMORY_MODES), default="AUTO",
                              description="How the video model fits the GPU")
    memory_limit_gb: FloatProperty(options=FIXED, name="Memory Limit", default=0.0, min=0.0,
                                   max=SETTINGS_RANGES["memory_limit_gb"].high, soft_max=192.0, precision=1,
                                   description="Auto: the GPU memory in GB the model may use, in place of the "
                                   "device's free memory (0: the free memory)")
    video_cache: EnumProperty(options=FIXED, name="Cache", items=enum_items(vocab.VIDEO_CACHES), default="NONE",
                              description="Skip transformer work between denoising steps: faster, slightly "
                              "different pictures")
    video_control: EnumProperty(options=FIXED, name="Control Video", items=enum_items(vocab.VIDEO_CONTROLS),
                                default="NONE", description="What of Blender's scene drives the shot at every frame "
                                "(a VACE model's control video; the scene render is an LTX video condition too)")
    control_scale: FloatProperty(options=FIXED, name="Control Scale", default=1.0, min=0.0,
                                 max=SETTINGS_RANGES["control_scale"].high, soft_max=2.0,
                                 description="How strongly the control video drives the shot. " + ONE_VALUE)
    # Inpainting (feedback and video modes)
    mask_source: EnumProperty(
        options=FIXED,
        name="Mask", default="NONE",
        description="Inpainting: which part of each frame is repainted (the rest is kept)",
        items=[("NONE", "None", "No inpainting: the whole frame is diffused"),
               ("OBJECT_INDEX", "Object Index", "Repaint the objects whose Pass Index is Mask Index (Blender renders "
                "the object index pass at every frame)"),
               ("MATERIAL_INDEX", "Material Index", "Repaint the surfaces whose material Pass Index is Mask Index"),
               ("STRIP", "Strip", "A mask strip, or a movie or image strip: white is repainted"),
               ("IMAGE", "Image", "An image (painted in Blender or loaded): white is repainted, on every frame")])
    mask_index: IntProperty(name="Mask Index", description="The pass index of what to repaint", default=1, min=0,
                            max=32767)
    mask_strip: StringProperty(name="Mask Strip", description="Mask, movie or image strip whose frames are the masks")
    mask_image: PointerProperty(name="Mask Image", type=bpy.types.Image,
                                description="White is repainted (paint it in the Image Editor)")
    mask_invert: BoolProperty(name="Invert", description="Repaint the rest instead", default=False)
    mask_blur: IntProperty(name="Feather", description="Pixels of soft edge at the mask's border", default=4, min=0,
                           max=256, subtype="PIXEL")
    # The generated frames in the compositor (run/compositor.py): how the node group mixes them over the render. The
    # amounts (Factor, Index, Near, Far, Invert) are the group node's inputs, animatable there.
    compositor_mix: EnumProperty(
        options=FIXED, name="Mix", default="FACTOR",
        description="Where the generated frame shows over the render (Use Frames in Compositor applies it)",
        items=[("FACTOR", "Factor", "Everywhere, by the Factor (1: only the generated frame)"),
               ("OBJECT_INDEX", "Object Index", "The render stays on the objects whose Pass Index is Index (an ID "
                "mask; Cycles), the generated frame shows elsewhere"),
               ("MATERIAL_INDEX", "Material Index", "The render stays on the surfaces whose material Pass Index is "
                "Index (Cycles), the generated frame shows elsewhere"),
               ("DEPTH", "Depth", "Near keeps the render: closer than Near the render, beyond Far the generated frame, "
                "blended between"),
               ("MASK", "Mask", "A mask (the Mask editor's, or a mask strip's): white shows the generated frame"),
               ("IMAGE", "Painted Image", "An image painted in the Image Editor: white shows the generated frame")])
    compositor_mask: PointerProperty(name="Mask", type=bpy.types.Mask,
                                     description="Mask for the Mask mix: white shows the generated frame")
    compositor_mask_image: PointerProperty(name="Image", type=bpy.types.Image,
                                           description="Painted image for the Painted Image mix: white shows the "
                                           "generated frame")
    compositor_source: EnumProperty(
        options=FIXED, name="Frames", default="FRAMES", description="Which frames the compositor uses",
        items=[("FRAMES", "Generated", "The generated frames (the strip)"),
               ("UPSCALED", "Upscaled", "The upscale pass's frames (the Upscaled strip)")])
    # Depth-to-image models (SD 2 depth)
    use_scene_depth: BoolProperty(
        options=FIXED,
        name="Scene Depth",
        description="Render Blender's depth pass at every frame for a depth-to-image model (stabilityai/stable-"
        "diffusion-2-depth), which then follows the scene's true depth instead of an estimate", default=False)
    # Upscaling pass
    use_upscale: BoolProperty(options=FIXED, name="Upscale", description="Upscale finished frames into a second strip",
                              default=False)
    upscale_model: StringProperty(
        name="Upscaler", default="stabilityai/stable-diffusion-x4-upscaler",
        description="SD x4 upscaler or the x2 latent upscaler (stabilityai/sd-x2-latent-upscaler): folder or id")
    upscale_steps: IntProperty(options=FIXED,
                               name="Steps", default=20, min=1, max=200,
                               description="Upscaler denoising steps. " + ONE_VALUE)
    upscale_guidance: FloatProperty(options=FIXED, name="Guidance", default=9.0, min=0.0, soft_max=20.0,
                                    max=UPSCALE_RANGES["guidance"].high,
                                    description="Upscaler guidance scale (0 for the latent upscaler). " + ONE_VALUE)
    upscale_noise_level: IntProperty(options=FIXED, name="Noise Level", default=20, min=0, max=350,
                                     description="x4 upscaler: noise added to the low-resolution frame (more "
                                     "invents more detail). " + ONE_VALUE)
    prompts: CollectionProperty(type=KD_PromptKey, description="Prompt keys: a prompt at full weight at its frame")
    active_prompt: IntProperty(options=FIXED, name="Active Prompt", default=0,
                                description="The prompt key shown for editing")
    audio_links: CollectionProperty(type=KD_AudioLink, description="Sounds driving animatable settings")
    active_audio_link: IntProperty(options=FIXED, name="Active Audio Link", default=0,
                                    description="The audio link shown for editing")


class KD_Status(bpy.types.PropertyGroup):
    """What the panel shows of a running generation (window manager, not saved in the .blend)."""

    running: BoolProperty(options=FIXED, default=False, description="A generation is running")
    progress: FloatProperty(options=FIXED, default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                            description="Share of the generation done")
    message: StringProperty(default="", description="What the generation is doing, or why it stopped")
    # Elapsed time and estimate (slice E: panels/progress.py; GenerateJob.timing ticks them between events)
    detail: StringProperty(options=FIXED, default="", description="The step being denoised, without the timing")
    elapsed: FloatProperty(options=FIXED, default=0.0, min=0.0, description="Seconds since the generation started")
    eta: FloatProperty(options=FIXED, default=-1.0, min=-1.0,
                       description="Seconds left, estimated from the steps done so far (-1: not known yet)")
    preview: StringProperty(options=FIXED, default="",
                            description="What the live preview shows (empty: no preview of this generation yet)")
    error: StringProperty(default="", description="Why the last generation failed, in full (empty: it didn't)")


classes = (KD_PromptKey, KD_AudioLink, KD_ControlUnit, KD_Lora, KD_Pin, KD_Settings, KD_Status)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.keyframe_diffusion = PointerProperty(type=KD_Settings)
    bpy.types.WindowManager.keyframe_diffusion_status = PointerProperty(type=KD_Status)


def unregister() -> None:
    del bpy.types.WindowManager.keyframe_diffusion_status
    del bpy.types.Scene.keyframe_diffusion
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
