"""The per-instance record (the results contract) and its append-only JSONL store.

A record is the single source of truth for one instance of one run; tables are derived from
records, never kept by hand. The store is append-only: a retry appends a new line and the last
line for an instance wins, so a process killed mid-write loses at most the half-written line,
which ``load`` skips.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from harness.rebuild import DoesNotFit
from harness.types import Trace, UserError

# 2: the benchmark's score details sit beside the scores (1 kept them in the trace), and the record says whether
# its method is an oracle (1: only pass@k's trace said so).
SCHEMA_VERSION = 2

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_GENERATED = "generated"  # video written, scoring deferred (e.g. no judge key yet)


@dataclass
class Record:
    instance_id: str
    bench: str
    task: str
    category: str
    split: str
    method: str
    seed: int
    status: str  # ok | error | generated
    error: str | None = None
    error_stage: str | None = None  # generate | score, where the error happened
    score: float | None = None  # headline per-instance score; None unless status == ok
    scores: dict[str, float] = field(default_factory=dict)
    score_details: dict[str, Any] = field(default_factory=dict)  # the benchmark's Score.details (judge, versions)
    video: str | None = None  # path relative to the run directory
    video_bytes: int | None = None  # size and digest of the video as written: a later change or loss is detected
    video_sha256: str | None = None
    # total_s, generate_s, score_s, ...; generated in a batch (a method's batch_instances): batch_s, the batch's
    # seconds, of which generate_s is this instance's share
    timings: dict[str, float] = field(default_factory=dict)
    steps: int = 0  # the method's own unit of work (harness.types.MethodOutput.steps)
    trace: dict[str, Any] = field(default_factory=dict)  # the method's trace (harness.types.Trace), as read_trace reads
    oracle: bool = False  # the method reads the answer key (harness.method.Method.is_oracle)
    config_hash: str = ""  # the generation hash: what decided the video (harness.config.config_hash)
    score_hash: str = ""  # what decided the score: the scorer's or judge's settings (harness.config.score_hash)
    versions: dict[str, str] = field(default_factory=dict)
    shard: str = ""  # e.g. "0/4"
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=_json_default)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Record:
        """A record read back, typed; a line of an earlier schema is brought to this one first."""
        row = upgrade(row)
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def upgrade(row: dict[str, Any]) -> dict[str, Any]:
    """A record line of any schema in this schema's layout, so every reader sees one layout."""
    if row.get("schema_version", 1) >= 2:
        return row
    trace = dict(row.get("trace") or {})
    details = trace.pop("score_details", {})
    oracle = bool(trace.pop("oracle", False))  # pass@k's trace said so
    return {**row, "trace": trace, "score_details": details, "oracle": oracle, "schema_version": SCHEMA_VERSION}


def read_trace(trace: dict[str, Any], trace_type: type[Trace] | None) -> Trace | dict[str, Any]:
    """A record's trace as its method's dataclass; the dict as stored where the type is unknown (a run whose manifests
    do not name it) or the dict does not fit it (an older layout, a failure before the method had a trace)."""
    if trace_type is None:
        return trace
    try:
        return trace_type.from_dict(trace)
    except DoesNotFit:
        return trace


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def append(path: Path, record: Record) -> None:
    """Append one line and fsync, so a crash after return never loses the record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(path)
    line = record.to_json() + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a writer killed mid-append) so the next line starts clean."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class CorruptRecordsError(UserError):
    """A complete line of a records file is not a record: every reader stops and names the file and line."""


def read_lines(path: Path) -> list[dict[str, Any]]:
    """All complete lines of one records file, in order. A torn last line (killed writer) is skipped;
    any other unreadable line raises ``CorruptRecordsError``, since skipping it would lose a record silently."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break  # torn write at the end of the file
            if line.strip():
                rows.append(_parse(line, path, number))
    return rows


def _parse(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
        problem = None if isinstance(row, dict) and {"instance_id", "status"} <= row.keys() else "a JSON value, not a record"
    except json.JSONDecodeError as exc:
        problem = f"not JSON: {exc.msg} at column {exc.colno}"
    if problem is None:
        return upgrade(row)
    raise CorruptRecordsError(
        f"unreadable records file {path.name}, line {number} ({problem}; the line starts {line.strip()[:80]!r}) "
        f"in {path.parent}: delete that line (or repair it) and run again; an instance whose record is gone is "
        "re-run, the other lines are kept."
    )


def latest_by_instance(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Last record per instance id (a retry supersedes earlier attempts)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["instance_id"]] = row
    return latest
