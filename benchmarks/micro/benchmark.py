"""``MicroBenchmark``: the embedded default benchmark (harness.types.Benchmark protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.micro.dataset import read_instances
from benchmarks.micro.scorer import score_clip
from benchmarks.micro.sets import SETS
from benchmarks.micro.tasks import FAMILIES, SPLITS
from harness.types import Instance, Score, ScoringError, UserError
from harness.video import CorruptVideoError, read_mp4


class MicroBenchmark:
    """A committed set of the procedural micro world (``set``: "eval", the default, or "dev"; or the file at
    ``data_path``, which then replaces it), scored by its rule-based scorer."""

    name = "micro"
    score_settings = ()  # the rule scorer has no settings
    reference_table = None  # no paper reports the micro world

    @staticmethod
    def official_aggregate(records: list[dict[str, Any]], *, expected_ids: list[str] | None = None) -> None:
        """None: the micro world's headline is the harness's own mean (harness.results.rows)."""

    def __init__(self, *, set: str = "eval", split: str = "all", families: list[str] | None = None,  # noqa: A002
                 data_path: str | None = None) -> None:
        if set not in SETS:
            raise UserError(f"bench.set must be one of {sorted(SETS)}, got {set!r}")
        if split not in ("all", *SPLITS):
            raise UserError(f"bench.split must be 'all', 'id' or 'ood', got {split!r}")
        unknown = sorted(f for f in families or [] if f not in FAMILIES)
        if unknown:
            raise UserError(f"bench.families: unknown micro families {unknown}; known: {list(FAMILIES)}")
        self.set = set
        self.split = split
        self.families = list(families) if families is not None else list(FAMILIES)
        self.data_path = Path(data_path) if data_path is not None else SETS[set].path
        self._instances: list[Instance] | None = None

    def instances(self) -> list[Instance]:
        if self._instances is None:
            selected = [
                x
                for x in read_instances(self.data_path)
                if (self.split == "all" or x.split == self.split) and x.task in self.families
            ]
            self._instances = sorted(selected, key=lambda x: x.id)
        return self._instances

    def score(self, instance: Instance, video: Path) -> Score:
        try:
            clip = read_mp4(video)
        except CorruptVideoError as exc:
            raise ScoringError(f"{instance.id}: {exc}") from exc
        return score_clip(instance, clip)

    def video_relpath(self, instance: Instance) -> str:
        index = int(instance.id.rsplit("/", 1)[1])
        return f"{instance.split}/{instance.task}/{index:05d}.mp4"
