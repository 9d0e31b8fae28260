"""``MicroBenchmark``: the embedded default benchmark (harness.types.Benchmark protocol)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.micro.dataset import DEFAULT_DATA_PATH, read_instances
from benchmarks.micro.scorer import score_clip
from benchmarks.micro.tasks import FAMILIES, SPLITS
from harness.types import Instance, Score, ScoringError, UserError
from harness.video import CorruptVideoError, read_mp4


class MicroBenchmark:
    """The procedural micro world's evaluation set, scored by its rule-based scorer."""

    name = "micro"
    score_settings = ()  # the rule scorer has no settings

    def __init__(self, *, split: str = "all", families: list[str] | None = None, data_path: str | None = None) -> None:
        if split not in ("all", *SPLITS):
            raise UserError(f"bench.split must be 'all', 'id' or 'ood', got {split!r}")
        unknown = sorted(set(families or []) - set(FAMILIES))
        if unknown:
            raise UserError(f"bench.families: unknown micro families {unknown}; known: {list(FAMILIES)}")
        self.split = split
        self.families = list(families) if families is not None else list(FAMILIES)
        self.data_path = Path(data_path) if data_path is not None else DEFAULT_DATA_PATH
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
