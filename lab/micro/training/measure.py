"""Measure what the trained micro world can do, through the harness's own adapters.

    python -m lab.micro.training.measure [--student DIR] [--teacher DIR] [--per-family 4] [--out FILE]
    python -m lab.micro.training.measure --compare 3 [--lora-scale S] [--lora-targets M ...]  # methods
    python -m lab.micro.training.measure --oracle 1 [--oracle-frames last]  # can a LoRA reach the answer?
    python -m lab.micro.training.measure --free-descent 1 [--decoder vae] # can pixels lead latents there?
    python -m lab.micro.training.measure --attack 2 [--lr LR] [--attack-on teacher]  # is the teacher fooled?
    python -m lab.micro.training.measure --gradient-cosine 2 [--loop-steps K --lr LR]  # does its gradient point to the goal?
    python -m lab.micro.training.measure --questions 13  # how does it read the loop's start, per question?

On instances of a work seed (``sets.UNSEEN_SEED``, both splits) that no trained component has seen:
- student: how often its final video (frozen, 4 steps) follows the instruction, its mean score, and the
  sharpness of its one-step prediction (mean RGB distance of a pixel to the nearest palette colour, and
  the share of pixels the scorer can classify);
- teacher: yes/no accuracy (P(Yes) > 0.5 against the scorer's label) on rendered final videos of every
  variant and on the student's one-step predictions, per question role; and how often its synthesised
  questions parse and equal the template questions.

``--compare n`` runs frozen, best_of_n (5), pass_at_k (5), vlmteach and vlmteach with lambda = 0 through
the harness's method classes on the first n instances of every family x split of the dev set
(a quick stand-in for ``make eval --set dev`` on a CPU), scoring clips in memory, with paired differences
against frozen (clustered bootstrap CI, ``harness.stats``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from baselines.frozen import Frozen
from baselines.sampling import BestOfN, PassAtK
from benchmarks.micro import MicroBenchmark
from benchmarks.micro.detect import MAX_COLOR_DISTANCE
from benchmarks.micro.scorer import score_clip
from benchmarks.micro.sets import DEV, TEACHER_SEED, UNSEEN_SEED, selection_set
from benchmarks.micro.world import PALETTE
from benchmarks.micro.questions import questions_for
from harness.config import CONF_DIR, component_kwargs
from harness.students.wan import WanStudent
from harness.teachers import QwenVLTeacher
from harness.types import Queries
from harness.method import MethodContext
from harness.seeding import derive_seed
from harness.stats import cluster_bootstrap, paired_difference
from harness.vlmteach.teacher_audit import concordance
from harness.frames import clip_to_frames, frames_to_clip
from harness.vlmteach import VlmTeach
from harness.vlmteach.loss import multi_vqa_loss, weigh_questions
from harness.vlmteach.trace import VlmTeachTrace
from lab.micro import WEIGHTS
from lab.micro.training import data
from lab.micro.training.adversarial import yes_loss
from lab.micro.training.train_light_decoder import FILE as LIGHT_FILE
from lab.micro.training.train_vae import encode_clips, normalise

STUDENT_CONFIG = CONF_DIR / "student" / "micro.yaml"
_PALETTE = torch.tensor(list(PALETTE.values()), dtype=torch.float32)


def load_student(path: Path, device: str = "cpu", lora: dict | None = None) -> WanStudent:
    """The student as conf/student/micro.yaml configures it, from ``path``, with ``lora`` overriding keys of
    its ``lora`` block (scale, target_modules, ...); the folder's own light decoder, or none when it has none."""
    cfg = component_kwargs(OmegaConf.create({"student": OmegaConf.load(STUDENT_CONFIG)}), "student")
    cfg.path, cfg.device = str(path), device
    cfg.lora = OmegaConf.merge(cfg.lora, lora or {})
    light = path / LIGHT_FILE
    cfg.light_decoder = {**cfg.light_decoder, "path": str(light)} if light.is_file() else None
    return instantiate(cfg, _convert_="all")


