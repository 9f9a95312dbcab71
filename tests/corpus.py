"""The third-party mail corpus (../shared/corpus): where it is, its manifest, and test params.

The corpus is test data kept outside the repository (``MAILTICKET_CORPUS`` overrides the place).
Without it, corpus tests skip; on CI (``CI=true``) they fail instead, so a missing corpus can
never make a green build by accident.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.servers import unavailable

ENV = "MAILTICKET_CORPUS"
REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO.parent / "shared" / "corpus"


def corpus_dir() -> Path | None:
    """The corpus directory, or None when it is not there."""
    configured = os.environ.get(ENV)
    path = Path(configured) if configured else DEFAULT
    return path if (path / "MANIFEST.tsv").is_file() else None


def _where() -> str:
    return os.environ.get(ENV) or str(DEFAULT)


def require_corpus() -> Path:
    """The corpus directory; skips the calling test without it (fails it on CI)."""
    path = corpus_dir()
    if path is None:
        unavailable(f"corpus not found at {_where()} (set {ENV})")
    return path


def parse_expected(text: str) -> list[tuple[str, str]]:
    """``key=value;key=value`` -> pairs, in order (keys may repeat). Each item is split on its
    first "=": values such as ``sisimai=reason=...`` hold more."""
    pairs = []
    for item in text.split(";"):
        if not item.strip():
            continue
        key, _, value = item.partition("=")
        pairs.append((key.strip(), value))
    return pairs


def manifest_rows() -> list[dict]:
    """Every row of MANIFEST.tsv as a dict, plus ``expected_items`` (the parsed pairs) and
    ``expected`` as a dict (the first value of each key). Empty without the corpus."""
    path = corpus_dir()
    if path is None:
        return []
    with open(path / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:
        items = parse_expected(row.get("expected") or "")
        row["expected_text"] = row.get("expected") or ""
        row["expected_items"] = items
        expected: dict[str, str] = {}
        for key, value in items:
            expected.setdefault(key, value)
        row["expected"] = expected
    return rows


def corpus_params() -> list:
    """One ``pytest.param(row, id=row['file'])`` per corpus file; an empty list without the
    corpus (pytest then skips the parametrized test: pair it with a test that calls
    ``require_corpus`` so that CI fails loudly)."""
    return [pytest.param(row, id=row["file"]) for row in manifest_rows()]
