"""Each choice with an implementation registers it beside its code: no module path in a string, so every
arrow from a table to its implementation is an import the import-graph test sees (running downward)."""
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
    (config.TRACKERS, "fashionstyle.training.trackers", ("csv", "tensorboard", "mlflow", "wandb")),
    (config.AUGMENTATIONS, "fashionstyle.data.transforms", ("trivialaugment", "randaugment")),
]


@pytest.mark.parametrize("registry, module, names", IMPLEMENTED, ids=[r.what for r, _, _ in IMPLEMENTED])
def test_each_choice_finds_the_implementation_its_module_registered(registry, module, names) -> None:
    importlib.import_module(module)
    assert all(registry.implementation(name) is not None for name in names)
    assert {n for n in registry if registry.implementation(n) is not None} == set(names)


def test_no_module_path_hides_in_a_string() -> None:
    hidden = re.compile(r"[\"']fashionstyle\.[\w.]+:\w+[\"']")
    found = [f"{p.relative_to(SOURCE)}: {m.group()}" for p in SOURCE.rglob("*.py") for m in hidden.finditer(p.read_text())]
    assert not found, found


def test_an_unknown_choice_is_refused_by_name() -> None:
    from fashionstyle.core.errors import FashionStyleError

    with pytest.raises(FashionStyleError, match="unknown output format 'xlsx'; valid: jd, csv, json, parquet"):
        choices.OUTPUT_FORMATS.implementation("xlsx")
