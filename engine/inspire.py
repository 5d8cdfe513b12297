"""Prompt suggestions: the "Inspiration" button.

Give one or more subjects ("a corgi, a lighthouse") and get back a handful of fuller prompts to keyframe.

Two sources:

* the built-in vocabulary (default): each suggestion is a subject plus a few curated descriptors (medium, style,
  lighting, colour or mood, a detail tag and sometimes a public-domain painter). Pure standard library,
  deterministic for a seed, works inside Blender without torch.
* a small causal language model trained on prompts (a Hugging Face id or a local folder), sampled with
  transformers, seeded. Giffusion's "Give me some inspiration!" button does the same job by calling the remote
  Hugging Face Space ``doevent/prompt-generator`` (a MagicPrompt-style GPT-2 prompt generator); here the model runs
  locally and is only downloaded when the caller allows it.

Only the standard library is imported at module level: this module is imported inside Blender, whose Python may
lack torch and transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from typing import Sequence


class InspireError(ValueError):
    """Bad input or a model that can't be found or loaded; the message says what to do."""


# Prompt-generator models worth looking for in the local Hugging Face cache. The first is the GPT-2 "MagicPrompt"
# model that Giffusion's prompt-generator Space is built on.
KNOWN_MODELS: tuple[str, ...] = (
    "Gustavosta/MagicPrompt-Stable-Diffusion",
    "succinctly/text2image-prompt-generator",
    "FredZhang7/distilgpt2-stable-diffusion-v2",
    "AUTOMATIC/promptgen-lexart",
)

MAX_COUNT = 64
MAX_SUGGESTION_CHARS = 200
MAX_SUBJECT_CHARS = 200
NO_SUBJECT = "give a subject to get suggestions, e.g. 'a corgi, a lighthouse' (one per line or comma-separated)"

