"""The settings a model is meant to run at (steps, guidance, size, scheduler), read from what the model carries: the
embedded models' own figures, a card file in a model folder (CARD_FILE), or the family its configs (model_index.json,
scheduler and UNet configs) and its name show: SD-Turbo / SDXL-Turbo, LCM (distilled or an LCM-LoRA), SDXL, SD 2.x
(v-prediction at 768), SD 1.x. Where each family's figures come from: docs/models.md#recommended-settings.

Blender imports this module for its sidebar, so it reads JSON files only: no torch, no diffusers, and the Hugging Face
cache is looked up only when huggingface_hub happens to be importable (never the network). An unknown model gives
None: the user's settings stay as they are."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from ..errors import ModelError
from ..plan import EMBEDDED_MODEL, FRAME_RANGES, TINY_RANDOM_MODEL
from ..vocabulary import SCHEDULERS, names
from .embedded import SHAPES_MODEL_DIR
from .examples import GENERAL_EXAMPLES, SHAPES_EXAMPLES
from .hub import looks_like_repo_id

# A model folder may carry its own figures: {"steps": 30, "guidance": 6, "width": 64, "height": 64,
# "scheduler": "default", "notes": "...", "prompts": ["..."]} (every key but steps and guidance optional).
CARD_FILE = "keyframe_diffusion.json"


@dataclass(frozen=True)
class Recommended:
    """What a model is meant to run at, what it was recognised as, and where the figures come from."""

    family: str  # what the model was recognised as, for messages: "SD-Turbo", "Shapes (built in)"
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str = "default"  # an id of vocabulary.SCHEDULERS
    notes: str = ""
    source: str = ""  # the model card, file or config the figures come from
    prompts: tuple[str, ...] = ()  # example prompts the model knows

    def summary(self) -> str:
        """'30 steps, guidance 6, 64x64' (and the scheduler when it is not the model's own)."""
        text = f"{self.steps} step{'s' if self.steps != 1 else ''}, guidance {self.guidance:g}, " \
               f"{self.width}x{self.height}"
        if self.scheduler != "default":
            text += f", {dict((c[0], c[1]) for c in SCHEDULERS)[self.scheduler]} scheduler"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "prompts": list(self.prompts)}

    @classmethod
    def from_dict(cls, data: dict) -> Recommended:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "prompts": tuple(values.get("prompts", ()))})


def recommended(ref: str, folder: str | None = None, loras: Iterable[str] = (), hint: str = "") -> Recommended | None:
    """The recommended settings of the model the Model field names (`ref`), read from `folder` (its local folder,
    found from `ref` when None: an embedded model, a folder, or a Hugging Face id's cached snapshot), with the scene's
    LoRA paths (an LCM-LoRA makes any model an LCM) and `hint`, more words that tell the family (a single file's
    base, e.g. 'SDXL'). None for a model of no known family. A broken card file raises ModelError naming it."""
    ref = ref.strip()
    if ref == EMBEDDED_MODEL:  # our own models: their figures whatever LoRAs are added (none was made for them)
        return shapes_recommended()
    if ref == TINY_RANDOM_MODEL:
        return TINY
    lcm_lora = any("lcm" in os.path.basename(str(p)).lower() for p in loras)
    folder = folder or local_folder(ref)
    if folder and not lcm_lora:
        card = read_card(folder)
        if card is not None:
            return card
    return family_recommended(ref, folder, lcm_lora, hint)


def local_folder(ref: str) -> str | None:
    """The folder holding the model's configs, when this machine has one: a diffusers folder, or the snapshot of a
    Hugging Face id in the local cache (looked up only where huggingface_hub is installed)."""
    if ref == EMBEDDED_MODEL:
        return SHAPES_MODEL_DIR
    expanded = os.path.expanduser(ref)
    if os.path.isdir(expanded):
        return expanded
    if not looks_like_repo_id(ref):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # Blender's own Python without the engine's wheels: the id's name still tells the family
        return None
    found = try_to_load_from_cache(ref, "model_index.json")
    return os.path.dirname(found) if isinstance(found, str) else None


# --------------------------------------------------------------------------------------------------------------------
# Cards: figures a model carries


