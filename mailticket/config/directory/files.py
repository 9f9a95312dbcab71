"""Reading a directory file: the suffix picks YAML or CSV; every problem is a DirectoryError."""

from __future__ import annotations

from pathlib import Path

from mailticket.config.directory.checks import DirectoryError, Problems, build
from mailticket.config.directory.csv_form import read_csv
from mailticket.config.directory.entries import Agency, County
from mailticket.config.directory.yaml_form import read_yaml


def read(path: Path) -> tuple[list[Agency], list[County]]:
    """The checked agencies and counties of a .yaml/.yml or .csv file; DirectoryError listing
    every problem."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise DirectoryError(f"{path}: expected a .yaml, .yml or .csv file "
                             f"(the suffix says which format it is in)")
    text = _text_of(path)
    problems = Problems()
    if suffix == ".csv":
        agencies, counties = read_csv(path, text, problems)
    else:
        agencies, counties = read_yaml(path, text, problems)
    if not agencies and not counties and not problems.lines:
        problems.add(str(path), "lists no agencies and no counties")
    checked = build(agencies, counties, problems)
    if problems.lines:
        raise DirectoryError(problems.lines)
    return checked


def _text_of(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DirectoryError(f"{path}: no such directory file") from None
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte order mark
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DirectoryError(f"{path}, line {line}: not UTF-8 text; save the file as UTF-8 "
                             f"(in Excel: CSV UTF-8)") from None