# Curated descriptors. Painters are all long dead (public-domain works); no living artists.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "media": (
        "oil painting", "watercolor", "ink drawing", "charcoal sketch", "gouache painting", "pastel drawing",
        "digital painting", "3d render", "photograph", "35mm film photo", "woodblock print", "linocut print",
        "pencil sketch", "stained glass", "mosaic", "claymation still", "layered paper cut", "matte painting",
        "concept art", "isometric illustration", "pixel art", "low poly render", "tilt-shift photograph",
        "polaroid photo", "copperplate etching", "fresco", "acrylic painting", "vector illustration",
        "cel-shaded animation still", "embroidery",
    ),
    "styles": (
        "impressionist", "art nouveau", "art deco", "baroque", "surrealist", "minimalist", "cyberpunk",
        "steampunk", "solarpunk", "vaporwave", "retro-futuristic", "gothic", "romanticist", "pointillist",
        "cubist", "expressionist", "ukiyo-e", "high fantasy", "film noir", "psychedelic", "bauhaus", "pop art",
        "folk art", "storybook illustration", "cinematic", "photorealistic", "whimsical",
    ),
    "lighting": (
        "golden hour", "blue hour", "soft diffuse light", "dramatic rim lighting", "volumetric light", "god rays",
        "candlelight", "neon glow", "moonlight", "overcast daylight", "backlit", "chiaroscuro", "studio lighting",
        "bioluminescent glow", "harsh midday sun", "foggy dawn light", "sunset glow", "firelight",
        "aurora light", "low-key lighting", "high-key lighting", "dappled sunlight", "stormy light",
        "lantern light",
    ),
    "colors": (
        "pastel palette", "muted earth tones", "vibrant colors", "monochrome", "teal and orange",
        "black and white", "sepia tones", "jewel tones", "neon pink and cyan", "warm autumn palette",
        "cool blue palette", "gold and crimson", "emerald and gold", "duotone", "iridescent colors",
        "desaturated colors", "rich saturated colors", "limited palette", "complementary colors",
        "candy colors",
    ),
    "moods": (
        "serene", "melancholic", "whimsical mood", "mysterious", "epic", "dreamlike", "eerie", "joyful",
        "nostalgic", "tranquil", "ominous", "playful", "majestic", "cozy", "ethereal", "lonely", "triumphant",
        "contemplative", "chaotic", "romantic",
    ),
    "details": (
        "highly detailed", "intricate details", "sharp focus", "8k", "wide angle", "close-up",
        "shallow depth of field", "bokeh", "symmetrical composition", "rule of thirds", "aerial view",
        "masterpiece", "award-winning", "fine texture", "ultra wide shot", "macro shot", "isometric view",
        "panoramic", "dynamic composition", "centered composition",
    ),
    "artists": (
        "in the style of Claude Monet", "in the style of J. M. W. Turner", "in the style of Vincent van Gogh",
        "in the style of Katsushika Hokusai", "in the style of Utagawa Hiroshige", "in the style of Rembrandt",
        "in the style of Johannes Vermeer", "in the style of Gustav Klimt", "in the style of Alphonse Mucha",
        "in the style of John Singer Sargent", "in the style of Caspar David Friedrich",
        "in the style of Albert Bierstadt", "in the style of Thomas Cole", "in the style of Hieronymus Bosch",
        "in the style of Pieter Bruegel the Elder", "in the style of Sandro Botticelli",
        "in the style of Georges Seurat", "in the style of Paul Cezanne", "in the style of Edgar Degas",
        "in the style of Ivan Aivazovsky", "in the style of Arkhip Kuindzhi", "in the style of William Blake",
        "in the style of Gustave Dore", "in the style of Winslow Homer", "in the style of Henri Rousseau",
        "in the style of Odilon Redon", "in the style of Arthur Rackham",
        "in the style of John William Waterhouse", "in the style of Frederic Edwin Church",
        "in the style of Canaletto", "in the style of Albrecht Durer", "in the style of Francisco Goya",
        "in the style of the Hudson River School", "in the style of the Dutch Golden Age",
        "in the style of a medieval illuminated manuscript", "in the style of Edo-period ukiyo-e prints",
        "in the style of a Victorian botanical illustration", "in the style of Art Nouveau posters",
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Subjects


_BULLET = re.compile(r"^\s*(?:[-*\u2022]+\s*|\d+[.)]\s+)")
_SPACES = re.compile(r"\s+")


def _clean_subject(text: str) -> str:
    text = _BULLET.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    text = text.strip("\"'`\u201c\u201d\u2018\u2019").strip()
    text = text.rstrip(".,;:!?- ").strip()
    return text[:MAX_SUBJECT_CHARS].strip()


def parse_subjects(text: str) -> list[str]:
    """Split the Inspiration field into subjects.

    Several non-empty lines: one subject per line (';' also separates; commas stay inside a subject, so
    "a corgi, wearing a crown" is one subject). A single line: ',' and ';' separate. List bullets like "- " or "1. " are
    dropped, whitespace collapsed, duplicates removed (first kept).
    """
    if not isinstance(text, str):
        raise InspireError("subjects must be text, e.g. 'a corgi, a lighthouse'")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        pieces = [p for line in lines for p in line.split(";")]
    else:
        pieces = re.split(r"[,;]", lines[0]) if lines else []
    subjects: list[str] = []
    seen: set[str] = set()
    for piece in pieces:
        subject = _clean_subject(piece)
        if subject and subject.lower() not in seen:
            seen.add(subject.lower())
            subjects.append(subject)
    if not subjects:
        raise InspireError(NO_SUBJECT)
    return subjects


def _normalize_subjects(subjects: Sequence[str] | str) -> list[str]:
    if isinstance(subjects, str):
        return parse_subjects(subjects)
    cleaned: list[str] = []
    for s in subjects:
        if not isinstance(s, str):
            raise InspireError(f"subjects must be text, got {type(s).__name__}")
        c = _clean_subject(s)
        if c:
            cleaned.append(c)
    if not cleaned:
        raise InspireError(NO_SUBJECT)
    return cleaned


# ---------------------------------------------------------------------------------------------------------------
# Vocabulary suggestions


def _vocabulary_suggestion(subject: str, rng: random.Random) -> str:
    parts = [subject, rng.choice(VOCABULARY["media"])]
    if rng.random() < 0.5:
        parts.append(rng.choice(VOCABULARY["styles"]))
    parts.append(rng.choice(VOCABULARY["lighting"]))
    parts.append(rng.choice(VOCABULARY["colors"] if rng.random() < 0.5 else VOCABULARY["moods"]))
    parts.append(rng.choice(VOCABULARY["details"]))
    if rng.random() < 0.6:
        parts.append(rng.choice(VOCABULARY["artists"]))
    # The same word may come from two categories ("whimsical"); say it once.
    out: list[str] = []
    for p in parts:
        if p.lower() not in (o.lower() for o in out):
            out.append(p)
    return ", ".join(out)


def _suggest_from_vocabulary(subjects: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    suggestions: list[str] = []
    seen: set[str] = set()
    for i in range(count):
        subject = subjects[i % len(subjects)]
        candidate = _vocabulary_suggestion(subject, rng)
        for _ in range(50):  # distinct while the vocabulary allows
            if candidate.lower() not in seen:
                break
            candidate = _vocabulary_suggestion(subject, rng)
        seen.add(candidate.lower())
        suggestions.append(candidate)
    return suggestions


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face cache (read from disk only; never the network)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> str:
    """The Hugging Face hub cache folder, read from the environment now (not when huggingface_hub was imported)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(xdg, "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def _cached_file(repo_id: str, filename: str) -> str | None:
    """Path of a file of `repo_id` in the local cache (main revision), or None. Never touches the network."""
    cache = hub_cache_dir()
    if not os.path.isdir(cache):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # Blender's Python without huggingface_hub: read the cache layout directly
        return _cached_file_by_layout(cache, repo_id, filename)
    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
    except Exception:  # a malformed id or cache entry is simply "not cached"
        return None
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _cached_file_by_layout(cache: str, repo_id: str, filename: str) -> str | None:
    repo_dir = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    try:
        with open(os.path.join(repo_dir, "refs", "main"), encoding="utf-8") as f:
            revision = f.read().strip()
    except OSError:
        return None
    path = os.path.join(repo_dir, "snapshots", revision, filename)
    return path if os.path.isfile(path) else None


def _has_cached_weights(repo_id: str) -> bool:
    return any(_cached_file(repo_id, name) for name in ("model.safetensors", "model.safetensors.index.json"))


def find_local_models() -> list[str]:
    """Known prompt-generator models whose config and safetensors weights are in the local Hugging Face cache."""
    return [m for m in KNOWN_MODELS if _cached_file(m, "config.json") and _has_cached_weights(m)]


# ---------------------------------------------------------------------------------------------------------------
# Model suggestions


def _looks_like_repo_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") and " " not in p for p in parts)


def _how_to_get(model: str) -> str:
    return (f"get it with `hf download {model}` (or `huggingface-cli download {model}`), or allow downloads "
            "(enable online access in Blender's preferences)")


def _resolve_model(model: str, allow_download: bool) -> str:
    """A local folder or cached snapshot folder to load from, or the repo id itself when downloads are allowed."""
    name = model.strip()
    if not name:
        raise InspireError("no model given")
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise InspireError(f"model folder '{model}' has no config.json: it is not a transformers model folder")
        return path
    if not _looks_like_repo_id(name):
        raise InspireError(f"model '{model}' not found: neither a folder nor a Hugging Face id like "
                           f"'{KNOWN_MODELS[0]}'")
    config = _cached_file(name, "config.json")
    if config is not None:
        return os.path.dirname(config)
    if not allow_download:
        raise InspireError(f"prompt model '{model}' is not in the Hugging Face cache and downloads are off: "
                           + _how_to_get(model))
    return name


_LOADED: dict[tuple[str, str], tuple[object, object]] = {}


def _load(model: str, source: str, allow_download: bool, device: str):
    key = (source, device)
    if key in _LOADED:
        return _LOADED[key]
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise InspireError(f"prompt models need transformers and torch ({e}); "
                           "the built-in vocabulary works without") from e
    kwargs = dict(local_files_only=not allow_download, trust_remote_code=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        detail = " ".join(str(e).split())[:300]
        hint = _how_to_get(model) if _looks_like_repo_id(model.strip()) else "check the folder"
        raise InspireError(f"could not load prompt model '{model}' (it needs a tokenizer and .safetensors "
                           f"weights): {detail}; {hint}") from e
    lm.to(device)
    lm.eval()
    _LOADED.clear()  # keep one model in memory
    _LOADED[key] = (tokenizer, lm)
    return tokenizer, lm


_JUNK = re.compile(r"[\x00-\x1f\x7f]")
_REPEATED_COMMAS = re.compile(r"(?:\s*,\s*){2,}")


def _clean_generated(subject: str, continuation: str) -> str:
    """One line: the subject followed by the model's continuation, tidied and capped; the subject if nothing useful."""
    continuation = continuation.replace("\r", "\n")
    lines = continuation.split("\n")
    # The continuation's own first line; if the model opened with a newline, the next non-empty one.
    first = lines[0] if lines[0].strip() else next((l for l in lines if l.strip()), "")
    first = _JUNK.sub(" ", first)
    if not re.search(r"\w", first):
        return subject
    if first[:1].isspace() or first[:1] in ",.;:!?)":
        text = subject + first
    else:
        text = subject + " " + first
    text = _SPACES.sub(" ", text).strip()
    text = _REPEATED_COMMAS.sub(", ", text)
    text = re.sub(r"\s+([,;:.!?])", r"\1", text)
    if len(text) > MAX_SUGGESTION_CHARS:
        cut = text[:MAX_SUGGESTION_CHARS]
        boundary = max(cut.rfind(","), cut.rfind(" "))
        if boundary > len(subject):
            cut = cut[:boundary]
        text = cut
    text = text.rstrip(" ,;:-").strip()
    return text if len(text) >= len(subject) else subject


def _suggest_from_model(subjects: list[str], count: int, seed: int, model: str, allow_download: bool,
                        device: str) -> list[str]:
    source = _resolve_model(model, allow_download)
    try:
        import torch
    except ImportError as e:
        raise InspireError(f"prompt models need torch ({e}); the built-in vocabulary works without") from e
    from .models.device import pick_device  # imports torch: only on the model path

    device = pick_device(device)
    tokenizer, lm = _load(model, source, allow_download, device)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        pad_id = getattr(lm.config, "eos_token_id", None)
    if isinstance(pad_id, (list, tuple)):
        pad_id = pad_id[0] if pad_id else None
    max_positions = getattr(lm.config, "n_positions", None) or getattr(lm.config, "max_position_embeddings", 1024)
    max_new = max(1, min(75, int(max_positions) - 1))

    suggestions: list[str] = []
    for i in range(count):
        subject = subjects[i % len(subjects)]
        ids = tokenizer(subject, add_special_tokens=False)["input_ids"]
        if not ids and tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id]
        ids = ids[: max(1, int(max_positions) - max_new)]
        if not ids:
            suggestions.append(subject)
            continue
        input_ids = torch.tensor([ids], device=device)
        gen_kwargs = dict(
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            max_new_tokens=min(max_new, int(max_positions) - len(ids)),
            temperature=0.9,
            top_k=50,
            top_p=0.95,
            repetition_penalty=1.2,
        )
        if pad_id is not None:
            gen_kwargs["pad_token_id"] = pad_id
        fork_devices = [torch.cuda.current_device()] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
            torch.manual_seed(seed * 1009 + i)  # one stream per suggestion: deterministic, distinct
            if device.startswith("cuda"):
                torch.cuda.manual_seed(seed * 1009 + i)
            out = lm.generate(input_ids, **gen_kwargs)
        full = tokenizer.decode(out[0], skip_special_tokens=True)
        echoed = tokenizer.decode(out[0][: len(ids)], skip_special_tokens=True)
        if full.startswith(echoed):  # strip the prompt echo; the user's own subject text goes first
            continuation = full[len(echoed):]
        else:
            continuation = " " + tokenizer.decode(out[0][len(ids):], skip_special_tokens=True)
        suggestions.append(_clean_generated(subject, continuation))
    return suggestions


# ---------------------------------------------------------------------------------------------------------------
# Public entry points


def suggest(subjects: Sequence[str], count: int = 4, seed: int = 0, model: str | None = None,
            allow_download: bool = False, device: str = "cpu") -> list[str]:
    """`count` prompt suggestions, cycling through `subjects`.

    Without `model`: the built-in vocabulary, deterministic for `seed`. With `model` (a Hugging Face id or a local
    folder holding a causal LM and its tokenizer): sampled text, seeded. Nothing is downloaded unless
    `allow_download` is true and HF_HUB_OFFLINE is not set.
    """
    subjects = _normalize_subjects(subjects)
    try:
        count = int(count)
        seed = int(seed)
    except (TypeError, ValueError) as e:
        raise InspireError(f"count and seed must be whole numbers ({e})") from e
    if not 1 <= count <= MAX_COUNT:
        raise InspireError(f"count must be between 1 and {MAX_COUNT}, got {count}")
    if model is None or not str(model).strip():
        return _suggest_from_vocabulary(subjects, count, seed)
    allow_download = bool(allow_download) and not _offline()
    return _suggest_from_model(subjects, count, seed, str(model), allow_download, device or "cpu")


def cli(argv: list[str] | None = None) -> int:
    """`python -m engine inspire SUBJECTS [--count N] [--seed S] [--model M] [--allow-download] [--device D]`:
    prints {"suggestions": [...], "source": "vocabulary" | model} as JSON; errors go to stderr with exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m engine inspire",
                                     description="Suggest Stable Diffusion prompts from one or more subjects.")
    parser.add_argument("subjects", nargs="*",
                        help="subjects, comma/semicolon-separated in one argument, or one per argument")
    parser.add_argument("--count", type=int, default=4, help="how many suggestions (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None,
                        help=f"a prompt-generator model id or folder (e.g. {KNOWN_MODELS[0]}); "
                             "default: the built-in vocabulary")
    parser.add_argument("--allow-download", action="store_true", help="let transformers download a missing model")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage and the error
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        text = "\n".join(args.subjects) if len(args.subjects) > 1 else (args.subjects[0] if args.subjects else "")
        subjects = parse_subjects(text)
        suggestions = suggest(subjects, count=args.count, seed=args.seed, model=args.model,
                              allow_download=args.allow_download, device=args.device)
    except InspireError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    source = args.model.strip() if args.model and args.model.strip() else "vocabulary"
    print(json.dumps({"suggestions": suggestions, "source": source}))
    return 0
