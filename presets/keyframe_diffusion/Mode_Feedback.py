# Feedback: each frame is img2img of the previous one, zooming in slowly with colours held (Deforum 2D)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.mode = 'FEEDBACK'
settings.strength = 0.45
settings.motion_mode = '2D'
settings.zoom = 1.02
settings.angle = 0.0
settings.translation_x = 0.0
settings.translation_y = 0.0
settings.noise = 0.02
settings.contrast = 1.0
settings.color_coherence = 'LAB'
settings.cadence = 1
