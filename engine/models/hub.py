"""Hugging Face ids and the local Hub cache: what is already there, looked up without reaching the network."""

from __future__ import annotations


def looks_like_repo_id(model: str) -> bool:
    """'owner/name' with no empty, hidden or spaced part: worth looking up on the Hub."""
    parts = model.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") and " " not in p for p in parts)


def cached_file(repo_id: str, filename: str) -> str | None:
    """The local path of one file of a Hub repo if the cache has it, else None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def in_hf_cache(repo_id: str) -> bool:
    """Whether the cache holds a diffusers pipeline of that id (its model_index.json)."""
    return cached_file(repo_id, "model_index.json") is not None
