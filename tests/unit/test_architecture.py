"""The layering the design promises, checked by walking every import (module-level and inside functions):
no import cycle between modules nor between the packages of pipelines/, compute never imports Dagster, and
each layer imports only the layers below it (pipelines <- resources <- assets <- jobs <- sensors <- definitions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("pipelines", "resources", "assets", "jobs", "sensors")
# What each top-level package may import from the project (the arrow points one way).
ALLOWED = {
    "pipelines": {"pipelines"},
    "resources": {"pipelines", "resources"},
    "assets": {"pipelines", "resources", "assets"},
    "jobs": {"pipelines", "assets", "jobs"},
    "sensors": {"pipelines", "resources", "jobs", "sensors"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}


def imports_of(path: Path, name: str) -> set[str]:
    """Every module this file imports, resolved to absolute names (`from x import y` counts x and x.y)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {m for m in imports_of(path, name) if m in modules and m != name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def without_package_inits(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ re-exporting its own modules is not a cycle: drop edges from a package to its
    children and from a child to its own package (importing `pipelines.x.y` runs `pipelines.x` first)."""
    return {
        src: {dst for dst in dsts if not dst.startswith(src + ".") and not src.startswith(dst + ".")}
        for src, dsts in edges.items()
    }


def test_no_import_cycle_between_modules() -> None:
    assert cycles(without_package_inits(graph())) == []


def test_no_import_cycle_between_the_packages_of_pipelines() -> None:
    def package(mod: str) -> str:
        parts = mod.split(".")
        return ".".join(parts[:2])  # pipelines.<package or module>

    edges: dict[str, set[str]] = {}
    for src, dsts in graph().items():
        if src.startswith("pipelines."):
            edges.setdefault(package(src), set()).update(
                package(d) for d in dsts if d.startswith("pipelines.") and package(d) != package(src)
            )
    assert cycles(edges) == []


def test_compute_never_imports_dagster() -> None:
    offenders = []
    for name, path in project_modules().items():
        if not name.startswith("pipelines"):
            continue
        for mod in imports_of(path, name):
            if mod == "dagster" or mod.startswith(("dagster.", "dagster_")):
                allowed = name == "pipelines.training.reporting" and mod.startswith("dagster_pipes")
                if not allowed:
                    offenders.append(f"{name} imports {mod}")
    assert offenders == []


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below(layer: str) -> None:
    offenders = [
        f"{src} imports {dst}"
        for src, dsts in graph().items()
        if src.split(".")[0] == layer
        for dst in dsts
        if dst.split(".")[0] not in ALLOWED[layer]
    ]
    assert offenders == []


def test_the_walker_sees_a_cycle_and_a_function_level_import(tmp_path: Path) -> None:
    """The checks above can fail: a planted cycle is found, lazy imports included."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from pipelines.lake import Lake\n    import dagster\n")
    assert {"pipelines.lake", "pipelines.lake.Lake", "dagster"} <= imports_of(src, "pipelines.m")
