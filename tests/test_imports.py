"""The package's import graph, read with `ast`: stages import only downwards, no cycles, and a
torch-free serving path.

Every `from . import x` / `from .x import y` / `import fashionstyle.x` counts,
inside functions too (a lazy import only hides a cycle), and under `if TYPE_CHECKING:`
(such an import never runs, so it counts as not run at import time, but a cycle it
closes is still a cycle of the design). Modules are named by their dotted
path inside the package ("core.errors", "cli"; "__init__" for the package itself,
"core" for core/__init__.py).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fashionstyle"
HEAVY = {"torch", "torchvision", "lightning", "timm"}
ONNX_SERVING = ["cli", "serving.app", "inference.runtimes", "inference.predictor", "inference.onnx_predictor",
                "data.images.files"]  # `fashionstyle serve --runtime onnx`
LAYERS = ["core", "data", "model", "inference", "training", "analysis", "labelstudio", "serving", "cli"]  # bottom to top; the rest on top
MAP_ROW = re.compile(r"^\| `(\w+)/` \| [^|]+ \| (.+) \|$", re.M)  # the README's Development map


@dataclass(frozen=True)
class Import:
    target: str     # a module of the package, or a top-level package outside it
    line: int
    top_level: bool  # runs when the module is imported (not inside a function)
    internal: bool


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _statements(tree: ast.Module):
    """(import statement, top_level) for every import; one under `if TYPE_CHECKING:` is not top level."""
    stack = [(node, True) for node in tree.body]
    while stack:
        node, top = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, top
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) \
            and not _is_type_checking(node)
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def module_name(path: Path, package_dir: Path) -> str:
    parts = path.relative_to(package_dir).with_suffix("").parts
    return ".".join(parts[:-1]) or "__init__" if parts[-1] == "__init__" else ".".join(parts)


def module_imports(path: Path, package_dir: Path, modules: set[str]) -> list[Import]:
    package = package_dir.name
    here = module_name(path, package_dir)
    where = ([] if here == "__init__" else here.split(".")) if path.name == "__init__.py" else here.split(".")[:-1]
    found = []

    def internal(dotted: list[str], line: int, top: bool) -> None:
        while dotted and ".".join(dotted) not in modules:
            dotted = dotted[:-1]  # from pkg.mod import name: the module, not the name
        found.append(Import(".".join(dotted) or "__init__", line, top, True))

    for node, top in _statements(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package:
                    internal(parts[1:], node.lineno, top)
                else:
                    found.append(Import(parts[0], node.lineno, top, False))
            continue
        parts = node.module.split(".") if node.module else []
        if node.level == 0 and parts[0] != package:
            found.append(Import(parts[0], node.lineno, top, False))
            continue
        base = parts[1:] if node.level == 0 else [*where[:len(where) - node.level + 1], *parts]
        for alias in node.names:                      # `from x import y`: y may be a module
            internal([*base, alias.name], node.lineno, top)
    return sorted(set(found), key=lambda i: (i.line, i.target))


def import_graph(package_dir: Path = PACKAGE) -> dict[str, list[Import]]:
    """module -> its imports, for every module file in the package and its subpackages."""
    files = {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    return {name: module_imports(path, package_dir, set(files)) for name, path in files.items()}


def layer(module: str) -> float:
    """The floor of a module: its subpackage's place in LAYERS; top-level modules (api, demo) above every
    stage but the command line, which stands on them all."""
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else LAYERS.index("cli") - 0.5


def upward_imports(graph: dict[str, list[Import]]) -> list[str]:
    return sorted(f"{m} imports {i.target} (line {i.line})" for m, imports in graph.items() for i in imports
                  if i.internal and i.target != "__init__" and layer(i.target) > layer(m))


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
    steps = [f"{m}:{i.line} imports {i.target}{'' if i.top_level else ' (in a function)'}"
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
        todo.extend(".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1))  # its packages' __init__
    return seen


def heavy_imports(modules: set[str], graph: dict[str, list[Import]]) -> list[str]:
    return sorted(f"{m}:{i.line} imports {i.target}" for m in modules for i in graph[m]
                  if i.top_level and not i.internal and i.target in HEAVY)


# -- tests ------------------------------------------------------------------------
def test_the_package_has_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(format_cycle(c) for c in cycles)


def test_stages_import_only_the_stages_below_them() -> None:
    graph = import_graph()
    assert {m.split(".")[0] for m in graph if "." in m} == set(LAYERS)  # every subpackage has its floor
    assert not upward_imports(graph), "imports that run upwards:\n" + "\n".join(upward_imports(graph))


def test_the_readme_map_is_the_package(tmp_path: Path) -> None:
    """README's Development map: one row per subpackage, bottom to top, naming what it may import."""
    rows = MAP_ROW.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert [name for name, _ in rows] == LAYERS
    for floor, (name, may_import) in enumerate(rows):
        below = set(re.findall(r"`(\w+)/`", may_import))
        assert below == set(LAYERS[:floor]), (name, may_import)


