"""What models this machine has: the Hugging Face cache and the user's models folders, listed by kind.

Only configs and safetensors headers are read, never weights, so a scan of many multi-GB files is quick, and pickle
files (.ckpt/.bin/.pt) are listed by name without being opened. Each entry is a plain dict:

    {"kind": one of KINDS, "name": str, "ref": str, "source": "hf-cache" | "folder", "size_mb": float, "detail": str}

Pipelines and checkpoints also carry "recommended": their recommended settings (models/recommend.py) or None.

`ref` is what the Model field (or a LoRA's path) takes: a Hugging Face id for a cached diffusers repo, an absolute
path for anything else. Also: `download_files`, the files of a Hub repo worth downloading for the engine.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import ModelError
from .models.hub import looks_like_repo_id
from .models.locate import PIPELINE_CLASSES
from .models.options import PICKLE_EXTENSIONS, SAFE_EXTENSIONS
from .models.recommend import read_json_object, recommended

KINDS = ("pipeline", "checkpoint", "lora", "controlnet", "motion_adapter", "vae", "other")
MAX_DEPTH = 3  # folder levels below a models folder that are searched
PICKLE_DETAIL = "pickle: needs Allow Pickle Weights"

# config.json `_class_name` of a single diffusers model -> its kind.
MODEL_CLASSES = {
    "ControlNetModel": "controlnet",
    "MotionAdapter": "motion_adapter",
    "AutoencoderKL": "vae",
    "AutoencoderTiny": "vae",
}
# UNet cross-attention width -> the base model family.
_BASE_BY_WIDTH = {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL"}


def scan(folders: list[str], hf_cache: bool = True, warnings: list[str] | None = None) -> list[dict]:
    """Every model in the Hugging Face cache (if `hf_cache`) and in `folders`, sorted by kind (in KINDS order) then
    name. Never raises for what it finds: unreadable files are kind "other" with the error as detail; a folder that
    can't be searched, or a broken cache, adds a line to `warnings` if given."""
    warnings = [] if warnings is None else warnings
    entries = scan_hf_cache(warnings) if hf_cache else []
    for folder in folders:
        entries += scan_folder(folder, warnings)
    for entry in entries:
        if entry["kind"] in ("pipeline", "checkpoint"):
            entry["recommended"] = _recommended(entry, warnings)
    return sorted(entries, key=lambda e: (KINDS.index(e["kind"]), e["name"].lower(), e["ref"]))


def _recommended(entry: dict, warnings: list[str]) -> dict | None:
    """The model's recommended settings (models/recommend.py) as a dict, or None; a broken card is a warning."""
    try:
        found = recommended(entry["ref"], hint=entry["detail"])
    except ModelError as e:
        warnings.append(str(e))
        return None
    return found.as_dict() if found is not None else None


def _entry(kind: str, name: str, ref: str, source: str, size: int, detail: str) -> dict:
    return {"kind": kind, "name": name, "ref": ref, "source": source, "size_mb": round(size / 2**20, 2),
            "detail": detail}


# --------------------------------------------------------------------------------------------------------------------
# The Hugging Face cache


def scan_hf_cache(warnings: list[str]) -> list[dict]:
    """Model repos in the Hugging Face cache (HF_HUB_CACHE / HF_HOME), each classified by its current revision."""
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        warnings.append("huggingface_hub is not installed in the engine Python: the Hugging Face cache was not read")
        return []
    try:
        info = scan_cache_dir()
    except CacheNotFound:
        return []  # nothing downloaded yet
    except (OSError, ValueError) as e:
        warnings.append(f"the Hugging Face cache could not be read: {e}")
        return []
    warnings += [f"Hugging Face cache: {w}" for w in info.warnings]
    entries = []
    for repo in info.repos:
        if repo.repo_type == "model" and repo.revisions:
            entries += _cached_repo_entries(repo)
    return entries


def _current_revision(repo):
    """The revision the repo id loads (the 'main' ref), else the newest one."""
    return repo.refs.get("main") or max(repo.revisions, key=lambda r: r.last_modified)


def _cached_repo_entries(repo) -> list[dict]:
    revision = _current_revision(repo)
    folder = str(revision.snapshot_path)
    found = classify_folder(folder)
    if found is not None:
        kind, detail = found
        # A diffusers repo loads by its id; a non-diffusers model (kind "other") has no id the engine takes.
        ref = repo.repo_id if kind != "other" else folder
        return [_entry(kind, repo.repo_id, ref, "hf-cache", revision.size_on_disk, detail)]
    # No diffusers config: a repo of single files (LoRAs, checkpoints), each usable by its path in the snapshot.
    files = [f for f in revision.files if f.file_path.parent == revision.snapshot_path
             and f.file_name.lower().endswith(SAFE_EXTENSIONS + PICKLE_EXTENSIONS)]
    if not files:
        return [_entry("other", repo.repo_id, folder, "hf-cache", revision.size_on_disk, "no diffusers config")]
    return [_file_entry(str(f.file_path), f"{repo.repo_id}/{f.file_name}", "hf-cache") for f in files]


