"""Config schema, config hashing and friendly override validation.

Hydra composes ``conf/config.yaml``; ``RunConfig`` types its top-level keys. Component groups
(student, teacher, method, bench, judge, logger) are ``_target_`` configs instantiated by Hydra.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from harness.types import UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("student", "teacher", "method", "bench", "judge", "logger", "experiment")

# Keys the runner owns inside component groups; stripped before instantiation. (A student's ``lora_lr`` is
# read by the vlmteach configs, not by the student.)
RUNNER_KEYS = {"bench": ("limit", "shard", "num_shards"), "method": ("label",), "student": ("lora_lr",)}
# Keys that never change any instance's result, so they stay out of the config hash.
UNHASHED_TOP = ("run_name", "output_root", "stage", "baseline", "progress", "fail_fast", "logger", "experiment", "cpu_threads")


class Stage(str, Enum):
    all = "all"
    generate = "generate"
    score = "score"


@dataclass
class RunConfig:
    student: Any = MISSING
    teacher: Any = MISSING
    method: Any = MISSING
    bench: Any = MISSING
    judge: Any = None
    logger: Any = None
    experiment: Any = None
    seed: int = 0
    run_name: str | None = None
    output_root: str = "results/runs"
    stage: Stage = Stage.all
    baseline: str = "frozen"
    progress: bool = True
    fail_fast: bool = False
    cpu_threads: int | None = 1


ConfigStore.instance().store(name="run_schema", node=RunConfig)


def component_kwargs(cfg: DictConfig, group: str) -> DictConfig:
    """The group's config without the runner-owned keys, ready for ``hydra.utils.instantiate``."""
    node = OmegaConf.to_container(cfg[group], resolve=True)
    for key in RUNNER_KEYS.get(group, ()):
        node.pop(key, None)
    return OmegaConf.create(node)


def method_needs_teacher(cfg: DictConfig) -> bool:
    from hydra.utils import get_class

    return bool(getattr(get_class(cfg.method._target_), "needs_teacher", False))


def hashed_view(cfg: DictConfig) -> dict[str, Any]:
    """The part of the config that decides results: what the config hash covers."""
    view = OmegaConf.to_container(cfg, resolve=True)
    view.pop("hydra", None)
    for key in UNHASHED_TOP:
        view.pop(key, None)
    for group, keys in RUNNER_KEYS.items():
        for key in keys:
            view.get(group, {}).pop(key, None)
    if not method_needs_teacher(cfg):
        view.pop("teacher", None)  # a frozen run does not depend on which teacher is configured
    return view


def config_hash(cfg: DictConfig) -> str:
    blob = json.dumps(hashed_view(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}{k}"
            keys.append(path)
            keys.extend(_flat_keys(v, path + "."))
    return keys


def validate_overrides(overrides: list[str]) -> None:
    """Check command-line overrides before Hydra sees them, with "did you mean" suggestions.

    Group choices are checked against ``conf/<group>/*.yaml``; plain keys against the composed
    config (sweeps are checked option by option).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # hydra's grammar errors are already descriptive
        raise UserError(f"cannot parse overrides {overrides}: {exc}") from exc

    first_choices: list[str] = []
    key_overrides = []
    for ov in parsed:
        key = ov.key_or_group
        if key.startswith("hydra"):
            continue
        if key in GROUPS:
            values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
            options = group_options(key)
            for value in values:
                if value not in options and not (key == "experiment" and value == "null"):
                    raise UserError(f"unknown {key} '{value}'. Available: {', '.join(options)}.{_suggest(value, options)}")
            first_choices.append(f"{key}={values[0]}")
        elif not ov.is_add() and not ov.is_delete() and not ov.is_force_add():
            key_overrides.append(key)

    if not key_overrides:
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose(config_name="config", overrides=first_choices)
    known = _flat_keys(OmegaConf.to_container(composed, resolve=False))
    for key in key_overrides:
        if key not in known:
            raise UserError(
                f"unknown config key '{key}'.{_suggest(key, known)} "
                f"(to add a new key on purpose, write +{key}=...)"
            )
