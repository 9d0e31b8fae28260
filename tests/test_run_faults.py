"""Issue 30: the run directory under faults, concurrency and bad values — nothing lost, nothing silent."""

import json

import pytest

from harness import records as rec
from harness.status import main as status_main
from harness.table import main as table_main
from harness.types import UserError
from tests.test_runner import run


def break_middle_line(path):
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = '{"instance_id": "micro/x", "sta\n'  # a broken line that ends in a newline, records after it
    path.write_text("".join(lines))


def test_a_broken_records_line_is_named_by_every_reader(tmp_path, capsys):
    run_dir = run(tmp_path, "limit=3")
    break_middle_line(run_dir.records_path())
    where = r"records\.jsonl, line 2 \(not JSON"
    with pytest.raises(UserError, match=where):  # resume
        run(tmp_path, "limit=3")
    assert table_main([str(run_dir.path)]) == 2
    err = capsys.readouterr().err
    assert "records.jsonl, line 2 (not JSON" in err and "delete that line" in err
    assert status_main([str(run_dir.path)]) == 1
    out = capsys.readouterr().out
    assert "records.jsonl, line 2 (not JSON" in out and "delete that line" in out
