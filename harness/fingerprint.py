"""A fingerprint of the model weights a config points at, so a run directory never mixes results of
different weights behind the same config (for example after `make train-micro` re-trains the micro
models in place: same paths, same config hash, new weights).

Every ``path`` value in the config that names an existing local file or folder (relative to the
working directory, then to the project root, as the loaders resolve them) is hashed: file names,
sizes and contents. Files over ``FULL_HASH_LIMIT`` are hashed by size plus their first and last MiB,
which keeps fingerprinting a 20 GB checkpoint to milliseconds. A hub id that is not a local path is
taken as it is (its snapshot is whatever the hub cache holds).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from harness.loading import PROJECT_ROOT

FULL_HASH_LIMIT = 64 * 2**20
_EDGE = 2**20


def weights_fingerprint(config: dict[str, Any]) -> dict[str, str]:
    """{config key of each ``path``: hex digest (or "hub:<id>")}, for the resolved config as a plain dict."""
    return {key: _fingerprint_path(value) for key, value in sorted(_path_values(config))}


def _path_values(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if key == "path" and isinstance(value, str):
                found.append((name, value))
            else:
                found.extend(_path_values(value, name + "."))
    return found


def _fingerprint_path(value: str) -> str:
    for candidate in (Path(value).expanduser(), PROJECT_ROOT / value):
        if candidate.exists():
            files = sorted(p for p in candidate.rglob("*") if p.is_file()) if candidate.is_dir() else [candidate]
            digest = hashlib.sha256()
            for file in files:
                digest.update(str(file.relative_to(candidate) if candidate.is_dir() else file.name).encode())
                digest.update(_file_digest(file))
            return digest.hexdigest()[:16]
    return f"hub:{value}"


def _file_digest(file: Path) -> bytes:
    size = file.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with file.open("rb") as handle:
        if size <= FULL_HASH_LIMIT:
            digest.update(handle.read())
        else:
            digest.update(handle.read(_EDGE))
            handle.seek(size - _EDGE)
            digest.update(handle.read(_EDGE))
    return digest.digest()
