"""The words the plan, the engine and the Blender side share: every closed list of choices, once.

Each list holds (identifier, label, description) triples: the plan and the engine use the identifiers, the Blender
side builds its enum properties from the whole triples (settings/properties.py), and a test proves they agree. Add a
choice here and both sides know it; the engine code that acts on it is the only other place to touch.
"""

from __future__ import annotations

Choice = tuple[str, str, str]


def names(choices: tuple[Choice, ...]) -> tuple[str, ...]:
    """The identifiers of a list of choices, as the plan holds them."""
    return tuple(choice[0] for choice in choices)


MODES: tuple[Choice, ...] = (
    ("INTERPOLATE", "Interpolate", "Blend seeded latents and prompt embeddings between prompt keys"),
    ("FEEDBACK", "Feedback", "Each frame is img2img of the previous one after 2D motion or the 3D camera move "
     "(Deforum)"),
    ("VIDEO", "Video / Scene", "Each frame is img2img of a movie or image strip's frame, or of Blender's render of "
     "the scene"),
    ("CLIP", "Clip", "All frames of a shot at once with a video model: AnimateDiff (a motion adapter on an SD 1.5 "
     "model) or a text-to-video model; long shots in overlapping context windows"),
    ("SHOT", "Shot (Video Model)", "Each shot at once with a Wan 2.x or LTX-Video model: pictures pinned at frames "
     "condition it, Blender's passes drive it (VACE); long shots in overlapping windows"),
)
MOTION_MODES: tuple[Choice, ...] = (
    ("2D", "2D", "Zoom, angle and translation of the image"),
    ("3D", "3D", "Reproject with depth into the moved camera"),
)
CAMERA_SOURCES: tuple[Choice, ...] = (
    ("SCENE", "Scene Camera", "3D motion follows the scene camera as animated"),
    ("MOTION", "Motion Values", "3D motion from the Translation/Rotation values (Deforum)"),
)
DEPTH_SOURCES: tuple[Choice, ...] = (
    ("SCENE", "Scene", "Blender renders the scene's depth (Z pass) at every frame"),
    ("PLANE", "Plane", "A flat plane at a distance in front of the camera (Deforum's flat 3D warp)"),
)
BORDERS: tuple[Choice, ...] = (
    ("REPLICATE", "Replicate", "Repeat the edge pixels"),
    ("WRAP", "Wrap", "Bring in the opposite edge"),
    ("REFLECT", "Reflect", "Mirror the image at its edge"),
)
COLOR_MODES: tuple[Choice, ...] = (
    ("NONE", "None", "No colour matching"),
    ("LAB", "LAB", "Match the histogram in LAB (lightness and colour apart)"),
    ("HSV", "HSV", "Match the histogram in HSV"),
    ("RGB", "RGB", "Match each RGB channel's histogram"),
)
# How a ControlNet unit's image is made. DEPTH and NORMAL come with Blender's passes; the user picks among the image
# preprocessors for render, init and strip images.
IMAGE_PREPROCESSORS: tuple[Choice, ...] = (
    ("NONE", "None", "The image as it is"),
    ("CANNY", "Canny", "Edges (OpenCV Canny)"),
)
CONTROL_PREPROCESSORS: tuple[Choice, ...] = IMAGE_PREPROCESSORS + (
    ("DEPTH", "Depth", "A depth pass as the depth ControlNets want it (near = bright)"),
    ("NORMAL", "Normal", "A normal pass as the normal ControlNets want it"),
)
# Shot mode (engine/modes/shot.py, engine/video_models/): how the video model fits the GPU (engine/video_memory.py),
# fastest first; AUTO takes the fastest whose estimated peak fits the free memory.
MEMORY_MODES: tuple[Choice, ...] = (
    ("AUTO", "Auto", "The fastest mode whose estimated peak memory fits the device's free memory"),
    ("FULL", "Full", "Every model on the GPU: fastest, most memory"),
    ("FP8", "FP8 Storage", "The transformer's weights stored in fp8 and cast per layer when used (about half its "
     "memory; slightly different pixels)"),
    ("MODEL_OFFLOAD", "Model Offload", "Each model on the GPU only while it runs (text encoder, transformer, VAE)"),
    ("FP8_OFFLOAD", "FP8 + Offload", "FP8 storage and model offload together"),
    ("GROUP_OFFLOAD", "Group Offload", "The transformer's blocks stream to the GPU one group at a time: least memory, "
     "slowest"),
)
# diffusers' cache hooks on the video transformer (engine/video_cache.py): fewer full transformer passes per shot.
VIDEO_CACHES: tuple[Choice, ...] = (
    ("NONE", "None", "Every step runs the whole transformer"),
    ("FIRST_BLOCK", "First Block Cache", "Skip the other blocks while the first block's output barely changes"),
    ("PYRAMID", "Pyramid Attention Broadcast", "Reuse attention outputs for a few steps in the middle of the "
     "schedule"),
    ("FASTER", "FasterCache", "Reuse attention outputs and the unconditional branch between steps"),
    ("TAYLORSEER", "TaylorSeer", "Predict skipped steps' features from earlier ones (Taylor series)"),
)
# What each frame's control picture is in shot mode (a VACE control video, or an LTX video condition for RENDER).
VIDEO_CONTROLS: tuple[Choice, ...] = (
    ("NONE", "None", "No control video"),
    ("DEPTH", "Depth", "Blender's depth pass (near = bright)"),
    ("FLOW", "Motion (Vector Pass)", "Blender's motion vectors as a colour-coded flow picture"),
    ("INDEX", "Object Index", "The object index pass as a flat colour layout"),
    ("RENDER", "Scene Render", "Blender's render itself: video to video at the frames' Strength"),
)
# Where a pinned picture comes from (the bake turns each into a file).
PIN_SOURCES: tuple[Choice, ...] = (
    ("FILE", "Image File", "A picture on disk"),
    ("STRIP", "Strip", "An image strip's picture or a movie strip's frame at the pin"),
    ("RENDER", "Scene Render", "Blender's render of the scene at the pin's frame"),
    ("GENERATED", "Generated Frame", "A frame already generated into the output folder"),
)
LATENT_SOURCES: tuple[Choice, ...] = (
    ("PROMPT_SEEDS", "Prompt Seeds", "Slerp between the seeded noise of each prompt key"),
    ("FIXED", "Fixed", "One noise from the frame seed for every frame"),
)
PRECISIONS: tuple[Choice, ...] = (
    ("auto", "Auto", "Half precision (fp16) on CUDA, full (fp32) elsewhere"),
    ("fp32", "Full (fp32)", "Slowest, most memory; the reference"),
    ("fp16", "Half (fp16)", "GPUs: half the memory, much faster"),
    ("bf16", "Brain Float (bf16)", "Recent GPUs and CPUs with bf16 support: fp16's speed, fp32's range"),
)
DEVICES: tuple[Choice, ...] = (
    ("auto", "Auto", "CUDA, then MPS, then CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU"),
    ("mps", "MPS", "Apple silicon's GPU"),
    ("cpu", "CPU", "The processor (slow, always there)"),
)
SEED_BEHAVIORS: tuple[Choice, ...] = (
    ("SCHEDULE", "Schedule", "The seed property as keyed (constant when not animated)"),
    ("FIXED", "Fixed", "The seed at the first frame for every frame"),
    ("ITER", "Iter", "Add 1 every N frames"),
    ("LADDER", "Ladder", "Alternately add 2 and subtract 1"),
    ("ALTERNATE", "Alternate", "Alternately add 1 and subtract 1"),
    ("RANDOM", "Random", "A random seed per frame, reproducible from the seed at the first frame"),
)
SCHEDULERS: tuple[Choice, ...] = (
    ("default", "Model Default", "The scheduler the model was saved with"),
    ("ddim", "DDIM", "Denoising diffusion implicit models"),
    ("euler", "Euler", "Euler discrete"),
    ("euler_karras", "Euler Karras", "Euler with Karras sigmas"),
    ("euler_a", "Euler Ancestral", "Euler ancestral (adds noise each step)"),
    ("dpm++", "DPM++ 2M", "DPM-Solver++ multistep"),
    ("dpm++_karras", "DPM++ 2M Karras", "DPM-Solver++ multistep with Karras sigmas"),
    ("dpm++_sde", "DPM++ 2M SDE", "DPM-Solver++ multistep, SDE variant"),
    ("dpm++_sde_karras", "DPM++ 2M SDE Karras", "DPM-Solver++ SDE with Karras sigmas"),
    ("unipc", "UniPC", "Unified predictor-corrector"),
    ("heun", "Heun", "Heun discrete (two model calls a step)"),
    ("lms", "LMS", "Linear multistep"),
    ("lms_karras", "LMS Karras", "Linear multistep with Karras sigmas"),
    ("pndm", "PNDM", "Pseudo numerical methods (PLMS)"),
    ("lcm", "LCM", "For LCM-distilled models"),
    ("tcd", "TCD", "For TCD-distilled models"),
)
# The Blender Scheduler menu: the names above and "other", a diffusers scheduler class named in a text field (the
# bake writes that class name into the plan: the engine takes any class that fits the model, models/schedulers.py).
SCHEDULER_OTHER = "other"
SCHEDULER_MENU: tuple[Choice, ...] = SCHEDULERS + (
    (SCHEDULER_OTHER, "Other (diffusers class)", "Any diffusers scheduler class that fits the model, named in "
     "Scheduler Class (e.g. DEISMultistepScheduler)"),
)

# Audio analysis (engine/audio.py), shared by audio links and the audio operators.
AUDIO_FEATURES: tuple[Choice, ...] = (
    ("onset", "Onset Strength", "How sharply the sound starts: beats and hits"),
    ("rms", "Loudness (RMS)", "Root-mean-square level of the band"),
    ("mel", "Mel Spectrum", "The mel spectrogram reduced over the band (Giffusion's signal)"),
)
AUDIO_PARTS: tuple[Choice, ...] = (
    ("full", "Full", "The whole sound"),
    ("percussive", "Percussive", "Drums and hits (HPSS)"),
    ("harmonic", "Harmonic", "Tones and chords (HPSS)"),
)
AUDIO_REDUCES: tuple[Choice, ...] = (
    ("max", "Max", "The band's loudest bin"),
    ("mean", "Mean", "The band's mean"),
    ("median", "Median", "The band's median"),
)
AUDIO_SHAPES: tuple[Choice, ...] = (
    ("pulse", "Pulse", "The signal itself: peaks on hits"),
    ("ramp", "Ramp", "Normalised cumulative sum: moves fast on beats, slow otherwise, from Low to High"),
)
