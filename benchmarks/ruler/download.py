"""Fetch RULER-Bench's judge system prompt (``eval/system_prompt.txt`` at the pinned commit) beside the data.

``python -m benchmarks.ruler.download --data-dir data/ruler`` writes ``data/ruler/eval/system_prompt.txt``
after checking its sha256; a mismatch writes nothing. ``make data BENCH=ruler`` runs it after downloading
the dataset.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

from benchmarks.ruler.system_prompt import OFFICIAL_RELPATH, OFFICIAL_SHA256, OFFICIAL_URL
from harness.types import UserError


def fetch_system_prompt(data_dir: str | Path, url: str = OFFICIAL_URL, timeout_s: float = 60.0) -> Path:
    target = Path(data_dir).expanduser() / OFFICIAL_RELPATH
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = response.read()
    except OSError as exc:
        raise UserError(f"cannot fetch {url} ({exc}); run this on a machine with internet") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != OFFICIAL_SHA256:
        raise UserError(f"{url} has sha256 {digest}, not the pinned {OFFICIAL_SHA256}: nothing written to {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)  # the exact bytes, then one rename: never a half-written prompt
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/ruler", help="the RULER-Bench data directory (bench.data_dir)")
    args = parser.parse_args(argv)
    try:
        path = fetch_system_prompt(args.data_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"RULER-Bench judge system prompt (sha256 {OFFICIAL_SHA256[:12]}...) written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