def vlmteach_lr(lr: float | None) -> float:
    """``lr``, or else the learning rate `make eval`'s vlmteach uses on the micro student (its ``lora.lr``)."""
    return float(OmegaConf.load(STUDENT_CONFIG).lora.lr) if lr is None else lr


def dev_subset(per_cell: int, set_name: str = DEV.name) -> tuple[MicroBenchmark, list]:
    """The committed set ``set_name`` (the dev set: the evaluation set is refused, ``sets.selection_set``) and
    its first ``per_cell`` instances of every family and split."""
    bench = MicroBenchmark(set=selection_set(set_name).name)
    instances = list(bench.instances())
    return bench, [instances[i] for i in data.first_per_cell(instances, per_cell)]


def palette_distance(frames: torch.Tensor) -> torch.Tensor:
    """Per-pixel RGB distance (0-255 units) to the nearest palette colour, frames [T, 3, H, W] in [0, 1]."""
    rgb = frames.permute(0, 2, 3, 1).reshape(-1, 3) * 255
    return torch.cdist(rgb, _PALETTE).min(1).values


@torch.no_grad()
def measure_student(student: WanStudent, instances, seed: int = 0) -> tuple[dict, list]:
    """Frozen final-video scores and one-step sharpness; returns the one-step frames for the teacher check."""
    finals, one_steps, sharp, readable = [], [], [], []
    for i, instance in enumerate(instances):
        cond = student.encode(instance)
        noise = student.make_noise(cond, seed + i)
        one = student.decode(student.predict_x0(cond, noise, student.sigmas[0]), light=True)
        dist = palette_distance(one)
        sharp.append(float(dist.mean()))
        readable.append(float((dist <= MAX_COLOR_DISTANCE).float().mean()))
        one_steps.append(one)
        finals.append(score_clip(instance, frames_to_clip(student.decode(student.sample(cond, noise, seed + i)))))
    report = {
        "final_mean_score": float(np.mean([s.score for s in finals])),
        "final_solved_rate": float(np.mean([s.scores["solved"] for s in finals])),
        "final_goal_rate": float(np.mean([s.scores["goal"] for s in finals])),
        "one_step_palette_distance": float(np.mean(sharp)),
        "one_step_readable_pixels": float(np.mean(readable)),
    }
    return report, one_steps


