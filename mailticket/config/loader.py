"""Reading the config file: find it, parse it, and turn it into Settings or one ConfigError that
lists every problem.

Every problem names the file, the key path and what is wrong, e.g.
``config/mailticket.yaml: intake.imap[0].port: expected an integer, got 'abc'``.
``${VAR}`` in a string value is replaced by the environment variable VAR; a missing variable is
a problem naming it. Relative paths are resolved against the working directory the daemon
starts in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mailticket.config import yamlfile
from mailticket.config.declare import allowed_keys, read_values
from mailticket.config.reader import Reader
from mailticket.config.settings import Settings
from mailticket.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/mailticket.yaml")
CONFIG_ENV_VAR = "MAILTICKET_CONFIG"


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Read, expand and check the config file; raise ConfigError listing every problem."""
    environ = dict(os.environ if environ is None else environ)
    if path is None:
        path = environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH
    path = Path(path)
    top = _parse(path)
    r = Reader(path, environ)
    r.mapping("", top, allowed_keys(Settings))
    values = read_values(r, Settings, top, "", {}, given={"path": path})
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(**values)


def _parse(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; ConfigError when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        top = yamlfile.load(text)
    except yaml.YAMLError as exc:
        position, reason = yamlfile.where_and_why(exc)
        where = f"line {position[0]}, column {position[1]}: " if position else ""
        raise ConfigError(f"{path}: {where}not valid YAML: {reason}") from None
    if top is None:
        return {}
    if not isinstance(top, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, "
                          f"got {yamlfile.show(top)}")
    return top
