"""The teacher audit (harness.vlmteach.teacher_audit): acceptances and concordances from a vlmteach run's records,
rendered by the results tables because the trace type of the method declares it."""

import itertools

import numpy as np
import pytest
from agg_fixtures import IDS, frozen_scores, legacy_loop_trace, loop_fields, write_run

from baselines.traces import TeacherSelection
from harness.results.compare import compare
from harness.results.rows import LEVELS
from harness.results.runs import load_run
from harness.results.summary import write_run_tables
from harness.vlmteach.trace import VlmTeachTrace
from harness.vlmteach.teacher_audit import concordance, verdict_rows


def _pairwise(truths, verdicts, strata):
    """The definition, pair by pair."""
    good = total = 0.0
    for i, j in itertools.combinations(range(len(truths)), 2):
        if strata[i] != strata[j] or truths[i] == truths[j]:
            continue
        better, worse = (i, j) if truths[i] > truths[j] else (j, i)
        good += 1.0 if verdicts[better] > verdicts[worse] else 0.5 if verdicts[better] == verdicts[worse] else 0.0
        total += 1
    return good / total


def test_concordance_counts_pairs_within_strata_with_verdict_ties_as_half():
    rng = np.random.default_rng(0)
    truths = list(rng.integers(0, 4, 40) / 3)  # graded, with ties
    verdicts = list(np.round(rng.random(40) + np.array(truths), 1))  # related, with ties
    strata = list(rng.choice(["id/a", "id/b", "ood/a"], 40))
    assert concordance(truths, verdicts, strata) == pytest.approx(_pairwise(truths, verdicts, strata))


def test_concordance_ignores_pairs_across_strata_and_is_none_without_a_comparable_pair():
    # Within each stratum the verdict ranks perfectly; across strata it is reversed (another task's level).
    truths, verdicts, strata = [0.2, 0.4, 0.6, 0.8], [0.9, 1.0, 0.1, 0.2], ["a", "a", "b", "b"]
    assert concordance(truths, verdicts, strata) == 1.0
    assert concordance([0.5, 0.5, 0.3], [0.1, 0.2, 0.3], ["a", "a", "b"]) is None
    assert concordance([0.2, 0.4, 0.6], [0.7, 0.7, 0.7], ["a", "a", "a"]) == 0.5  # a constant verdict: chance


def _loop_run(tmp_path, frozen):
    """A vlmteach run (agg_fixtures.loop_fields) beside a frozen one; synth/b1/0 errored in the loop, and
    synth/a1/3's frozen twin has another seed."""
    scores = {iid: s + 0.1 for iid, s in frozen.items()}
    write_run(tmp_path / "vlm", "vlmteach", scores, fields=loop_fields(frozen, scores), errors={"synth/b1/0"},
              trace_type=VlmTeachTrace)
    goal_fields = {iid: {"scores": {"goal": float(int(iid[-1]) % 2)}} for iid in IDS}
    goal_fields["synth/a1/3"]["seed"] = 8
    write_run(tmp_path / "frozen", "frozen", frozen, fields=goal_fields)
    return scores


def test_verdict_rows_read_acceptance_and_rankings_from_records(tmp_path):
    frozen = frozen_scores()
    scores = _loop_run(tmp_path, frozen)
    rows = verdict_rows(load_run(tmp_path / "vlm").records, load_run(tmp_path / "frozen").records,
                        {"overall": LEVELS["overall"], "split": LEVELS["split"]})
    overall = next(r for r in rows if r["group"] == "all")
    ok = [i for i in IDS if i != "synth/b1/0"]  # the errored instance is not audited, trace or not
    accepted = [scores[i] for i in ok if int(i[-1]) < 2]
    rest = [scores[i] for i in ok if int(i[-1]) >= 2]
    assert (overall["n"], overall["n_accepted"]) == (15, len(accepted))
    assert overall["score_accepted"] == pytest.approx(np.mean(accepted))
    assert overall["score_rest"] == pytest.approx(np.mean(rest))
    assert overall["n_start"] == 14  # a1/3's frozen video came from another seed: not its start prediction's
    assert (overall["loss_start"], overall["loss_end"]) == (1.0, 0.0)
    assert (overall["goal_start"], overall["goal_end"]) == (1.0, 0.5)  # P(Yes) 0.5 everywhere at the end: ties
    assert [r["group"] for r in rows] == ["all", "id", "ood"]


