# Preview: fewer steps and one frame at a time, so the first frames show soon (models of 25-50 steps)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.steps = 15
settings.batch_size = 1
