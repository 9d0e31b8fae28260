"""A flawless teacher for the micro world: the scorer's own checks, made differentiable.

``ScorerOracle`` writes the questions the micro teacher is trained to write (``questions.questions_for``)
and answers each one from the frames with a soft version of ``scorer.score_clip``: a pixel's colour is a
softmax over the palette (and "none", beyond the scorer's colour distance) by distance, a cell holds a
colour when its core is clearly more than half that colour (a sigmoid of the fraction, with a margin),
and each rule is the probability that it holds in every frame. On rendered clips, clean or blurred, it
answers as the scorer does; its gradient reaches every pixel a rule reads.

It reads the instance's judge-only ``reference`` (target cells, forbidden cells, light pattern), so it is
an oracle, like ``pass_at_k``'s: vlmteach under this teacher measures what the method reaches with a
teacher whose perception is the benchmark's own (``conf/teacher/micro_oracle.yaml``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmarks.micro.detect import MAX_COLOR_DISTANCE
from benchmarks.micro.scorer import MIN_SEEN_FRACTION
from benchmarks.micro.tasks import cell
from benchmarks.micro.world import BACKGROUND, Cell, CELL, COLOR_NAMES, GRID, NUM_FRAMES, PALETTE, core_mask, outline_mask
from benchmarks.micro.questions import questions_for
from harness.types import Instance, Queries, UserError

_PALETTE = torch.tensor([PALETTE[name] for name in COLOR_NAMES], dtype=torch.float32)  # [K, 3], 0..255
_BACKGROUND = COLOR_NAMES.index(BACKGROUND)


class ScorerOracle:
    """A teacher (``harness.types.Teacher``) whose answers are the micro scorer's soft checks.

    ``color_scale``: pixel-to-palette distance (0..255 units) per unit of softmax logit; smaller is
    sharper. ``sharpness``: slope of the sigmoid that turns a cell's colour fraction into a label.
    ``margin``: a label must clear the scorer's 0.5 by this much to count for Yes (a colour must fill
    more than 0.5 + margin of a core to be there, less than 0.5 - margin to be absent), so that frames
    the loop drives to the scorer's thresholds are not answered Yes.

    It answers the questions it last wrote (``synthesize_queries``), for that instance: vlmteach asks for
    an instance's questions before it asks them.
    """

    def __init__(self, color_scale: float = 15.0, sharpness: float = 40.0, margin: float = 0.1,
                 count_sharpness: float = 20.0, flicker_sharpness: float = 16.0):
        self.color_scale = color_scale
        self.sharpness = sharpness
        self.margin = margin
        self.count_sharpness = count_sharpness
        self.flicker_sharpness = flicker_sharpness
        self._instance: Instance | None = None
        self._checks: dict[str, tuple[str, ...]] = {}  # question -> the scorer checks it asks about

    def synthesize_queries(self, instance: Instance, max_process: int = 3) -> Queries:
        if instance.bench != "micro":
            raise UserError(f"{instance.id}: the scorer oracle answers micro-world instances only "
                            f"(bench {instance.bench!r}); use a VLM teacher for other benchmarks")
        goal, *process = questions_for(instance)[:1 + max_process]
        self._instance, self._checks = instance, {q.text: q.checks for q in (goal, *process)}
        return Queries(goal=goal.text, process=[q.text for q in process],
                       raw=json.dumps({"goal": goal.text, "process": [q.text for q in process]}))

    def yes_nll(self, frames: torch.Tensor, questions: list[str], clock=None) -> torch.Tensor:
        """-log P(Yes) per question for frames [T, 3, H, W] in [0, 1]: -log of the least likely of its checks
        (every frame is read; ``clock`` is not needed)."""
        if frames.ndim != 4 or frames.shape[0] != NUM_FRAMES:
            raise ValueError(f"the scorer oracle reads all {NUM_FRAMES} frames [T, 3, H, W]; got {tuple(frames.shape)}")
        unknown = [q for q in questions if q not in self._checks]
        if unknown:
            raise UserError(f"the scorer oracle answers only the questions it wrote for the current instance; "
                            f"not {unknown[0]!r} (fixed_queries cannot be used with it)")
        reading = self.read(frames)
        logp: dict[str, torch.Tensor] = {}
        out = []
        for q in questions:
            for name in self._checks[q]:
                if name not in logp:
                    logp[name] = self.check_logp(self._instance, reading, name)
            out.append(-torch.stack([logp[name] for name in self._checks[q]]).min())
        return torch.stack(out)

    def p_yes(self, frames: torch.Tensor, questions: list[str], clock=None) -> list[float]:
        with torch.no_grad():
            return torch.exp(-self.yes_nll(frames, questions, clock)).tolist()

    def generate(self, prompt: str, images=None, max_new_tokens: int = 128) -> str:
        raise UserError("the scorer oracle writes no free text; prompt-space methods need a VLM teacher")

    # ----- reading cells

    def read(self, frames: torch.Tensor) -> Reading:
        """Soft cell labels of frames [T, 3, H, W] in [0, 1], as ``detect.cell_labels`` reads hard ones."""
        pixels = frames.float().clamp(0, 1).permute(0, 2, 3, 1) * 255  # [T, H, W, 3]
        distance = torch.linalg.vector_norm(pixels[..., None, :] - _PALETTE.to(pixels.device), dim=-1)
        # One more class at the scorer's MAX_COLOR_DISTANCE: a pixel far from every colour reads as none.
        distance = F.pad(distance, (0, 1), value=MAX_COLOR_DISTANCE)
        colour = torch.softmax(-distance / self.color_scale, dim=-1)[..., :-1]  # [T, H, W, K]
        t = colour.shape[0]
        per_cell = colour.reshape(t, GRID, CELL, GRID, CELL, -1).permute(0, 5, 1, 3, 2, 4)  # [T, K, R, C, y, x]
        core, ring = torch.from_numpy(core_mask()), torch.from_numpy(outline_mask())
        return Reading(self._labels(per_cell[..., core].mean(-1)), self._labels(per_cell[..., ring].mean(-1)))

    def _labels(self, fraction: torch.Tensor) -> Labels:
        return Labels(present=F.logsigmoid(self.sharpness * (fraction - 0.5 - self.margin)),
                      absent=F.logsigmoid(self.sharpness * (0.5 - self.margin - fraction)))

    # ----- the checks, as log P(the scorer's check passes)

    def check_logp(self, instance: Instance, reading: Reading, name: str) -> torch.Tensor:
        ref, solid = instance.reference, reading.solid
        if instance.task == "toggle_lights":
            lights = [cell(c) for c in ref["lights"]]
            on, off = COLOR_NAMES.index(ref["on_color"]), COLOR_NAMES.index(ref["off_color"])
            if name == "goal":
                return sum(solid.present[-1, on if lit else off, r, c] for (r, c), lit in zip(lights, ref["target"]))
            if name == "lights_intact":
                either = torch.stack([solid.present[:, on, r, c].exp() + solid.present[:, off, r, c].exp()
                                      for r, c in lights])
                return either.clamp(1e-12, 1).log().sum() + self._count_logp(solid, len(lights) + len(ref["statics"]))
            if name == "others_static":
                return _statics_logp(solid, ref["statics"])
            if name == "no_flicker":
                return self._no_flicker_logp(solid, lights, on, off)
        else:
            movers = [(COLOR_NAMES.index(m["color"]), cell(m["goal"])) for m in ref["movers"]]
            if name == "goal":  # the scorer's track: the mover is seen exactly once, on its goal
                return sum(solid.present[-1, k, r, c] + solid.absent[-1, k].sum() - solid.absent[-1, k, r, c]
                           for k, (r, c) in movers)
            if name == "intact":
                once = sum(_exactly_one_logp(solid, k).sum() for k, _ in movers)
                return once + self._count_logp(solid, len(movers) + len(ref["statics"]))
            if name == "continuity":
                return sum(_one_cell_steps_logp(solid.present[:, k]) + self._seen_logp(solid, k) for k, _ in movers)
            if name == "others_static":
                return _statics_logp(solid, ref["statics"]) + _markers_logp(reading, ref["markers"])
            if name == "avoids_forbidden":
                forbidden = [cell(m["cell"]) for m in ref["markers"] if m["role"] == "forbidden"]
                return sum(sum(solid.absent[:, k, r, c].sum() for r, c in forbidden) + self._seen_logp(solid, k)
                           for k, _ in movers)
        raise ValueError(f"no soft check {name!r} for {instance.task}")

    def _count_logp(self, solid: Labels, n_solids: int) -> torch.Tensor:
        """Every frame shows ``n_solids`` solids: at least n - 1/2 clearly there, at most n + 1/2 not clearly
        absent (non-background colours)."""
        there = _objects(solid.present).exp().sum((1, 2, 3))  # [T]
        maybe = (1 - _objects(solid.absent).exp()).sum((1, 2, 3))
        k = self.count_sharpness
        return (F.logsigmoid(k * (there - n_solids + 0.5)) + F.logsigmoid(k * (n_solids + 0.5 - maybe))).sum()

    def _seen_logp(self, solid: Labels, colour: int) -> torch.Tensor:
        """A tracked object is seen (in exactly one cell) in at least half the frames, as rules about it need."""
        seen = _exactly_one_logp(solid, colour).exp().sum()
        return F.logsigmoid(self.count_sharpness * (seen - MIN_SEEN_FRACTION * solid.present.shape[0]))

    def _no_flicker_logp(self, solid: Labels, lights: list[Cell], on: int, off: int) -> torch.Tensor:
        """Each light switches at most once between the frames where it is seen, and is seen in half of them.
        Where a light is not seen, its state carries over from the frame before (the scorer skips the frame)."""
        total = solid.present.new_zeros(())
        for r, c in lights:
            p_on, p_off = solid.present[:, on, r, c].exp(), solid.present[:, off, r, c].exp()
            seen = (p_on + p_off).clamp(0, 1)
            shown = p_on / (p_on + p_off).clamp_min(1e-6)
            states = [shown[0]]
            for t in range(1, len(shown)):
                states.append(seen[t] * shown[t] + (1 - seen[t]) * states[-1])
            switches = torch.stack(states).diff().abs().sum()
            total = total + F.logsigmoid(self.flicker_sharpness * (1.5 - switches))
            total = total + F.logsigmoid(self.count_sharpness * (seen.sum() - MIN_SEEN_FRACTION * len(seen)))
        return total


@dataclass(frozen=True)
class Labels:
    """log P(a colour is there) and log P(it is absent) per frame, colour and cell [T, K, GRID, GRID]; with the
    margin the two need not sum to 1."""

    present: torch.Tensor
    absent: torch.Tensor


@dataclass(frozen=True)
class Reading:
    solid: Labels  # from each cell's 4x4 core
    outline: Labels  # from its marker ring


def _objects(labels: torch.Tensor) -> torch.Tensor:
    """The non-background colours of [T, K, R, C]."""
    return torch.cat([labels[:, :_BACKGROUND], labels[:, _BACKGROUND + 1:]], dim=1)


def _exactly_one_logp(solid: Labels, colour: int) -> torch.Tensor:
    """log P(exactly one cell holds ``colour``) per frame [T], cells independent:
    log prod_b absent(b) + log sum_a present(a) / absent(a)."""
    present, absent = solid.present[:, colour].flatten(1), solid.absent[:, colour].flatten(1)
    return absent.sum(1) + torch.logsumexp(present - absent, dim=1)


def _one_cell_steps_logp(present: torch.Tensor) -> torch.Tensor:
    """log P(the object moves at most one cell, 4-connected, between consecutive frames); ``present`` [T, R, C]
    (log). Its cell in each frame is distributed as its presence, normalised."""
    where = present.exp().flatten(1)
    where = where / where.sum(1, keepdim=True).clamp_min(1e-12)  # [T, R*C]
    rows, cols = torch.div(torch.arange(GRID * GRID), GRID, rounding_mode="floor"), torch.arange(GRID * GRID) % GRID
    near = ((rows[:, None] - rows[None]).abs() + (cols[:, None] - cols[None]).abs() <= 1).float().to(where.device)
    step = ((where[:-1] @ near) * where[1:]).sum(1)  # [T-1]
    return step.clamp_min(1e-12).log().sum()


def _statics_logp(solid: Labels, statics: list[dict]) -> torch.Tensor:
    """Each static square stays in its cell in every frame."""
    return sum((solid.present[:, COLOR_NAMES.index(s["color"]), *cell(s["cell"])].sum() for s in statics),
               solid.present.new_zeros(()))


def _markers_logp(reading: Reading, markers: list[dict]) -> torch.Tensor:
    """Each marker stays visible wherever no solid covers its cell, in every frame."""
    covered = _objects(reading.solid.present).exp().sum(1).clamp(0, 1)  # [T, R, C]
    total = reading.solid.present.new_zeros(())
    for m in markers:
        r, c = cell(m["cell"])
        shown = reading.outline.present[:, COLOR_NAMES.index(m["color"]), r, c].exp()
        total = total + (1 - (1 - covered[:, r, c]) * (1 - shown)).clamp_min(1e-12).log().sum()
    return total
