"""The micro benchmark: a procedural VBVR-style video-reasoning world at 32x32, 17 frames.

Layout: ``world`` (geometry, palette, drawing), ``tasks`` (families, prompts, plans), ``detect``
(frames -> cell labels), ``scorer`` (rules -> Score), ``corruptions`` (ground-truth and wrong
videos), ``dataset`` (generation and parquet I/O), ``make_data`` (the regeneration script),
``benchmark`` (MicroBenchmark), ``questions`` (what a teacher asks, tied to the scorer's checks),
``judge`` (the oracle teacher). The models in ``weights`` are built and trained by ``lab.micro``.
"""

from benchmarks.micro.benchmark import MicroBenchmark
from benchmarks.micro.corruptions import render_solution, variants
from benchmarks.micro.dataset import generate_instances
from benchmarks.micro.scorer import score_clip
from benchmarks.micro.tasks import FAMILIES, tokenize, vocabulary

__all__ = [
    "FAMILIES",
    "MicroBenchmark",
    "generate_instances",
    "render_solution",
    "score_clip",
    "tokenize",
    "variants",
    "vocabulary",
]
