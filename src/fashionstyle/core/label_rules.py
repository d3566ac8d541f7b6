"""labels.yaml, a label file's companion: exclusive groups and the operating points `train` tunes at its end.

    labels/
      labels.csv
      labels.yaml        # read by `train --labels labels/labels.csv`

    exclusive:                           # groups of labels of which a photo carries at most one
      - [T-Shirt, Longsleeve, Polo, Shirt]
    operating_points:                    # each tuned on validation when training ends (tune's options)
      storefront: {min_precision: 0.9, max_labels: 3}
      search: {beta: 2, at_least_one: true}

    rules = read_label_rules(Path("labels/labels.csv"), label_names)   # None without a labels.yaml
    points = rules.fit(val_probs, val_targets)                         # OperatingPoint per name

The groups apply to every point listed (a point may give its own `exclusive`, [] for none); the run's own
thresholds stay the F-beta rule, as ever. Everything is checked when training starts, one line per fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fashionstyle.core.config import read_yaml
from fashionstyle.core.decision import OperatingPoint, check_groups, check_max_labels, check_target
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.operating_points import check_name, fit_point

COMPANION = "labels.yaml"
TOP_KEYS = ("exclusive", "operating_points")
GOALS = {"beta": "fbeta", "min_precision": "min-precision", "min_recall": "min-recall"}
POINT_KEYS = (*GOALS, "max_labels", "exclusive", "at_least_one")


@dataclass(frozen=True)
class PointSpec:
    """One point as labels.yaml asks for it: how to choose its thresholds, and its per-photo rules."""

    name: str
    objective: str
    target: float
    max_labels: int | None
    exclusive: tuple[tuple[str, ...], ...]
    at_least_one: bool


@dataclass(frozen=True)
class LabelRules:
    source: Path
    label_names: tuple[str, ...]
    points: tuple[PointSpec, ...]

    def fit(self, probs: np.ndarray, targets: np.ndarray) -> list[OperatingPoint]:
        """Each point tuned on (N, L) validation probabilities and targets."""
        return [fit_point(s.name, probs, targets, list(self.label_names), s.objective, s.target, s.max_labels,
                          s.exclusive, s.at_least_one) for s in self.points]


def companion_of(label_files: Sequence[str | Path]) -> Path | None:
    """The labels.yaml beside the first of `label_files` that has one (None: none has)."""
    for file in label_files:
        candidate = Path(file).parent / COMPANION
        if candidate.is_file():
            return candidate
    return None


def read_label_rules(label_files: Sequence[str | Path], label_names: Sequence[str]) -> LabelRules | None:
    """The checked rules of the label files' labels.yaml, or None without one."""
    path = companion_of(label_files)
    if path is None:
        return None
    data = read_yaml(path)
    _known_keys(data, TOP_KEYS, str(path))
    groups = _groups(data.get("exclusive") or [], label_names, str(path))
    points = data.get("operating_points") or {}
    if not isinstance(points, Mapping):
        raise FashionStyleError(f"{path}: operating_points must map names to settings, e.g. "
                                "storefront: {min_precision: 0.9, max_labels: 3}")
    specs = tuple(_spec(str(name), spec, groups, label_names, f"{path}: operating point {name!r}")
                  for name, spec in points.items())
    return LabelRules(path, tuple(label_names), specs)


def _spec(name: str, spec: Any, groups: tuple[tuple[str, ...], ...], label_names: Sequence[str],
          where: str) -> PointSpec:
    check_name(name)
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise FashionStyleError(f"{where}: expected settings such as {{min_precision: 0.9, max_labels: 3}}")
    _known_keys(spec, POINT_KEYS, where)
    goals = [key for key in GOALS if key in spec]
    if len(goals) > 1:
        raise FashionStyleError(f"{where}: give one of {', '.join(GOALS)}, not {' and '.join(goals)}")
    goal = goals[0] if goals else "beta"
    objective, target = GOALS[goal], spec.get(goal, 2.0)
    own = _groups(spec["exclusive"], label_names, where) if "exclusive" in spec else groups
    return PointSpec(name, objective, check_target(objective, target, where),
                     check_max_labels(spec.get("max_labels"), where), own, _flag(spec, "at_least_one", where))


def _groups(groups: Any, label_names: Sequence[str], where: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise FashionStyleError(f"{where}: exclusive must be a list of label lists, e.g. [[T-Shirt, Polo]]")
    check_groups(groups, label_names, where)
    return tuple(tuple(str(n) for n in g) for g in groups)


def _flag(spec: Mapping[str, Any], key: str, where: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise FashionStyleError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _known_keys(data: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    unknown = [str(k) for k in data if k not in valid]
    if unknown:
        raise FashionStyleError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(valid)}")

