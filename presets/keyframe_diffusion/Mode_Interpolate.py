# Interpolate: blend seeded noise and prompt embeddings between the prompt keys
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.mode = 'INTERPOLATE'
settings.latent_source = 'PROMPT_SEEDS'
