"""The on-disk layout of one run: ``results/runs/<bench>/<method>/<run>/``.

::

    config.yaml                     resolved config of the run
    manifest.json | manifest-<i>of<n>.json   planned instance ids of one shard
    records.jsonl | records-<i>of<n>.jsonl   one JSON line per attempt (last line per instance wins)
    videos/<benchmark's official layout>.mp4   what the scorers read (lossless H.264)
    previews/<the same layout>.mp4          a browser-playable copy of each (harness.video.write_preview);
                                            outside videos/, so nothing that reads or lists videos sees them
    summary.json  table.md  table.csv        derived by harness.results

A run with one shard uses the plain names; a sharded run writes one manifest and one records file
per shard, so shards never write to the same file. Merging reads them all.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import records as rec
from harness.types import UserError


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing (temp file + rename): readers never see half a manifest or table."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"unreadable manifest {path.name} ({exc}) in {path.parent}: delete it and re-run its shard, "
                        "which rewrites it") from exc


def shard_suffix(shard: int, num_shards: int) -> str:
    return "" if num_shards == 1 else f"-{shard}of{num_shards}"


@dataclass
class Completeness:
    planned: list[str]
    missing: list[str]  # planned but no record at all
    errored: list[str]  # latest record has status error
    unscored: list[str]  # latest record has status generated
    duplicated: list[str]  # ids planned by more than one shard, or recorded in several shard files
    unplanned: list[str]  # records whose id no manifest plans
    missing_shards: list[int]  # shards of the run's shard count that never wrote a manifest
    bad_videos: list[str]  # ok or generated, but the video is missing or not the one recorded

    @property
    def complete(self) -> bool:
        return not (self.missing or self.errored or self.unscored or self.duplicated or self.unplanned
                    or self.missing_shards or self.bad_videos)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- paths -------------------------------------------------------------------------------
    def records_path(self, shard: int = 0, num_shards: int = 1) -> Path:
        return self.path / f"records{shard_suffix(shard, num_shards)}.jsonl"

    def manifest_path(self, shard: int = 0, num_shards: int = 1) -> Path:
        return self.path / f"manifest{shard_suffix(shard, num_shards)}.json"

    @property
    def videos(self) -> Path:
        return self.path / "videos"

    @property
    def previews(self) -> Path:
        return self.path / "previews"

    def preview_of(self, video: str | Path) -> Path:
        """The preview of a video of this run, given as a record's ``video`` (relative) or as a path."""
        video = Path(video)
        inside = video.is_relative_to(self.videos)
        return self.previews / video.relative_to(self.videos if inside else "videos")

    def playable_videos(self) -> list[Path]:
        """Each saved video as a browser plays it: its preview where there is one (what W&B shows), else itself."""
        videos = sorted(v for v in self.videos.rglob("*.mp4") if not v.name.startswith("."))  # not a writer's temp file
        return [self.preview_of(v) if self.preview_of(v).is_file() else v for v in videos]

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    # -- reading ------------------------------------------------------------------------------
    def manifests(self) -> list[dict[str, Any]]:
        return [read_manifest(p) for p in sorted(self.path.glob("manifest*.json"))]

    def records_files(self) -> list[Path]:
        return sorted(self.path.glob("records*.jsonl"))

    def latest_records(self) -> dict[str, dict[str, Any]]:
        """Latest record per instance over all shard files."""
        merged: dict[str, dict[str, Any]] = {}
        for path in self.records_files():
            merged.update(rec.latest_by_instance(rec.read_lines(path)))
        return merged

    def video_problem(self, row: dict[str, Any]) -> str | None:
        """Why the video a record names is not the one it recorded (missing, resized, changed), or None
        (also for a record naming no video). Records written before sizes and digests were kept are checked
        for a non-empty file only."""
        if not row.get("video"):
            return None
        path = self.path / row["video"]
        if not path.is_file():
            return f"video {row['video']} is missing"
        size, want = path.stat().st_size, row.get("video_bytes")
        if size == 0 or (want is not None and size != want):
            return f"video {row['video']} has {size} bytes, the record says {want}"
        if row.get("video_sha256") and file_sha256(path) != row["video_sha256"]:
            return f"video {row['video']} changed since it was written (sha256 differs from the record)"
        return None

    def completeness(self, check_videos: bool = False) -> Completeness:
        """``check_videos``: compare each recorded video with its record's size and sha256 (reads every video;
        harness.status does, tables do not: a score stays valid when its video is lost)."""
        planned_count: dict[str, int] = {}
        manifests = self.manifests()
        num_shards = max((m["num_shards"] for m in manifests), default=1)
        started = {m["shard"] for m in manifests}
        for manifest in manifests:
            for iid in manifest["instance_ids"]:
                planned_count[iid] = planned_count.get(iid, 0) + 1
        recorded_in: dict[str, int] = {}
        latest: dict[str, dict[str, Any]] = {}
        for path in self.records_files():
            for iid, row in rec.latest_by_instance(rec.read_lines(path)).items():
                recorded_in[iid] = recorded_in.get(iid, 0) + 1
                latest[iid] = row
        planned = sorted(planned_count)
        return Completeness(
            planned=planned,
            missing=[i for i in planned if i not in latest],
            errored=sorted(i for i, r in latest.items() if r["status"] == rec.STATUS_ERROR),
            unscored=sorted(i for i, r in latest.items() if r["status"] == rec.STATUS_GENERATED),
            duplicated=sorted({i for i, c in planned_count.items() if c > 1} | {i for i, c in recorded_in.items() if c > 1}),
            unplanned=sorted(i for i in latest if i not in planned_count),
            missing_shards=[s for s in range(num_shards) if manifests and s not in started],
            bad_videos=sorted(i for i, r in latest.items() if check_videos and r["status"] in (rec.STATUS_OK, rec.STATUS_GENERATED)
                              and self.video_problem(r)),
        )
