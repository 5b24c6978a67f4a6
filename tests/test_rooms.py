"""The architecture as the files show it (issues 22, 32): packages along the pipeline, each
importing only the packages below it, and modules with no import circle (function-level
imports included in both); nothing below the command line imports it; at most 10 modules
at the top; no module over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

import frs_cli as frs

PACKAGE = ROOT / "frs_cli"
MAX_LINES = 600
MAX_TOP_MODULES = 10
# From the bottom up (docs/design.md's map): the modules every layer shares, the packages
# along the pipeline, then the API and the command line. A unit imports only units below.
LAYERS = (
    "errors", "timecode", "hashing", "files", "records",
    "video", "faces", "workers", "accuracy", "watchlist", "scanner", "results",
    "api", "cli", "entry", "__main__",
)  # fmt: skip


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


def unit(name: str) -> str:
    """The package (or, at the top, the module) a module belongs to."""
    return name.split(".")[1]


def test_packages_import_only_the_packages_below_them():
    """This also rules out any import circle between packages."""
    known = modules()
    upward = []
    for name, path in known.items():
        if name == "frs_cli":  # the API's lazy names: imports only under TYPE_CHECKING
            continue
        here = unit(name)
        assert here in LAYERS, f"{name}: {here} is in no layer; place it in LAYERS"
        for target in sorted(imports(name, path, known)):
            there = unit(target)
            if there != here and LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{name} imports {target} ({there} lies above {here})")
    assert not upward, upward


def test_the_top_holds_few_modules_and_each_package_says_what_it_is_for():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    packages = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    assert set(packages) <= set(LAYERS), packages
    # A package named like an API name would hide it once imported (frs.scan() was the
    # scan package, not the function, when the package was called scan).
    assert not set(packages) & set(frs.__all__), set(packages) & set(frs.__all__)
    for package in packages:
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 2, f"{package}: a two-line docstring"


def test_the_graph_sees_function_level_imports():
    known = modules()
    # records.Appearance.to_dict used to import the writers inside the method.
    assert "frs_cli.watchlist.enroll" in imports("frs_cli.api", known["frs_cli.api"], known)
    assert "frs_cli.results.writers" not in imports(
        "frs_cli.records", known["frs_cli.records"], known
    )


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := path.read_text().count("\n")) > MAX_LINES
    }
    assert not long, long
