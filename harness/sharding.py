"""Shards: contiguous blocks of the sorted instance list, independent of how many GPUs run them."""

from __future__ import annotations

from typing import Sequence, TypeVar

from harness.types import UserError

T = TypeVar("T")


def check_shard(shard: int, num_shards: int) -> None:
    if num_shards < 1:
        raise UserError(f"num_shards must be >= 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise UserError(f"shard={shard} is out of range for num_shards={num_shards} (valid: 0..{num_shards - 1})")


def select_shard(items: Sequence[T], shard: int, num_shards: int) -> list[T]:
    """Block ``shard`` of ``num_shards`` near-equal contiguous blocks (the first ones one larger)."""
    check_shard(shard, num_shards)
    base, extra = divmod(len(items), num_shards)
    start = shard * base + min(shard, extra)
    return list(items[start : start + base + (shard < extra)])
