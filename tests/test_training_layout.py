"""The training package's shape: small modules with one job, one meaning per name, and a core/ that never
launches Lightning (the light, torch-free floor)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fashionstyle"
REPORT = ("report", "report_page", "report_plots", "report_data", "gallery")
CORE = ("ranks", "run_warnings")
OWNED = [*sorted((PACKAGE / "training").glob("*.py")), *(PACKAGE / "core" / f"{n}.py" for n in CORE),
         *(PACKAGE / "analysis" / f"{n}.py" for n in REPORT)]


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_lightning_not_even_inside_a_function() -> None:
    found = {p.name: sorted(m for m in imported(p) if m.split(".")[0] == "lightning")
             for p in (PACKAGE / "core").glob("*.py")}
    assert not {k: v for k, v in found.items() if v}
    assert "lightning.fabric" in imported(PACKAGE / "inference" / "launch.py")  # the launch lives here now


@pytest.mark.parametrize("path", OWNED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_modules_stay_under_400_lines_and_functions_under_80(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) < 400
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 >= 80]
    assert not long


def test_train_is_the_entry_point_and_fit_module_the_lightning_call() -> None:
    """`train` means the one entry point, nothing else in training/; no bare `fit` function beside it."""
    defined: dict[str, list[str]] = {}
    for path in sorted((PACKAGE / "training").glob("*.py")):
        for node in tree(path).body:
            if isinstance(node, ast.FunctionDef):
                defined.setdefault(node.name, []).append(path.stem)
    assert defined["train"] == ["train"] and defined["fit_module"] == ["trainer_run"]
    assert "fit" not in defined and not (PACKAGE / "training" / "fit.py").exists()
    from fashionstyle import api, train

    assert train is api.train  # the entry point, then the report's figures to the trackers, as the command runs it
