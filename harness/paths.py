"""Where the harness finds its own files, in a checkout and in an installed wheel alike.

A checkout keeps the configs in ``conf/`` and the paper's tables in ``results/reference/`` at the repository's
root; the wheel ships them inside the package as ``harness/conf`` and ``harness/reference`` (setup.py).
``PROJECT_ROOT`` holds ``harness/`` and ``benchmarks/`` in both: the repository, or site-packages, so relative
paths in configs (the micro weights and data) resolve against it either way.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def _shipped(in_package: str, in_repository: str) -> Path:
    packaged = PACKAGE_DIR / in_package
    return packaged if packaged.is_dir() else PROJECT_ROOT / in_repository


CONF_DIR = _shipped("conf", "conf")
REFERENCE_DIR = _shipped("reference", "results/reference")
