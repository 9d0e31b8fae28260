"""One SDPA call for all of a Qwen-VL vision tower's equal-length attention chunks.

Without flash-attn, transformers' Qwen-VL vision attention runs every chunk of ``cu_seqlens`` (one
frame pair of a video, one window) as its own SDPA call: for a batch of small videos that is thousands
of tiny calls per layer, and a GPU waits on launches. Only implementations whose name contains "flash"
are handed ``cu_seqlens`` instead; this one, registered under such a name, stacks equal-length chunks
along the batch dimension for a single call. It is exact (attention never crosses a chunk) and falls
back to one call per chunk where the lengths differ (Qwen2.5-VL's windows).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

# "flash" in the name is what makes the Qwen-VL vision blocks pass cu_seqlens (is_flash_attention_requested).
NAME = "flash_packed_sdpa"


def packed_sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: torch.Tensor | None = None, scaling: float | None = None, dropout: float = 0.0,
                is_causal: bool = False, cu_seq_lens_q: torch.Tensor | None = None, **kwargs):
    """Block-diagonal attention over the chunks ``cu_seq_lens_q`` marks. ``query``/``key``/``value``
    are ``[1, heads, seq, dim]`` (the vision blocks' layout); returns ``([1, seq, heads, dim], None)`` as
    transformers' flash interfaces do."""
    if cu_seq_lens_q is None or attention_mask is not None or is_causal:
        raise ValueError(f"{NAME} serves Qwen-VL vision towers only (packed chunks, no mask, not causal)")
    _, heads, seq, dim = query.shape
    lengths = _chunk_lengths(cu_seq_lens_q)
    if len(set(lengths)) == 1:
        count, length = len(lengths), lengths[0]
        q, k, v = (t.reshape(heads, count, length, dim).transpose(0, 1) for t in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling)  # [count, heads, length, dim]
        return out.transpose(1, 2).reshape(1, seq, heads, dim), None
    chunks = zip(*(t.split(lengths, dim=2) for t in (query, key, value)))
    out = torch.cat([F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling) for q, k, v in chunks],
                    dim=2)
    return out.transpose(1, 2), None


# The chunk lengths of the last few cu_seqlens tensors seen, by identity (each tensor held, so no other can take
# its id). Every block of one tower forward is handed the same tensor (Qwen2.5-VL: one of two, windows or whole
# frames), and reading it back from the GPU waits for all queued work: once per forward, not per block.
_RECENT: OrderedDict[int, tuple[torch.Tensor, list[int]]] = OrderedDict()
_RECENT_SIZE = 4


def _chunk_lengths(cu_seqlens: torch.Tensor) -> list[int]:
    seen = _RECENT.get(id(cu_seqlens))
    if seen is not None:
        return seen[1]
    lengths = read_lengths(cu_seqlens)
    _RECENT[id(cu_seqlens)] = cu_seqlens, lengths
    if len(_RECENT) > _RECENT_SIZE:
        _RECENT.popitem(last=False)
    return lengths


def read_lengths(cu_seqlens: torch.Tensor) -> list[int]:
    return cu_seqlens.diff().tolist()


def use_packed_vision_attention(model: torch.nn.Module) -> None:
    """Switch a Qwen-VL model's vision tower to ``packed_sdpa``; a tower already on a real flash-attn
    implementation keeps it, and the language model is left alone."""
    vision = model.config.vision_config
    if vision._attn_implementation not in (None, "sdpa", "eager"):
        return
    AttentionInterface.register(NAME, packed_sdpa)
    model.set_attn_implementation({"vision_config": NAME})
