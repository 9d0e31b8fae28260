"""Fixture data for the end-to-end run, in the released formats: RULER-Bench (8 records of the paper's subset,
T2V and I2V) and VBVR-Bench-Data (8 samples over 3 tasks with official scorers), plus a VBVR copy with one
oversized first frame (the out-of-memory probe) next to a normal sample.

    python -m benchmarks.e2e.fixtures OUT [--tiny]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.make_tiny import VBVR_TASKS
from benchmarks.ruler.fixtures import TINY_RECORDS, write_tiny_release
from benchmarks.vbvr.data import INDEX_FILE
from benchmarks.vbvr.synthetic import write_synthetic_bench

# The tiny release's 4 records of the paper's subset (its "game" record left out) and 4 more: 8, T2V and I2V.
EXTRA_RULER = [
    {"task_name": "sport", "category": "humanity", "index": 0, "prompt": "A player kicks the ball into the goal.",
     "implicit_explanation": "", "input_image_path": "images/sport_0.png", "gt_image_path": "", "input_video_path": "",
     "initial_scenario": "a football pitch",
     "checklist": [{"Instruction Following": "Does the ball enter the goal?"},
                   {"Visual Consistency": "Does the player keep the same shirt?"}]},
    {"task_name": "objective_change", "category": "hypothetical", "index": 0,
     "prompt": "If gravity were reversed, the apple would fall upwards.", "implicit_explanation": "The apple rises.",
     "input_image_path": "", "gt_image_path": "", "input_video_path": "", "initial_scenario": "",
     "checklist": [{"Rule Coherence": "Does the apple move up?"}, {"Visual Fidelity": "Is the apple sharp?"}]},
    {"task_name": "idioms", "category": "semantic", "index": 0, "prompt": "It is raining cats and dogs.",
     "implicit_explanation": "Heavy rain, not animals.", "input_image_path": "images/idioms_0.png", "gt_image_path": "",
     "input_video_path": "", "initial_scenario": "",
     "checklist": [{"Rule Coherence": "Is it raining heavily?"}, {"Instruction Following": "Is it a rainy street?"}]},
    {"task_name": "count", "category": "vision rule", "index": 0, "prompt": "Add one more circle to the row.",
     "implicit_explanation": "Four circles become five.", "input_image_path": "images/count_0.png",
     "gt_image_path": "gt/count_0.png", "input_video_path": "", "initial_scenario": "",
     "checklist": [{"Rule Coherence": "Are there five circles at the end?"},
                   {"Visual Consistency": "Do the four circles stay in place?"}]},
]
RULER_RECORDS = [r for r in TINY_RECORDS if r["category"] != "game"] + EXTRA_RULER
N_RULER = len(RULER_RECORDS)
VBVR_SAMPLES = {VBVR_TASKS[0]: 3, VBVR_TASKS[1]: 3, VBVR_TASKS[2]: 2}
N_VBVR = sum(VBVR_SAMPLES.values())
# The out-of-memory probe: a first frame of this size (VBVR's first_frame protocol generates at it). At
# 13312^2 the Wan VAE's first fp32 encoder activations alone need ~110 GiB each, and the DiT would see 4M
# tokens: out of memory on any one GPU before any long computation. It stays under the size PIL refuses to open
# (twice Image.MAX_IMAGE_PIXELS, ~179M pixels), a limit the data loader keeps: 16384^2 stopped the run there.
# The tiny run's probe is a size the student refuses (not a multiple of 32 with bench.size_multiple=1): a
# failure of the same instance, recorded the same way, on a CPU.
OOM_SIZE, OOM_SIZE_TINY = 13312, 48


def write_ruler(root: Path) -> Path:
    return write_tiny_release(root, records=RULER_RECORDS)


def write_vbvr(root: Path, *, gt_size: int, base_frames: int = 15) -> Path:
    """``N_VBVR`` samples: ``VBVR_SAMPLES`` per task, GT clips of ``gt_size``^2 (the scorers' size)."""
    entries = []
    for task, n in VBVR_SAMPLES.items():
        write_synthetic_bench(root, [task], samples_per_task=n, sizes={task: (gt_size, gt_size)}, base_frames=base_frames)
        entries += json.loads((root / INDEX_FILE).read_text())
    (root / INDEX_FILE).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return root


def write_vbvr_oom(root: Path, *, oom_size: int, gt_size: int) -> tuple[Path, str]:
    """Two samples of one task; the first one's first frame is ``oom_size``^2 (solid, so the PNG stays small).
    Returns the data root and the oversized instance's harness id (``vbvr/<task>/<index>``)."""
    task = VBVR_TASKS[0]
    write_synthetic_bench(root, [task], samples_per_task=2, sizes={task: (gt_size, gt_size)}, base_frames=15)
    entry = json.loads((root / INDEX_FILE).read_text())[0]
    Image.fromarray(np.full((oom_size, oom_size, 3), 200, dtype=np.uint8)).save(root / entry["first_frame_path"])
    return root, f"vbvr/{task}/00000"


def write_all(out: Path, *, tiny: bool) -> dict[str, str]:
    ruler = write_ruler(out / "ruler")
    vbvr = write_vbvr(out / "vbvr", gt_size=32 if tiny else 256)
    oom, oom_instance = write_vbvr_oom(out / "vbvr_oom", oom_size=OOM_SIZE_TINY if tiny else OOM_SIZE,
                                    gt_size=64 if tiny else 256)
    return {"ruler": str(ruler), "vbvr": str(vbvr), "vbvr_oom": str(oom), "oom_instance": oom_instance}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e.fixtures", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(write_all(args.out, tiny=args.tiny), indent=1))


if __name__ == "__main__":
    main()
