"""Seeds derived from a run's base seed, so every random draw is reproducible on its own."""

from __future__ import annotations

import hashlib


def derive_seed(base_seed: int, *parts: object) -> int:
    """A 31-bit seed from a base seed and stable parts (instance id, sample index, ...).

    Independent of shard order, world size and process: the same inputs give the same seed.
    """
    text = "/".join([str(base_seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