def shapes_recommended() -> Recommended:
    """The shapes model's figures as its training measured them (engine/shapes/model/training.json, held_out)."""
    from ..shapes import dataset

    path = os.path.join(SHAPES_MODEL_DIR, "training.json")
    try:
        with open(path, encoding="utf-8") as f:
            held = json.load(f)["held_out"]
        steps, guidance, size = int(held["steps"]), float(held["guidance"]), int(held["size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"the embedded model's training record {path} is unreadable ({e}): reinstall the "
                         "extension") from e
    score = f": colour and shape right in {held['color_and_shape']:.1%} of {held['prompts']} held-out prompts" \
        if "color_and_shape" in held and "prompts" in held else ""
    return Recommended(
        family="Shapes (built in)", steps=steps, guidance=guidance, width=size, height=size,
        notes=f"Knows only flat shapes: 'a COLOUR SHAPE on a COLOUR background' ({', '.join(dataset.COLORS)}; "
              f"{', '.join(dataset.SHAPES)}), optionally 'small'/'large' and a corner ('top left')",
        source=f"engine/shapes/model/training.json, its held-out evaluation{score}",
        prompts=SHAPES_EXAMPLES.prompts)


# The random-weight test model: its pictures are noise at any setting, so the fastest settings are the right ones
# (guidance 1 skips classifier-free guidance's second UNet pass).
TINY = Recommended(family="Tiny (random, for tests)", steps=2, guidance=1.0, width=64, height=64,
                   notes="Random weights: every frame is noise. For tests and plumbing only",
                   source="engine/tiny_model.py (random weights, native 64x64)")


def read_card(folder: str) -> Recommended | None:
    """The figures in the folder's CARD_FILE, or None when it has none; a card with wrong values raises ModelError."""
    path = os.path.join(folder, CARD_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
        steps, guidance = card["steps"], card["guidance"]
        width = card.get("width", card.get("size"))
        height = card.get("height", card.get("size"))
        scheduler = card.get("scheduler", "default")
        prompts = tuple(str(p) for p in card.get("prompts", ()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"model card {path} is unreadable ({e}): it needs at least \"steps\" and \"guidance\"") from e
    problems = []
    if not (isinstance(steps, int) and FRAME_RANGES["steps"].low <= steps <= FRAME_RANGES["steps"].high):
        problems.append(f"steps {steps!r} is not a whole number of steps")
    if not (isinstance(guidance, (int, float)) and FRAME_RANGES["guidance"].low <= guidance
            <= FRAME_RANGES["guidance"].high):
        problems.append(f"guidance {guidance!r} is not a number from 0 to {FRAME_RANGES['guidance'].high:g}")
    for what, value in (("width", width), ("height", height)):
        if value is not None and not (isinstance(value, int) and value >= 8 and value % 8 == 0):
            problems.append(f"{what} {value!r} is not a multiple of 8")
    if scheduler not in names(SCHEDULERS):
        problems.append(f"scheduler {scheduler!r} is none of {', '.join(names(SCHEDULERS))}")
    if problems:
        raise ModelError(f"model card {path}: {'; '.join(problems)}")
    size = _native_size(read_json_object(os.path.join(folder, "unet", "config.json")) or {}) or 512
    return Recommended(family=str(card.get("family") or os.path.basename(os.path.normpath(folder))), steps=steps,
                       guidance=float(guidance), width=width or size, height=height or size, scheduler=scheduler,
                       notes=str(card.get("notes", "")), source=path, prompts=prompts)


# --------------------------------------------------------------------------------------------------------------------
# Families: figures from the model cards of the models each family was recognised by (docs/models.md)

_TURBO = "https://huggingface.co/stabilityai/sd-turbo"
_XL_TURBO = "https://huggingface.co/stabilityai/sdxl-turbo"
_LCM_LORA = "https://huggingface.co/docs/diffusers/using-diffusers/inference_with_lcm_lora"
_LCM = "https://huggingface.co/SimianLuo/LCM_Dreamshaper_v7"
_SDXL = "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0"
_SD2 = "https://huggingface.co/stabilityai/stable-diffusion-2-1"
_SD1 = "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5"
_PROMPTS = GENERAL_EXAMPLES.prompts  # a first render's hint for the general-purpose families (examples.py)
_WIDTHS = {768: "sd1", 1024: "sd2", 2048: "sdxl"}  # UNet cross-attention width -> base family


def family_recommended(ref: str, folder: str | None, lcm_lora: bool = False, hint: str = "") -> Recommended | None:
    """The figures of the family the model's configs and name show, or None when they show none."""
    index = read_json_object(os.path.join(folder, "model_index.json")) if folder else None
    unet = (read_json_object(os.path.join(folder, "unet", "config.json")) if folder else None) or {}
    scheduler = (read_json_object(os.path.join(folder, "scheduler", "scheduler_config.json")) if folder else None) or {}
    index = index or {}
    named = _folder_name(ref) if os.sep in ref or ref.startswith(("~", ".")) else ref  # a path: only its name
    words = " ".join(str(w) for w in (named, _folder_name(folder), hint, index.get("_name_or_path", ""),
                                      unet.get("_name_or_path", ""))).lower()
    class_name = str(index.get("_class_name", ""))
    scheduler_class = str(scheduler.get("_class_name") or (index.get("scheduler") or [None, ""])[-1] or "")
    base = _WIDTHS.get(unet.get("cross_attention_dim"))
    if class_name.startswith("StableDiffusionXL") or re.search(r"sdxl|(?<![a-z])xl(?![a-z])", words):
        base = "sdxl"
    elif base is None and re.search(r"stable-diffusion-2|\bsd-?2|v2-[01]", words):
        base = "sd2"
    elif base is None and re.search(r"stable-diffusion-v1|\bsd-?1|v1-[45]|sd15\b", words):
        base = "sd1"
    native = _native_size(unet)
    xl = base == "sdxl"

    # Turbo models ship an Euler scheduler with "trailing" timesteps (the spacing few-step sampling needs) where their
    # base models have "leading" ones: a renamed copy is still recognised.
    trailing_euler = scheduler_class.startswith("EulerDiscrete") or scheduler_class.startswith("EulerAncestral")
    trailing_euler = trailing_euler and scheduler.get("timestep_spacing") == "trailing" \
        and not scheduler.get("rescale_betas_zero_snr")
    if "turbo" in words or trailing_euler:
        size = native or 512
        return Recommended(
            family="SDXL-Turbo" if xl else "SD-Turbo", steps=1, guidance=0.0, width=size, height=size,
            notes="Distilled without classifier-free guidance: 1-4 steps, guidance 0; img2img at 2 steps and "
                  "strength 0.5 or more", source=_XL_TURBO if xl else _TURBO, prompts=_PROMPTS)
    distilled_lcm = unet.get("time_cond_proj_dim") is not None
    if lcm_lora or distilled_lcm or scheduler_class == "LCMScheduler" or re.search(r"(?<![a-z])lcm(?![a-z])", words):
        size = native or (1024 if xl else 512)
        if distilled_lcm:  # guidance is an input of the distilled UNet (w embedding), not classifier-free guidance
            return Recommended(family="LCM", steps=4, guidance=8.0, width=size, height=size, scheduler="lcm",
                               notes="Latent consistency model: 2-8 steps, LCM scheduler", source=_LCM,
                               prompts=_PROMPTS)
        return Recommended(family="LCM-LoRA" if lcm_lora else "LCM", steps=4, guidance=1.5, width=size,
                           height=size, scheduler="lcm",
                           notes="LCM-LoRA: 2-8 steps, guidance 1-2 (or 0 to switch it off), LCM scheduler",
                           source=_LCM_LORA, prompts=_PROMPTS)
    if xl:
        size = native or 1024
        return Recommended(family="SDXL", steps=30, guidance=5.0, width=size, height=size,
                           notes="1024x1024 native; guidance 5-7; heavy: start with Batch 1", source=_SDXL,
                           prompts=_PROMPTS)
    if base == "sd2":
        v_prediction = scheduler.get("prediction_type") == "v_prediction"
        size = native or (768 if v_prediction else 512)
        return Recommended(family="SD 2.x" + (" (v-prediction)" if v_prediction else ""), steps=30, guidance=7.5,
                           width=size, height=size,
                           notes="768x768 native for the v-prediction models, 512 for the base ones", source=_SD2,
                           prompts=_PROMPTS)
    if base == "sd1":
        size = native or 512
        return Recommended(family="SD 1.x", steps=30, guidance=7.5, width=size, height=size,
                           notes="512x512 native; 25-30 steps, guidance 7-7.5", source=_SD1, prompts=_PROMPTS)
    return None


def _folder_name(folder: str | None) -> str:
    """The words of a path that name its model: its own name, and the repo of a Hub cache snapshot
    (.../models--owner--name/snapshots/<revision>/file); the folders above say nothing about it."""
    if not folder:
        return ""
    parts = os.path.normpath(folder).split(os.sep)
    repo = [p.replace("models--", "", 1).replace("--", "/") for p in parts if p.startswith("models--")]
    return " ".join([parts[-1], *repo[-1:]])


def _native_size(unet: dict) -> int | None:
    """Pixels per side the UNet was trained at: its latent sample_size times the VAE's 8."""
    size = unet.get("sample_size")
    return size * 8 if isinstance(size, int) and size > 0 else None


def read_json_object(path: str) -> dict | None:
    """A JSON file holding an object, or None (missing, unreadable, not JSON, not an object)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
