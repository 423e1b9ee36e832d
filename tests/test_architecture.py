"""The package layout shows the architecture: no import cycles, top-level modules stay few."""

from __future__ import annotations

import ast

from test_dvc_graph import PKG, imported_names

#: Modules of the foundation layer: imported by every package, they import no package.
FOUNDATION = {
    "config",
    "contracts",
    "errors",
    "io",
    "hashing",
    "hostinfo",
    "policy",
    "_lazy",
    "__init__",
    "__main__",
}


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_graph() -> dict[str, set[str]]:
    """learnops package → the learnops packages its modules import (anywhere in the code)."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        src = _package_of(module)
        targets = {_package_of(n) for n in imported_names(ast.parse(path.read_text()))}
        graph.setdefault(src, set()).update(t for t in targets if t != src)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_packages_import_no_cycle():
    graph = package_graph()
    assert _cycle(graph) is None, f"import cycle between packages: {' -> '.join(_cycle(graph))}"


def test_foundation_modules_import_no_package():
    graph = package_graph()
    for module in FOUNDATION - {"__init__", "__main__"}:
        assert graph.get(module, set()) <= FOUNDATION, (module, graph.get(module))


def test_cli_is_imported_by_nobody():
    graph = package_graph()
    assert not [p for p, targets in graph.items() if "cli" in targets and p != "__main__"]


def test_few_top_level_modules():
    top = sorted(p.stem for p in PKG.glob("*.py"))
    assert set(top) <= FOUNDATION | {"cli"}, top


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
