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

from .engine.plan import EMBEDDED_MODEL

# Properties a user may keyframe; the bake reads each at every frame. Later features add theirs here.
ANIMATABLE = ("steps", "guidance", "strength", "seed")


class KD_PromptKey(bpy.types.PropertyGroup):
    text: StringProperty(name="Prompt", description="What to show at this key")
    negative: StringProperty(name="Negative", description="What to avoid (empty: the scene's negative prompt)")
    frame: IntProperty(name="Frame", description="Frame where this prompt is at full weight")
    weight: FloatProperty(
        name="Weight",
        description="How much of this prompt is in the frame; keyframed to crossfade between prompts",
        default=1.0,
        min=0.0,
        soft_max=1.0,
    )
    seed: IntProperty(name="Seed", description="Seed of this prompt's starting noise", default=0, min=0)


class KD_Settings(bpy.types.PropertyGroup):
    mode: EnumProperty(
        name="Mode",
        items=[("INTERPOLATE", "Interpolate", "Blend seeded latents and prompt embeddings between prompt keys")],
        default="INTERPOLATE",
    )
    model: StringProperty(
        name="Model",
        description=f"Diffusers model folder or Hugging Face id ('{EMBEDDED_MODEL}' is the built-in tiny model)",
        default=EMBEDDED_MODEL,
    )
    output_dir: StringProperty(
        name="Output",
        description="Folder for the plan, the frames and their manifest",
        default="//keyframe_diffusion/",
        subtype="DIR_PATH",
    )
    width: IntProperty(name="Width", default=64, min=8, max=4096, step=8)
    height: IntProperty(name="Height", default=64, min=8, max=4096, step=8)
    steps: IntProperty(name="Steps", description="Denoising steps (animatable)", default=4, min=1, max=200)
    guidance: FloatProperty(name="Guidance", description="Classifier-free guidance scale (animatable)",
                            default=7.5, min=0.0, soft_max=20.0)
    strength: FloatProperty(
        name="Strength",
        description="How far img2img modes move away from the init frame (animatable; unused by Interpolate)",
        default=0.6, min=0.0, max=1.0,
    )
    seed: IntProperty(name="Seed", description="Frame seed (animatable); with Fixed latents, the noise of every frame",
                      default=0, min=0)
    latent_source: EnumProperty(
        name="Latents",
        items=[
            ("PROMPT_SEEDS", "Prompt Seeds", "Slerp between the seeded noise of each prompt key"),
            ("FIXED", "Fixed", "One noise from the frame seed for every frame"),
        ],
        default="PROMPT_SEEDS",
    )
    scheduler: EnumProperty(
        name="Scheduler",
        items=[
            ("default", "Model Default", "The scheduler the model was saved with"),
            ("ddim", "DDIM", ""),
            ("euler", "Euler", ""),
            ("euler_a", "Euler Ancestral", ""),
            ("dpm++", "DPM++ 2M", ""),
            ("pndm", "PNDM", ""),
            ("lcm", "LCM", "For LCM-distilled models"),
        ],
        default="default",
    )
    negative_prompt: StringProperty(name="Negative Prompt", description="Used by prompt keys without their own")
    batch_size: IntProperty(name="Batch", description="Frames rendered together", default=4, min=1, max=64)
    device: EnumProperty(
        name="Device",
        items=[("auto", "Auto", "CUDA, then MPS, then CPU"), ("cuda", "CUDA", ""), ("mps", "MPS", ""),
               ("cpu", "CPU", "")],
        default="auto",
    )
    strip_name: StringProperty(name="Strip", description="Name of the image strip that holds the frames",
                               default="Keyframe Diffusion")
    strip_channel: IntProperty(name="Channel", default=2, min=1, max=128)
    generate_before_render: BoolProperty(
        name="Generate Before Render",
        description="When Blender renders, first generate the frames that are missing or out of date (blocking)",
        default=False,
    )
    prompts: CollectionProperty(type=KD_PromptKey)
    active_prompt: IntProperty(name="Active Prompt", default=0)


class KD_Status(bpy.types.PropertyGroup):
    """What the panel shows of a running generation (window manager, not saved in the .blend)."""

    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(default="")


classes = (KD_PromptKey, KD_Settings, KD_Status)


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
