"""Find a diffusers-format model directory: a local folder or a Hugging Face hub id."""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from harness.types import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The diffusers components a Wan student loads; nothing else in the repo is downloaded.
_COMPONENTS = ["model_index.json", "transformer/*", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*"]


def resolve_model_dir(path: str, *, config_key: str) -> Path:
    """A local directory for ``path``: an existing folder (relative to the working directory, then to
    the project root) or the cached/downloaded snapshot of a hub id. Raises UserError with a download
    hint naming ``config_key`` when neither is available."""
    for candidate in (Path(path).expanduser(), PROJECT_ROOT / path):
        if candidate.is_dir():
            return candidate
    if not _HUB_ID.match(path):
        raise UserError(
            f"Model directory {path!r} does not exist. Build or download it, or point {config_key}=<dir> "
            "at a diffusers-format folder (with model_index.json)."
        )
    try:
        return Path(snapshot_download(repo_id=path, allow_patterns=_COMPONENTS))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError) as err:
        local_dir = f"weights/{path.split('/')[-1]}"
        raise UserError(
            f"Weights for {path} are not available locally and could not be downloaded ({type(err).__name__}). "
            f"Download them with:\n  huggingface-cli download {path} --local-dir {local_dir}\n"
            f"then set {config_key}={local_dir}"
        ) from err
