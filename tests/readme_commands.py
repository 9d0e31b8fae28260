"""The README's commands, as a newcomer types them: which run on a CPU, and a runner that runs those in order.

``make readme-check`` (called by ``.ci/run`` after ``make test``) runs every CPU command of the README's
``bash`` blocks, in the README's order, from the repository root, and fails on the first that fails.
``tests/test_readme_commands.py`` checks that each command is either run here or listed below with the
reason it cannot be, so a README command cannot go unchecked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Commands that need what CI does not have, by the text a README line starts with.
NOT_ON_CPU = {
    "make data BENCH=ruler": "internet (the RULER-Bench download)",
    "make data BENCH=vbvr": "internet (the VBVR-Bench-Data download)",
    "hf download ": "internet (model weights)",
    "pip install .": "it would replace the checkout's editable install (tests/test_packaging.py installs the wheel)",
    "vlmteach-": "the installed package's commands (tests/test_packaging.py runs them from an installed wheel)",
    "export OPENAI_API_KEY=": "a paid API key",
    "make eval BENCH=ruler METHOD=frozen,pass_at_k,vlmteach ARGS=\"student=fastwan22_ti2v_5b": "a GPU and the 5B weights",
    "make eval BENCH=vbvr  METHOD=frozen,pass_at_k,vlmteach ARGS=\"student=fastwan22_ti2v_5b": "a GPU and the 5B weights",
    "make eval BENCH=ruler METHOD=vlmteach ARGS=\"student=fastwan22_ti2v_5b": "a GPU (FP8) and the 5B weights",
    ".venv/bin/python -m harness.eval -m hydra/launcher=slurm": "a SLURM cluster with GPUs and the 5B weights",
}
# Run by .ci/run itself, before the README's other commands.
RUN_BEFORE = {"make test": ".ci/run runs it first"}


def readme_commands(text: str | None = None) -> list[str]:
    """Every command of the README's ``bash`` blocks, continuation lines joined, comments kept."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        pending = ""
        for line in block.splitlines():
            if not line.strip():
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].rstrip() + " "
                continue
            commands.append((pending + line.strip()).strip())
            pending = ""
    return commands


def _starts(command: str, prefixes: dict[str, str]) -> str | None:
    return next((p for p in prefixes if command.startswith(p)), None)


def cpu_commands(commands: list[str]) -> list[str]:
    return [c for c in commands if _starts(c, NOT_ON_CPU) is None and _starts(c, RUN_BEFORE) is None]


def script(commands: list[str]) -> str:
    """One bash script: each command echoed, then run; a background job (the stub judge) ends with the script."""
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for command in commands:
        lines += [f"echo {_quote('$ ' + command)}", command]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main() -> int:
    commands = cpu_commands(readme_commands())
    print(f"running the README's {len(commands)} CPU commands in order", flush=True)
    return subprocess.run(["bash", "-c", script(commands)], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
