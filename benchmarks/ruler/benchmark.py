"""``RulerBenchmark``: RULER-Bench instances, the judge-based scorer and the official aggregation."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from benchmarks.ruler.aggregate import official_aggregate
from benchmarks.ruler.data import HUB_ID, RulerItem, check_media, load_items
from benchmarks.ruler.judge import ChecklistJudge
from benchmarks.ruler.labels import reasoning_text
from benchmarks.ruler.request import build_request, load_rgb
from benchmarks.ruler.scoring import metric_means, official_instance_mean, percent
from benchmarks.ruler.tasks import CATEGORY_TASKS, METRIC_ORDER, METRICS, TASK_CATEGORY, category_metrics
from harness.types import Instance, Score, ScoringError, UserError

log = logging.getLogger(__name__)

NO_JUDGE = "no judge configured: set judge=o3 and OPENAI_API_KEY"


class RulerBenchmark:
    """RULER-Bench (arXiv 2512.02622). I2V where the record has an input image, T2V otherwise.

    ``categories`` / ``tasks`` select instances (None = all); ``num_frames``, ``height``, ``width``,
    ``fps`` are the generation settings (upstream fixes none; defaults follow the paper: 89 frames,
    512x512, 16 fps). The judge sees the video at about 2 fps, so fps must be >= 2.
    """

    name = "ruler"
    score_settings = ("judge",)  # bench config keys that decide scores, not videos (harness.config.score_hash)
    reference_table = "ruler_table4"
    official_aggregate = staticmethod(official_aggregate)  # eval/cal_acc.py, safe on category subsets

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        hub_id: str | None = HUB_ID,
        revision: str | None = None,
        categories: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
        num_frames: int = 89,
        height: int = 512,
        width: int = 512,
        fps: int = 16,
        judge: ChecklistJudge | None = None,
    ) -> None:
        if fps < 2:
            raise UserError(f"bench.fps={fps}: RULER's judge samples frames every int(fps/2); use fps >= 2")
        self.categories = _validated(categories, CATEGORY_TASKS, "category")
        self.tasks = _validated(tasks, TASK_CATEGORY, "task")
        if self.categories is not None and self.tasks is not None:
            outside = sorted(t for t in self.tasks if TASK_CATEGORY[t] not in self.categories)
            if outside:
                raise UserError(f"bench.tasks {outside} are not in the selected categories {sorted(self.categories)}")
        self.data_dir, self.hub_id, self.revision = data_dir, hub_id, revision
        self.num_frames, self.height, self.width, self.fps = num_frames, height, width, fps
        self.judge = judge
        self.summary: dict[str, Any] = {}  # filled by instances(): what was loaded (N, source, ...)
        self._instances: list[Instance] | None = None

    def instances(self) -> list[Instance]:
        if self._instances is None:
            items, source = load_items(data_dir=self.data_dir, hub_id=self.hub_id, revision=self.revision)
            selected = [it for it in items if self._selected(it)]
            check_media(selected)
            if self.judge is not None:  # before any generation: a missing judge prompt stops the run here
                self.judge.use_data_dir(self.data_dir)
            self._instances = sorted((self._instance(it) for it in selected), key=lambda i: i.id)
            self.summary = self._summarise(source, len(items), self._instances)
            log.info("RULER-Bench: %d of %d released records selected from %s: %s", len(selected), len(items), source, self.summary["by_category"])
        return self._instances

    @property
    def score_concurrency(self) -> int:
        """Instances the runner may score at once: the judge's ``max_concurrency`` (requests in flight)."""
        return self.judge.max_concurrency if self.judge is not None else 1

    def video_relpath(self, instance: Instance) -> str:
        return f"{instance.task}/{instance.reference['index']}.mp4"  # the layout upstream's eval.py reads

    def score(self, instance: Instance, video: Path) -> Score:
        if self.judge is None:
            raise ScoringError(NO_JUDGE)
        self.judge.use_data_dir(self.data_dir)  # a no-op once instances() has read it
        checklist = instance.reference["checklist"]
        verdict = self.judge.judge(build_request(instance, Path(video)))
        means = metric_means([metric for metric, _ in checklist], verdict.labels)
        return Score(
            score=percent(official_instance_mean(instance.category, means)),
            scores=means,
            details={
                "labels": verdict.labels,
                "metrics": [METRICS[metric] for metric, _ in checklist],
                "missing_metrics": [m for m in category_metrics(instance.category) if m not in means],  # counted 0
                "judge": self.judge.model_id,
                "system_prompt": self.judge.system_prompt_kind,  # only "official" is the paper's metric
                "system_prompt_sha256": self.judge.system_prompt_sha256,
                "cached": verdict.cached,
                "attempts": verdict.attempts,
                "usage": verdict.usage,  # the judge's tokens for this verdict (of the original calls when cached)
                "reasoning": reasoning_text(verdict.raw),
            },
        )

    def _selected(self, item: RulerItem) -> bool:
        return (self.categories is None or item.category in self.categories) and (self.tasks is None or item.task in self.tasks)

    def _instance(self, item: RulerItem) -> Instance:
        return Instance(
            id=f"ruler/{item.task}/{item.index}",
            bench=self.name,
            task=item.task,
            category=item.category,
            split="test",  # RULER-Bench is a single test set
            prompt=item.prompt,
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            fps=self.fps,
            first_frame=load_rgb(item.input_image) if item.input_image else None,
            reference={
                "index": item.index,
                "checklist": [list(pair) for pair in item.checklist],
                "implicit_explanation": item.implicit_explanation,
                "input_image": item.input_image,
                "gt_image": item.gt_image,
                "input_video": item.input_video,
            },
        )

    def _summarise(self, source: str, n_released: int, instances: list[Instance]) -> dict[str, Any]:
        n_i2v = sum(i.first_frame is not None for i in instances)
        return {
            "source": source,
            "n_released": n_released,
            "n_selected": len(instances),
            "n_i2v": n_i2v,
            "n_t2v": len(instances) - n_i2v,
            "by_category": dict(sorted(Counter(i.category for i in instances).items())),
            "n_tasks": len({i.task for i in instances}),
            "metrics": list(METRIC_ORDER),
        }


def _validated(names: Sequence[str] | None, known: dict[str, Any], what: str) -> frozenset[str] | None:
    if names is None:
        return None
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise UserError(f"unknown RULER-Bench {what} {unknown}; choose from {sorted(known)}")
    return frozenset(names)
