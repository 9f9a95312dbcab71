"""Walking the parsed config file: ``${VAR}`` expansion, conversion, and every problem collected
with its file and key path."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mailticket.config import yamlfile
from mailticket.config.values import Invalid, show
from mailticket.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")


def join(where: str, key: Any) -> str:
    """The key path of ``key`` inside ``where`` ("" is the top level, or the section itself)."""
    if not where or key == "":
        return str(key) or where
    return f"{where}.{key}"


class Reader:
    """Collects every problem of one file, each as ``FILE: KEY.PATH: what is wrong``."""

    def __init__(self, path: Path, environ: Mapping[str, str]):
        self.path = path
        self.environ = environ
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def expand(self, key: str, value: Any) -> Any:
        """``value`` with ``${VAR}`` replaced and ``$$`` made ``$``; a missing VAR is a problem."""
        if not isinstance(value, str):
            return value

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            if name not in self.environ:
                self.problem(key, f"environment variable {name} is not set")
                return ""
            return self.environ[name]

        return _ENV_REF.sub(substitute, value)

    def convert(self, key: str, raw: Any, convert: Callable[[Any], Any]) -> Any:
        """``raw`` expanded and converted; None (and a problem) when it cannot be."""
        before = len(self.problems)
        raw = self.expand(key, raw)
        if len(self.problems) > before:
            return None  # the missing variable is the problem
        try:
            return convert(raw)
        except Invalid as exc:
            self.problem(key, str(exc))
        except ConfigError as exc:  # a file the value names (the directory) has its own problems
            self.problems.extend(exc.problems)
        return None

    def mapping(self, key: str, value: Any, allowed: tuple[str, ...] | None) -> dict | None:
        """``value`` if it is a mapping, its unknown keys reported (none when ``allowed`` is None)."""
        if not isinstance(value, dict):
            self.problem(key, f"expected a mapping, got {show(value)}")
            return None
        for name, problem in yamlfile.unknown_keys(value, allowed or ()) if allowed else ():
            self.problem(join(key, name), problem)
        return value
