"""The DVC graph tells the truth: every learnops module a stage runs is one of its deps.

Each stage's import closure is computed from its command (``python -m learnops.stages.notebook``,
the report runner) and its notebook: the ``learnops`` modules they import, then, transitively,
every ``learnops`` module those modules import anywhere (top level, inside functions, lazily
exported package attributes, or by name through ``importlib.import_module``; not what is named
only under ``TYPE_CHECKING``). Every file of the closure must be covered by a dep of the stage in
``dvc.yaml`` (the file itself or a folder above it), and no stage may depend on all of ``src/``.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "learnops"
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
MODULE_NAME = re.compile(r"^learnops(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``), or None."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def lazy_exports(package: str) -> dict[str, str]:
    """``name → submodule`` of a package that resolves attributes lazily (``learnops._lazy``)."""
    init = module_file(package)
    if init is None or init.name != "__init__.py":
        return {}
    tree = ast.parse(init.read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "lazy_exports"
    ]
    for call in calls:
        table = call.args[1].id if isinstance(call.args[1], ast.Name) else None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == table for t in node.targets
            ):
                return ast.literal_eval(node.value)
    return {}


def _resolve(module: str, name: str) -> str | None:
    """The module that ``module.name`` loads: a submodule or a lazily exported attribute."""
    if module_file(f"{module}.{name}") is not None:
        return f"{module}.{name}"
    where = lazy_exports(module).get(name)
    return f"{module}.{where}" if where else None


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never executed)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imported_names(tree: ast.AST) -> set[str]:
    """Every ``learnops`` module that executing a syntax tree may import.

    Imports anywhere (top level or inside functions), attributes of lazily exporting packages
    (``irt.fit`` after ``from learnops import irt``), and module names given as strings
    (``importlib.import_module("learnops.x.y")``) all count.
    """
    names: set[str] = set()
    aliases: dict[str, str] = {}  # local name → learnops module it is bound to
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("learnops"):
                    names.add(a.name)
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "learnops"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("learnops"):
                names.add(node.module)
                for a in node.names:
                    target = _resolve(node.module, a.name)
                    if target:
                        names.add(target)
                        if module_file(target) and target == f"{node.module}.{a.name}":
                            aliases[a.asname or a.name] = target
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_NAME.match(node.value)  # importlib.import_module("learnops.x.y")
        ):
            names.add(node.value)
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and (target := _resolve(module, node.attr)):
                names.add(target)
    return {n for n in names if module_file(n) is not None}


@cache
def closure(names: frozenset[str]) -> frozenset[Path]:
    """Source files of ``names``, their parent packages and everything they import."""
    seen: set[str] = set()
    todo = [p for n in names for p in _with_parents(n)]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        tree = ast.parse(module_file(name).read_text())
        for imported in imported_names(tree):
            todo.extend(_with_parents(imported))
    return frozenset(module_file(n) for n in seen)


def notebook_imports(notebook: Path) -> frozenset[str]:
    """``learnops`` modules imported by a notebook's code cells."""
    cells = json.loads(notebook.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    source = "\n".join(line for line in source.splitlines() if not line.startswith(("%", "!")))
    return frozenset(imported_names(ast.parse(source)))


def command_modules(stage: str) -> frozenset[str]:
    """``learnops`` modules the stage's command runs (``python -m learnops.x.y …``)."""
    found = re.findall(r"-m\s+(learnops(?:\.\w+)*)", DVC[stage]["cmd"])
    assert found, f"{stage}: the command runs no learnops module with python -m"
    return frozenset(found)


def stage_closure(stage: str) -> frozenset[Path]:
    """Every learnops source file the stage runs: its command's and its notebook's imports."""
    notebooks = [ROOT / d for d in _deps(stage) if d.endswith(".ipynb")]
    assert len(notebooks) == 1, f"{stage}: exactly one notebook among its deps"
    return closure(notebook_imports(notebooks[0]) | command_modules(stage))


def _deps(stage: str) -> list[str]:
    return [str(d) for d in DVC[stage].get("deps", [])]


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize("stage", sorted(DVC))
def test_every_module_a_stage_runs_is_a_dep(stage):
    deps = _deps(stage)
    missing = sorted(
        str(p.relative_to(ROOT)) for p in stage_closure(stage) if not _covered(p, deps)
    )
    assert not missing, f"{stage} runs these modules but does not depend on them: {missing}"


@pytest.mark.parametrize("stage", sorted(DVC))
def test_no_stage_depends_on_all_of_src_or_on_unused_code(stage):
    deps = [d.rstrip("/") for d in _deps(stage)]
    assert "src" not in deps and "src/learnops" not in deps
    used = stage_closure(stage)
    for dep in deps:
        if dep.startswith("src/"):
            target = ROOT / dep
            assert any(p == target or target in p.parents for p in used), (
                f"{stage} depends on {dep}, which it never imports: a change there would rerun "
                "it for nothing"
            )


def _outs(stage: str) -> set[str]:
    outs = set()
    for o in DVC[stage].get("outs", []) + DVC[stage].get("metrics", []):
        outs.add(next(iter(o)) if isinstance(o, dict) else str(o))
    return outs


def stages_invalidated_by(path: str, stable: str | None = None) -> set[str]:
    """Stages ``dvc status`` reports after ``path`` changes: direct deps, then downstream
    (``stable``: a stage left out, as if its outputs came out byte-identical)."""
    hit = {s for s in DVC if s != stable and _covered(ROOT / path, _deps(s))}
    changed = True
    while changed:
        changed = False
        for s in DVC:
            if s in hit or s == stable:
                continue
            produced = set().union(*(_outs(h) for h in hit)) if hit else set()
            if any(_covered(ROOT / o, _deps(s)) or o in _deps(s) for o in produced):
                hit.add(s)
                changed = True
    return hit


def test_an_irt_change_reruns_fit_irt_and_downstream_but_not_train_mlp():
    irt_file = next(p for p in sorted((PKG / "irt").glob("*.py")) if p.name != "__init__.py")
    hit = stages_invalidated_by(str(irt_file.relative_to(ROOT)))
    assert {"fit_irt", "evaluate", "register"} <= hit
    assert "simulate" not in hit
    # export depends on the IRT code only because irt.ability_model may name a learner model
    # built on it (export runs on every repro anyway, and with the default `irt` its Parquet is
    # byte-identical): no stage but export is reached from the IRT code without it
    direct = {s for s in DVC if _covered(irt_file, _deps(s))}
    assert "train_mlp" not in direct
    assert "train_mlp" not in stages_invalidated_by(str(irt_file.relative_to(ROOT)), "export")


def test_export_reruns_on_new_rows_in_the_store():
    assert DVC["export"].get("always_changed") is True


def test_closure_follows_lazy_package_exports_and_only_them():
    tree = ast.parse("from learnops import irt\nirt.fit(x)\nfrom learnops.ab import analyze")
    names = imported_names(tree)
    assert {"learnops.irt", "learnops.irt.model", "learnops.ab.analysis"} <= names
    assert "learnops.irt.scoring" not in names and "learnops.ab.assign" not in names
    files = closure(frozenset({"learnops.ab"}))
    assert PKG / "_lazy.py" in files
    assert PKG / "ab" / "analysis.py" not in files  # only named under TYPE_CHECKING
