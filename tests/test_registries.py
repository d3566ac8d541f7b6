"""Each choice with an implementation registers it beside its code. The one module path in a string is a
Choice's `module=` (the module to import when its implementation is first asked for: an export format or an
acquisition strategy nothing else imports), and it must name the module that registers that very choice."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from fashionstyle.core import choices, config

SOURCE = Path(__file__).resolve().parents[1] / "src" / "fashionstyle"
IMPLEMENTED = [  # (registry, the module that registers, the choices it implements)
    (choices.OUTPUT_FORMATS, "fashionstyle.inference.outputs", ("jd", "csv", "json", "parquet")),
    (choices.THRESHOLD_RULES, "fashionstyle.core.thresholds", ("smooth", "bootstrap", "pooled")),
    (config.LOSSES, "fashionstyle.model.losses", ("weighted_bce", "bce", "focal", "asl")),
    (config.TRACKERS, None, ("csv", "tensorboard", "mlflow", "wandb")),
    (config.AUGMENTATIONS, "fashionstyle.data.transforms", ("trivialaugment", "randaugment")),
    (choices.EXPORT_FORMATS, None, ("onnx", "hub")),
    (choices.ACQUISITION_STRATEGIES, None, ("uncertainty", "margin", "random")),
    (choices.RUN_SOURCES, None, ("hub",)),
]


@pytest.mark.parametrize("registry, module, names", IMPLEMENTED, ids=[r.what for r, _, _ in IMPLEMENTED])
def test_each_choice_finds_the_implementation_its_module_registered(registry, module, names) -> None:
    if module:  # otherwise each choice's `module=` is imported on first use
        importlib.import_module(module)
    assert all(registry.implementation(name) is not None for name in names)
    assert {n for n in registry if registry.implementation(n) is not None} == set(names)


def test_no_module_path_hides_in_a_string() -> None:
    """Outside a Choice's `module=`, no string names a module of the package."""
    hidden = re.compile(r"(?<!module=)[\"']fashionstyle\.[\w.]*[a-z_]\.[\w.:]+[\"']")
    found = [f"{p.relative_to(SOURCE)}: {m.group()}" for p in SOURCE.rglob("*.py") for m in hidden.finditer(p.read_text())]
    assert not found, found


@pytest.mark.parametrize("registry", [choices.EXPORT_FORMATS, choices.ACQUISITION_STRATEGIES, config.TRACKERS,
                                      choices.RUN_SOURCES],
                         ids=lambda r: r.what)
def test_a_choices_module_registers_that_choice_and_is_imported_only_when_asked(registry) -> None:
    import subprocess
    import sys

    for name, choice in registry.items():
        code = (f"import sys; from fashionstyle.core import choices, config; r = {_attr(registry)}; "
                f"assert {choice.module!r} not in sys.modules; impl = r.implementation({name!r}); "
                f"assert impl.__module__ == {choice.module!r}, impl.__module__")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-800:]


def _attr(registry: choices.Registry) -> str:
    """`module.NAME` of the registry, in core.choices or core.config."""
    return next(f"{m.__name__.rsplit('.', 1)[1]}.{k}" for m in (choices, config) for k, v in vars(m).items()
                if v is registry)


def test_a_new_strategy_is_one_module_and_one_choice_line(tmp_path, monkeypatch) -> None:
    """What adding a strategy takes: a module registering it, and its Choice naming that module."""
    from fashionstyle.analysis import acquisition

    (tmp_path / "newest_first.py").write_text(
        "import numpy as np\n"
        "from fashionstyle.analysis.acquisition import Strategy\n"
        "from fashionstyle.core.choices import ACQUISITION_STRATEGIES\n\n"
        "@ACQUISITION_STRATEGIES.implements('newest')\n"
        "class Newest(Strategy):\n"
        "    def scores(self, ids, probs, thresholds, rare_weights, seed):\n"
        "        return np.arange(len(ids), dtype=float)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = choices.Registry("strategy", *choices.ACQUISITION_STRATEGIES.values(),
                                choices.Choice("newest", "the last listed first", module="newest_first"))
    monkeypatch.setattr(choices, "ACQUISITION_STRATEGIES", registry)
    monkeypatch.setattr(acquisition, "ACQUISITION_STRATEGIES", registry)
    newest = acquisition.strategy("newest")
    assert newest.predicts_catalogue
    assert newest.picks(2, newest.scores(["a", "b", "c"], None, None, None, 0)[::-1], lambda: None) == [0, 1]


def test_an_unknown_choice_is_refused_by_name() -> None:
    from fashionstyle.core.errors import FashionStyleError

    with pytest.raises(FashionStyleError, match="unknown output format 'xlsx'; valid: jd, csv, json, parquet"):
        choices.OUTPUT_FORMATS.implementation("xlsx")