# --------------------------------------------------------------------------------------------------------------------
# Models folders


def scan_folder(folder: str, warnings: list[str]) -> list[dict]:
    """Diffusers folders and single weight files in `folder`, down to MAX_DEPTH levels (a diffusers folder is one
    entry: its component files are not listed again)."""
    root = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isdir(root):
        warnings.append(f"models folder '{folder}' does not exist")
        return []
    entries: list[dict] = []
    _walk(root, root, 0, entries, warnings)
    return entries


def _walk(root: str, folder: str, depth: int, entries: list[dict], warnings: list[str]) -> None:
    found = classify_folder(folder)
    if found is not None:
        name = os.path.basename(folder) if folder == root else os.path.relpath(folder, root)
        entries.append(_entry(found[0], name, folder, "folder", _folder_size(folder), found[1]))
        return
    try:
        children = sorted(os.scandir(folder), key=lambda d: d.name)
    except OSError as e:
        warnings.append(f"can't search folder '{folder}': {e.strerror or e}")
        return
    for child in children:
        if child.name.startswith("."):
            continue  # .cache, .git and the like hold no models of the user's
        try:
            is_dir, is_file = child.is_dir(), child.is_file()
        except OSError:
            continue  # a dangling link or a vanished file
        if is_dir and depth < MAX_DEPTH:
            _walk(root, child.path, depth + 1, entries, warnings)
        elif is_file and child.name.lower().endswith(SAFE_EXTENSIONS + PICKLE_EXTENSIONS):
            entries.append(_file_entry(child.path, os.path.relpath(child.path, root), "folder"))


def _folder_size(folder: str) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass
    return total


# --------------------------------------------------------------------------------------------------------------------
# Classifying


def classify_folder(folder: str) -> tuple[str, str] | None:
    """(kind, detail) of a diffusers folder (a pipeline by its model_index.json, a single model by its config.json),
    or None when it is not one."""
    index = read_json_object(os.path.join(folder, "model_index.json"))
    if index is not None:
        return "pipeline", _pipeline_detail(folder, index)
    config = read_json_object(os.path.join(folder, "config.json"))
    if config is None:
        return None
    if not isinstance(config.get("_class_name"), str):
        if "architectures" in config or "model_type" in config:  # transformers' config: one entry for the folder
            names = config.get("architectures") or [config.get("model_type")]
            return "other", f"not a diffusers model ({', '.join(map(str, names))})"
        return None
    class_name = config["_class_name"]
    base = _BASE_BY_WIDTH.get(config.get("cross_attention_dim"))
    if class_name == "ControlNetModel" and config.get("addition_embed_type") == "text_time":
        base = "SDXL"
    return MODEL_CLASSES.get(class_name, "other"), ", ".join(filter(None, [class_name, base]))


def _pipeline_detail(folder: str, index: dict) -> str:
    class_name = str(index.get("_class_name") or "no _class_name")
    if class_name not in PIPELINE_CLASSES:
        return f"{class_name}: the engine runs SD 1.x/2.x and SDXL pipelines only"
    if PIPELINE_CLASSES[class_name] == "sdxl":
        return f"{class_name}, SDXL"
    unet = read_json_object(os.path.join(folder, "unet", "config.json")) or {}
    base = _BASE_BY_WIDTH.get(unet.get("cross_attention_dim"), "")
    return ", ".join(filter(None, [class_name, base]))


def _file_entry(path: str, name: str, source: str) -> dict:
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return _entry("other", name, path, source, 0, f"unreadable: {e.strerror or e}")
    if path.lower().endswith(PICKLE_EXTENSIONS):
        # Opening a pickle can run code: its kind is only guessed from its name.
        return _entry(_kind_from_name(os.path.basename(path)), name, path, source, size, PICKLE_DETAIL)
    kind, detail = classify_safetensors(path)
    return _entry(kind, name, path, source, size, detail)


def _kind_from_name(filename: str) -> str:
    lower = filename.lower()
    for word, kind in (("lora", "lora"), ("motion", "motion_adapter"), ("mm_sd", "motion_adapter"),
                       ("control", "controlnet"), ("vae", "vae")):
        if word in lower:
            return kind
    return "checkpoint" if lower.endswith(".ckpt") else "other"


def classify_safetensors(path: str) -> tuple[str, str]:
    """(kind, detail) of a .safetensors file from its header alone (tensor names, shapes, metadata)."""
    try:
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as f:
            keys = list(f.keys())
            metadata = f.metadata() or {}
            return classify_keys(keys, metadata, lambda key: f.get_slice(key).get_shape())
    except Exception as e:  # safetensors raises its own error type for a bad header; OSError for the rest
        return "other", f"not a readable safetensors file: {e}"


