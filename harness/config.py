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
from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf

from harness.paths import CONF_DIR
from harness.sharding import check_shard
from harness.types import UserError

GROUPS = ("student", "teacher", "method", "bench", "judge", "logger", "experiment")

# Top-level keys that change no video: they stay out of the generation hash. (The judge decides scores only:
# it reaches a benchmark that needs one through the bench config, and is hashed there, in the score hash.)
UNHASHED_TOP = ("run_name", "output_root", "stage", "baseline", "progress", "fail_fast", "logger", "experiment",
                "cpu_threads", "limit", "shard", "num_shards", "judge")


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
    limit: int | None = None  # the first n instances by sorted id (the plan of every shard)
    shard: int = 0
    num_shards: int = 1


ConfigStore.instance().store(name="run_schema", node=RunConfig)


def component_kwargs(cfg: DictConfig, group: str) -> DictConfig:
    """The group's config, resolved and detached from the root, ready for ``hydra.utils.instantiate``."""
    return OmegaConf.create(OmegaConf.to_container(cfg[group], resolve=True))


def method_class(cfg: DictConfig) -> type:
    """The method's class (``method._target_``, a ``harness.method.Method``): it declares whether the run needs a
    teacher and whether the method is an oracle."""
    return get_object(cfg.method._target_)


def method_needs_teacher(cfg: DictConfig) -> bool:
    return method_class(cfg).needs_teacher


def validate_run_settings(cfg: DictConfig) -> None:
    """The run-level values a schema type cannot bound, checked before anything is loaded or written."""
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(f"limit={cfg.limit}: give the number of instances to run (>= 1), or null for all")
    check_shard(cfg.shard, cfg.num_shards)


def generation_view(cfg: DictConfig) -> dict[str, Any]:
    """What decides a video (student, method, seed, the bench's generation settings): the config hash."""
    view = _resolved(cfg)
    for key in UNHASHED_TOP:
        view.pop(key, None)
    for key in (*_declared(view["bench"], "score_settings", ()), *_declared(view["bench"], "transport_settings", ())):
        view["bench"].pop(key, None)
    if not method_needs_teacher(cfg):
        view.pop("teacher", None)  # a frozen run does not depend on which teacher is configured
    for key, default in _declared(view["method"], "unhashed_defaults", {}).items():
        if view["method"].get(key) == default:  # at its default the key changes nothing: runs keep their hash
            view["method"].pop(key)
    return view


def score_view(cfg: DictConfig) -> dict[str, Any]:
    """What decides a score of a given video (the bench's scorer or judge settings, its model and prompt),
    without transport settings (timeouts, retries, cache) that change how calls are made, not their answers."""
    bench = _resolved(cfg)["bench"]
    return {key: _without_transport(bench[key]) for key in _declared(bench, "score_settings", ()) if key in bench}


def config_hash(cfg: DictConfig) -> str:
    """The generation hash: it names a run directory, and every record carries it."""
    return _digest(generation_view(cfg))


def score_hash(cfg: DictConfig) -> str:
    return _digest(score_view(cfg))


def _digest(view: dict[str, Any]) -> str:
    blob = json.dumps(view, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    view = OmegaConf.to_container(cfg, resolve=True)
    view.pop("hydra", None)
    return view


def _declared(node: Any, attribute: str, default: Any) -> Any:
    """A class attribute of a component's ``_target_`` (a benchmark's score settings, a judge's transport
    settings): the component declares it, the config does not repeat it."""
    target = node.get("_target_") if isinstance(node, dict) else None
    return getattr(get_object(target), attribute, default) if target else default


def _without_transport(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    transport = set(_declared(node, "transport_settings", ()))
    return {key: _without_transport(value) for key, value in node.items() if key not in transport}


def group_options(group: str, search_path: list[str] | None = None) -> list[str]:
    """The options of a config group: ``conf/<group>/*.yaml``, and those of the ``hydra.searchpath`` entries given
    (``file://<dir>`` or ``pkg://<module>``; your own groups' folders), as Hydra's config loader lists them."""
    if not search_path:
        return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        return sorted(loader.get_group_options(group, config_name="config", overrides=[_search_path_override(search_path)]))


def _search_path_override(entries: list[str]) -> str:
    quoted = ",".join('"' + e.replace("\\", "\\\\").replace('"', '\\"') + '"' for e in entries)
    return f"hydra.searchpath=[{quoted}]"


def search_path_of(parsed: list[Any], config_dir: str | None = None) -> list[str]:
    """The search path entries of parsed overrides (``hydra.searchpath=[...]``, also with ``+``/``++``) and of
    ``--config-dir``; a local folder that does not exist is an error here, where Hydra would skip it silently."""
    entries: list[str] = []
    for ov in parsed:
        if ov.key_or_group == "hydra.searchpath" and not ov.is_delete():
            value = ov.value()
            entries += [str(v) for v in (value if isinstance(value, list) else [value])]
    if config_dir:
        entries.append(f"file://{Path(config_dir).resolve()}")
    for entry in entries:
        scheme, _, where = entry.rpartition("://")
        if scheme in ("", "file") and not Path(where).is_dir():
            raise UserError(f"hydra.searchpath entry {entry!r}: {Path(where).resolve()} is not a folder. Give the "
                            "folder that holds your config groups (e.g. <dir>/teacher/my_vlm.yaml), as file:///abs/<dir>")
    return entries


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


def validate_overrides(overrides: list[str], config_dir: str | None = None) -> None:
    """Check command-line overrides before Hydra sees them, with "did you mean" suggestions.

    Group choices are checked against ``conf/<group>/*.yaml`` and the groups of the search path (``hydra.searchpath``
    overrides, ``--config-dir``); plain keys against the composed config (sweeps are checked option by option).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # hydra's grammar errors are already descriptive
        raise UserError(f"cannot parse overrides {overrides}: {exc}") from exc

    search_path = search_path_of(parsed, config_dir)
    first_choices = [_search_path_override(search_path)] if search_path else []
    key_overrides = []
    for ov in parsed:
        key = ov.key_or_group
        if key.startswith("hydra"):
            continue
        if key in GROUPS:
            values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
            options = group_options(key, search_path)
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
        if key.startswith("bench.") and key.removeprefix("bench.") in ("limit", "shard", "num_shards"):
            run_key = key.removeprefix("bench.")
            raise UserError(f"'{key}' is a run-level key now, the same for every benchmark: write {run_key}=...")
        if key not in known:
            raise UserError(
                f"unknown config key '{key}'.{_suggest(key, known)} "
                f"(to add a new key on purpose, write +{key}=...)"
            )