@torch.no_grad()
def yes_no_accuracy(teacher: QwenVLTeacher, items) -> dict:
    """``items``: (instance, frames [T, 3, H, W]) pairs; labels come from the scorer on the rounded clip."""
    hits = defaultdict(list)
    for instance, frames in items:
        labels = data.question_labels(instance, frames_to_clip(frames))
        qs = questions_for(instance)
        p_yes = teacher.p_yes(frames, [q.text for q in qs])
        for q, label, p in zip(qs, labels, p_yes, strict=True):
            hits[f"{q.role}_label{int(label)}"].append(float((p > 0.5) == bool(label)))
            hits["all"].append(float((p > 0.5) == bool(label)))
    return {k: {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in sorted(hits.items())}


def synthesis_match(teacher: QwenVLTeacher, instances) -> dict:
    parsed, exact = [], []
    for instance in instances:
        queries = teacher.synthesize_queries(instance, max_process=3)
        want = [q.text.lower() for q in questions_for(instance)]
        parsed.append(float(not queries.fallback))
        exact.append(float([q.lower() for q in queries.all] == want[: 1 + min(3, len(want) - 1)]))
    return {"parsed": float(np.mean(parsed)), "exact": float(np.mean(exact)), "n": len(instances)}


def measure(student_dir: Path, teacher_dir: Path, per_family: int) -> dict:
    torch.manual_seed(0)
    instances = data.training_instances(("id", "ood"), per_family, UNSEEN_SEED)
    started = time.perf_counter()
    report: dict = {"instances": len(instances)}
    rng = np.random.default_rng(0)
    rendered = [(x, clip_to_frames(c)) for x in instances for c in data.variant_clips(x, rng)[0]]
    teacher = QwenVLTeacher.from_pretrained(path=str(teacher_dir), device="cpu")
    report["teacher_synthesis"] = synthesis_match(teacher, instances)
    report["teacher_yes_no_rendered"] = yes_no_accuracy(teacher, rendered)
    if student_dir is not None:
        student = load_student(student_dir)
        for split in ("id", "ood"):
            subset = [x for x in instances if x.split == split]
            stats, one_steps = measure_student(student, subset)
            report[f"student_{split}"] = stats
            report[f"teacher_yes_no_one_step_{split}"] = yes_no_accuracy(teacher, list(zip(subset, one_steps)))
    report["seconds"] = time.perf_counter() - started
    return report


def compare(student_dir: Path, teacher_dir: Path, per_cell: int, lora: dict | None = None, lr: float | None = None,
            set_name: str = DEV.name) -> dict:
    """Mean score per method and paired differences against frozen on a stratified dev subset; ``lr`` overrides
    vlmteach's learning rate (both rows)."""
    bench, chosen = dev_subset(per_cell, set_name)
    student = load_student(student_dir, lora=lora)
    teacher = QwenVLTeacher.from_pretrained(path=str(teacher_dir), device="cpu")
    lr = vlmteach_lr(lr)
    methods = {"frozen": Frozen(), "best_of_n": BestOfN(n=5), "pass_at_k": PassAtK(k=5),
               "vlmteach": VlmTeach(lr=lr), "vlmteach_lambda0": VlmTeach(goal_weight=0.0, lr=lr)}
    scores: dict[str, list[float]] = {}
    report: dict = {"instances": len(chosen), "lora": lora or {}, "lr": lr, "methods": {}}
    for name, method in methods.items():
        started = time.perf_counter()
        scores[name], steps = [], []
        for x in chosen:
            out = method.run(x, MethodContext(student=student, teacher=teacher, bench=bench, seed=derive_seed(0, x.id)))
            scores[name].append(score_clip(x, out.clip).score)
            steps.append(out.steps)
        clusters, strata = [x.task for x in chosen], [x.split for x in chosen]
        est = cluster_bootstrap(scores[name], clusters, strata, key=name)
        row = {"mean": est.mean, "ci": [est.ci_low, est.ci_high], "n": est.n, "mean_steps": float(np.mean(steps)),
               "seconds_per_instance": (time.perf_counter() - started) / len(chosen)}
        if name != "frozen":
            diff = paired_difference(scores[name], scores["frozen"], clusters, strata, key=f"{name}-frozen")
            row["minus_frozen"] = {"mean": diff.mean, "ci": [diff.ci_low, diff.ci_high], "p": diff.p_value}
        report["methods"][name] = row
        print(name, json.dumps(row), flush=True)
    return report


CHECKS_TEACHER_P_YES = 0.95  # the check teacher: this P(Yes) where the scorer's check holds, 1 minus it elsewhere


def _loss(p_yes: list[float], goal_weight: float = 0.5) -> float:
    """vlmteach's loss (lambda = ``goal_weight``) on the template questions' answers, the goal's first."""
    weighted = weigh_questions(Queries(goal="goal", process=["process"] * (len(p_yes) - 1)), goal_weight)
    return float(multi_vqa_loss(-torch.tensor(p_yes).clamp_min(1e-12).log(), weighted.weights))


@torch.no_grad()
def question_reading(student_dir: Path, teacher_dir: Path, per_cell: int, set_name: str = DEV.name) -> dict:
    """Where vlmteach's loop starts: how the teacher reads the frozen one-step prediction (light-decoded, the noise
    ``make eval`` draws), question by question (template questions), against the scorer's labels of that
    prediction and of the frozen final video; and how its loss ranks the final videos' scores within each cell
    (harness.vlmteach.teacher_audit.concordance), beside a check teacher that answers from the final video's labels."""
    _, chosen = dev_subset(per_cell, set_name)
    student = load_student(student_dir)
    teacher = QwenVLTeacher.from_pretrained(path=str(teacher_dir), device="cpu")
    answers: dict[str, list[tuple[float, float, float]]] = defaultdict(list)  # (one-step label, final label, P(Yes))
    scores, losses, check_losses, cells = [], [], [], []
    for x in chosen:
        cond, seed = student.encode(x), derive_seed(0, x.id)
        noise = student.make_noise(cond, seed)
        light = student.decode(student.predict_x0(cond, noise, student.sigmas[0]), light=True)
        final = frames_to_clip(student.decode(student.sample(cond, noise, seed)))
        qs = questions_for(x)
        p_yes = teacher.p_yes(light, [q.text for q in qs])
        one_step_labels, final_labels = data.question_labels(x, frames_to_clip(light)), data.question_labels(x, final)
        cell = f"{x.split}/{x.task}"
        for q, one, fin, p in zip(qs, one_step_labels, final_labels, p_yes, strict=True):
            answers[f"{cell}/{q.role}:{'+'.join(q.checks)}"].append((float(one), float(fin), float(p)))
        scores.append(score_clip(x, final).score)
        losses.append(_loss(p_yes))
        check_losses.append(_loss([CHECKS_TEACHER_P_YES if y else 1 - CHECKS_TEACHER_P_YES for y in final_labels]))
        cells.append(cell)
    questions = {}
    for name, rows in sorted(answers.items()):
        one, fin, p = (list(col) for col in zip(*rows))
        questions[name] = {"n": len(rows), "labels_agree": float(np.mean(np.equal(one, fin))),
                           "auc_one_step_label": concordance(one, p, ["all"] * len(p)),
                           "auc_final_label": concordance(fin, p, ["all"] * len(p)),
                           "yes_rate_one_step": float(np.mean(one)), "yes_rate_final": float(np.mean(fin))}
    return {"instances": len(chosen), "questions": questions,
            "loss_score_concordance": {"teacher": concordance(scores, [-v for v in losses], cells),
                                       "check_teacher": concordance(scores, [-v for v in check_losses], cells)}}


ORACLE_FRAMES = {"all": slice(1, None), "last": slice(-1, None)}  # frame 0 is the condition: never fitted


def oracle_loss(student: WanStudent, x0: torch.Tensor, target: torch.Tensor, space: str, frames: str) -> torch.Tensor:
    """The oracle's MSE between the one-step latents ``x0`` [1, C, T, h, w] and the correct video ``target``:
    in pixels through the loop's decoder (``target`` frames [T, 3, H, W]) or in latents (``target`` its
    normalised latents), over the generated frames or the last one alone (``ORACLE_FRAMES``)."""
    fitted = ORACLE_FRAMES[frames]
    if space == "pixel":
        return (student.decode(x0, light=True)[fitted] - target[fitted]).square().mean()
    return (x0[:, :, fitted] - target[:, :, fitted]).square().mean()


def oracle_lora(student_dir: Path, per_cell: int, lora: dict | None = None, lr: float | None = None, steps: int = 40,
                space: str = "pixel", teacher_dir: Path | None = None, frames: str = "all",
                set_name: str = DEV.name) -> dict:
    """Can the per-instance LoRA reach the correct video at all? vlmteach's optimiser (its lr,
    AdamW, clipping) on an oracle loss: MSE to the instance's correct video, in pixels through the loop's
    decoder (``decode(light=True)``, the path the teacher's gradient takes) or, with ``space="latent"``,
    between the one-step latents and the correct video's latents (no decoder in the way). Every 10 steps:
    the mean score, solved rate and goal rate of the one-step prediction through the VAE (``one_step``) and
    through the loop's decoder (``one_step_light``, what the teacher would see) and of the final sample
    (``final``; its score per instance too). ``lr`` None: ``vlmteach_lr``. With ``teacher_dir``, also the teacher's goal P(Yes) on the
    light-decoded prediction (its own questions) at each check, per instance (``goal_p_yes``): does an honest
    teacher's answer rise along a path that does reach the goal, or only at its end? ``frames="last"`` fits
    the last frame alone: what a flawless judge of the end state (the goal question) could ask for, with
    nothing said about the way there."""
    if space not in ("pixel", "latent"):
        raise ValueError(f"space must be 'pixel' or 'latent', got {space!r}")
    if frames not in ORACLE_FRAMES:
        raise ValueError(f"frames must be one of {sorted(ORACLE_FRAMES)}, got {frames!r}")
    lr = vlmteach_lr(lr)
    _, chosen = dev_subset(per_cell, set_name)
    student = load_student(student_dir, lora=lora)
    teacher = None if teacher_dir is None else QwenVLTeacher.from_pretrained(path=str(teacher_dir), device="cpu")
    trace = {"one_step": [], "one_step_light": [], "final": []}
    goal_p_yes: dict[str, list[float]] = {}
    for x in chosen:
        cond, seed = student.encode(x), derive_seed(0, x.id)
        noise = student.make_noise(cond, seed)
        correct = data.behaviour_clips(x)[0]
        goal = None if teacher is None else teacher.synthesize_queries(x).goal
        with torch.no_grad():
            target = (clip_to_frames(correct) if space == "pixel"
                      else normalise(student.vae, encode_clips(student.vae, torch.from_numpy(correct[None]))))
        student.reset_lora(seed)
        optimizer = torch.optim.AdamW(student.lora_parameters(), lr=lr, weight_decay=0.0)
        checks = {k: [] for k in trace}
        for step in range(steps + 1):
            x0 = student.predict_x0(cond, noise, student.sigmas[0])
            if step % 10 == 0:
                with torch.no_grad():
                    decoded = {"one_step": student.decode(x0), "one_step_light": student.decode(x0, light=True),
                               "final": student.decode(student.sample(cond, noise, seed))}
                    for k, f in decoded.items():
                        checks[k].append(score_clip(x, frames_to_clip(f)))
                    if teacher is not None:
                        goal_p_yes.setdefault(x.id, []).append(teacher.p_yes(decoded["one_step_light"], [goal])[0])
            if step < steps:
                optimizer.zero_grad()
                oracle_loss(student, x0, target, space, frames).backward()
                torch.nn.utils.clip_grad_norm_(student.lora_parameters(), 1.0)
                optimizer.step()
        for k, scored in checks.items():
            trace[k].append([(s.score, s.scores["solved"], s.scores["goal"]) for s in scored])
    arrays = {k: np.array(v) for k, v in trace.items()}  # [instance, check, (score, solved, goal)]
    # per instance too, to split by family or domain (can the LoRA draw an out-of-domain goal at all?)
    final_scores = {x.id: arrays["final"][i, :, 0].tolist() for i, x in enumerate(chosen)}
    return {"instances": len(chosen), "lora": lora or {}, "lr": lr, "space": space, "frames": frames,
            "checked_at_steps": list(range(0, steps + 1, 10)), **({"goal_p_yes": goal_p_yes} if teacher else {}),
            "final_score_per_instance": final_scores,
            **{name: {k: a[..., col].mean(0).tolist() for k, a in arrays.items()}
               for col, name in enumerate(("mean_score", "solved_rate", "goal_rate"))}}


def teacher_subset(per_cell: int) -> list:
    """The first ``per_cell`` instances of every family and split of the teacher's training set."""
    instances = data.training_instances(("id", "ood"), per_cell, TEACHER_SEED)
    return [instances[i] for i in data.first_per_cell(instances, per_cell)]


def attack(student_dir: Path, teacher_dir: Path, per_cell: int, lr: float | None = None, steps: int = 40,
           on: str = "dev", lora: dict | None = None, set_name: str = DEV.name) -> dict:
    """Is the teacher fooled by the loop? vlmteach's loop (the teacher's own questions, lambda 0.5, no early stop)
    for ``steps`` updates on the first ``per_cell`` instances of every family and split of the dev set
    (``on="dev"``) or of the teacher's own training set (``"teacher"``: is a failure a generalisation gap?);
    before and after, the goal's P(Yes) and the scorer on the light-decoded one-step frames the teacher saw;
    after, the scorer on the same latents through the VAE and on the final video. A robust teacher's P(Yes)
    rises only where the scorer's goal does."""
    if on not in ("dev", "teacher"):
        raise ValueError(f"attack runs on 'dev' or 'teacher' instances, got {on!r}")
    chosen = dev_subset(per_cell, set_name)[1] if on == "dev" else teacher_subset(per_cell)
    student = load_student(student_dir, lora=lora)
    teacher = QwenVLTeacher.from_pretrained(path=str(teacher_dir), device="cpu")
    method = VlmTeach(early_stop=False, num_steps=steps, lr=vlmteach_lr(lr))
    rows = []
    for x in chosen:
        seed = derive_seed(0, x.id)
        queries = teacher.synthesize_queries(x, max_process=method.max_process)
        weighted = weigh_questions(queries, method.goal_weight)
        cond = student.encode(x)
        noise = student.make_noise(cond, seed)
        light: list[dict] = []

        def observe(step: int, frames: torch.Tensor, light: list[dict] = light, x=x) -> None:
            if step in (0, steps):
                light.append(score_clip(x, frames_to_clip(frames.float())).scores)

        lora_seed = derive_seed(seed, "lora")
        trace = VlmTeachTrace.start(queries, "teacher", weighted, method.opt_step, lora_seed)
        try:
            method.optimise(student, teacher, cond, noise, seed, lora_seed, weighted, trace, observe=observe)
            with torch.no_grad():
                x0 = student.predict_x0(cond, noise, student.sigmas[0])
                vae = score_clip(x, frames_to_clip(student.decode(x0))).scores
                final = score_clip(x, frames_to_clip(student.decode(student.sample(cond, noise, seed)))).scores
        finally:
            student.reset_lora(seed)
        p_yes = [step.p_yes[0] for step in trace.per_step]
        rows.append({"id": x.id, "goal_p_yes": [p_yes[0], p_yes[-1]],
                     "goal_light": [light[0]["goal"], light[-1]["goal"]], "goal_vae": vae["goal"],
                     "goal_final": final["goal"], "solved_light": light[-1]["solved"], "solved_final": final["solved"]})
    mean = {k: np.mean([r[k] for r in rows], axis=0).tolist() for k in rows[0] if k != "id"}
    return {"instances": len(rows), "on": on, "lr": method.optimizer_kwargs["lr"], "steps": steps, "mean": mean,
            "rows": rows}


def gradient_alignment(student_dir: Path, teacher_dir: Path, per_cell: int, loop_steps: int = 0,
                       lr: float | None = None, lora: dict | None = None, set_name: str = DEV.name) -> dict:
    """Does the teacher's gradient point the way to the goal? At the one-step prediction of the first
    ``per_cell`` dev instances per family and split, the cosine between the gradient of vlmteach's
    loss (template questions, lambda 0.5: ``adversarial.yes_loss``) and that of the oracle's pixel MSE to the
    correct video (``oracle_lora``'s loss, whose descent reaches it), taken with respect to the light-decoded
    frames (frame 1 on), the one-step latents and the LoRA's parameters, the spaces the loop's update passes
    through on its way back. With a fresh LoRA (the frozen prediction, where vlmteach starts) or, with
    ``loop_steps``, after that many steps of vlmteach's loop on the same questions (``lr`` None: ``vlmteach_lr``)."""
    _, chosen = dev_subset(per_cell, set_name)
    student = load_student(student_dir, lora=lora)
    teacher = QwenVLTeacher.from_pretrained(path=str(teacher_dir), device="cpu")
    teacher.model.requires_grad_(False)
    loop = VlmTeach(early_stop=False, num_steps=loop_steps, lr=vlmteach_lr(lr))
    rows = []
    for x in chosen:
        cond, seed = student.encode(x), derive_seed(0, x.id)
        noise = student.make_noise(cond, seed)
        correct = clip_to_frames(data.behaviour_clips(x)[0])
        student.reset_lora(seed)
        if loop_steps:
            goal, *process = (q.text for q in questions_for(x))
            queries, lora_seed = Queries(goal=goal, process=process), derive_seed(seed, "lora")
            weighted = weigh_questions(queries, loop.goal_weight)
            trace = VlmTeachTrace.start(queries, "fixed", weighted, loop.opt_step, lora_seed)
            loop.optimise(student, teacher, cond, noise, seed, lora_seed, weighted, trace)
        params = student.lora_parameters()
        latents = student.predict_x0(cond, noise, student.sigmas[0])
        frames = student.decode(latents, light=True)
        teacher_loss, p_goal = yes_loss(teacher, [frames], [x])
        oracle_loss = (frames - correct).square().mean()
        inputs = [frames, latents, *params]
        by_teacher = torch.autograd.grad(teacher_loss, inputs, retain_graph=True)
        by_oracle = torch.autograd.grad(oracle_loss, inputs)
        student.reset_lora(seed)

        def cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
            a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
            return float(torch.nn.functional.cosine_similarity(a, b, dim=0))

        rows.append({"id": x.id, "goal_p_yes": float(p_goal[0]), "oracle_mse": oracle_loss.item(),
                     "pixels": cosine([by_teacher[0][1:]], [by_oracle[0][1:]]),  # frame 0 is the condition
                     "latents": cosine([by_teacher[1][:, :, 1:]], [by_oracle[1][:, :, 1:]]),
                     "lora": cosine(by_teacher[2:], by_oracle[2:])})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("pixels", "latents", "lora")}
    return {"instances": len(rows), "loop_steps": loop_steps, "lr": loop.optimizer_kwargs["lr"], "mean_cosine": mean,
            "mean_oracle_mse": float(np.mean([r["oracle_mse"] for r in rows])), "rows": rows}


