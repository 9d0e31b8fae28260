"""How far a vlmteach run's teacher can be trusted: its verdicts against the benchmark's scores.

The loop stops when the teacher accepts the student's one-step prediction (loss <= tau). A teacher the
loop fools (the paper's "limited teacher perception" failure) still accepts, but its acceptance no longer
tracks what the benchmark measures. From a run's own records, per group:

- accepted: how many instances the loop stopped early on, and the mean score of their final videos
  against that of the rest;
- concordance at the start and at the end of the loop. At the start the teacher judges the frozen
  student's one-step prediction, whose video is the ``frozen`` run's for the same seed (the same noise
  draw); at the end it judges the kept LoRA's prediction, whose video is the run's own. Two rankings:
  the teacher's loss against the benchmark's score (does lowering this loss raise this benchmark?), and,
  where the benchmark scores a ``goal`` check (the micro world does), the goal question's P(Yes) against
  it (does the teacher see the goal?). A concordance that falls from start to end means the loop has
  optimised the teacher's answers rather than the videos.

Concordance is the probability that, of two videos of one task and split with different scores, the
better one got the better verdict (ties in the verdict count half): 0.5 is chance, 1 a perfect ranking,
the AUC for a 0/1 score. Pairs stay within a task because the loss's level differs between tasks'
questions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from scipy.stats import somersd

from harness.records import STATUS_OK
from harness.results.render import fmt, md_table
from harness.results.runs import RunResults
from harness.vlmteach.trace import VlmTeachTrace

NAME = "teacher_verdicts"  # harness.results.audit: the rows' key in summary.json and the W&B table's name
GOAL = "goal"  # the question role (harness.vlmteach) and the benchmark check it is read against
FROZEN = "frozen"  # the method whose videos are the untouched student's: the loop's start is read against them

NOTE = (
    "accepted: the loop stopped early (loss <= tau) on the teacher's yes; score: mean benchmark score of the "
    "final videos. Concordance: P(of two videos of one task and split, the better got the better verdict), "
    "verdict ties half, 0.5 = chance; loss ~ score: the teacher's loss against the benchmark's score; "
    "goal ~ goal: the goal question's P(Yes) against the benchmark's goal check; start = the frozen one-step "
    "prediction against the frozen run's video of the same seed (n paired: instances with one), end = the kept LoRA's "
    "prediction against this run's video. Point estimates."
)


def concordance(truths: list[float], verdicts: list[float], strata: list[str]) -> float | None:
    """P(the better-scored of two items of one stratum has the higher verdict), verdict ties counting half,
    over such pairs of every stratum; None when no stratum holds two different scores."""
    concordant = pairs = 0.0
    for stratum in sorted(set(strata)):
        idx = [i for i, s in enumerate(strata) if s == stratum]
        truth = [truths[i] for i in idx]
        if len(set(truth)) < 2:
            continue
        comparable = (len(truth) ** 2 - sum(c * c for c in Counter(truth).values())) / 2  # pairs that differ
        verdict = [verdicts[i] for i in idx]
        # Somers' D of the verdict given the truth, rescaled from [-1, 1] to a probability (scipy gives NaN, not
        # 0, for a constant verdict).
        d = somersd(truth, verdict).statistic if len(set(verdict)) > 1 else 0.0
        concordant += (d + 1.0) / 2.0 * comparable
        pairs += comparable
    return concordant / pairs if pairs else None


def _is_loop_record(record: dict[str, Any]) -> bool:
    trace = record["trace"]
    return record["status"] == STATUS_OK and isinstance(trace, VlmTeachTrace) and bool(trace.per_step)


def _strata(records: list[dict[str, Any]]) -> list[str]:
    return [f"{r['split']}/{r['task']}" for r in records]


def _rankings(loop: list[dict[str, Any]], videos: list[dict[str, Any]], step: int) -> dict[str, float | None]:
    """Loss ~ score and goal ~ goal for the teacher's verdicts at ``step`` on the videos' records."""
    out = {"loss": concordance([v["score"] for v in videos], [-r["trace"].per_step[step].loss for r in loop],
                               _strata(loop))}
    with_goal = [(r, v) for r, v in zip(loop, videos) if GOAL in v["scores"] and GOAL in r["trace"].loss_roles]
    out[GOAL] = concordance(
        [v["scores"][GOAL] for _, v in with_goal],
        [r["trace"].per_step[step].p_yes[r["trace"].loss_roles.index(GOAL)] for r, _ in with_goal],
        _strata([r for r, _ in with_goal]),
    ) if with_goal else None
    return out


def verdict_rows(records: list[dict[str, Any]], frozen_records: list[dict[str, Any]],
                 levels: dict[str, Callable[[dict[str, Any]], str]]) -> list[dict[str, Any]]:
    """One row per (level, group) of a run's loop records; [] when the run has no vlmteach trace."""
    loop = [r for r in records if _is_loop_record(r)]
    frozen = {r["instance_id"]: r for r in frozen_records if r["status"] == STATUS_OK}
    rows = []
    for level, key_of in levels.items():
        for group in sorted({key_of(r) for r in loop}):
            mine = [r for r in loop if key_of(r) == group]
            accepted = [r["score"] for r in mine if r["trace"].stopped_early]
            rest = [r["score"] for r in mine if not r["trace"].stopped_early]
            paired = [r for r in mine if r["instance_id"] in frozen and frozen[r["instance_id"]]["seed"] == r["seed"]]
            start = _rankings(paired, [frozen[r["instance_id"]] for r in paired], 0)
            end = _rankings(mine, mine, -1)
            rows.append({
                "level": level, "group": group, "n": len(mine), "n_accepted": len(accepted),
                "score_accepted": sum(accepted) / len(accepted) if accepted else None,
                "score_rest": sum(rest) / len(rest) if rest else None, "n_start": len(paired),
                "loss_start": start["loss"], "loss_end": end["loss"],
                "goal_start": start[GOAL], "goal_end": end[GOAL],
            })
    return rows


def rows(run: RunResults, companions: list[RunResults],
         levels: dict[str, Callable[[dict[str, Any]], str]]) -> list[dict[str, Any]]:
    """The audit's rows for ``run`` (harness.results.audit); the loop's start is read against a frozen run among
    ``companions``."""
    frozen = next((r.records for r in companions if r.method == FROZEN), [])
    return verdict_rows(run.records, frozen, levels)


def markdown(bench: str, label: str, verdicts: list[dict[str, Any]]) -> list[str]:
    """Acceptances and how the verdicts rank the videos. The loop's start is shown only beside a frozen run,
    whose videos it is read against."""
    start = any(row["n_start"] for row in verdicts)
    rankings = {"loss": "loss ~ score"}
    if any(row["goal_start"] is not None or row["goal_end"] is not None for row in verdicts):
        rankings["goal"] = "goal ~ goal"
    header = ["group", "n"] + (["n paired"] if start else []) + ["accepted", "score if accepted", "score otherwise"]
    for name in rankings.values():
        header += [f"{name}: start", "end"] if start else [f"{name}: end"]
    body = []
    for row in verdicts:
        cells = [row["group"], str(row["n"])] + ([str(row["n_start"])] if start else [])
        cells += [f"{row['n_accepted']} ({row['n_accepted'] / row['n']:.0%})", fmt(row["score_accepted"]),
                  fmt(row["score_rest"])]
        for key in rankings:
            cells += [fmt(row[key + "_start"]), fmt(row[key + "_end"])] if start else [fmt(row[key + "_end"])]
        body.append(cells)
    return [f"### {bench}: the teacher's verdicts in {label}", ""] + md_table(header, body) + ["", f"- {NOTE}", ""]
