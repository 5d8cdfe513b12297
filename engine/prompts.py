"""Prompt text to conditioning tensors: composable prompts, Compel weighting, caching and per-frame blending.

Composable prompts (Composable Diffusion)
-----------------------------------------
A prompt text may be split by ``|`` into parts, each with an optional trailing weight written as a space, a colon
and a number at the very end of the part::

    a red circle :1.5 | a blue square :0.5 | a tree
    -> [("a red circle", 1.5), ("a blue square", 0.5), ("a tree", 1.0)]

* Only a ``|`` outside parentheses and brackets splits (``(a | b)`` belongs to Compel's syntax), and a
  backslash-escaped ``\\|`` never splits.
* The weight is recognised only as `` :NUMBER`` at the end of a part, with whitespace before the colon: a colon
  inside a word is text ("ratio 16:9 poster" stays one part, and so does "a cat:1.5"). A whitespace-led colon that ends
  the part but is not followed by a number (``a :x``, ``a :``) is an error.
* A text without any splitting ``|`` is a single part with weight 1, kept exactly as written (no weight is parsed).
* Weight 0 drops the part. Negative weights are allowed ("push away from this") as long as the weights of the
  remaining parts sum to more than zero.

Semantics: every part is encoded on its own and the UNet is run once per part (see ``engine.composable``); the
conditional noise prediction is the weighted mean ``sum_i w_i * eps(part_i) / sum_i w_i``. With classifier-free
guidance this is exactly Composable Diffusion's ``eps_u + g * sum_i w_i' (eps_i - eps_u)`` with the weights
normalised to ``w_i' = w_i / sum_j w_j``. ``PromptEncoder.encode`` returns the normalised weights.

Compel weighting
----------------
Inside a part (and in negative prompts) Compel's syntax works: ``(word)1.2``, ``word++``, ``word-``,
``("a", "b").blend(0.3, 0.7)``, ``("a", "b").and()``. Compel is used only when the text really uses that syntax
(one of ``()+-`` or ``.blend(``/``.and(``, and Compel's parser finds more than the plain text); every other text goes
through the pipeline's own ``encode_prompt``, so plain prompts give diffusers' embeddings exactly. For SDXL the
hidden states are the penultimate layers of both encoders side by side (as ``encode_prompt`` does); the pooled
embedding comes from the second encoder run on the text with the syntax stripped (the weights do not reach it; for a
``.blend`` it is the blend's weighted mean of each prompt's pooled embedding).

SDXL pooled embeddings of composable prompts
--------------------------------------------
The UNet's text-time embedding takes one pooled vector per sample, so all parts of a frame share one: the weighted
mean of the parts' pooled embeddings (with the normalised part weights). This is an approximation: the parts' hidden
states are composed per UNet call, their pooled vectors only linearly.

An empty negative prompt on a pipeline configured with ``force_zeros_for_empty_prompt`` (SDXL) gives zero embeddings,
as calling the pipeline without a negative prompt does.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch

from .latents import blend

__all__ = ["FrameCondition", "PromptEncoder", "parse_composable", "pipeline_inputs", "uses_compel_syntax"]

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_WEIGHT = re.compile(r"(?:^|\s):\s*(" + _NUMBER + r")\s*$")
_BAD_WEIGHT = re.compile(r"(?:^|\s)(:)(\S*)\s*$")
_COMPEL_HINT = re.compile(r"[()+\-]|\.blend\(|\.and\(")


def _split_top_level(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the text between the ``|`` that lie outside parentheses and brackets."""
    spans, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth = max(0, depth - 1)
        elif c == "|" and depth == 0:
            spans.append((start, i))
            start = i + 1
        i += 1
    spans.append((start, len(text)))
    return spans


def parse_composable(text: str) -> list[tuple[str, float]]:
    """Split a composable prompt into (part text, weight) pairs; see the module docstring for the syntax.

    Parts with weight 0 are left out. Raises ValueError, naming the 1-based character position, for an empty part, a
    malformed weight or weights that do not sum to more than zero.
    """
    spans = _split_top_level(text)
    if len(spans) == 1:
        return [(text, 1.0)]
    parts: list[tuple[str, float]] = []
    for index, (start, end) in enumerate(spans):
        chunk = text[start:end]
        weight = 1.0
        match = _WEIGHT.search(chunk)
        if match:
            weight = float(match.group(1))
            chunk = chunk[: match.start()]
        else:
            bad = _BAD_WEIGHT.search(chunk)
            if bad:
                where = start + bad.start(1) + 1
                raise ValueError(f"composable prompt: malformed weight {(':' + bad.group(2))!r} at character {where}; "
                                 f"a part's weight is written ' :NUMBER' at its end, e.g. 'a red circle :1.5'")
        if not chunk.strip():
            if index + 1 < len(spans):
                where, side = end + 1, "before"
            else:
                where, side = start, "after"
            raise ValueError(f"composable prompt: empty part {side} the '|' at character {where}")
        if weight != 0.0:
            parts.append((chunk.strip(), weight))
    total = sum(w for _, w in parts)
    if not parts or total <= 0:
        raise ValueError(f"composable prompt: the part weights must sum to more than zero (they sum to {total:g})")
    return parts


