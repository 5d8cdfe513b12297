# Preview: fewer steps (20) and one frame at a time, so the first frames show soon (models of 25-50 steps)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.steps = 20
settings.batch_size = 1
