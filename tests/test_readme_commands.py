"""Every README command is run in CI (``make readme-check``) or listed with the reason it cannot be."""

import subprocess

from tests.readme_commands import NOT_ON_CPU, RUN_BEFORE, cpu_commands, readme_commands, script


def test_each_listed_exception_is_still_a_readme_command():
    commands = readme_commands()
    for prefix in [*NOT_ON_CPU, *RUN_BEFORE]:
        assert any(c.startswith(prefix) for c in commands), f"{prefix!r} is listed but no README command starts with it"


def test_the_real_benchmarks_and_every_documented_tool_are_run_on_a_cpu():
    run = cpu_commands(readme_commands())
    assert run[0].split("#")[0].strip() == "make eval"  # the newcomer's first command, the default comparison
    for expected in ("make eval BENCH=ruler", "make eval BENCH=vbvr", "-m harness.table", "-m harness.status",
                     "-m harness.report",
                     "-m benchmarks.ruler.stub_judge", "experiment=table3_ablations", "--cfg job"):
        assert any(expected in c for c in run), expected


def test_continuations_are_joined_and_blocks_of_other_languages_left_out():
    text = "```bash\nmake eval \\\n    ARGS=1   # note\n\nmake test\n```\n```\nnot a command\n```\n"
    assert readme_commands(text) == ["make eval ARGS=1   # note", "make test"]


def test_the_script_stops_at_the_first_failing_command_and_ends_its_background_jobs(tmp_path):
    marker = tmp_path / "ran"
    body = script(["sleep 30 &", "false", f"touch {marker}"])
    proc = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0 and not marker.exists()
    assert "$ false" in proc.stdout
