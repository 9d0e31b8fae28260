"""End to end: ``python -m harness.table`` over synthetic run directories (one real subprocess;
the other cases call the same ``main`` in-process to keep the suite fast)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from agg_fixtures import frozen_scores, write_run

from harness.table import main

REPO = Path(__file__).resolve().parents[1]


def _table(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.table", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_compare_two_runs_with_reference_and_out(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "synth" / "frozen" / "r", "frozen", frozen_scores(), errors={"synth/a1/0"})
    write_run(runs / "synth" / "vlmteach" / "r", "vlmteach", {i: s + 0.1 for i, s in frozen_scores().items()},
              steps=16, seconds=9.0)
    out = tmp_path / "out"
    proc = _table(str(runs / "synth" / "frozen" / "r"), str(runs / "synth" / "vlmteach" / "r"),
                  "--reference", "ruler_table4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "## synth — baseline: frozen" in text
    assert "- frozen: INCOMPLETE: 1 error" in text
    vlm = next(line for line in text.splitlines() if line.startswith("| vlmteach |"))
    assert "+0.100 [+0.100, +0.100]" in vlm and "| 15 | 9.0 | 16.0 |" in vlm  # Δ, n pairs, cost
    # the named paper table is printed in its own benchmark's section, labelled as paper numbers
    ours = next(line for line in text.splitlines() if line.startswith("| paper: Wan2.2-5B∗ + Ours |"))
    assert ours.split(" | ")[1] == "68.2"
    assert (out / "compare.md").read_text().strip() == text.strip()
    frame = pd.read_csv(out / "compare.csv")
    assert set(frame.method) >= {"frozen", "vlmteach", "paper: Wan2.2-5B∗ + Ours"}


def test_folder_of_runs_is_searched(tmp_path, capsys):
    write_run(tmp_path / "synth" / "frozen" / "r", "frozen", frozen_scores())
    write_run(tmp_path / "synth" / "pass_at_k" / "r", "pass_at_k", frozen_scores(), num_shards=2, oracle=True)
    assert main([str(tmp_path), "--baseline", "frozen"]) == 0
    out = capsys.readouterr().out
    assert "| pass_at_k (oracle) |" in out and "| frozen |" in out
    assert "+0.000 [+0.000, +0.000]" in out


def test_a_folder_with_several_seeds_and_a_trial_run_compares_each_set_on_its_own(tmp_path, capsys):
    better = {i: s + 0.1 for i, s in frozen_scores().items()}
    for seed in (0, 1):
        write_run(tmp_path / "synth" / "frozen" / f"s{seed}", "frozen", frozen_scores(), seed=seed)
        write_run(tmp_path / "synth" / "vlmteach" / f"s{seed}", "vlmteach", better, seed=seed)
    trial = sorted(frozen_scores())[:4]
    write_run(tmp_path / "synth" / "frozen" / "first4", "frozen", frozen_scores(), ids=trial)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    n = len(frozen_scores())
    sections = [line for line in out.splitlines() if line.startswith("## synth")]
    assert sections == [f"## synth (seed 0, {n} instances) — baseline: frozen", f"## synth (seed 1, {n} instances) — baseline: frozen",
                        "## synth (seed 0, 4 instances) — baseline: frozen"]
    rows = [line for line in out.splitlines() if line.startswith("| vlmteach |")]
    assert len(rows) == 2 and all("+0.100 [+0.100, +0.100]" in row for row in rows)  # each with its own seed's frozen


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run directory" in capsys.readouterr().err
    write_run(tmp_path / "r", "frozen", frozen_scores())
    assert main([str(tmp_path / "r"), "--reference", "vbvr_table9"]) == 2
    assert "unknown reference table 'vbvr_table9'" in capsys.readouterr().err


def test_p_values_are_also_holm_adjusted_over_the_methods_of_the_table(tmp_path):
    from harness import stats

    runs = tmp_path / "runs" / "synth"
    base = frozen_scores()
    write_run(runs / "frozen" / "r", "frozen", base)
    shifts = {"small": lambda i, s: s + (0.01 if i.endswith("0") else -0.005), "large": lambda i, s: s + 0.2}
    for name, shift in shifts.items():
        write_run(runs / name / "r", name, {i: shift(i, s) for i, s in base.items()})
    proc = _table(str(runs / "frozen" / "r"), str(runs / "small" / "r"), str(runs / "large" / "r"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].split("|")]
    p_col, holm_col = header.index("p"), header.index("p Holm")
    rows = {c[1]: c for c in ([x.strip() for x in line.split("|")] for line in lines[1:4])}
    raw = [float(rows[m][p_col]) for m in ("small", "large")]
    want = stats.holm(raw)
    for method, adjusted in zip(("small", "large"), want):
        assert float(rows[method][holm_col]) == pytest.approx(adjusted, rel=1e-2)
        assert float(rows[method][holm_col]) >= float(rows[method][p_col])
    assert rows["frozen"][holm_col] == "–"
