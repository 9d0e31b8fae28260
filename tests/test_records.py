"""Records read back typed, in one layout whatever schema wrote them (harness.records)."""

import json

import pytest
from agg_fixtures import frozen_scores, legacy_loop_trace, write_run

from baselines.traces import (Critique, Exchange, PromptRewriteTrace, Rewrite, ScorerSelection, TeacherSelection,
                              TpoRound, VideoTpoTrace)
from harness import records as rec
from harness.results.runs import load_run
from harness.results.summary import run_summary
from harness.types import Queries
from harness.vlmteach.trace import StepLog, VlmTeachTrace

# A pass@k line as schema 1 wrote it: the score details inside the trace, the oracle only in pass@k's trace.
SCHEMA_1_LINE = {
    "instance_id": "synth/a1/0", "bench": "synth", "task": "a1", "category": "A", "split": "id", "method": "pass_at_k",
    "seed": 7, "status": "ok", "error": None, "error_stage": None, "score": 0.5, "scores": {"goal": 1.0},
    "video": "videos/synth/a1/0.mp4", "video_bytes": 10, "video_sha256": "ab", "timings": {"total_s": 1.0}, "steps": 5,
    "trace": {"oracle": True, "seeds": [1, 2], "candidate_scores": [0.5, 0.1], "candidate_errors": [None, None],
              "chosen": 0, "score_details": {"judge": "o3"}},
    "config_hash": "h", "score_hash": "s", "versions": {}, "shard": "0/1", "schema_version": 1,
}


def test_a_schema_1_record_reads_with_its_details_beside_the_scores_and_its_oracle_flag():
    record = rec.Record.from_dict(SCHEMA_1_LINE)
    assert record.score_details == {"judge": "o3"} and record.oracle is True
    assert record.trace == {"seeds": [1, 2], "candidate_scores": [0.5, 0.1], "candidate_errors": [None, None],
                            "chosen": 0}
    assert record.schema_version == rec.SCHEMA_VERSION == 2
    plain = rec.Record.from_dict({**SCHEMA_1_LINE, "method": "frozen", "trace": {}})
    assert plain.oracle is False and plain.score_details == {}


def test_a_record_round_trips_through_its_line():
    record = rec.Record.from_dict(SCHEMA_1_LINE)
    assert rec.Record.from_dict(json.loads(record.to_json())) == record


def test_every_reader_of_a_records_file_sees_old_lines_in_the_current_layout(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(SCHEMA_1_LINE) + "\n")
    (row,) = rec.read_lines(path)
    assert row["score_details"] == {"judge": "o3"} and "score_details" not in row["trace"] and row["oracle"] is True


def test_a_run_of_old_pass_at_k_records_is_still_marked_oracle(tmp_path):
    run = write_run(tmp_path, "pass_at_k", frozen_scores())
    old = [{**{k: v for k, v in row.items() if k != "oracle"}, "schema_version": 1, "trace": {"oracle": True}}
           for row in rec.read_lines(run.records_path())]
    run.records_path().write_text("".join(json.dumps(row) + "\n" for row in old))
    assert run_summary(load_run(tmp_path))[0]["oracle"] is True
    # the label does not decide: a method that does not declare itself an oracle is not marked one
    assert run_summary(load_run(write_run(tmp_path / "new", "pass_at_k", frozen_scores()).path))[0]["oracle"] is False


# One trace of every method, nested dataclasses and optional fields filled in where the method fills them.
TRACES = [
    VlmTeachTrace(
        queries=Queries(goal="Is the goal reached?", process=["Is the wall intact?"], raw='{"goal": ...}'),
        query_source="teacher", loss_questions=["Is the goal reached?", "Is the wall intact?"],
        loss_roles=["goal", "process"], loss_weights=[0.5, 0.5], opt_step="first", lora_seed=3, frames_fps=16.0,
        frames_decoded=21, frame_indices=[0, 10, 20],
        per_step=[StepLog(loss=0.9, p_yes=[0.4, 0.8], grad_norm=2.5, seconds=0.1), StepLog(loss=0.2, p_yes=[0.9, 0.9])],
        steps_used=1, final_loss=0.2, final_p_yes=[0.9, 0.9], final_eval_s=0.05),
    ScorerSelection(seeds=[1, 2], chosen=0, candidate_scores=[0.5, None], candidate_errors=[None, "no video"]),
    TeacherSelection(seeds=[1, 2], chosen=1, queries=Queries(goal="g?", process=[], fallback=True),
                     p_yes=[[0.1], [0.7]], mean_p_yes=[0.1, 0.7]),
    PromptRewriteTrace(vlm={"backend": "api", "model": "m"}, original_prompt="p",
                       request={"text": "rewrite p", "images": ["first_frame"]}, reply="q", prompt="q", fallback=False),
    VideoTpoTrace(vlm={"backend": "teacher"}, original_prompt="p", selection="vlm_pick", critic_view="frames",
                  rounds=[TpoRound(round=0, prompt="p", seeds=[1, 2],
                                   critique=Critique(request="c", reply="r", images=["c1"], chosen=1),
                                   edit=Exchange(request="e"), rewrite=Rewrite(request="w", prompt="p2", fallback=True)),
                          TpoRound(round=1, prompt="p2", seeds=[1, 2])],
                  final_prompt="p2", chosen=1, seed=2, vlm_calls=3, generations=4),
]


