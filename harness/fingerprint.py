"""A fingerprint of the model weights a config points at, so a run directory never mixes results of
different weights behind the same config (for example after `make train-micro` re-trains the micro
models in place: same paths, same config hash, new weights).

Every ``path`` value in the config that names an existing local file or folder (relative to the
working directory, then to the project root, as the loaders resolve them) is hashed: file names,
sizes and contents. Files over ``FULL_HASH_LIMIT`` are hashed by size plus their first and last MiB,
which keeps fingerprinting a 20 GB checkpoint to milliseconds. A hub id that is not a local path (``owner/name``,
or ``owner/name/<file>`` for a light decoder) is fingerprinted by the commit its ``revision`` (the sibling key; null:
the default branch) resolves to: ``hub:<id>@<commit>``, asked of the hub when online, else the local cache's
snapshot. Where neither knows it (offline and not downloaded yet), ``hub:<id>@<revision> (unresolved)``: such an
entry is compared with nothing (``changed_weights``), so the first run after a download does not refuse the
run directory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from harness.loading import PROJECT_ROOT, hub_commit

FULL_HASH_LIMIT = 64 * 2**20
_EDGE = 2**20
UNRESOLVED = " (unresolved)"


def weights_fingerprint(config: dict[str, Any]) -> dict[str, str]:
    """{config key of each ``path``: hex digest (or "hub:<id>@<commit>")}, for the resolved config as a plain dict."""
    return {key: _fingerprint_path(value, revision) for key, value, revision in sorted(_path_values(config))}


def changed_weights(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """Keys whose weights differ between two fingerprints; an unresolved hub entry on either side is not compared."""
    return sorted(k for k, v in before.items()
                  if now.get(k) != v and not (v.endswith(UNRESOLVED) or str(now.get(k, "")).endswith(UNRESOLVED)))


def _path_values(node: Any, prefix: str = "") -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if key == "path" and isinstance(value, str):
                found.append((name, value, node.get("revision")))
            else:
                found.extend(_path_values(value, name + "."))
    return found


def _fingerprint_path(value: str, revision: str | None = None) -> str:
    for candidate in (Path(value).expanduser(), PROJECT_ROOT / value):
        if candidate.exists():
            files = sorted(p for p in candidate.rglob("*") if p.is_file()) if candidate.is_dir() else [candidate]
            digest = hashlib.sha256()
            for file in files:
                digest.update(str(file.relative_to(candidate) if candidate.is_dir() else file.name).encode())
                digest.update(_file_digest(file))
            return digest.hexdigest()[:16]
    repo_id = "/".join(value.split("/")[:2])  # owner/name, also of owner/name/<file in the repo>
    commit = hub_commit(repo_id, revision) if value.count("/") >= 1 and not value.startswith(("/", ".", "~")) else None
    return f"hub:{value}@{commit}" if commit else f"hub:{value}@{revision or 'default'}{UNRESOLVED}"


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
