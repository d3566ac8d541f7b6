"""The package's import graph, read with `ast`: no cycles, and a torch-free ONNX serving path.

Every `from . import x` / `from .x import y` / `import fashionstyle.x` counts,
inside functions too (a lazy import only hides a cycle); imports under
`if TYPE_CHECKING:` never run and are left out.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fashionstyle"
HEAVY = {"torch", "torchvision", "lightning", "timm"}
ONNX_SERVING = ["cli", "serve", "runtimes", "predictors", "onnx_predictor", "images"]  # `fashionstyle serve --runtime onnx`


@dataclass(frozen=True)
class Import:
    target: str     # a module of the package ("__init__" for the package itself), or a top-level package
    line: int
    top_level: bool  # runs when the module is imported (not inside a function)
    internal: bool


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _statements(tree: ast.Module):
    """(import statement, top_level) for every import that can run."""
    stack = [(node, True) for node in tree.body]
    while stack:
        node, top = stack.pop()
        if _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, top
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def module_imports(path: Path, modules: set[str], package: str = "fashionstyle") -> list[Import]:
    found = []

    def internal(name: str, line: int, top: bool) -> None:
        found.append(Import(name if name in modules else "__init__", line, top, True))

    for node, top in _statements(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    internal(parts[1] if len(parts) > 1 else "__init__", node.lineno, top)
                else:
                    found.append(Import(parts[0], node.lineno, top, False))
            continue
        parts = (node.module or "").split(".")
        if node.level == 0 and parts[0] != package:
            found.append(Import(parts[0], node.lineno, top, False))
            continue
        inside = parts[1:] if node.level == 0 else parts if node.module else []
        if inside:                                    # from .x import y / from fashionstyle.x import y
            internal(inside[0], node.lineno, top)
        else:                                         # from . import x, y
            for alias in node.names:
                internal(alias.name, node.lineno, top)
    return sorted(found, key=lambda i: i.line)


def import_graph(package_dir: Path = PACKAGE) -> dict[str, list[Import]]:
    """module -> its imports, for every module file directly in the package."""
    files = {p.stem: p for p in sorted(package_dir.glob("*.py"))}
    return {name: module_imports(path, set(files), package_dir.name) for name, path in files.items()}


def find_cycles(graph: dict[str, list[Import]]) -> list[list[tuple[str, Import]]]:
    """One import cycle per strongly connected group of modules, as [(module, its import), ...]."""
    edges = {m: {i.target: i for i in imports if i.internal and i.target in graph}
             for m, imports in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                group.append(stack.pop())
                if group[-1] == node:
                    break
            if len(group) > 1 or node in edges[node]:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_cycle_through(group[0], set(group), edges) for group in groups]


def _cycle_through(start: str, group: set[str], edges: dict[str, dict[str, Import]]) -> list[tuple[str, Import]]:
    """The shortest path start -> ... -> start within the group (breadth first)."""
    paths = {start: []}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt, imp in sorted(edges[node].items()):
                if nxt == start:
                    return [*paths[node], (node, imp)]
                if nxt in group and nxt not in paths:
                    paths[nxt] = [*paths[node], (node, imp)]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle through {start}")


def format_cycle(cycle: list[tuple[str, Import]]) -> str:
    steps = [f"{m}.py:{i.line} imports {i.target}{'' if i.top_level else ' (in a function)'}"
             for m, i in cycle]
    return " -> ".join([cycle[0][0], *(i.target for _, i in cycle)]) + "  [" + "; ".join(steps) + "]"


def import_time_closure(roots: list[str], graph: dict[str, list[Import]], with_package: bool) -> set[str]:
    """The package's modules that importing `roots` executes (top-level imports, transitively).

    Python runs the package's __init__ before any of its modules: `with_package` counts that too.
    """
    seen: set[str] = set()
    todo = [*roots, *(["__init__"] if with_package else [])]
    while todo:
        module = todo.pop()
        if module in seen or module not in graph:
            continue
        seen.add(module)
        todo.extend(i.target for i in graph[module] if i.internal and i.top_level)
    return seen


def heavy_imports(modules: set[str], graph: dict[str, list[Import]]) -> list[str]:
    return sorted(f"{m}.py:{i.line} imports {i.target}" for m in modules for i in graph[m]
                  if i.top_level and not i.internal and i.target in HEAVY)


# -- tests ------------------------------------------------------------------------
def test_the_package_has_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(format_cycle(c) for c in cycles)


def test_cycles_are_found_through_imports_inside_functions(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .a import run\n")
    (package / "a.py").write_text("from . import b as _b\n\ndef run():\n    return _b.go()\n")
    (package / "b.py").write_text("def go():\n    from .a import run  # lazy, still a cycle\n    return run\n")
    (package / "c.py").write_text("from pkg.b import go\nimport json\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import go\n")
    (package / "e.py").write_text("import pkg.d\nfrom . import __version__\n")
    graph = import_graph(package)
    assert [(i.target, i.top_level) for i in graph["b"]] == [("a", False)]
    assert [(i.target, i.internal) for i in graph["c"]] == [("b", True), ("json", False)]
    assert [i.target for i in graph["d"]] == ["typing"]  # the TYPE_CHECKING import never runs
    assert [i.target for i in graph["e"]] == ["d", "__init__"]
    (cycle,) = find_cycles(graph)
    text = format_cycle(cycle)
    assert text.startswith("a -> b -> a") and "b.py:2 imports a (in a function)" in text, text


def test_onnx_serving_modules_import_no_torch_lightning_or_timm() -> None:
    graph = import_graph()
    closure = import_time_closure(ONNX_SERVING, graph, with_package=False)
    assert {"runtimes", "predictors", "onnx_predictor", "images", "run", "thresholds"} <= closure
    assert not heavy_imports(closure, graph), heavy_imports(closure, graph)


def test_importing_the_package_for_onnx_serving_imports_no_torch() -> None:
    """Python runs the package's __init__ first: it must not import the heavy modules either."""
    graph = import_graph()
    closure = import_time_closure(ONNX_SERVING, graph, with_package=True)
    assert not heavy_imports(closure, graph), heavy_imports(closure, graph)
