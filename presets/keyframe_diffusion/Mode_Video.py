# Video: each frame is img2img of the Input Strip's frame (set Input Strip to a movie or image strip)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.mode = 'VIDEO'
settings.init_source = 'STRIP'
settings.strength = 0.5