def uses_compel_syntax(text: str) -> bool:
    """Whether Compel would read more into `text` than the plain words (weights, blends, conjunctions)."""
    if not _COMPEL_HINT.search(text):
        return False
    from compel import Compel
    from compel.prompt_parser import Fragment, FlattenedPrompt

    try:
        conjunction = Compel.parse_prompt_string(text)
    except Exception:  # noqa: BLE001 - text Compel cannot parse is plain text to it
        return False
    if len(conjunction.prompts) != 1 or conjunction.weights != [1.0]:
        return True
    prompt = conjunction.prompts[0]
    if type(prompt) is not FlattenedPrompt or len(prompt.children) != 1:
        return True
    fragment = prompt.children[0]
    return type(fragment) is not Fragment or fragment.weight != 1.0 or fragment.text != " ".join(text.split())


@dataclass
class FrameCondition:
    """The text conditioning of one frame."""

    positive: torch.Tensor  # (K, seq, dim): one row per composable part (K >= 1)
    part_weights: list[float]  # K weights summing to 1
    negative: torch.Tensor  # (seq, dim)
    pooled: torch.Tensor | None  # (pooled_dim,) SDXL only; for K > 1 the weighted mean of the parts' pooled
    negative_pooled: torch.Tensor | None
    padding: torch.Tensor | None = None  # (chunk, dim): the empty prompt, to pad longer ('.and()') sequences


def _pad(tensor: torch.Tensor, length: int, padding: torch.Tensor | None) -> torch.Tensor:
    """Pad a (seq, dim) tensor along seq to `length` with whole copies of the empty-prompt chunk (as Compel does)."""
    if tensor.shape[0] == length:
        return tensor
    if padding is None or (length - tensor.shape[0]) % padding.shape[0]:
        raise ValueError(f"cannot pad prompt embeddings of length {tensor.shape[0]} to {length}")
    repeats = (length - tensor.shape[0]) // padding.shape[0]
    return torch.cat([tensor, padding.to(tensor.device, tensor.dtype).repeat(repeats, 1)])


