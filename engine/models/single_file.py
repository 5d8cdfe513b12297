"""Single-file checkpoints (one .safetensors, or a pickle when allowed): whether the file may be and can be read,
and the local folder of its base model's configs that diffusers needs to convert it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ModelError
from .hub import cached_file, looks_like_repo_id
from .options import ALLOW_DOWNLOADS, PICKLE_EXTENSIONS, SAFE_EXTENSIONS, LoadOptions

# What diffusers needs of a base model to read a single-file checkpoint: configs and tokenizer files, no weights.
_CONFIG_PATTERNS = ["*.json", "**/*.json", "*.txt", "**/*.txt", "**/*.model"]


def check_single_file(model: str, path: str, allow_unsafe: bool) -> None:
    """Refuse pickles (they can run code when loaded) unless opted in, and files that aren't checkpoints at all."""
    lower = path.lower()
    if lower.endswith(PICKLE_EXTENSIONS):
        if not allow_unsafe:
            raise ModelError(
                f"model '{model}' is a single file in a pickle format ({os.path.splitext(path)[1]}), which can run "
                "code when loaded: use a .safetensors version of it, or allow unsafe (pickle) weights in the "
                "preferences if you trust its source"
            )
        return
    if not lower.endswith(SAFE_EXTENSIONS):
        raise ModelError(f"model '{model}' is a single file but not a checkpoint (.safetensors, or .ckpt/.pt with "
                         "unsafe weights allowed)")
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise ModelError(f"model '{model}' is a single file but not a readable safetensors checkpoint: {e}") from e


class _LazyCheckpoint(Mapping):
    """A safetensors file as a read-only mapping that loads a tensor only when asked: enough for diffusers to
    guess the architecture from a few keys without reading gigabytes."""

    def __init__(self, handle: Any):
        self._f = handle
        self._keys = set(handle.keys())

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return self._f.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


def _guess_base_repo(path: str) -> str | None:
    """The Hugging Face id of the base model whose configs match this checkpoint, as diffusers guesses it."""
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    try:
        if path.lower().endswith(SAFE_EXTENSIONS):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                return fetch_diffusers_config(_LazyCheckpoint(f))["pretrained_model_name_or_path"]
        # Pickles only reach here with unsafe weights allowed; they can't be read lazily.
        from diffusers.loaders.single_file_utils import load_single_file_checkpoint

        return fetch_diffusers_config(load_single_file_checkpoint(path, local_files_only=True))[
            "pretrained_model_name_or_path"]
    except Exception:
        return None


def single_file_config_dir(model: str, path: str, options: LoadOptions) -> str:
    """A local folder with the configs a single-file checkpoint needs. diffusers would download them behind our back
    (even with local_files_only) when they are not cached, so the engine finds them itself and hands over a folder."""
    config = (options.single_file_config or "").strip()
    if config:
        expanded = os.path.expanduser(config)
        if os.path.isdir(expanded):
            if not os.path.isfile(os.path.join(expanded, "model_index.json")):
                raise ModelError(f"config '{config}' for model '{model}' has no model_index.json: give a diffusers "
                                 "folder (or Hugging Face id) of a model with the same architecture")
            return expanded
        if not looks_like_repo_id(config):
            raise ModelError(f"config '{config}' for model '{model}' is neither a diffusers folder nor a Hugging Face "
                             "id like 'stabilityai/stable-diffusion-xl-base-1.0'")
        repo, why = config, f"its config '{config}'"
    else:
        repo = _guess_base_repo(path)
        if repo is None:
            raise ModelError(f"model '{model}' is a single file whose architecture could not be recognised: set a "
                             "config (a diffusers folder or Hugging Face id of its base model)")
        why = f"the config of its base model '{repo}' (guessed from its weights)"
    cached = cached_file(repo, "model_index.json")
    if cached is not None:
        return os.path.dirname(cached)
    if not options.allow_download:
        raise ModelError(
            f"model '{model}' is a single file; loading it needs {why}, which is not in the Hugging Face cache and "
            f"downloads are off. Get it with `hf download {repo} --include '*.json' '*.txt'`, set a config (a "
            f"diffusers folder or cached id of a model with the same architecture), or {ALLOW_DOWNLOADS}."
        )
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo, allow_patterns=_CONFIG_PATTERNS)
    except Exception as e:  # network and hub errors come in many types
        raise ModelError(f"could not download {why} for model '{model}': {e}") from e
