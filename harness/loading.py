"""Finding and placing model weights: local folders or hub ids, devices and dtypes.

Shared by every student and teacher adapter so that a missing checkpoint always fails the same
way: a UserError naming the hub id, the download command and the config key to set. A hub id is read at
its config's ``revision`` (a branch, tag or commit; None: the hub's default branch).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from harness.paths import PROJECT_ROOT
from harness.types import UserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str, *, config_key: str = "device") -> torch.device:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"{config_key}={device} but no CUDA GPU is visible. These weights are meant for a GPU; run on a "
            f"GPU machine, or set {config_key}=cpu to force the CPU (very slow at real model sizes)."
        )
    return resolved


def resolve_dtype(dtype: str, *, config_key: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise UserError(f"{config_key} must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def resolve_model_dir(path: str, *, config_key: str, marker: str, allow_patterns: list[str], hint: str = "",
                      revision: str | None = None) -> Path:
    """A local directory for ``path``: an existing folder holding ``marker`` (relative to the working
    directory, then to the project root) or the cached/downloaded snapshot of a hub id at ``revision``. Raises
    UserError with a download hint naming ``config_key`` when neither is available."""
    for candidate in (Path(path).expanduser(), PROJECT_ROOT / path):
        if (candidate / marker).is_file():
            return candidate
    if not _HUB_ID.match(path):
        raise UserError(f"{path!r} is not a model folder (no {marker}). Point {config_key}=<dir> at one.{hint}")
    try:
        return Path(snapshot_download(repo_id=path, revision=revision, allow_patterns=allow_patterns))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError) as err:
        raise UserError(missing_weights(path, revision, config_key, err)) from err


def missing_weights(repo_id: str, revision: str | None, config_key: str, err: Exception, filename: str = "") -> str:
    """The message for hub weights that are neither cached nor downloadable: the ``hf download`` command."""
    at = f" at revision {revision}" if revision else ""
    pin = f" --revision {revision}" if revision else ""
    local_dir = "weights" if filename else f"weights/{repo_id.split('/')[-1]}"
    what = f"{filename} of {repo_id}" if filename else repo_id
    return (f"Weights for {what}{at} are not available locally and could not be downloaded ({type(err).__name__}). "
            f"Download them into the Hugging Face cache, where {config_key} finds them as it is:\n"
            f"  hf download {repo_id}{' ' + filename if filename else ''}{pin}\n"
            f"or into a folder:\n  hf download {repo_id}{' ' + filename if filename else ''}{pin} --local-dir {local_dir}\n"
            f"then set {config_key}={local_dir}{'/' + filename if filename else ''}")


def hub_commit(repo_id: str, revision: str | None = None) -> str | None:
    """The commit ``repo_id`` at ``revision`` (None: the default branch) stands for: the hub's answer when online,
    else the snapshot the local cache holds for it (its folder is named by the commit); None where neither knows."""
    if not constants.is_offline_mode():
        try:
            return HfApi().model_info(repo_id, revision=revision).sha
        except (HfHubHTTPError, OSError):  # no network, no such repo or revision: the cache may still know it
            pass
    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision, local_files_only=True)).name
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError):
        return None
