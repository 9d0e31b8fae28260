"""Train the micro world end to end: VAE, then student, then the loop's light decoder, then teacher (on
clips that include the trained student's own light-decoded one-step predictions and final samples);
write ``student/`` (with ``light_decoder/``) and ``teacher/`` folders.

    python -m lab.micro.training.pipeline --out DIR [--scale full|quick|toy] [--stages student,light,teacher]
    python -m lab.micro.training.pipeline --install DIR   # swap DIR/{student,teacher} into the repo
    python -m lab.micro.training.pipeline --out DIR --stages teacher --teacher-init T --adversarial-rounds 3
        # continue teacher T, alternating training with attacks on it (``adversarial``), labelled by the scorer

Instances, batches and initialisations are seeded; each model also has a time cap (its learning rate
anneals within it), so step counts depend on the machine once a cap is reached. ``full`` is sized for
about 12 minutes on one H100/H200, ``toy`` checks the whole path on a CPU in about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from diffusers import WanPipeline
from safetensors.torch import load_file

from benchmarks.micro.questions import questions_for
from benchmarks.micro.sets import AUDIT_SEED, LIGHT_SEED, STUDENT_SEED, TEACHER_SEED
from benchmarks.micro.world import NUM_FRAMES
from harness.frames import frames_to_clip, uniform_frame_indices
from harness.seeding import derive_seed
from harness.students.patch_linear import PatchLinearDecoder
from harness.teachers import QwenVLTeacher
from lab.micro import WEIGHTS
from lab.micro.training import data
from lab.micro.training.adversarial import attack_clips, latent_clutter
from lab.micro.training.alignment import alignment_loss, alignment_stream
from lab.micro.training.loop_clips import loop_clips, path_clips
from lab.micro.training.measure import load_student
from lab.micro.training.robust import robust_stream
from lab.micro.training.train_student import (
    LATER_SIGMAS,
    embed,
    new_student,
    predict_x0,
    save_student,
    tokenize_prompts,
    train_student,
)
from lab.micro.training.train_light_decoder import (
    FILE as LIGHT_FILE,
    fit_light_decoder,
    light_decode,
    save_light_decoder,
)
from lab.micro.training.train_teacher import new_teacher, save_teacher, train_teacher
from lab.micro.training.train_vae import (
    decode_frames,
    encode_clips,
    new_vae,
    normalise,
    set_latent_stats,
    train_vae,
)
from lab.micro.weights_teacher import SIZES

P_CORRECT = 0.15  # how often the student follows the instruction on its own
ADVERSARIAL_LRS = (0.05, 0.1, 0.2)  # Adam on the attacked latents (unit spread): nudges to cell-painting
ADVERSARIAL_SNAPSHOTS = (5, 15, 40)  # attack steps after which the clip is kept (the loop runs 40)
ADVERSARIAL_KINDS = {
    "latent": "Adam on the latents of rejected clips of the teacher's data (adversarial.attack_clips)",
    "loop": "vlmteach's own loop, a LoRA per instance on the student (loop_clips)",
}


@dataclass(frozen=True)
class Scale:
    student_per_family: int  # ID training instances per family for the student
    teacher_per_family: int  # per family and split for the teacher
    vae_steps: int
    vae_batch: int
    student_steps: int
    student_batch: int
    teacher_steps: int
    teacher_clips: int  # clips per yes/no batch (each asked all its questions)
    synthesis_batch: int
    one_step_draws: int  # student one-step predictions per teacher instance
    time_caps_s: tuple[float, float, float]  # VAE, student, teacher: stop early (logged) past these
    light_per_family: int = 150  # per family and split: rendered instances for the light decoder
    blend: float = 0.4  # share of the teacher's yes/no clips blended with another (soft labels)
    scribble: float = 0.0  # share of them with random cells painted (data.scribble), relabelled by the scorer
    clutter: float = 0.0  # share of them redrawn from offset latents (adversarial.latent_clutter), relabelled alike
    adversarial_rounds: int = 0  # rounds of attacks on the teacher, between training phases
    adversarial_kind: str = "latent"  # ADVERSARIAL_KINDS: what attacks it
    adversarial_clips: int = 256  # clips (latent) or instances (loop) attacked per round
    adversarial_batch: int = 64  # clips or instances attacked at once
    adversarial_repeat: int = 2  # how many times each attacked clip enters the teacher's data
    adversarial_share: float = 0.0  # share of each yes/no batch drawn from the attacked clips (0: uniform over all)
    path_clips: int = 0  # instances whose oracle path (loop_clips.path_clips) joins the attacked clips, once
    goal_credit: float = 0.0  # goal target of a loop or path clip the scorer rejects: this times its progress
    alignment: float = 0.0  # weight of the gradient-alignment loss (alignment.py) on the student-reachable clips
    alignment_clips: int = 16  # clips per alignment batch
    robust_epsilon: float = 0.0  # L2 radius of robust.py's moved yes/no rows (0: none moved)
    coherence: float = 0.0  # weight of train_student.coherence_loss (0: none)
    coherence_lora_steps: int = 0  # > 0: train_student.lora_coherence_loss, adapters fitted up to this many steps
    teacher_size: str = "micro"  # weights_teacher.SIZES: the architecture of a teacher trained from scratch


SCALES = {
    "toy": Scale(2, 1, 2, 2, 2, 4, 2, 2, 1, 1, (120.0, 120.0, 120.0), light_per_family=1),
    "quick": Scale(600, 150, 3000, 256, 3000, 256, 2000, 24, 4, 2, (60.0, 60.0, 90.0)),
    # continuing on a CPU (2 cores) what a GPU run started: small teacher data, small batches
    "cpu": Scale(1500, 40, 3000, 64, 3000, 64, 3000, 8, 2, 3, (1800.0, 1800.0, 1500.0), adversarial_clips=96,
                 adversarial_batch=16),
    # the shipped weights' scale (docs/micro-world.md): about 12 minutes on one H200
    "full": Scale(4000, 400, 12000, 256, 20000, 256, 6000, 24, 4, 3, (160.0, 420.0, 150.0)),
}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _variants(args):
    instance, seed = args
    return data.variant_clips(instance, np.random.default_rng(seed))


def _labels(args):
    instance, clip = args
    return data.question_labels(instance, clip)


@torch.no_grad()
def student_clips(transformer, text_encoder, tokenizer, vae, instances, draws: int, seed: int, device,
                  light: PatchLinearDecoder | None = None) -> tuple:
    """One-step predictions (float frames, through ``light`` when given, as vlmteach's loop decodes them) and
    4-step DMD samples (uint8-rounded frames, through the VAE) of the trained student."""
    ids, mask = tokenize_prompts(tokenizer, [x.prompt for x in instances])
    firsts = torch.from_numpy(np.stack([x.first_frame for x in instances]))[:, None]  # [N, 1, H, W, 3]
    first_latent = normalise(vae, encode_clips(vae, firsts.to(device)))  # [N, C, 1, h, w]
    text = torch.cat([embed(text_encoder, ids[i:i + 256].to(device), mask[i:i + 256].to(device))
                      for i in range(0, len(ids), 256)])
    generator = torch.Generator().manual_seed(seed)
    frames = (NUM_FRAMES - 1) // vae.config.scale_factor_temporal + 1
    shape = (len(instances), first_latent.shape[1], frames, *first_latent.shape[-2:])
    one_step, final, owners = [], [], []
    ones = torch.ones(len(instances), device=device)
    for _ in range(draws):
        x = torch.randn(shape, generator=generator).to(device)
        for k, sigma in enumerate((1.0, *LATER_SIGMAS)):
            x = torch.cat([first_latent, x[:, :, 1:]], dim=2)
            x0 = predict_x0(transformer, x, ones * sigma, text)
            x0 = torch.cat([first_latent, x0[:, :, 1:]], dim=2)
            if k == 0:
                one_step.append((light_decode(light, x0) if light is not None else decode_frames(vae, x0)).half())
            if k < len(LATER_SIGMAS):  # DMD re-noising to the next level
                nxt = LATER_SIGMAS[k]
                x = (1 - nxt) * x0 + nxt * torch.randn(shape, generator=generator).to(device)
        final.append(decode_frames(vae, x0).half())
        owners.append(torch.arange(len(instances)))
    final_frames = torch.cat(final)
    final_frames = (final_frames.float().clamp(0, 1) * 255).round() / 255  # what a saved video holds
    return torch.cat(one_step), final_frames.half(), torch.cat(owners)


def yes_no_stream(frames, owner, labels, instances, clips: int, seed: int, blend: float = 0.4, scribble: float = 0.0,
                  clutter: float = 0.0, decoder: PatchLinearDecoder | None = None,
                  hard: torch.Tensor | None = None, hard_share: float = 0.0):
    """Batches (videos, questions, soft labels): random clips (a ``hard_share`` of them from the clips the
    ``hard`` mask marks, when it marks any), a ``blend`` share of them blended with another
    clip of the same instance (labels mixed alike), a ``scribble`` share with random cells painted
    (``data.scribble``) and a ``clutter`` share redrawn by ``decoder`` from offset latents
    (``adversarial.latent_clutter``), labels then the scorer's on the changed clip; 50% degraded, shown with
    8, 12 or 17 uniformly picked frames."""
    if clutter and decoder is None:
        raise ValueError("latent clutter is drawn through the light decoder: pass decoder= (run the light stage first)")
    generator = torch.Generator().manual_seed(seed)
    order = torch.argsort(owner, stable=True)
    frames, owner, labels = frames[order], owner[order], labels[order]
    hard = None if hard is None or not hard_share or not hard.any() else hard[order]
    pools = None if hard is None else (torch.nonzero(~hard).flatten(), torch.nonzero(hard).flatten())
    counts = torch.bincount(owner, minlength=len(instances))
    starts = torch.cumsum(counts, 0) - counts
    texts = [[q.text for q in questions_for(x)] for x in instances]
    while True:
        i = torch.randint(len(frames), (clips,), generator=generator)
        if pools is not None:
            from_hard = torch.rand(clips, generator=generator) < hard_share
            i = torch.where(from_hard, pools[1][i % len(pools[1])], pools[0][i % len(pools[0])])
        o = owner[i]
        j = starts[o] + (torch.rand(clips, generator=generator) * counts[o]).long()
        alpha = torch.where(torch.rand(clips, generator=generator) < blend, torch.rand(clips, generator=generator),
                            torch.ones(clips))
        a = alpha.to(frames.device).view(-1, 1, 1, 1, 1)
        batch = a * frames[i].float() + (1 - a) * frames[j].float()
        lab = alpha.view(-1, 1) * labels[i] + (1 - alpha.view(-1, 1)) * labels[j]
        painted = torch.nonzero(torch.rand(clips, generator=generator) < scribble).flatten() if scribble else []
        for n in painted:
            batch[n] = data.scribble(batch[n], generator)
            lab[n] = _pad_labels([data.question_labels(instances[int(o[n])], frames_to_clip(batch[n]))])[0]
        cluttered = torch.nonzero(torch.rand(clips, generator=generator) < clutter).flatten() if clutter else []
        for n in cluttered:
            batch[n] = latent_clutter(decoder, batch[n], generator)
            lab[n] = _pad_labels([data.question_labels(instances[int(o[n])], frames_to_clip(batch[n]))])[0]
        degraded = data.degrade(batch, generator)
        use = (torch.rand(clips, generator=generator) < 0.5).to(frames.device).view(-1, 1, 1, 1, 1)
        batch = torch.where(use, degraded, batch)
        videos, questions, targets = [], [], []
        for n in range(clips):
            k = int(torch.tensor([8, 12, 17])[torch.randint(3, (1,), generator=generator)])
            video = batch[n][uniform_frame_indices(batch.shape[1], k)]
            for q, text in enumerate(texts[int(o[n])]):
                videos.append(video)
                questions.append(text)
                targets.append(float(lab[n, q]))
        yield videos, questions, torch.tensor(targets)


def synthesis_stream(instances, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    replies = [data.synthesis_reply(x) for x in instances]
    while True:
        pick = rng.integers(len(instances), size=batch)
        yield ([instances[i].first_frame for i in pick], [instances[i].prompt for i in pick],
               [replies[i] for i in pick], [bool(rng.random() < 0.2) for _ in pick])


def _pad_labels(rows: list[np.ndarray]) -> torch.Tensor:
    out = np.zeros((len(rows), 4), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.from_numpy(out)


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_student_stage(out: Path, scale: Scale, dev: torch.device, workers: int, init_from: Path | None = None,
                        vae_from: Path | None = None) -> dict:
    """VAE on every clip the world can show, then the student on its behaviour latents -> ``out/student``.
    ``init_from`` (a trained student folder) keeps its VAE and continues its transformer and text encoder;
    ``vae_from`` keeps only its VAE and trains a new transformer and text encoder."""
    started = time.perf_counter()
    student_set = data.training_instances(("id",), scale.student_per_family, STUDENT_SEED)
    teacher_set = data.training_instances(("id", "ood"), scale.teacher_per_family, TEACHER_SEED)
    with Pool(workers) as pool:
        behaviours = np.stack(pool.map(data.behaviour_clips, student_set, chunksize=16))
        others = pool.map(data.behaviour_clips, teacher_set, chunksize=16)  # OOD scenes for the VAE too
    flat = behaviours.reshape(-1, *behaviours.shape[2:])
    _log(f"data: {len(student_set)} student instances ({time.perf_counter() - started:.0f}s)")

    if init_from is not None:
        transformer, text_encoder, tokenizer, vae = load_student_parts(init_from, dev)
        lr = 5e-4  # a second cosine cycle, lower
    else:
        if vae_from is not None:
            *_, vae = load_student_parts(vae_from, dev)
        else:
            vae = new_vae(seed=0).to(dev)
            clips = torch.from_numpy(np.concatenate([flat, np.concatenate(others)])).to(dev)
            train_vae(vae, clips, steps=scale.vae_steps, batch=scale.vae_batch, lr=2e-3, seed=0,
                      time_cap_s=scale.time_caps_s[0], log=_log)
            del clips
        transformer, text_encoder, tokenizer = new_student(seed=0)
        lr = 1e-3

    unseen = data.training_instances(("id", "ood"), 8, AUDIT_SEED)  # no component trains on them; OOD half included
    report = {"vae_label_agreement": label_agreement(lambda z: decode_frames(vae, z), vae, unseen, dev, workers)}
    _log(json.dumps(report))
    raw = encode_clips(vae, torch.from_numpy(flat).to(dev))
    set_latent_stats(vae, raw)
    latents = normalise(vae, raw).reshape(len(student_set), data.MAX_BEHAVIOURS, *raw.shape[1:])
    num_wrong = torch.tensor([len(data.student_behaviours(x.task)) - 1 for x in student_set], device=dev)
    transformer.to(dev)
    text_encoder.to(dev)
    ids, mask = tokenize_prompts(tokenizer, [x.prompt for x in student_set])
    train_student(transformer, text_encoder, ids=ids.to(dev), mask=mask.to(dev), latents=latents, num_wrong=num_wrong,
                  p_correct=P_CORRECT, steps=scale.student_steps, batch=scale.student_batch, lr=lr, seed=0,
                  time_cap_s=scale.time_caps_s[1], coherence=scale.coherence,
                  coherence_lora_steps=scale.coherence_lora_steps, log=_log)
    save_student(out / "student", transformer=transformer, text_encoder=text_encoder, vae=vae)
    report["student_stage_seconds"] = time.perf_counter() - started
    _log(f"student saved ({report['student_stage_seconds']:.0f}s)")
    return report


@torch.no_grad()
def label_agreement(decode, vae, instances, dev: torch.device, workers: int) -> float:
    """Fraction of rendered variants whose reconstruction (``vae``'s encoder, then ``decode`` of the normalised
    latents) the scorer labels as it labels the original."""
    with Pool(workers) as pool:
        sets = pool.map(_variants, [(x, i) for i, x in enumerate(instances)])
        owners = [x for x, (c, _) in zip(instances, sets) for _ in c]
        clips = np.concatenate([c for c, _ in sets])
        recon = decode(normalise(vae, encode_clips(vae, torch.from_numpy(clips).to(dev))))
        labels = pool.map(_labels, [(x, frames_to_clip(f)) for x, f in zip(owners, recon)])
    truth = [lab for _, labs in sets for lab in labs]
    return float(np.mean([np.array_equal(a, b) for a, b in zip(labels, truth)]))


def train_light_stage(out: Path, scale: Scale, dev: torch.device, workers: int) -> dict:
    """The light decoder for ``out/student``'s VAE, on rendered ID and OOD clips -> ``out/student/light_decoder``."""
    started = time.perf_counter()
    instances = data.training_instances(("id", "ood"), scale.light_per_family, LIGHT_SEED)
    with Pool(workers) as pool:
        clips = torch.from_numpy(np.concatenate(pool.map(data.behaviour_clips, instances, chunksize=16))).to(dev)
    *_, vae = load_student_parts(out / "student", dev)
    latents = normalise(vae, encode_clips(vae, clips))
    decoder = fit_light_decoder(latents, clips)
    save_light_decoder(decoder, out / "student")
    unseen = data.training_instances(("id", "ood"), 8, AUDIT_SEED)  # no component trains on them
    report = {"light_label_agreement": label_agreement(lambda z: light_decode(decoder, z), vae, unseen, dev,
                                                       workers),
              "light_stage_seconds": time.perf_counter() - started}
    _log(json.dumps(report))
    return report


def load_light_decoder(student_dir: Path, dev: torch.device) -> PatchLinearDecoder | None:
    path = student_dir / LIGHT_FILE
    return PatchLinearDecoder.from_state_dict(load_file(str(path))).to(dev).eval() if path.is_file() else None


def load_student_parts(folder: Path, dev: torch.device):
    pipe = WanPipeline.from_pretrained(folder)
    return (pipe.transformer.to(dev).eval(), pipe.text_encoder.to(dev).eval(), pipe.tokenizer,
            pipe.vae.to(dev).eval().requires_grad_(False))


def train_teacher_stage(out: Path, scale: Scale, dev: torch.device, workers: int,
                        init_from: Path | None = None, attacked_from: Path | None = None) -> dict:
    """The teacher on rendered variants, their VAE reconstructions and the trained student's own
    one-step predictions and final videos (``out/student``) -> ``out/teacher``. ``init_from`` continues
    from a trained teacher folder instead of the builder's random initialisation. With
    ``scale.adversarial_rounds`` the training phases alternate with attacks on the teacher so far
    (``scale.adversarial_kind``), whose clips join its data labelled by the scorer; they are kept in
    ``out/attacked.pt``, which ``attacked_from`` (such a file, same scale) adds to the data of a later run."""
    started = time.perf_counter()
    teacher_set = data.training_instances(("id", "ood"), scale.teacher_per_family, TEACHER_SEED)
    with Pool(workers) as pool:
        variant_sets = pool.map(_variants, [(x, i) for i, x in enumerate(teacher_set)], chunksize=4)
    var_clips = np.concatenate([c for c, _ in variant_sets])
    var_owner = torch.cat([torch.full((len(c),), i) for i, (c, _) in enumerate(variant_sets)])
    var_labels = _pad_labels([lab for _, labs in variant_sets for lab in labs])
    transformer, text_encoder, tokenizer, vae = load_student_parts(out / "student", dev)
    light = load_light_decoder(out / "student", dev)
    with torch.no_grad():
        recon = decode_frames(vae, normalise(vae, encode_clips(vae, torch.from_numpy(var_clips).to(dev)))).half()
    one_step, final, own = student_clips(transformer, text_encoder, tokenizer, vae, teacher_set,
                                         scale.one_step_draws, seed=1, device=dev, light=light)
    student_frames = torch.cat([one_step, final])
    with Pool(workers) as pool:
        student_labels = pool.map(_labels, [(teacher_set[int(o)], frames_to_clip(f)) for o, f in
                                            zip(torch.cat([own, own]), student_frames)], chunksize=16)
        recon_labels = pool.map(_labels, [(teacher_set[int(o)], frames_to_clip(f)) for o, f in zip(var_owner, recon)],
                                chunksize=16)
    report = {
        # does the scorer read the VAE's reconstructions as it reads the rendered originals?
        "vae_label_agreement": float(np.mean([np.array_equal(a, b[:len(a)].numpy())
                                              for a, b in zip(recon_labels, var_labels)])),
        "student_one_step_goal_rate": float(np.mean([lab[0] for lab in student_labels[:len(own)]])),
        "student_final_goal_rate": float(np.mean([lab[0] for lab in student_labels[len(own):]])),
        "student_final_all_yes_rate": float(np.mean([lab.min() for lab in student_labels[len(own):]])),
    }
    _log(json.dumps(report))
    rendered = torch.from_numpy(var_clips).permute(0, 1, 4, 2, 3).to(dev).half() / 255
    frames = torch.cat([rendered, recon, student_frames])
    one_step_from = len(rendered) + len(recon)  # then the one-step predictions, the final videos, attacked clips
    owner = torch.cat([var_owner, var_owner, own, own])
    labels = torch.cat([var_labels, var_labels, _pad_labels(student_labels)])
    del transformer, text_encoder, vae
    _log(f"teacher data: {len(frames)} clips ({time.perf_counter() - started:.0f}s)")

    init = out / "teacher_init"
    teacher = new_teacher(init, seed=0, device=str(dev), size=scale.teacher_size)
    if init_from is not None:
        shutil.copytree(init_from, init, dirs_exist_ok=True)
        teacher = QwenVLTeacher.from_pretrained(path=str(init), device=str(dev))
    base, rounds_before = len(frames), 0
    if attacked_from is not None:
        kept = torch.load(attacked_from)
        frames = torch.cat([frames, kept["frames"].to(frames.device)])
        owner, labels = torch.cat([owner, kept["owner"]]), torch.cat([labels, kept["labels"]])
        rounds_before = kept["rounds"]  # later rounds draw other instances and noises
    if scale.path_clips:
        frames, owner, labels, report["path_clips"] = _with_path_clips(out, scale, dev, teacher_set, frames, owner,
                                                                       labels, seed=rounds_before)
    phases = scale.adversarial_rounds + 1  # train, then (attack, train) per round; each phase anneals its lr
    report["adversarial_rounds"] = []
    for phase in range(phases):
        round_seed = rounds_before + phase
        if phase and scale.adversarial_kind == "loop":
            frames, owner, labels, stats = _with_loop_clips(out, scale, dev, teacher, teacher_set, frames, owner,
                                                            labels, seed=round_seed)
        elif phase:
            frames, owner, labels, stats = _with_adversarial_clips(scale, dev, teacher, light, teacher_set, frames,
                                                                   owner, labels, seed=round_seed)
        if phase:
            report["adversarial_rounds"].append(stats)
            torch.save({"frames": frames[base:].half().cpu(), "owner": owner[base:], "labels": labels[base:],
                        "rounds": round_seed}, out / "attacked.pt")
        yes_no = yes_no_stream(frames, owner, labels, teacher_set, scale.teacher_clips, seed=phase,
                               blend=scale.blend, scribble=scale.scribble, clutter=scale.clutter, decoder=light,
                               hard=torch.arange(len(frames)) >= base, hard_share=scale.adversarial_share)
        if scale.robust_epsilon:
            yes_no = robust_stream(teacher, yes_no, epsilon=scale.robust_epsilon, seed=phase)
        extra = None
        if scale.alignment:  # the clips a LoRA on the student reaches: one-step predictions, attacked clips
            reachable = torch.cat([torch.arange(one_step_from, one_step_from + len(one_step)),
                                   torch.arange(base, len(frames))])
            extra = alignment_loss(teacher, alignment_stream(frames[reachable.to(frames.device)], owner[reachable],
                                                             teacher_set, scale.alignment_clips, seed=phase),
                                   scale.alignment)
        train_teacher(teacher, yes_no_batches=yes_no,
                      synthesis_batches=synthesis_stream(teacher_set, scale.synthesis_batch, seed=phase),
                      steps=scale.teacher_steps // phases, lr=2e-3, time_cap_s=scale.time_caps_s[2] / phases,
                      extra_loss=extra, log=_log)
        save_teacher(teacher, init, out / "teacher")  # every phase: a run cut short keeps its last one
    shutil.rmtree(init)
    report["teacher_stage_seconds"] = time.perf_counter() - started
    return report


def _with_loop_clips(out: Path, scale: Scale, dev: torch.device, teacher, teacher_set, frames, owner, labels,
                     seed: int):
    """The teacher's data plus ``adversarial_repeat`` copies of vlmteach's loop clips (``loop_clips``) against
    the current teacher on ``adversarial_clips`` random teacher instances."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(teacher_set), generator=generator)[:scale.adversarial_clips]
    student = load_student(out / "student", device=str(dev))
    clips, clip_owner, clip_labels, p_goal = loop_clips(student, teacher, [teacher_set[int(i)] for i in picked],
                                                        snapshots=ADVERSARIAL_SNAPSHOTS, seed=seed,
                                                        batch=scale.adversarial_batch, goal_credit=scale.goal_credit,
                                                        log=_log)
    return _with_attacked(scale, frames, owner, labels, clips, picked[clip_owner], clip_labels, p_goal,
                          f"loop clips, round {seed}", started)


def _with_path_clips(out: Path, scale: Scale, dev: torch.device, teacher_set, frames, owner, labels, seed: int):
    """The teacher's data plus ``adversarial_repeat`` copies of the oracle's path clips (``path_clips``) on
    ``scale.path_clips`` random teacher instances, drawn apart from the loop rounds' own."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(derive_seed(seed, "path"))
    picked = torch.randperm(len(teacher_set), generator=generator)[:scale.path_clips]
    student = load_student(out / "student", device=str(dev))
    clips, clip_owner, clip_labels = path_clips(student, [teacher_set[int(i)] for i in picked], seed=seed,
                                                batch=scale.adversarial_batch, goal_credit=scale.goal_credit, log=_log)
    return _with_attacked(scale, frames, owner, labels, clips, picked[clip_owner], clip_labels, None, "path clips",
                          started)


def _with_attacked(scale: Scale, frames, owner, labels, new_frames, new_owner, new_labels, p_goal, name: str,
                   started: float):
    """``adversarial_repeat`` copies of attacked clips joined to the teacher's data, and the round's stats."""
    goal = torch.tensor([float(lab[0]) for lab in new_labels])
    stats = {"clips": len(new_labels), "goal_rate": float((goal > 0.5).float().mean()),
             "graded_goal_target": float(goal[goal < 0.5].mean()) if (goal < 0.5).any() else 0.0,
             "all_yes_rate": float(np.mean([lab.min() > 0.5 for lab in new_labels]))}
    if p_goal is not None:
        # How robust the teacher was before this round: the share of attacked clips (every snapshot) whose
        # goal it accepts though the scorer rejects it.
        stats |= {"fooled_rate": float(((p_goal > 0.5) & (goal < 0.5)).float().mean()),
                  "goal_p_yes": float(p_goal.mean())}
    stats["seconds"] = time.perf_counter() - started
    _log(f"{name}: {json.dumps(stats)}")
    r = scale.adversarial_repeat
    return (torch.cat([frames, new_frames.to(frames.device).repeat(r, 1, 1, 1, 1)]),
            torch.cat([owner, new_owner.repeat(r)]),
            torch.cat([labels, _pad_labels(new_labels).repeat(r, 1)]), stats)


def _with_adversarial_clips(scale: Scale, dev: torch.device, teacher, light: PatchLinearDecoder | None, teacher_set,
                            frames, owner, labels, seed: int):
    """The teacher's data plus ``adversarial_repeat`` copies of attacks on the current teacher
    (``adversarial.attack_clips``, through the trained light decoder) from ``adversarial_clips`` random
    clips of its data whose goal the scorer rejects: where being fooled costs the loop."""
    started = time.perf_counter()
    if light is None:
        raise FileNotFoundError(f"adversarial rounds attack through the light decoder, and the student folder has no "
                                f"{LIGHT_FILE} (run the light stage first)")
    generator = torch.Generator().manual_seed(seed)
    rejected = torch.nonzero(labels[:, 0] < 0.5).flatten()
    if not len(rejected):
        raise ValueError("no clip of the teacher's data has its goal rejected by the scorer: nothing to attack from")
    seeds = rejected[torch.randperm(len(rejected), generator=generator)[:scale.adversarial_clips]]
    new_frames, new_owner, new_labels, p_goal = [], [], [], []
    for start in range(0, len(seeds), scale.adversarial_batch):
        batch = seeds[start:start + scale.adversarial_batch]
        lr = ADVERSARIAL_LRS[int(torch.randint(len(ADVERSARIAL_LRS), (1,), generator=generator))]
        clips, clip_labels, p_yes = attack_clips(teacher, light, frames[batch.to(frames.device)].to(dev),
                                                 [teacher_set[int(owner[i])] for i in batch],
                                                 steps=max(ADVERSARIAL_SNAPSHOTS), lr=lr, snapshots=ADVERSARIAL_SNAPSHOTS)
        new_frames.append(clips.to(frames.device))
        new_owner.append(owner[batch].repeat(len(ADVERSARIAL_SNAPSHOTS)))
        new_labels.extend(clip_labels)
        p_goal.append(p_yes.cpu())
    return _with_attacked(scale, frames, owner, labels, torch.cat(new_frames), torch.cat(new_owner), new_labels,
                          torch.cat(p_goal), f"adversarial clips, round {seed}", started)


def train_all(out: Path, scale: Scale, device: str, workers: int, stages: tuple[str, ...],
              teacher_init: Path | None = None, student_init: Path | None = None, vae_init: Path | None = None,
              attacked_init: Path | None = None) -> dict:
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    report: dict = {"scale": scale.__dict__, "device": str(dev), "p_correct": P_CORRECT}
    if "student" in stages:
        report |= train_student_stage(out, scale, dev, workers, student_init, vae_init)
    if "light" in stages:
        report |= train_light_stage(out, scale, dev, workers)
    if "teacher" in stages:
        report |= train_teacher_stage(out, scale, dev, workers, teacher_init, attacked_init)
    path = out / "train_report.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps(previous | report, indent=2) + "\n")
    return report


def install(trained: Path, weights: Path = WEIGHTS) -> None:
    """Swap trained ``student/`` and ``teacher/`` folders into ``weights`` (each rename is atomic)."""
    for name in ("student", "teacher"):
        source = Path(trained) / name
        if not (source / ("model_index.json" if name == "student" else "config.json")).is_file():
            raise FileNotFoundError(f"{source} is not a trained {name} folder; run the pipeline with --out first")
        staging = weights / f".{name}.new"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        old = weights / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if (weights / name).exists():
            os.rename(weights / name, old)
        os.rename(staging, weights / name)
        shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--time-factor", type=float, default=1.0,
                        help="multiply the scale's time caps (a slower machine, e.g. 10 on a CPU)")
    parser.add_argument("--stages", default="student,light,teacher",
                        help="comma-separated, in this order: student (VAE + student), light (light decoder), teacher")
    parser.add_argument("--teacher-init", type=Path, help="continue from this trained teacher folder")
    parser.add_argument("--student-init", type=Path, help="keep this trained student's VAE, continue the rest")
    parser.add_argument("--vae-init", type=Path, help="keep this trained student's VAE, train a new transformer")
    parser.add_argument("--student-batch", type=int, help="override the scale's student batch")
    parser.add_argument("--blend", type=float, help="share of the teacher's yes/no clips blended, labels alike "
                                                     "(the scale's: 0.4); 0 gives hard labels only")
    parser.add_argument("--scribble", type=float,
                        help="share of the teacher's yes/no clips with random cells painted, relabelled by the scorer "
                             "(the scale's: 0)")
    parser.add_argument("--clutter", type=float,
                        help="share of the teacher's yes/no clips redrawn by the light decoder from randomly offset "
                             "latents, relabelled by the scorer (the scale's: 0)")
    parser.add_argument("--adversarial-rounds", type=int,
                        help="rounds of attacks on the teacher, each followed by training on the attacked clips "
                             "labelled by the scorer (the scale's: 0)")
    parser.add_argument("--adversarial-kind", choices=sorted(ADVERSARIAL_KINDS),
                        help="what attacks the teacher each round: " + "; ".join(
                            f"{k}: {v}" for k, v in ADVERSARIAL_KINDS.items()) + " (the scale's: latent)")
    parser.add_argument("--adversarial-clips", type=int,
                        help="clips (latent) or instances (loop) attacked per round (the scale's: 256; cpu: 96)")
    parser.add_argument("--adversarial-share", type=float,
                        help="share of each yes/no batch drawn from the attacked clips (the scale's: 0, uniform)")
    parser.add_argument("--path-clips", type=int, metavar="N",
                        help="N teacher instances' oracle paths to the correct video join the attacked clips (0)")
    parser.add_argument("--goal-credit", type=float,
                        help="goal target of a loop or path clip the scorer rejects: this times its share of the way "
                             "from the frozen prediction to the correct video (0: hard labels; keep it below 0.5)")
    parser.add_argument("--alignment", type=float, metavar="W",
                        help="weight of the gradient-alignment loss: the teacher's loss gradient on one-step predictions "
                             "and attacked clips made to point to the correct video (alignment.py; the scale's: 0)")
    parser.add_argument("--robust-epsilon", type=float, metavar="E",
                        help="robust training (robust.py): half of each yes/no batch moved within an L2 ball of radius E "
                             "against its label (the scale's: 0, none)")
    parser.add_argument("--coherence", type=float, metavar="W",
                        help="weight of the student's coherence loss (train_student.coherence_loss: a prediction nudged "
                             "towards an end state regressed to the behaviour it ends in; the scale's: 0)")
    parser.add_argument("--coherence-lora-steps", type=int, metavar="K",
                        help="with --coherence: the nudge is a LoRA per row fitted up to K Adam steps to the end state "
                             "(train_student.lora_coherence_loss), as vlmteach's loop fits one (the scale's: 0, one nudge)")
    parser.add_argument("--attacked-init", type=Path,
                        help="an attacked.pt an earlier teacher run wrote: its attacked clips join this run's data")
    parser.add_argument("--teacher-size", choices=sorted(SIZES),
                        help="architecture of a teacher trained from scratch (weights_teacher.SIZES; default micro)")
    parser.add_argument("--install", type=Path, help="a folder written by --out, to copy into the repo's weights")
    args = parser.parse_args()
    if args.out is None and args.install is None:
        parser.error("give --out DIR (train) and/or --install DIR (swap trained weights in)")
    if args.robust_epsilon is not None and args.robust_epsilon < 0:
        parser.error(f"--robust-epsilon is a radius, 0 or more, got {args.robust_epsilon}")
    if args.coherence_lora_steps is not None and (args.coherence_lora_steps < 1 or not args.coherence):
        parser.error("--coherence-lora-steps K needs K >= 1 and --coherence W > 0 (without a weight it does nothing)")
    if args.goal_credit is not None and not 0 <= args.goal_credit < 0.5:
        parser.error(f"--goal-credit must be in [0, 0.5): a rejected goal's target stays a no, got {args.goal_credit}")
    if args.out is not None:
        scale = SCALES[args.scale]
        scale = replace(scale, time_caps_s=tuple(c * args.time_factor for c in scale.time_caps_s),
                        student_batch=args.student_batch or scale.student_batch,
                        blend=scale.blend if args.blend is None else args.blend,
                        scribble=scale.scribble if args.scribble is None else args.scribble,
                        clutter=scale.clutter if args.clutter is None else args.clutter,
                        adversarial_rounds=args.adversarial_rounds or scale.adversarial_rounds,
                        adversarial_kind=args.adversarial_kind or scale.adversarial_kind,
                        adversarial_clips=args.adversarial_clips or scale.adversarial_clips,
                        adversarial_share=scale.adversarial_share if args.adversarial_share is None
                        else args.adversarial_share,
                        path_clips=args.path_clips or scale.path_clips,
                        alignment=scale.alignment if args.alignment is None else args.alignment,
                        robust_epsilon=scale.robust_epsilon if args.robust_epsilon is None else args.robust_epsilon,
                        coherence=scale.coherence if args.coherence is None else args.coherence,
                        coherence_lora_steps=args.coherence_lora_steps or scale.coherence_lora_steps,
                        goal_credit=scale.goal_credit if args.goal_credit is None else args.goal_credit,
                        teacher_size=args.teacher_size or scale.teacher_size)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        train_all(args.out, scale, args.device, args.workers, tuple(args.stages.split(",")),
                  args.teacher_init, args.student_init, args.vae_init, args.attacked_init)
    if args.install is not None:
        install(args.install)


if __name__ == "__main__":
    main()
