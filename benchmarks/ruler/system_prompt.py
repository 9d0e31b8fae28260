"""Which system prompt the RULER judge gets, and whether its numbers are the official metric.

The official one is RULER-Bench's own ``eval/system_prompt.txt`` at the pinned commit. The project
does not ship its text: ``python -m benchmarks.ruler.download`` (run by ``make data BENCH=ruler``)
fetches it beside the data, checked against ``OFFICIAL_SHA256``. The project's paraphrase is used
only when chosen (``judge.system_prompt=paraphrase``), and then every verdict, table and summary
says the numbers are not comparable with the paper.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.types import UserError

OFFICIAL_REPO = "hexmSeeU/RULER-Bench"
OFFICIAL_COMMIT = "c9f133dde491040a6734b74836743e593222043f"
OFFICIAL_URL = f"https://raw.githubusercontent.com/{OFFICIAL_REPO}/{OFFICIAL_COMMIT}/eval/system_prompt.txt"
OFFICIAL_SHA256 = "c9433f421eeed14a2bbc5673385f04fc523f408e4dbb54ce46e900dcfa04041c"  # 2510 bytes at that commit
OFFICIAL_RELPATH = Path("eval") / "system_prompt.txt"  # under the data directory, at upstream's repository path
PARAPHRASE_PATH = Path(__file__).with_name("system_prompt_paraphrase.txt")
CHOICES = ("official", "paraphrase")

# What a verdict records as ``system_prompt``: only "official" is the paper's metric.
OFFICIAL, PARAPHRASE, MODIFIED = "official", "paraphrase", "modified"


@dataclass(frozen=True)
class SystemPrompt:
    text: str
    kind: str  # OFFICIAL | PARAPHRASE | MODIFIED (chosen as official, but not upstream's bytes)
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def fetch_hint(data_dir: str | Path = "data/ruler") -> str:
    return (f"run `make data BENCH=ruler` (or `python -m benchmarks.ruler.download --data-dir {data_dir}`) on a "
            f"machine with internet; it writes {Path(data_dir) / OFFICIAL_RELPATH}")


def check_choice(choice: str, path: str | None) -> None:
    if choice not in CHOICES:
        raise UserError(f"judge.system_prompt={choice!r}: choose one of {CHOICES}")
    if choice == "paraphrase" and path:
        raise UserError("judge.system_prompt=paraphrase uses the packaged paraphrase; "
                        f"unset judge.system_prompt_path ({path}) or choose judge.system_prompt=official")


def load(choice: str, path: str | None, data_dir: str | Path | None) -> SystemPrompt:
    """The prompt for ``choice``: the paraphrase, or the official file at ``path`` or beside the data."""
    check_choice(choice, path)
    if choice == "paraphrase":
        return SystemPrompt(PARAPHRASE_PATH.read_text(encoding="utf-8"), PARAPHRASE, str(PARAPHRASE_PATH))
    if path:
        file = Path(path).expanduser()
        where = f"judge.system_prompt_path={path}"
    elif data_dir:
        file = Path(data_dir).expanduser() / OFFICIAL_RELPATH
        where = f"beside the data ({file})"
    else:
        raise UserError("the official RULER judge prompt is read beside the data, but bench.data_dir is not set "
                        f"(the data comes from the Hugging Face cache): {fetch_hint()}, then set "
                        f"bench.data_dir=data/ruler or judge.system_prompt_path=data/ruler/{OFFICIAL_RELPATH.as_posix()}")
    if not file.is_file():
        raise UserError(f"RULER-Bench's judge system prompt is missing {where}: "
                        f"{fetch_hint(file.parent.parent if not path else 'data/ruler')}")
    prompt = SystemPrompt(file.read_text(encoding="utf-8"), OFFICIAL, str(file))
    if prompt.sha256 != OFFICIAL_SHA256:
        return SystemPrompt(prompt.text, MODIFIED, prompt.source)
    return prompt
