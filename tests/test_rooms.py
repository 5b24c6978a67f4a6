"""The architecture as the files show it (issue 22): imports run one way, function-level
imports included; nothing below the command line imports it; no module is over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "frs_cli"
MAX_LINES = 600


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The frs_cli modules `name` imports anywhere in it (in functions too), except under
    `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            out |= set(targets) or ({base} if base in known else set())
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
    return out - {name, "frs_cli"}


def test_imports_run_one_way_function_level_ones_included():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, f"import circle: {' -> '.join([*trail, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # The command line is on top: nothing below it imports it or the entry point.
    for name, targets in graph.items():
        if not name.startswith(("frs_cli.cli", "frs_cli.entry", "frs_cli.__main__")):
            assert not {t for t in targets if t.startswith(("frs_cli.cli", "frs_cli.entry"))}, name


def test_the_graph_sees_function_level_imports():
    known = modules()
    # records.Appearance.to_dict used to import the writers inside the method.
    assert "frs_cli.enroll" in imports("frs_cli.api", known["frs_cli.api"], known)
    assert "frs_cli.writers" not in imports("frs_cli.records", known["frs_cli.records"], known)


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := path.read_text().count("\n")) > MAX_LINES
    }
    assert not long, long
