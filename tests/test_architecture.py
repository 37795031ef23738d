"""The import rules of docs/architecture.md, read from the source: every ``import`` and ``from ... import``
of every module under ``medrobust/`` (module level and inside functions) is resolved, and the test fails
on an import that runs up the layer order or on a cycle between modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "medrobust"

#: folder (or top-level module) -> layer; a module may import only from strictly lower layers (and its own folder)
LAYERS: dict[str, int] = {
    "cli": 7,  # the command line dispatches through tasks.TASKS and bench.BENCHES
    "bench": 6,
    "tasks": 5,
    "evaluate": 4, "train": 4, "tta": 4, "corrupt": 4, "analysis": 4,
    "models": 3, "data": 3, "losses": 3, "integrations": 3, "config": 3,
    "augment": 2,
    "io": 1, "threads": 1,  # threads: the OpenMP wait policy record, imports nothing of medrobust
}
#: layers a folder may import besides the strictly lower ones (``io`` is usable by all but ``augment``)
FORBIDDEN: dict[str, set[str]] = {"augment": {"io"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """Every medrobust module ``module`` imports (a ``from pkg import name`` of a submodule counts as the
    submodule; of anything else, as ``pkg``)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "medrobust")
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            if target.split(".")[0] != "medrobust":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    # importlib strings would hide an edge from this test
    text = path.read_text(encoding="utf-8")
    assert "import_module(" not in text and "__import__(" not in text.replace("__import__('medrobust').__version__", ""), \
        f"{path}: imports by string hide dependencies; import the module"
    return {m for m in found if m in MODULES and m != module}


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH: dict[str, set[str]] = {m: imports_of(m) for m in MODULES}


def test_every_folder_has_a_layer():
    folders = {_folder(m) for m in MODULES} - {""}
    assert folders <= set(LAYERS), f"folders without a layer in the rules: {sorted(folders - set(LAYERS))}"


def layer_violations(module: str, graph: dict[str, set[str]]) -> list[str]:
    src = _folder(module)
    bad = []
    for target in sorted(graph[module]):
        dst = _folder(target)
        if not dst or dst == src:
            continue  # the package root (version only) and imports inside a folder
        if LAYERS[dst] >= LAYERS[src] or dst in FORBIDDEN.get(src, set()):
            bad.append(f"{target} ({dst}, layer {LAYERS[dst]})")
    return bad


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return cycles


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _folder(m)))
def test_imports_run_down_the_layers(module):
    bad = layer_violations(module, GRAPH)
    assert not bad, f"{module} ({_folder(module)}, layer {LAYERS[_folder(module)]}) imports up or across the layer order: {bad}"


def test_no_import_cycles():
    assert not find_cycles(GRAPH), f"import cycles: {find_cycles(GRAPH)}"


def test_the_checker_finds_violations():
    toy = {"medrobust.augment.a": {"medrobust.tasks.b"}, "medrobust.tasks.b": {"medrobust.augment.a"},
           "medrobust.augment.c": {"medrobust.io"}, "medrobust.evaluate.d": {"medrobust.train.e"}}
    assert layer_violations("medrobust.augment.a", toy) == ["medrobust.tasks.b (tasks, layer 5)"]
    assert layer_violations("medrobust.tasks.b", toy) == []
    assert layer_violations("medrobust.augment.c", toy) == ["medrobust.io (io, layer 1)"]
    assert layer_violations("medrobust.evaluate.d", toy) == ["medrobust.train.e (train, layer 4)"]
    assert find_cycles(toy) == [["medrobust.augment.a", "medrobust.tasks.b"]]
    node = ast.parse("from ..tasks import TASKS\n").body[0]
    assert _resolve(node, "medrobust.augment.x", False) == "medrobust.tasks"
    assert _resolve(ast.parse("from . import base\n").body[0], "medrobust.augment", True) == "medrobust.augment"
