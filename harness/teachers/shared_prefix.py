"""One row for every question about a video: the chat head + video prefix once, then each question's tail,
each tail seeing the prefix and itself only. No KV cache, so the row checkpoints and compiles like any
forward (``compile_decoder_layers``); both teachers' ``shared_prefix`` losses are built from these pieces."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, and_masks, causal_mask_function

from harness.types import UserError

BLOCK_MASK_ATTENTION = ("sdpa", "eager")  # take a dense 4D mask (flash attention would drop it)


def segment_ids(prefix_len: int, tail_lengths: list[int], device: torch.device) -> torch.Tensor:
    """Per token of the row: 0 in the prefix, i + 1 in question i's tail."""
    counts = torch.tensor([prefix_len, *tail_lengths], device=device)
    return torch.repeat_interleave(torch.arange(len(counts), device=device), counts)


def block_mask(text_config, segment: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The row's 4D attention mask (causal; a tail sees the prefix and itself) in the format of the language
    model's attention implementation (sdpa: bool, eager: additive), built by transformers' mask functions."""
    attention = text_config._attn_implementation
    if attention not in BLOCK_MASK_ATTENTION:
        raise UserError(f"teacher.shared_prefix needs one of {BLOCK_MASK_ATTENTION} attention for its block mask, "
                        f"not {attention!r}: set teacher.shared_prefix=false")

    def prefix_or_same_question(batch, head, q, kv):
        return (segment[kv] == 0) | (segment[kv] == segment[q])

    width = segment.shape[0]
    return ALL_MASK_ATTENTION_FUNCTIONS[attention](
        batch_size=1, q_length=width, kv_length=width, q_offset=0, kv_offset=0, attention_mask=None,
        mask_function=and_masks(causal_mask_function, prefix_or_same_question), allow_is_causal_skip=False,
        use_vmap=False, dtype=dtype, device=segment.device, config=text_config)


def answer_positions(prefix_len: int, tail_lengths: list[int], answer_len: int,
                     device: torch.device) -> torch.Tensor:
    """Row positions whose logits predict the answer tokens: the last ``answer_len`` of every tail, in order."""
    ends = torch.tensor(tail_lengths, device=device).cumsum(0) + prefix_len
    return (ends[:, None] - answer_len + torch.arange(answer_len, device=device)).flatten()


def compile_decoder_layers(layers: torch.nn.ModuleList, backend: str | Callable = "inductor") -> None:
    """Regional ``torch.compile`` of a language model's decoder layers, for calls without a KV cache (the
    shared-prefix loss); a call with a cache runs the eager layer. A cache's per-layer state (layer index,
    initialisation) would recompile the shared graph for every layer, and ``generate``'s own static-cache
    compilation traces through the eager layer."""
    for layer in layers:
        eager = layer.forward
        compiled = torch.compile(eager, dynamic=True, backend=backend)  # question lengths vary per instance

        def forward(*args, past_key_values=None, _eager=eager, _compiled=compiled, **kwargs):
            run = _eager if past_key_values is not None else _compiled
            return run(*args, past_key_values=past_key_values, **kwargs)

        layer.forward = forward
