# Turbo: SD-Turbo (stabilityai/sd-turbo) at its model card's settings: 1 step, no guidance, 512x512
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.model = 'stabilityai/sd-turbo'
settings.steps = 1
settings.guidance = 0.0
settings.width = 512
settings.height = 512
settings.scheduler = 'default'
