"""Cross-frame attention to an anchor frame: every self-attention layer of the UNet attends to the anchor frame's
features beside the frame's own (keys and values from both, concatenated along the tokens), so each frame draws its
textures from the same source (Tune-A-Video's sparse-causal attention; Text2Video-Zero attends to the first frame
only). The anchor is the first frame of a Follow Motion chain: its features are recorded at every denoising step
while it is diffused (and re-recorded by diffusing it again when a resumed run starts later in the chain), and each
later frame's step i attends to the anchor's step i.

It wraps the UNet's attention processors, whatever they are (SDPA, xformers...), passing the concatenation as the
layer's encoder states; cross-attention layers (the prompt) are left alone.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


class _State:
    """The anchor's recorded features per (layer, step), the step being denoised, and whether to record or use."""

    def __init__(self):
        self.features: dict[tuple[str, int], torch.Tensor] = {}
        self.step = 0
        self.recording = False


class _AnchorProcessor:
    def __init__(self, inner, name: str, state: _State):
        self.inner, self.name, self.state = inner, name, state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        state = self.state
        if encoder_hidden_states is None and hidden_states.ndim == 3:  # self-attention on tokens
            key = (self.name, state.step)
            if state.recording:
                state.features[key] = hidden_states.detach()
            else:
                anchor = state.features.get(key)
                if anchor is not None and anchor.shape[0] == hidden_states.shape[0]:
                    encoder_hidden_states = torch.cat([anchor.to(hidden_states), hidden_states], dim=1)
        return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                          attention_mask=attention_mask, temb=temb, **kwargs)


class AnchorAttention:
    """Owns the anchor's features for one chain; `installed` puts the processors on the UNet for a block."""

    def __init__(self):
        self.state = _State()

    @property
    def has_anchor(self) -> bool:
        return bool(self.state.features)

    @contextlib.contextmanager
    def installed(self, unet, recording: bool) -> Iterator[None]:
        """Within the block, `unet` records the anchor's features (`recording`) or attends to them; each UNet call
        is one denoising step (classifier-free guidance runs both halves in one call)."""
        state = self.state
        if recording:
            state.features.clear()
        state.recording, state.step = recording, 0
        original = unet.attn_processors
        unet.set_attn_processor({name: _AnchorProcessor(processor, name, state)
                                 for name, processor in original.items()})

        def count_step(_module, _result_args, _result):
            state.step += 1

        hook = unet.register_forward_hook(count_step)
        try:
            yield
        finally:
            hook.remove()
            unet.set_attn_processor(original)
