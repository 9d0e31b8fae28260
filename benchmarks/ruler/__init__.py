"""RULER-Bench: loader, checklist judge (GPT-o3 or a local VLM), official aggregation."""

from benchmarks.ruler.aggregate import official_aggregate
from benchmarks.ruler.benchmark import RulerBenchmark
from benchmarks.ruler.judge import ApiJudge, ChecklistJudge, LocalVlmJudge, no_judge

__all__ = ["ApiJudge", "ChecklistJudge", "LocalVlmJudge", "RulerBenchmark", "no_judge", "official_aggregate"]
