"""A judge cache on disk: one JSON file per valid verdict, keyed by what determines the reply.

The key hashes the judge identity (backend, model, endpoint, decoding parameters), the system
prompt and the request content (texts, image bytes, the evaluated video's sha256). Only replies
that passed the format check are stored, so a bad reply is never replayed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cache_key(judge_identity: dict[str, Any], system_prompt: str, request_digest: str) -> str:
    blob = json.dumps(
        {
            "judge": judge_identity,
            "system_prompt_sha256": hashlib.sha256(system_prompt.encode()).hexdigest(),
            "request": request_digest,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgeCache:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            log.warning("ignoring unreadable judge cache entry %s", path)
            return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Write atomically (temp file + rename), so concurrent shards never read half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
