"""Imports flow one way (DESIGN.md): sources -> pipeline -> desk -> outbox -> compose.

Reads each module's imports with ast, so a layering slip fails here rather than in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mailticket"


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("mailticket")}


# (modules matching this prefix, may not import anything matching these prefixes)
FORBIDDEN = [
    ("mailticket.mail", ("mailticket.models", "mailticket.db", "mailticket.desk",
                         "mailticket.intake", "mailticket.outbox", "mailticket.sender")),
    ("mailticket.desk", ("mailticket.intake", "mailticket.sender", "mailticket.transport")),
    ("mailticket.outbox", ("mailticket.desk", "mailticket.intake", "mailticket.sender")),
    ("mailticket.intake.imap", ("mailticket.models", "mailticket.desk", "mailticket.outbox")),
    ("mailticket.intake.smtp", ("mailticket.models", "mailticket.desk", "mailticket.outbox")),
    ("mailticket.intake.route", ("mailticket.models", "mailticket.db", "mailticket.outbox")),
    ("mailticket.sender", ("mailticket.desk", "mailticket.intake", "mailticket.outbox")),
    ("mailticket.models", ("mailticket.desk", "mailticket.intake", "mailticket.outbox")),
]


@pytest.mark.parametrize("name, path", list(modules()), ids=lambda v: str(v))
def test_imports_flow_one_way(name, path):
    imported = imports_of(path)
    for prefix, banned in FORBIDDEN:
        if name == prefix or name.startswith(prefix + "."):
            bad = sorted(i for i in imported if i.startswith(banned))
            assert not bad, f"{name} imports {bad}"
    if name not in ("mailticket.__main__", "mailticket.cli"):
        assert not any(i in ("mailticket.cli", "mailticket.daemon") or
                       i.startswith(("mailticket.cli.", "mailticket.daemon."))
                       for i in imported), f"{name} imports the cli or the daemon"


def test_every_module_says_what_it_owns():
    missing = [name for name, path in modules()
               if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


LEAVES = ("mailticket.config", "mailticket.errors", "mailticket.logs")


def test_the_leaves_import_nothing_of_ours_but_each_other():
    """config (with the calendar and the directory), errors and logs: anyone may import them,
    so they import nothing of mailticket's above them, and no cycle can run through them."""
    def is_leaf(name):  # "from mailticket import errors" also names the package itself
        return name == "mailticket" or any(name == leaf or name.startswith(leaf + ".")
                                           for leaf in LEAVES)

    found = {name: sorted(i for i in imports_of(path) if not is_leaf(i))
             for name, path in modules() if is_leaf(name)}
    assert "mailticket.config.directory" in found and "mailticket.config.calendar" in found
    assert {name: bad for name, bad in found.items() if bad} == {}
