"""Imports flow one way (ARCHITECTURE.md): sources -> pipeline -> desk -> outbox -> compose, with no
cycle between modules or packages.

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


MODULES = dict(modules())


def imports_of(path: Path) -> set[str]:
    """Every name of ours the module imports, relative imports resolved: ``from a import b``
    gives ``a.b``, and ``a`` too unless ``b`` is a module of ``a``."""
    package = [name for name, p in MODULES.items() if p == path][0]
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            found.update(names)
            # "from a import b" where b is a module imports b; a's own names only otherwise.
            if base and not all(name in MODULES for name in names):
                found.add(base)
    return {name for name in found if name.startswith("mailticket")}


def module_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (names that are not modules are dropped)."""
    return {name: {i for i in imports_of(path) if i in MODULES and i != name}
            for name, path in MODULES.items()}


def package_of(module: str) -> str:
    """``mailticket.desk.jobs`` -> ``mailticket.desk``; a top-level module is its own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


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
    ("mailticket.models", ("mailticket.desk", "mailticket.intake", "mailticket.outbox",
                           "mailticket.migrations", "mailticket.wiring")),
    ("mailticket.db", ("mailticket.models", "mailticket.migrations", "mailticket.desk",
                       "mailticket.outbox")),
    ("mailticket.reports", ("mailticket.intake", "mailticket.sender", "mailticket.transport",
                            "mailticket.jobs", "mailticket.wiring")),
    ("mailticket.vocabulary", ("mailticket.",)),
    # The portal's links sit below the mailer, which makes them: models and config only.
    ("mailticket.portal", ("mailticket.desk", "mailticket.intake", "mailticket.outbox",
                           "mailticket.web", "mailticket.wiring", "mailticket.mail")),
    # The web layer is an entry point, like the CLI: only the daemon (and WSGI servers) use it.
    ("mailticket.wiring", ("mailticket.web",)),
    ("mailticket.intake", ("mailticket.web",)),
    ("mailticket.desk", ("mailticket.web",)),
    ("mailticket.outbox", ("mailticket.web",)),
    # The desk's jobs are the desk's; the table of every job (mailticket.jobs) sits above both.
    ("mailticket.desk", ("mailticket.reports", "mailticket.jobs", "mailticket.wiring")),
]


@pytest.mark.parametrize("name, path", list(modules()), ids=lambda v: str(v))
def test_imports_flow_one_way(name, path):
    imported = imports_of(path)
    for prefix, banned in FORBIDDEN:
        if name == prefix or name.startswith(prefix + "."):
            bad = sorted(i for i in imported if i.startswith(banned))
            assert not bad, f"{name} imports {bad}"
    if name not in ("mailticket.__main__", "mailticket.cli") and not name.startswith(
            "mailticket.cli."):
        assert not any(i in ("mailticket.cli", "mailticket.daemon") or
                       i.startswith(("mailticket.cli.", "mailticket.daemon."))
                       for i in imported), f"{name} imports the cli or the daemon"


def test_every_module_says_what_it_owns():
    missing = [name for name, path in modules()
               if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def test_no_module_imports_itself_in_a_circle():
    cycle = find_cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_no_package_imports_itself_in_a_circle():
    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        package = package_of(module)
        graph.setdefault(package, set()).update(
            package_of(t) for t in targets if package_of(t) != package)
    cycle = find_cycle(graph)
    assert cycle is None, "package cycle: " + " -> ".join(cycle or ())


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


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