@pytest.mark.parametrize("trace", TRACES, ids=lambda t: type(t).__name__)
def test_a_trace_written_into_a_record_reads_back_as_the_dataclass_it_was(tmp_path, trace):
    path = tmp_path / "records.jsonl"
    rec.append(path, rec.Record.from_dict({**SCHEMA_1_LINE, "schema_version": 2, "trace": trace.to_dict()}))
    (row,) = rec.read_lines(path)
    assert rec.read_trace(row["trace"], type(trace)) == trace


def test_a_schema_1_trace_reads_as_its_type():
    assert rec.read_trace(rec.upgrade(SCHEMA_1_LINE)["trace"], ScorerSelection) == ScorerSelection(
        seeds=[1, 2], chosen=0, candidate_scores=[0.5, 0.1], candidate_errors=[None, None])


@pytest.mark.parametrize("change", [
    {"chosen": "0"},  # a value of another type
    {"chosen": True},  # JSON keeps bools and ints apart
    {"seeds": [1, 2.5]},  # inside a list
    {"stray": 1},  # a field the type does not have
    {"candidate_scores": None},  # None where the type allows none
], ids=str)
def test_a_trace_that_does_not_fit_its_type_stays_the_dict_it_was(change):
    trace = {**ScorerSelection(seeds=[1, 2], chosen=0, candidate_scores=[0.5, 0.1],
                               candidate_errors=[None, None]).to_dict(), **change}
    assert rec.read_trace(trace, ScorerSelection) is trace
    assert rec.read_trace(trace, None) is trace  # a run that names no trace type


def test_a_missing_field_or_another_methods_trace_stays_a_dict():
    selection = TRACES[1].to_dict()
    assert rec.read_trace({"seeds": [1]}, ScorerSelection) == {"seeds": [1]}
    assert rec.read_trace(selection, TeacherSelection) is selection
    assert rec.read_trace({}, VlmTeachTrace) == {}  # a method that failed before it had a trace


def test_an_int_reads_as_a_float_and_nested_dataclasses_are_rebuilt():
    trace = {**TRACES[0].to_dict(), "final_loss": 0, "per_step": [{"loss": 1, "p_yes": [1, 0.5]}]}
    read = rec.read_trace(trace, VlmTeachTrace)
    assert read.per_step == [StepLog(loss=1.0, p_yes=[1.0, 0.5])] and type(read.per_step[0].loss) is float
    assert read.queries == TRACES[0].queries and read.final_loss == 0.0


def test_a_vlmteach_trace_from_before_its_dataclass_reads_as_it():
    written = TRACES[0]
    assert rec.read_trace(legacy_loop_trace(written.to_dict()), VlmTeachTrace) == written


def test_a_trace_type_that_no_longer_imports_leaves_dicts_and_says_so(tmp_path, caplog):
    trace = ScorerSelection(seeds=[1, 2], chosen=0, candidate_scores=[0.5, 0.1], candidate_errors=[None, None])
    run = write_run(tmp_path, "pass_at_k", frozen_scores(), trace_type=ScorerSelection,
                    fields={iid: {"trace": trace.to_dict()} for iid in frozen_scores()})
    for manifest in run.path.glob("manifest*.json"):
        manifest.write_text(manifest.read_text().replace("ScorerSelection", "RenamedSelection"))
    with caplog.at_level("WARNING", logger="harness.results.runs"):
        records = load_run(run.path).records
    assert all(r["trace"] == trace.to_dict() for r in records if r["status"] == "ok")
    assert "baselines.traces.RenamedSelection, which does not import here" in caplog.text
