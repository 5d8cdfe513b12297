# Final: more steps for the finished render (models of 25-50 steps; Turbo and LCM models need none)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.steps = 40
settings.batch_size = 4
