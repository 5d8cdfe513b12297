# Shot: Wan 2.1 VACE 1.3B makes each shot at once, held to the pins, driven by the scene's depth (hf download it first)
import bpy
settings = bpy.context.scene.keyframe_diffusion

settings.mode = 'SHOT'
settings.model = 'Wan-AI/Wan2.1-VACE-1.3B-diffusers'
settings.width = 832
settings.height = 480
settings.steps = 30
settings.guidance = 5.0
settings.video_control = 'DEPTH'
settings.control_scale = 1.0
settings.shot_window = 0
settings.shot_overlap = 8
settings.memory_mode = 'AUTO'
settings.video_cache = 'NONE'