def _mix(tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Slerp-blend (latents.blend); identical tensors come back unchanged, and a zero tensor (SDXL's empty negative)
    falls back to a linear mix, since slerp has no direction for it."""
    if len(tensors) == 1 or all(t is tensors[0] or torch.equal(t, tensors[0]) for t in tensors[1:]):
        return tensors[0]
    if any(float(t.abs().max()) == 0.0 for t in tensors):
        total = sum(weights)
        return sum((w / total) * t.float() for t, w in zip(tensors, weights)).to(tensors[0].dtype)
    return blend(tensors, weights)


class _TextualInversion:
    """Compel's hook for multi-vector textual inversion tokens, for one tokenizer of the pipeline."""

    def __init__(self, pipe, tokenizer):
        self.pipe, self.tokenizer = pipe, tokenizer

    def expand_textual_inversion_token_ids_if_necessary(self, token_ids: list[int]) -> list[int]:
        if not token_ids:
            return token_ids
        text = self.tokenizer.decode(token_ids)
        converted = self.pipe.maybe_convert_prompt(text, self.tokenizer)
        return token_ids if converted == text else self.tokenizer.encode(converted, add_special_tokens=False)


# Texts a pipeline has encoded stay on it between renders while its text encoders are unchanged (the same modules,
# dtype, device, vocabulary and LoRAs): a warm re-run of one frame encodes nothing again. At most this many texts.
SHARED_TEXTS = 256


def _shared_cache(pipe) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """The base pipeline's cache of encoded texts, emptied when anything that shapes the encoding changed."""
    from .models.derive import base_pipeline

    base = base_pipeline(pipe)
    encoders = [getattr(base, name, None) for name in ("text_encoder", "text_encoder_2")]
    tokenizers = [getattr(base, name, None) for name in ("tokenizer", "tokenizer_2")]
    state = (tuple(None if e is None else (id(e), str(e.dtype), str(e.device)) for e in encoders),
             tuple(None if t is None else len(t) for t in tokenizers), base.__dict__.get("_kd_lora_state", ()))
    saved = base.__dict__.get("_kd_prompt_cache")
    if saved is None or saved[0] != state:
        saved = (state, {})
        base.__dict__["_kd_prompt_cache"] = saved
    return saved[1]


class PromptEncoder:
    """Encodes prompt texts for an SD or SDXL pipeline, each distinct text once."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.sdxl = getattr(pipe, "text_encoder_2", None) is not None or getattr(pipe, "tokenizer_2", None) is not None
        self.zero_empty_negative = bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
        self._cache = _shared_cache(pipe)
        self._compels = None

    @functools.cached_property
    def device(self) -> torch.device:
        # Once per encoder (a render): diffusers finds it by walking every module, milliseconds a call.
        return getattr(self.pipe, "_execution_device", None) or self.pipe.device

    # --- single texts -----------------------------------------------------------------------------------------

    def embed(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(hidden states (seq, dim), pooled (pooled_dim,) or None) of one text, cached."""
        if text not in self._cache:
            if len(self._cache) >= SHARED_TEXTS:
                self._cache.clear()
            with torch.no_grad():
                self._cache[text] = self._compel(text) if uses_compel_syntax(text) else self._plain(text)
        return self._cache[text]

    def _plain(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.sdxl:
            embeds, _, pooled, _ = self.pipe.encode_prompt(prompt=text, device=self.device, num_images_per_prompt=1,
                                                           do_classifier_free_guidance=False)
            return embeds[0], pooled[0]
        embeds, _ = self.pipe.encode_prompt(text, self.device, 1, False)
        return embeds[0], None

    def _encoders(self) -> list[tuple[object, object]]:
        pairs = [(self.pipe.tokenizer, self.pipe.text_encoder)]
        if self.sdxl:
            pairs.append((self.pipe.tokenizer_2, self.pipe.text_encoder_2))
        return [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]

    def _compel(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        from compel import Compel, ReturnedEmbeddingsType

        if self._compels is None:
            kind = (ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED if self.sdxl
                    else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED)
            inversion = hasattr(self.pipe, "maybe_convert_prompt")
            self._compels = [
                Compel(tokenizer=tok, text_encoder=enc, returned_embeddings_type=kind, truncate_long_prompts=True,
                       textual_inversion_manager=_TextualInversion(self.pipe, tok) if inversion else None)
                for tok, enc in self._encoders()
            ]
        hidden = torch.cat([compel.build_conditioning_tensor(text) for compel in self._compels], dim=-1)[0]
        return hidden, (self._compel_pooled(text) if self.sdxl else None)

    def _compel_pooled(self, text: str) -> torch.Tensor:
        """The second encoder's pooled embedding of the text without its Compel syntax (blends mix linearly)."""
        from compel import Compel
        from compel.prompt_parser import Blend, CrossAttentionControlAppend, CrossAttentionControlSubstitute

        def words(prompt) -> str:
            out = []
            for child in getattr(prompt, "children", []):
                if isinstance(child, CrossAttentionControlSubstitute):
                    out += [f.text for f in child.original]
                elif isinstance(child, CrossAttentionControlAppend):
                    out.append(child.fragment.text)
                else:
                    out.append(getattr(child, "text", ""))
            return " ".join(w for w in out if w)

        conjunction = Compel.parse_prompt_string(text)
        terms: list[tuple[str, float]]
        if len(conjunction.prompts) == 1 and isinstance(conjunction.prompts[0], Blend):
            mix = conjunction.prompts[0]
            total = sum(mix.weights) if mix.normalize_weights else 1.0
            terms = [(words(p), w / total) for p, w in zip(mix.prompts, mix.weights)]
        else:
            flat = [p.prompts[0] if isinstance(p, Blend) else p for p in conjunction.prompts]
            terms = [(" ".join(words(p) for p in flat), 1.0)]
        tokenizer, encoder = self.pipe.tokenizer_2, self.pipe.text_encoder_2
        pooled = None
        for words_text, weight in terms:
            ids = tokenizer(words_text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(encoder.device)
            vector = encoder(ids, output_hidden_states=True)[0][0] * weight
            pooled = vector if pooled is None else pooled + vector
        return pooled

    # --- public API -------------------------------------------------------------------------------------------

    def encode(self, text: str) -> tuple[list[torch.Tensor], list[float], list[torch.Tensor | None]]:
        """The composable parts of a prompt: (hidden states per part, normalised weights, pooled per part)."""
        parts = parse_composable(text)
        total = sum(w for _, w in parts)
        encoded = [self.embed(part) for part, _ in parts]
        return [e[0] for e in encoded], [w / total for _, w in parts], [e[1] for e in encoded]

    def negative(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(hidden states, pooled) of a negative prompt (no composable parts; Compel syntax works)."""
        if not text.strip() and self.zero_empty_negative:
            embeds, pooled = self.embed("")
            return torch.zeros_like(embeds), (None if pooled is None else torch.zeros_like(pooled))
        return self.embed(text)

    def frame(self, prompts: list[dict]) -> FrameCondition:
        """The conditioning of a plan frame from its prompt records ({"text", "negative", "weight"}).

        Single-part prompts are slerp-blended by prompt weight (K = 1). As soon as one prompt has several parts,
        every part of every prompt becomes a row, weighted by prompt weight x part weight. Negatives are always
        blended by prompt weight.
        """
        weights = [float(p.get("weight", 1.0)) for p in prompts]
        if not prompts or sum(weights) <= 0:
            raise ValueError("a frame needs at least one prompt with a weight above zero")
        encoded = [self.encode(p["text"]) for p in prompts]
        negatives = [self.negative(p.get("negative", "") or "") for p in prompts]
        padding = self.embed("")[0] if self._needs_padding(encoded, negatives) else None
        length = max([t.shape[0] for e in encoded for t in e[0]] + [n[0].shape[0] for n in negatives])
        negative = _mix([_pad(n[0], length, padding) for n in negatives], weights)
        negative_pooled = _mix([n[1] for n in negatives], weights) if self.sdxl else None
        if all(len(e[0]) == 1 for e in encoded):
            positive = _mix([_pad(e[0][0], length, padding) for e in encoded], weights)[None]
            pooled = _mix([e[2][0] for e in encoded], weights) if self.sdxl else None
            return FrameCondition(positive, [1.0], negative, pooled, negative_pooled, padding)
        rows, row_weights, row_pooled = [], [], []
        total = sum(weights)
        for (parts, part_weights, pooled_parts), weight in zip(encoded, weights):
            if weight <= 0:
                continue
            for part, part_weight, part_pooled in zip(parts, part_weights, pooled_parts):
                rows.append(_pad(part, length, padding))
                row_weights.append(weight / total * part_weight)
                row_pooled.append(part_pooled)
        norm = sum(row_weights)
        row_weights = [w / norm for w in row_weights]
        pooled = None
        if self.sdxl:
            pooled = sum(w * p.float() for w, p in zip(row_weights, row_pooled)).to(row_pooled[0].dtype)
        return FrameCondition(torch.stack(rows), row_weights, negative, pooled, negative_pooled, padding)

    def _needs_padding(self, encoded, negatives) -> bool:
        """Whether any sequence is longer than one tokenizer window (a Compel '.and()')."""
        window = self._encoders()[0][0].model_max_length
        lengths = {t.shape[0] for e in encoded for t in e[0]} | {n[0].shape[0] for n in negatives}
        return lengths != {window}


def pipeline_inputs(conds: list[FrameCondition], device, dtype) -> tuple[dict, torch.Tensor | None]:
    """Keyword arguments for an SD/SDXL pipeline call over a batch of frames, and the (B, K) part weights.

    Parts are concatenated along the sequence axis (B, K*seq, dim); a frame with fewer parts is padded with
    zero-weight copies of its first part, and each negative is repeated K times to keep the shapes equal. Weights
    are None when every frame has a single part: the plain pipeline call, with nothing to compose.
    """
    if not conds:
        raise ValueError("pipeline_inputs needs at least one frame")
    parts = max(c.positive.shape[0] for c in conds)
    length = max(max(c.positive.shape[1], c.negative.shape[0]) for c in conds)
    padding = next((c.padding for c in conds if c.padding is not None), None)
    positives, negatives, weights = [], [], []
    for c in conds:
        rows = [_pad(row, length, c.padding if c.padding is not None else padding) for row in c.positive]
        row_weights = list(c.part_weights)
        rows += [rows[0]] * (parts - len(rows))
        row_weights += [0.0] * (parts - len(row_weights))
        positives.append(torch.cat(rows).to(device, dtype))
        negative = _pad(c.negative, length, c.padding if c.padding is not None else padding)
        negatives.append(negative.repeat(parts, 1).to(device, dtype))
        weights.append(row_weights)
    kwargs = {"prompt_embeds": torch.stack(positives), "negative_prompt_embeds": torch.stack(negatives)}
    if conds[0].pooled is not None:
        kwargs["pooled_prompt_embeds"] = torch.stack([c.pooled for c in conds]).to(device, dtype)
        kwargs["negative_pooled_prompt_embeds"] = torch.stack([c.negative_pooled for c in conds]).to(device, dtype)
    return kwargs, (None if parts == 1 else torch.tensor(weights, dtype=torch.float32))
