"""The one YAML reader for the config and the directory file, and how their problems show values.

The safe loader (libyaml's when built in) also refuses a key given twice in one mapping, which
PyYAML would otherwise resolve by silently keeping the last (a second ``contacts:`` or
``limits:`` would drop the first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time
from typing import Any

import yaml

__all__ = ["UniqueKeyLoader", "FastUniqueKeyLoader", "load", "show", "where_and_why",
           "unknown_keys"]


class _RefuseDuplicateKeys:
    construct_object: Callable[..., Any]  # the loader's, which this is mixed into
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys brought in by '<<' may be overridden on purpose
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the safe constructor reports it
            if duplicate:
                shown = repr(key) if isinstance(key, str) else str(key)
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shown}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class UniqueKeyLoader(_RefuseDuplicateKeys, yaml.SafeLoader):
    """The pure-Python safe loader: the clearest messages, for the config file."""


class FastUniqueKeyLoader(_RefuseDuplicateKeys,
                          getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader when PyYAML was built with it: for large files (the directory)."""


def load(text: str, fast: bool = False) -> Any:
    """Parse ``text``; yaml.YAMLError (with its position) on bad YAML or a repeated key."""
    loader = FastUniqueKeyLoader if fast else UniqueKeyLoader
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def show(value: Any) -> str:
    """A value as an error message about a config or directory file shows it: strings quoted,
    true/false as YAML writes them, containers by kind, dates and times in ISO form."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime):
        return repr(value.isoformat(sep=" "))
    if isinstance(value, (date, time)):
        return repr(value.isoformat())
    return repr(value)


def where_and_why(exc: yaml.YAMLError) -> tuple[tuple[int, int] | None, str]:
    """The (line, column) a YAML error points at, counted from 1 (None without one), and why."""
    mark = getattr(exc, "problem_mark", None)
    where = (mark.line + 1, mark.column + 1) if mark else None
    return where, getattr(exc, "problem", None) or str(exc)


def unknown_keys(mapping: dict[Any, Any], allowed: Iterable[str]) -> Iterator[tuple[Any, str]]:
    """(key, problem) for each key of ``mapping`` that is not ``allowed``."""
    allowed = tuple(allowed)
    for name in mapping:
        if name not in allowed:
            yield name, f"unknown key (expected one of: {', '.join(allowed)})"
