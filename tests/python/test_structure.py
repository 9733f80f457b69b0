"""The library's shape (issue 27): small signatures, small modules, no import cycles.

Read from the source (ast), not by importing it: imports inside functions count, and
nothing heavy is loaded.

- no public function or method outside ``cli/`` takes more than 12 parameters (data
  arguments belong on a DataSpec, run settings on a Runtime);
- no module is over 400 lines unless its docstring says why (the words "over 400 lines");
- no two modules import each other, directly or through others. An import of a package
  (``from bulkformer.preprocess import x``) is an edge to its ``__init__``, so a package
  ``__init__`` that imports a submodule which imports the package back is a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "python" / "bulkformer"
MAX_PARAMETERS = 12
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "__pycache__" not in p.parts}


# compiled extensions (setup.py): leaves that import nothing of the package
EXTENSIONS = {"bulkformer.preprocess._native"}


MODULES = _modules()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _n_parameters(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> int:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    count = len(names) + (a.vararg is not None) + (a.kwarg is not None)
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    return count - (1 if method and not is_static and names else 0)


def _public_functions():
    for name, path in MODULES.items():
        if ".cli" in name or any(part.startswith("_") and part != "__init__" for part in name.split(".")):
            continue
        for node in _parse(path).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield f"{name}.{node.name}", _n_parameters(node, method=False)
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                        yield f"{name}.{node.name}.{item.name}", _n_parameters(item, method=True)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> the bulkformer modules it imports (anywhere in its body)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                # `from package import submodule` runs the package's __init__, then the submodule
                targets = [base, *(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)]
            else:
                continue
            for target in targets:
                while target and target not in MODULES and target not in EXTENSIONS:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_public_functions_take_at_most_12_parameters():
    over = {name: n for name, n in _public_functions() if n > MAX_PARAMETERS}
    assert not over, f"public functions with more than {MAX_PARAMETERS} parameters: {over}"


def test_modules_are_at_most_400_lines_unless_their_docstring_says_why():
    long = {}
    for name, path in MODULES.items():
        n = len(path.read_text().splitlines())
        doc = ast.get_docstring(_parse(path)) or ""
        if n > MAX_LINES and "over 400 lines" not in doc.lower():
            long[name] = n
    assert not long, f"modules over {MAX_LINES} lines whose docstring does not say why: {long}"


def test_no_import_cycles():
    cycles = [sorted(c) for c in strongly_connected(import_graph())]
    assert not cycles, f"modules that import each other (directly or through others): {cycles}"


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [{"a", "b"}]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_cycle_finder(graph, expected):
    assert [set(c) for c in strongly_connected(graph)] == expected
