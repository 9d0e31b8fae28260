"""A dataclass rebuilt from the plain values that ``dataclasses.asdict`` and a JSON round trip make of it.

Each value is checked against its field's type hint, so a dict of another layout (an older trace, another
method's) raises ``DoesNotFit`` instead of becoming a dataclass with wrong contents; the caller decides what
such a dict becomes (harness.records.read_trace keeps it as it is).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

SCALARS = (str, int, float, bool)  # what JSON gives back; a bool is never an int here, as JSON keeps them apart


class DoesNotFit(ValueError):
    """A plain value does not fit the type it is read as."""


def rebuild(kind: Any, value: Any) -> Any:
    """``value`` read as ``kind``: a dataclass (from a dict of its fields), ``list[X]``, ``dict[str, X]``, a union
    such as ``X | None`` (its first member that fits), ``Any``, or a JSON scalar type (an int fits a float)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, value)
    if origin in (typing.Union, types.UnionType):
        return _union(args, value)
    if origin is list and isinstance(value, list):
        return [rebuild(args[0], item) for item in value]
    if origin is dict and isinstance(value, dict):
        return {key: rebuild(args[1], item) for key, item in value.items()}
    if kind is Any or (kind in SCALARS and type(value) is kind):
        return value
    if kind is float and type(value) is int:
        return float(value)
    raise DoesNotFit(f"{value!r:.60} is no {getattr(kind, '__name__', kind)}")


def _dataclass(kind: type, value: Any) -> Any:
    if not isinstance(value, dict):
        raise DoesNotFit(f"{kind.__name__} is read from a dict, not {type(value).__name__}")
    hints, required = _fields(kind)
    if unknown := sorted(value.keys() - hints.keys()):
        raise DoesNotFit(f"{kind.__name__} has no field {', '.join(map(str, unknown))}")
    if missing := sorted(required - value.keys()):
        raise DoesNotFit(f"{kind.__name__} needs {', '.join(missing)}")
    return kind(**{name: rebuild(hints[name], item) for name, item in value.items()})


def _union(members: tuple[Any, ...], value: Any) -> Any:
    if value is None and type(None) in members:
        return None
    for member in members:
        if member is not type(None):
            try:
                return rebuild(member, value)
            except DoesNotFit:
                continue
    raise DoesNotFit(f"{value!r:.60} fits none of {members}")


@functools.cache
def _fields(kind: type) -> tuple[dict[str, Any], frozenset[str]]:
    """A dataclass's field hints (resolved once: a run holds thousands of steps) and the fields without default."""
    hints = typing.get_type_hints(kind)
    init = [f for f in dataclasses.fields(kind) if f.init]
    required = frozenset(f.name for f in init
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return {f.name: hints[f.name] for f in init}, required
