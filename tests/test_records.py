"""Records read back typed, in one layout whatever schema wrote them (harness.records)."""

import json

from agg_fixtures import frozen_scores, write_run

from harness import records as rec
from harness.results.runs import load_run
from harness.results.summary import run_summary

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
