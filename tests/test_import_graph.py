"""The project's import graph has no cycle, function-local and TYPE_CHECKING imports included: each module
sits in one layer (trainer -> contract -> pipeline | state -> renderers) and imports only below itself.

Read with ast, without importing anything, so it is fast and sees imports inside functions."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("trainer", "cockpit")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that `module` imports anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports the module a.b when there is one, else a name of a.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a name: its nearest module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    graph = {m: imported(m, p, known) for m, p in modules.items()}
    # A package's __init__ runs before its modules; an edge from a module up to its own package is no cycle.
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "cockpit.pipeline.launcher" in graph["cockpit.pipeline.launchers"]
    assert "trainer.contract" in graph["cockpit.cli"]
    assert len(graph) > 60


def test_no_import_cycles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"an import cycle: {' -> '.join(exc.args[1])}") from None


def test_a_cycle_would_be_found() -> None:
    graph = import_graph()
    graph["trainer.contract"] = graph["trainer.contract"] | {"cockpit.cli"}  # cockpit.cli imports the contract
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        assert {"trainer.contract", "cockpit.cli"} <= set(exc.args[1])
    else:
        raise AssertionError("a contract <-> cli cycle was not found")
