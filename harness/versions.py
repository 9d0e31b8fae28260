"""Versions recorded in every record: the harness's git commit and the libraries that decide results."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

_PACKAGES = ("torch", "diffusers", "transformers", "peft", "av", "numpy", "datasets", "opencv-python-headless", "openai")


def collect_versions() -> dict[str, str]:
    """Library versions (cached) plus the thread count and device in effect now."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return {**_library_versions(), "torch_threads": str(torch.get_num_threads()), "device": device,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


@functools.cache
def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["harness"] = _git_revision()
    return versions


def _git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):  # an installed wheel: its version, not a commit
        try:
            return "package " + importlib.metadata.version("vlmteach-harness")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"
    return sha + ("-dirty" if dirty else "")
