# Clip: AnimateDiff on SD 1.5, 16-frame context windows (hf download both models first)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.mode = 'CLIP'
settings.model = 'stable-diffusion-v1-5/stable-diffusion-v1-5'
settings.motion_adapter = 'guoyww/animatediff-motion-adapter-v1-5-2'
settings.width = 512
settings.height = 512
settings.steps = 25
settings.guidance = 7.5
settings.context_length = 16
settings.context_overlap = 4
settings.free_noise = True