def _accepted_and_rest(scores):
    ok = [i for i in IDS if i != "synth/b1/0"]
    return (f"{np.mean([scores[i] for i in ok if int(i[-1]) < 2]):.3f}",
            f"{np.mean([scores[i] for i in ok if int(i[-1]) >= 2]):.3f}")


def test_comparison_prints_the_audit_for_loop_runs_only(tmp_path):
    accepted, rest = _accepted_and_rest(_loop_run(tmp_path, frozen_scores()))
    write_run(tmp_path / "bon", "best_of_n", frozen_scores())
    markdown, _ = compare([tmp_path / "vlm", tmp_path / "frozen", tmp_path / "bon"])
    assert markdown.count("the teacher's verdicts in") == 1
    section = markdown.split("### synth: the teacher's verdicts in vlmteach")[1].split("###")[0]
    row = next(line for line in section.splitlines() if line.startswith("| all |"))
    assert row == f"| all | 15 | 14 | 7 (47%) | {accepted} | {rest} | 1.000 | 0.000 | 1.000 | 0.500 |"


def test_a_run_table_audits_its_loop_without_the_start(tmp_path):
    accepted, rest = _accepted_and_rest(_loop_run(tmp_path, frozen_scores()))
    summary, markdown, _ = write_run_tables(tmp_path / "vlm")
    assert summary["audits"]["teacher_verdicts"][0]["n_start"] == 0  # no frozen run to read the start against
    section = markdown.split("### synth: the teacher's verdicts in vlmteach")[1]
    header, row = [line for line in section.splitlines() if line.startswith("| ")][:2]
    assert header.split(" | ")[-2:] == ["loss ~ score: end", "goal ~ goal: end |"]
    assert row == f"| all | 15 | 7 (47%) | {accepted} | {rest} | 0.000 | 0.500 |"


def test_a_run_whose_trace_type_declares_no_audit_is_not_audited_whatever_its_traces(tmp_path):
    frozen = frozen_scores()
    scores = {iid: s + 0.1 for iid, s in frozen.items()}
    write_run(tmp_path / "bon", "best_of_n", scores, fields=loop_fields(frozen, scores), trace_type=TeacherSelection)
    summary, markdown, _ = write_run_tables(tmp_path / "bon")
    assert summary["audits"] == {} and "the teacher's verdicts" not in markdown


@pytest.mark.parametrize("manifest", [{}, {"audit": "harness.vlmteach.teacher_audit"}],
                         ids=["before-the-audit-key", "before-the-trace-key"])
def test_an_older_loop_run_is_audited_from_its_per_step_log(tmp_path, manifest):
    """Runs from before the manifests named the trace type (some named the audit, older ones neither), with the
    traces of their time: the audit is vlmteach's, as its traces show, and reads the same numbers."""
    frozen = frozen_scores()
    scores = {iid: s + 0.1 for iid, s in frozen.items()}
    fields = loop_fields(frozen, scores)
    legacy = {iid: {**f, "trace": legacy_loop_trace(f["trace"])} for iid, f in fields.items()}
    write_run(tmp_path / "now", "vlmteach", scores, fields=fields, trace_type=VlmTeachTrace)
    write_run(tmp_path / "old", "vlmteach", scores, fields=legacy, **manifest)
    now, old = load_run(tmp_path / "now"), load_run(tmp_path / "old")
    assert old.audit == now.audit == "harness.vlmteach.teacher_audit"
    assert [r["trace"] for r in old.records] == [r["trace"] for r in now.records]  # read back as VlmTeachTrace
    assert write_run_tables(tmp_path / "old")[0]["audits"] == write_run_tables(tmp_path / "now")[0]["audits"] != {}
