"""The papers' tables (results/reference/<name>.csv) as comparison rows, matched to a run's groups by spelling."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from harness.paths import REFERENCE_DIR
from harness.types import UserError



def reference_names() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.csv"))


def load_reference(name: str) -> pd.DataFrame:
    """A paper table from results/reference/<name>.csv (tidy: bench, model, oracle, cost_s, level, group, key, value)."""
    path = REFERENCE_DIR / f"{name}.csv"
    if not path.is_file():
        raise UserError(f"unknown reference table {name!r}; available: {', '.join(reference_names())}")
    return pd.read_csv(path, keep_default_na=False, na_values={"cost_s": [""], "value": [""]})


_SPLIT_ALIASES = {"indomain": "id", "indomain50": "id", "outofdomain": "ood", "outofdomain50": "ood"}


def match_key(level: str, group: str) -> str:
    """Spelling-insensitive group key, so a paper label finds the benchmark's own name."""
    def norm(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    if level == "split":
        return _SPLIT_ALIASES.get(norm(group), norm(group))
    if level == "split/category":
        split, _, category = group.partition("/")
        return f"{match_key('split', split)}/{norm(category)}"
    return norm(group)


def reference_rows(ref: pd.DataFrame, name: str) -> list[dict[str, Any]]:
    rows = []
    for rec in ref.to_dict("records"):
        model = f"paper: {rec['model']}" + (" (oracle)" if str(rec["oracle"]).lower() == "true" else "")
        cost = rec["cost_s"]
        rows.append({"bench": rec["bench"], "source": "paper", "method": model, "run": name, "level": rec["level"],
                     "group": rec["key"], "mean": float(rec["value"]),
                     "mean_seconds": None if pd.isna(cost) else float(cost)})
    return rows