def classify_keys(keys: list[str], metadata: dict[str, str], shape=None) -> tuple[str, str]:
    """(kind, detail) from a checkpoint's tensor names (and `shape(key)`, which reads a shape from the header)."""
    if any(re.search(r"lora[._](up|down|A|B)\b|^lora_(unet|te)", k) for k in keys):
        what = "motion LoRA (AnimateDiff)" if any("motion_modules" in k for k in keys) else "LoRA"
        return "lora", ", ".join(filter(None, [what, _lora_base(keys, metadata, shape)]))
    if any("motion_modules" in k for k in keys):
        return "motion_adapter", "AnimateDiff motion module"
    if any(k.startswith("control_model.") or "controlnet" in k for k in keys):
        return "controlnet", "ControlNet (single file)"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "checkpoint", _checkpoint_base(keys)
    if keys and all(k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")) for k in keys):
        return "vae", "VAE (single file)"
    return "other", f"{len(keys)} tensors of no known kind"


def _checkpoint_base(keys: list[str]) -> str:
    if any(k.startswith("conditioner.embedders.") for k in keys):
        return "SDXL"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "SD2.x"  # OpenCLIP text encoder
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "SD1.x"
    return "SD1.x/2.x"


def _lora_base(keys: list[str], metadata: dict[str, str], shape) -> str:
    """The base model a LoRA was trained for, when its metadata or tensors tell."""
    version = (metadata.get("ss_base_model_version") or metadata.get("modelspec.architecture") or "").lower()
    if "xl" in version:
        return "SDXL"
    if version.startswith(("sd_v1", "stable-diffusion-v1")):
        return "SD1.x"
    if version.startswith(("sd_v2", "stable-diffusion-v2")):
        return "SD2.x"
    if any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in keys):
        return "SDXL"
    if shape is not None:
        # The down projection of a cross-attention key reads the text width: 768 SD1.x, 1024 SD2.x, 2048 SDXL.
        for k in keys:
            if re.search(r"attn2[._]to_k.*lora_(down|A)", k):
                try:
                    return _BASE_BY_WIDTH.get(shape(k)[-1], "")
                except Exception:  # an odd header entry: the base stays unknown
                    return ""
    return ""


# --------------------------------------------------------------------------------------------------------------------
# Downloading

_CONFIG_EXTENSIONS = (".json", ".txt", ".model")  # configs, tokenizer vocabularies and merges, sentencepiece models
_VARIANT = re.compile(r"\.(fp16|fp32|bf16|ema|non_ema)(?=\.[^.]+$)")


def download_files(files: list[str], allow_unsafe: bool = False) -> list[str]:
    """Which of a Hub repo's files to download for the engine: configs and tokenizers, and safetensors weights (pickle
    weights only if allowed, and only where no safetensors file stands beside them). A diffusers pipeline repo gets
    only its components' weights, not the single-file checkpoints that many keep at the top as well, and weight
    variants (.fp16, .non_ema) are skipped where the plain file exists: one copy of the model, not five."""
    pipeline = "model_index.json" in files
    weights = SAFE_EXTENSIONS + (PICKLE_EXTENSIONS if allow_unsafe else ())
    chosen = []
    for name in files:
        lower = name.lower()
        if lower.endswith(_CONFIG_EXTENSIONS):
            chosen.append(name)
        elif lower.endswith(weights) and not (pipeline and "/" not in name):
            chosen.append(name)
    present = set(chosen)
    safe_folders = {os.path.dirname(n) for n in chosen if n.lower().endswith(SAFE_EXTENSIONS)}

    def redundant(name: str) -> bool:
        if name.lower().endswith(PICKLE_EXTENSIONS) and os.path.dirname(name) in safe_folders:
            return True
        plain = _VARIANT.sub("", name)
        return plain != name and plain in present

    return [n for n in chosen if not redundant(n)]


def download(repo_id: str, allow_unsafe: bool = False) -> dict[str, Any]:
    """Download what the engine needs of a Hub model repo into the Hugging Face cache; returns its local folder and
    file count. Network and Hub errors are raised as ModelError with the repo named."""
    from huggingface_hub import HfApi, snapshot_download

    if not looks_like_repo_id(repo_id):
        raise ModelError(f"'{repo_id}' is not a Hugging Face model id like 'stabilityai/sd-turbo'")
    try:
        files = download_files(HfApi().list_repo_files(repo_id), allow_unsafe)
        if not files:
            raise ModelError(f"'{repo_id}' has no configs or safetensors weights to download"
                             + ("" if allow_unsafe else " (pickle weights need Allow Pickle Weights)"))
        # File names are given as patterns: escape the characters fnmatch would read as wildcards.
        patterns = [re.sub(r"([*?\[])", r"[\1]", f) for f in files]
        path = snapshot_download(repo_id, allow_patterns=patterns)
    except ModelError:
        raise
    except Exception as e:  # the Hub and the network raise many error types
        raise ModelError(f"could not download '{repo_id}': {e}") from e
    return {"repo_id": repo_id, "path": path, "files": len(files)}