def test_cycles_and_upward_imports_are_found_through_subpackages(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "core").mkdir(parents=True)
    (package / "data").mkdir()
    (package / "__init__.py").write_text("from .core.a import run\n")
    (package / "core" / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("from . import b as _b\n\ndef run():\n    return _b.go()\n")
    (package / "core" / "b.py").write_text("def go():\n    from .a import run  # lazy, still a cycle\n    return run\n")
    (package / "data" / "c.py").write_text("from pkg.core.b import go\nimport json\n")
    (package / "core" / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..data.c import go\n")
    (package / "core" / "e.py").write_text("import pkg.core.d\nfrom .. import __version__\nfrom ..data import c\n")
    graph = import_graph(package)
    assert [(i.target, i.top_level) for i in graph["core.b"]] == [("core.a", False)]
    assert [(i.target, i.internal) for i in graph["data.c"]] == [("core.b", True), ("json", False)]
    # the TYPE_CHECKING import never runs (not top level), yet it is an upward import of the design
    assert [(i.target, i.top_level) for i in graph["core.d"]] == [("typing", True), ("data.c", False)]
    assert [i.target for i in graph["core.e"]] == ["core.d", "__init__", "data.c"]
    assert graph["__init__"][0].target == "core.a"
    (cycle,) = find_cycles(graph)
    text = format_cycle(cycle)
    assert text.startswith("core.a -> core.b -> core.a") and "core.b:2 imports core.a (in a function)" in text, text
    assert upward_imports(graph) == ["core.d imports data.c (line 3)", "core.e imports data.c (line 3)"]


def test_onnx_serving_modules_import_no_torch_lightning_or_timm() -> None:
    graph = import_graph()
    closure = import_time_closure(ONNX_SERVING, graph, with_package=False)
    assert {"inference.runtimes", "inference.predictor", "inference.onnx_predictor", "data.images.files",
            "core.run", "core.thresholds", "inference"} <= closure
    assert not heavy_imports(closure, graph), heavy_imports(closure, graph)


def test_importing_the_package_for_onnx_serving_imports_no_torch() -> None:
    """Python runs the package's __init__ first: it must not import the heavy modules either."""
    graph = import_graph()
    closure = import_time_closure(ONNX_SERVING, graph, with_package=True)
    assert not heavy_imports(closure, graph), heavy_imports(closure, graph)


@pytest.mark.parametrize("code", ["import fashionstyle.analysis.report",
                                  "from fashionstyle.cli import main; main(['report', '--help'])",
                                  "import fashionstyle, fashionstyle.core.config, fashionstyle.core.choices"])
def test_the_report_and_the_package_load_no_torch(code: str) -> None:
    probe = f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\nprint(sorted(m for m in {sorted(HEAVY)} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:]
