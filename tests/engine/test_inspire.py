"""Prompt suggestions (engine.inspire): vocabulary, subjects, a tiny local GPT-2, the HF cache lookup, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine import inspire
from engine.inspire import InspireError, VOCABULARY, find_local_models, parse_subjects, suggest


# --- vocabulary ------------------------------------------------------------------------------------------------


def test_vocabulary_is_curated():
    for key in ("styles", "media", "lighting", "artists", "colors", "moods"):
        entries = VOCABULARY[key]
        assert 15 <= len(entries) <= 45, key
        assert len(set(e.lower() for e in entries)) == len(entries), f"duplicates in {key}"
        assert all(e == e.strip() and "," not in e for e in entries), key
    assert "in the style of J. M. W. Turner" in VOCABULARY["artists"]


def test_vocabulary_suggestions_deterministic_per_seed():
    a = suggest(["a corgi"], count=4, seed=7)
    assert a == suggest(["a corgi"], count=4, seed=7)
    assert a != suggest(["a corgi"], count=4, seed=8)
    assert len(a) == 4 and len(set(a)) == 4
    for s in a:
        assert s.startswith("a corgi, ")
        assert "\n" not in s and len(s) <= inspire.MAX_SUGGESTION_CHARS


def test_vocabulary_cycles_subjects_and_respects_count():
    out = suggest(["a corgi", "a lion", "a castle"], count=7, seed=1)
    assert len(out) == 7
    expected = ["a corgi", "a lion", "a castle"] * 3
    for s, subject in zip(out, expected):
        assert s.startswith(subject + ", ")
    assert len(set(out)) == 7
    assert len(suggest(["x"], count=1)) == 1
    big = suggest(["a fox"], count=inspire.MAX_COUNT, seed=3)
    assert len(set(big)) == inspire.MAX_COUNT


def test_suggest_accepts_text_and_rejects_bad_input():
    assert suggest("a corgi; a lion", count=2)[1].startswith("a lion")
    with pytest.raises(InspireError, match="subject"):
        suggest([], count=2)
    with pytest.raises(InspireError, match="subject"):
        suggest(["  ", ""], count=2)
    with pytest.raises(InspireError, match="count"):
        suggest(["a corgi"], count=0)


# --- subjects --------------------------------------------------------------------------------------------------


def test_parse_subjects_separators():
    assert parse_subjects("a corgi, a lion; a castle") == ["a corgi", "a lion", "a castle"]
    assert parse_subjects("a corgi\n\n  a lion  \na castle\n") == ["a corgi", "a lion", "a castle"]
    # one per line keeps commas inside a subject
    assert parse_subjects("a corgi, wearing a crown\na lion") == ["a corgi, wearing a crown", "a lion"]
    assert parse_subjects("- a corgi\n* a  lion.\n3. a castle") == ["a corgi", "a lion", "a castle"]
    assert parse_subjects('"a corgi", a corgi, A Corgi') == ["a corgi"]
    assert parse_subjects("3 cats") == ["3 cats"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", ", ;,", " - "])
def test_parse_subjects_empty_is_an_error(text):
    with pytest.raises(InspireError, match="give a subject"):
        parse_subjects(text)


def test_module_imports_only_stdlib():
    code = ("import sys; import engine.inspire; "
            "bad = [m for m in ('torch', 'transformers', 'huggingface_hub', 'tokenizers', 'bpy') if m in sys.modules]; "
            "print(bad)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(inspire.__file__)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- tiny local model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A random-weight 1-layer GPT-2 with a word-level tokenizer, saved as a transformers folder (safetensors)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    import torch

    folder = tmp_path_factory.mktemp("tiny-prompt-lm")
    corpus = [
        "a corgi in a field , oil painting , golden hour , highly detailed",
        "a lion on a rock , watercolor , dramatic lighting , sharp focus",
        "a castle in the clouds , matte painting , volumetric light , epic",
        "portrait of a cat , digital art , soft light , trending , intricate",
    ]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "[EOS]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    fast.save_pretrained(folder)

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(fast), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id,
                        pad_token_id=fast.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    assert (folder / "model.safetensors").is_file()
    return str(folder)


def test_model_suggestions(tiny_lm):
    out = suggest(["a corgi", "a lion"], count=3, seed=5, model=tiny_lm)
    assert len(out) == 3
    for s, subject in zip(out, ["a corgi", "a lion", "a corgi"]):
        assert s and s.strip() == s
        assert "\n" not in s and "  " not in s
        assert s.startswith(subject)
        assert len(s) <= inspire.MAX_SUGGESTION_CHARS
        assert "[UNK]" not in s and "[EOS]" not in s
    assert out == suggest(["a corgi", "a lion"], count=3, seed=5, model=tiny_lm)
    assert out != suggest(["a corgi", "a lion"], count=3, seed=6, model=tiny_lm)


def test_model_folder_without_config(tmp_path):
    with pytest.raises(InspireError, match="config.json"):
        suggest(["a corgi"], model=str(tmp_path))


def test_clean_generated():
    clean = inspire._clean_generated
    assert clean("a corgi", "") == "a corgi"
    assert clean("a corgi", " , ,  \n more") == "a corgi"
    assert clean("a corgi", "\nin space, 4k\nsecond prompt") == "a corgi in space, 4k"
    assert clean("a corgi", ",  oil   painting ,, golden hour,") == "a corgi, oil painting, golden hour"
    long = clean("a corgi", ", " + ", ".join(["very long descriptor"] * 40))
    assert long.startswith("a corgi, very") and len(long) <= inspire.MAX_SUGGESTION_CHARS
    assert not long.endswith(",")


def test_missing_model_offline_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    with pytest.raises(InspireError) as info:
        suggest(["a corgi"], model="someone/not-a-real-prompt-model", allow_download=False)
    message = str(info.value)
    assert "someone/not-a-real-prompt-model" in message
    assert "hf download someone/not-a-real-prompt-model" in message
    # HF_HUB_OFFLINE wins over allow_download: still no network, same error
    with pytest.raises(InspireError, match="not-a-real-prompt-model"):
        suggest(["a corgi"], model="someone/not-a-real-prompt-model", allow_download=True)
    with pytest.raises(InspireError, match="not found"):
        suggest(["a corgi"], model=str(tmp_path / "no" / "such" / "folder"))


# --- local cache -----------------------------------------------------------------------------------------------


def _isolate_cache(monkeypatch, home):
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)


def test_find_local_models_empty_cache(monkeypatch, tmp_path):
    _isolate_cache(monkeypatch, tmp_path / "missing-hf-home")
    assert find_local_models() == []
    (tmp_path / "empty-hf-home" / "hub").mkdir(parents=True)
    _isolate_cache(monkeypatch, tmp_path / "empty-hf-home")
    assert find_local_models() == []


def test_find_local_models_sees_a_cached_snapshot(monkeypatch, tmp_path, tiny_lm):
    """A fake cache entry laid out like huggingface_hub's (refs/main -> snapshots/<rev>/...) is found and loads."""
    import shutil

    repo = inspire.KNOWN_MODELS[0]
    repo_dir = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_lm, snapshot)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    _isolate_cache(monkeypatch, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert find_local_models() == [repo]
    out = suggest(["a castle"], count=2, seed=0, model=repo)
    assert len(out) == 2 and all(s.startswith("a castle") for s in out)


# --- CLI -------------------------------------------------------------------------------------------------------


def test_cli_vocabulary(capsys):
    assert inspire.cli(["a corgi, a lion", "--count", "3", "--seed", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "vocabulary"
    assert len(data["suggestions"]) == 3
    assert data["suggestions"][0].startswith("a corgi") and data["suggestions"][1].startswith("a lion")
    assert data["suggestions"] == suggest(["a corgi", "a lion"], count=3, seed=2)


def test_cli_several_arguments_are_several_subjects(capsys):
    assert inspire.cli(["a corgi, wearing a crown", "a lion", "--count", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["suggestions"][0].startswith("a corgi, wearing a crown, ")
    assert data["suggestions"][1].startswith("a lion, ")


def test_cli_model(capsys, tiny_lm):
    assert inspire.cli(["a corgi", "--model", tiny_lm, "--count", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == tiny_lm and len(data["suggestions"]) == 2


@pytest.mark.parametrize("argv", [[""], ["  ,  "], []])
def test_cli_empty_subjects(capsys, argv):
    assert inspire.cli(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "give a subject" in err and "\n" not in err


def test_cli_missing_model(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _isolate_cache(monkeypatch, tmp_path)
    assert inspire.cli(["a corgi", "--model", "someone/absent-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert "someone/absent-model" in err and "\n" not in err