def free_descent(student_dir: Path, per_cell: int, decoder: str = "light", lr: float = 0.01, steps: int = 300,
                 set_name: str = DEV.name) -> dict:
    """Does descent in pixels lead latents to the data, with no student in the way? From the latents of the
    instance's first wrong behaviour, free latents (the generated frames) are fitted by Adam to the correct
    video by pixel MSE through ``decoder`` ("light": the loop's decoder; "vae"). Reports how many of the
    results the scorer finds solved / with the goal reached (read through the same decoder) and the squared
    latent distance to the correct video's latents, relative to where it started (< 1: closer)."""
    if decoder not in ("light", "vae"):
        raise ValueError(f"decoder must be 'light' or 'vae', got {decoder!r}")
    light = decoder == "light"
    _, chosen = dev_subset(per_cell, set_name)
    student = load_student(student_dir)
    rows = []
    for x in chosen:
        clips = data.behaviour_clips(x)
        latents = normalise(student.vae, encode_clips(student.vae, torch.from_numpy(clips[:2])))
        correct, wrong = latents[:1], latents[1:2]
        target = clip_to_frames(clips[0])
        condition = correct[:, :, :1]  # frame 0, never fitted
        free = wrong[:, :, 1:].clone().requires_grad_(True)
        optimizer = torch.optim.Adam([free], lr=lr)
        for _ in range(steps):
            loss = (student.decode(torch.cat([condition, free], 2), light=light) - target).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            frames = student.decode(torch.cat([condition, free], 2), light=light)
            scored = score_clip(x, frames_to_clip(frames))
            distance = (free - correct[:, :, 1:]).square().mean() / (wrong - correct)[:, :, 1:].square().mean()
        rows.append((scored.scores["solved"], scored.scores["goal"], float(distance),
                     float((frames - target).square().mean())))
    solved, goal, distance, loss = np.array(rows).T
    return {"instances": len(chosen), "decoder": decoder, "lr": lr, "steps": steps, "solved": int(solved.sum()),
            "goal_reached": int(goal.sum()), "relative_latent_distance": float(distance.mean()),
            "pixel_mse": float(loss.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, default=WEIGHTS / "student")
    parser.add_argument("--teacher", type=Path, default=WEIGHTS / "teacher")
    parser.add_argument("--per-family", type=int, default=4)
    parser.add_argument("--no-student", action="store_true", help="measure the teacher on rendered clips only")
    parser.add_argument("--compare", type=int, metavar="N", help="run the methods on N instances per family x split")
    parser.add_argument("--lora-scale", type=float, help="student.lora.scale (default: conf/student/micro.yaml's)")
    parser.add_argument("--lora-targets", nargs="+", metavar="MODULE",
                        help="student.lora.target_modules, e.g. attn2.to_k attn2.to_v (default: the config's)")
    parser.add_argument("--oracle", type=int, metavar="N", help="fit the LoRA to the correct video on N per cell")
    parser.add_argument("--lr", type=float,
                        help="the LoRA learning rate for --oracle / --attack / --loop-steps / --compare (default: the micro "
                             "student's lora.lr, as make eval's vlmteach)")
    parser.add_argument("--oracle-space", choices=("pixel", "latent"), default="pixel",
                        help="--oracle's loss: pixels through the loop's decoder, or latents")
    parser.add_argument("--oracle-frames", choices=sorted(ORACLE_FRAMES), default="all",
                        help="--oracle's frames: the whole correct video, or its last frame only (a goal-only judge)")
    parser.add_argument("--free-descent", type=int, metavar="N",
                        help="fit free latents to the correct video in pixels, from a wrong behaviour, on N per cell")
    parser.add_argument("--decoder", choices=("light", "vae"), default="light", help="--free-descent's decoder")
    parser.add_argument("--attack", type=int, metavar="N",
                        help="run vlmteach's loop against the teacher on N per cell; its P(Yes) against the scorer")
    parser.add_argument("--attack-on", choices=("dev", "teacher"), default="dev",
                        help="--attack's instances: the dev set's or the teacher's own training set's")
    parser.add_argument("--set", default=DEV.name,
                        help="the committed set the instance-subset modes read: dev (the evaluation set is refused)")
    parser.add_argument("--gradient-cosine", type=int, metavar="N",
                        help="on N per cell: does the teacher's gradient point where the oracle's does?")
    parser.add_argument("--loop-steps", type=int, default=0,
                        help="--gradient-cosine after this many steps of vlmteach's loop (at --lr), not at the start")
    parser.add_argument("--questions", type=int, metavar="N",
                        help="on N per cell: the teacher's answers on frozen one-step predictions against the scorer")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lora = {k: v for k, v in (("scale", args.lora_scale), ("target_modules", args.lora_targets)) if v is not None}
    set_name = selection_set(args.set).name  # before any model loads: the evaluation set is refused here
    if args.questions:
        report = question_reading(args.student, args.teacher, args.questions, set_name)
    elif args.gradient_cosine:
        report = gradient_alignment(args.student, args.teacher, args.gradient_cosine, args.loop_steps, args.lr,
                                    lora, set_name)
    elif args.attack:
        report = attack(args.student, args.teacher, args.attack, args.lr, on=args.attack_on, lora=lora,
                        set_name=set_name)
    elif args.free_descent:
        report = free_descent(args.student, args.free_descent, args.decoder, set_name=set_name)
    elif args.oracle:
        report = oracle_lora(args.student, args.oracle, lora, args.lr, space=args.oracle_space,
                             teacher_dir=args.teacher, frames=args.oracle_frames, set_name=set_name)
    elif args.compare:
        report = compare(args.student, args.teacher, args.compare, lora, args.lr, set_name)
    else:
        report = measure(None if args.no_student else args.student, args.teacher, args.per_family)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
