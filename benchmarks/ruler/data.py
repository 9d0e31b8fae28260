"""Loading the released RULER-Bench data: ``data.jsonl`` (or the parquet view) plus media files.

Each record names its task, category, index within the task, the prompt, a checklist of
single-key ``{metric: question}`` dicts (a list in data.jsonl, JSON text in the parquet view) and
optional media paths relative to the dataset root: ``input_image_path`` (set means I2V),
``gt_image_path`` and ``input_video_path`` (judge only).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.ruler.tasks import CATEGORY_TASKS, METRICS, TASK_CATEGORY
from harness.types import UserError

log = logging.getLogger(__name__)

HUB_ID = "hexmSeeU/RULER-Bench"
DOWNLOAD_HINT = (
    "run `make data BENCH=ruler`, or `hf download hexmSeeU/RULER-Bench --repo-type dataset --local-dir data/ruler` "
    "on a machine with internet, then set bench.data_dir=data/ruler"
)


@dataclass(frozen=True)
class RulerItem:
    """One released record, validated, with media paths made absolute ('' when absent)."""

    task: str
    category: str
    index: int
    prompt: str
    checklist: tuple[tuple[str, str], ...]  # (metric name as in the data, question)
    implicit_explanation: str
    input_image: str
    gt_image: str
    input_video: str


def load_items(*, data_dir: str | None, hub_id: str | None, revision: str | None = None) -> tuple[list[RulerItem], str]:
    """All released items and a description of where they came from. ``data_dir`` wins over ``hub_id``."""
    if data_dir:
        root = Path(data_dir).expanduser()
        source = str(root)
    elif hub_id:
        root = _hub_snapshot(hub_id, revision)
        source = f"hf://datasets/{hub_id}@{revision or 'main'}"
    else:
        raise UserError("RULER-Bench needs bench.data_dir or bench.hub_id")
    rows = _read_rows(root)
    items = [_to_item(row, root, n) for n, row in enumerate(rows, start=1)]
    _check_unique(items)
    return items, source


def _hub_snapshot(hub_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=hub_id, repo_type="dataset", revision=revision))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise UserError(f"cannot get the RULER-Bench dataset {hub_id!r} ({type(exc).__name__}: {exc}); {DOWNLOAD_HINT}") from exc


def _read_rows(root: Path) -> list[dict[str, Any]]:
    jsonl = root / "data.jsonl"
    if jsonl.is_file():
        rows = []
        with open(jsonl, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise UserError(f"{jsonl}:{line_no} is not valid JSON ({exc}); re-download the dataset") from exc
        return rows
    parquet = sorted(root.glob("data/*.parquet")) or sorted(root.glob("*.parquet"))
    if parquet:
        import datasets

        return list(datasets.load_dataset("parquet", data_files=[str(p) for p in parquet], split="train"))
    raise UserError(f"no RULER-Bench data.jsonl or parquet files under {root}; {DOWNLOAD_HINT}")


def parse_checklist(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """``[{metric: question}, ...]`` (or its JSON text) -> ((metric, question), ...)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: checklist is text but not JSON ({exc})") from exc
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: checklist must be a non-empty list of {{metric: question}} dicts")
    pairs = []
    for item in value:
        if not isinstance(item, dict) or len(item) != 1:
            raise UserError(f"{where}: checklist item {item!r} is not a single-key {{metric: question}} dict")
        ((metric, question),) = item.items()
        if metric not in METRICS:
            raise UserError(f"{where}: unknown checklist metric {metric!r}; expected one of {sorted(METRICS)}")
        pairs.append((metric, str(question)))
    return tuple(pairs)


def _to_item(row: dict[str, Any], root: Path, n: int) -> RulerItem:
    where = f"RULER-Bench record {n} under {root}"
    missing = [k for k in ("task_name", "category", "index", "prompt", "checklist") if k not in row]
    if missing:
        raise UserError(f"{where}: missing fields {missing}")
    task, category = str(row["task_name"]), str(row["category"])
    where = f"RULER-Bench record {n} ({task}/{row['index']}) under {root}"
    if category not in CATEGORY_TASKS:
        raise UserError(f"{where}: unknown category {category!r}; expected one of {sorted(CATEGORY_TASKS)}")
    if TASK_CATEGORY.get(task) != category:
        # The official aggregation groups by the record's category field; keep it, but say so.
        log.warning("%s: task %r is listed under %r upstream, the record says %r", where, task, TASK_CATEGORY.get(task), category)

    def media(key: str) -> str:
        rel = row.get(key) or ""
        return str((root / rel).resolve()) if rel else ""

    return RulerItem(
        task=task,
        category=category,
        index=int(row["index"]),
        prompt=str(row["prompt"]),
        checklist=parse_checklist(row["checklist"], where),
        implicit_explanation=str(row.get("implicit_explanation") or ""),
        input_image=media("input_image_path"),
        gt_image=media("gt_image_path"),
        input_video=media("input_video_path"),
    )


def _check_unique(items: list[RulerItem]) -> None:
    seen: set[tuple[str, int]] = set()
    for item in items:
        key = (item.task, item.index)
        if key in seen:
            raise UserError(f"RULER-Bench data has two records for {item.task}/{item.index}: output files would collide")
        seen.add(key)


def check_media(items: list[RulerItem]) -> None:
    """Fail early, before any generation, when a selected record's media file is absent."""
    missing = [p for it in items for p in (it.input_image, it.gt_image, it.input_video) if p and not Path(p).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UserError(f"{len(missing)} RULER-Bench media files are missing ({shown}); {DOWNLOAD_HINT}")
