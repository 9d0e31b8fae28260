"""Throughput of the micro teacher in training and under attack, with the vision tower's attention
packed into one SDPA call (``teacher.packed_vision_attention``) and with one call per frame pair.

    python scripts/bench_micro_teacher.py [--device cuda] [--train-clips 24] [--attack-clips 64] [--steps 10]

Both modes run vlmteach's loss on the template questions (goal + process, every clip asked all of
them) over rendered clips of the micro world: ``train`` updates the weights (a teacher-training
step), ``attack`` differentiates the frames with the weights frozen (an adversarial round's step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.micro.sets import TEACHER_BENCH_SEED  # noqa: E402
from harness.frames import clip_to_frames  # noqa: E402
from harness.teachers import QwenVLTeacher  # noqa: E402
from lab.micro.training import data  # noqa: E402
from lab.micro.training.adversarial import yes_loss  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "benchmarks" / "micro" / "weights" / "teacher"


def seconds_per_step(step, steps: int, device: torch.device) -> float:
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, default=WEIGHTS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-clips", type=int, default=24, help="clips per training step (the full scale's)")
    parser.add_argument("--attack-clips", type=int, default=64, help="clips attacked at once (the full scale's)")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    instances = data.training_instances(("id", "ood"), max(args.train_clips, args.attack_clips) // 8 + 1,
                                       seed=TEACHER_BENCH_SEED)
    clips = [clip_to_frames(data.behaviour_clips(x)[0]) for x in instances]
    print(f"micro teacher {args.teacher}, {device}, torch {torch.__version__}, {args.steps} steps after a warm-up")
    print(f"{'attention':<10} {'train s/step':>13} {'train clips/s':>14} {'attack s/step':>14} {'attack clips/s':>15}")
    for packed in (False, True):
        teacher = QwenVLTeacher.from_pretrained(path=str(args.teacher), device=str(device),
                                                packed_vision_attention=packed)
        params = [p for p in teacher.model.parameters()]

        def train_step(n=args.train_clips):
            teacher.model.requires_grad_(True)
            loss, _ = yes_loss(teacher, [c.to(device) for c in clips[:n]], instances[:n])
            torch.autograd.grad(loss, params)

        def attack_step(n=args.attack_clips):
            teacher.model.requires_grad_(False)
            videos = [c.to(device).requires_grad_(True) for c in clips[:n]]
            loss, _ = yes_loss(teacher, videos, instances[:n])
            torch.autograd.grad(loss, videos)

        train_s = seconds_per_step(train_step, args.steps, device)
        attack_s = seconds_per_step(attack_step, args.steps, device)
        print(f"{'packed' if packed else 'per pair':<10} {train_s:>13.3f} {args.train_clips / train_s:>14.1f} "
              f"{attack_s:>14.3f} {args.attack_clips / attack_s:>15.1f}")


if __name__ == "__main__":
    main()
