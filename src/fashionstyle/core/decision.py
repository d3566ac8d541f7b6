"""How probabilities become labels: one operating point, one `decide`, every door.

    point = OperatingPoint.of_tuner(tuner)                     # the run's own point, "f2": today's rule
    labels = point.decide(probs)                               # (N, L) 0/1 uint8; a NaN row decides nothing
    point = OperatingPoint.from_dict(d, label_names, source)   # as operating_points.json stores it

A point has a threshold per label (inf: the label is never predicted at this point, its floor out of
reach) and optional per-photo rules, applied in this order:
    exclusive     groups of labels of which a photo carries at most one: the most probable that passes
    max_labels    at most K labels per photo, the most probable first (ties in label order)
    at_least_one  a photo where no label passes gets its most probable one (of those the point can predict)
This module is the only place a probability is compared with a threshold outside the threshold search
(tests/test_decision.py scans the source for others).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError

OBJECTIVES = ("fbeta", "min-precision", "min-recall")


@dataclass(frozen=True, eq=False)
class OperatingPoint:
    """Per-label thresholds (L,) and per-photo rules; `objective`/`target` say how the thresholds were chosen
    (fbeta B, min-precision P, min-recall R); `val` holds each label's validation figures at its threshold."""

    name: str
    thresholds: np.ndarray
    objective: str = "fbeta"
    target: float = 2.0
    max_labels: int | None = None
    exclusive: tuple[tuple[int, ...], ...] = ()
    at_least_one: bool = False
    val: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def of_tuner(cls, tuner: Any) -> "OperatingPoint":
        """The run's own point: its tuned F-beta thresholds and no rule (named f2 for beta 2)."""
        beta = float(tuner.beta)
        return cls(default_name(beta), np.asarray(tuner.thresholds_, np.float64), "fbeta", beta)

    @property
    def reachable(self) -> np.ndarray:
        """(L,) bool: the labels this point can predict (a finite threshold)."""
        return np.isfinite(self.thresholds)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """0/1 labels (N, L) for probabilities (N, L) under this point; a row of NaN decides nothing."""
        p = np.nan_to_num(np.asarray(probs, np.float64), nan=-np.inf)
        if p.ndim != 2 or p.shape[1] != len(self.thresholds):
            raise FashionStyleError(f"probs must have shape (N, {len(self.thresholds)}), got {p.shape}")
        on = p >= self.thresholds
        for group in self.exclusive:
            on[:, list(group)] = _best_only(p[:, list(group)], on[:, list(group)])
        if self.max_labels is not None:
            on = _top_k(p, on, self.max_labels)
        if self.at_least_one:
            on = _at_least_one(np.where(self.reachable, p, -np.inf), on)
        return on.astype(np.uint8)

    def describe(self, label_names: Sequence[str]) -> str:
        """One line: the objective, the rules, and the labels out of reach."""
        goal = f"F{self.target:g}" if self.objective == "fbeta" else f"{self.objective} {self.target:g}"
        rules = ([f"at most {self.max_labels} label{'s' if self.max_labels != 1 else ''}"] if self.max_labels else []) + [
            "one of " + "/".join(label_names[j] for j in g) for g in self.exclusive] + (
            ["at least one label"] if self.at_least_one else [])
        never = [label_names[j] for j in np.flatnonzero(~self.reachable)]
        text = f"{self.name}: {goal}" + (f"; {', '.join(rules)}" if rules else "")
        return text + (f"; never predicts {', '.join(never)} (floor out of reach on val)" if never else "")

    def to_dict(self, label_names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: thresholds by label (null: never predicted), groups by name."""
        return {"name": self.name, "objective": self.objective, "target": self.target,
                "thresholds": {n: (float(t) if math.isfinite(t) else None)
                               for n, t in zip(label_names, self.thresholds)},
                "max_labels": self.max_labels, "exclusive": [[label_names[j] for j in g] for g in self.exclusive],
                "at_least_one": self.at_least_one, "val": self.val}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], label_names: Sequence[str], source: str) -> "OperatingPoint":
        """A point as to_dict wrote it, checked: one line naming `source` for anything wrong."""
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str):
            raise FashionStyleError(f"{source}: an operating point must be an object with a name")
        where = f"{source}: operating point {d['name']!r}"
        objective = d.get("objective")
        if objective not in OBJECTIVES:
            raise FashionStyleError(f"{where}: objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
        thresholds = _thresholds(d.get("thresholds"), label_names, where)
        exclusive = check_groups(d.get("exclusive") or [], label_names, where)
        return cls(d["name"], thresholds, objective, check_target(objective, d.get("target"), where),
                   check_max_labels(d.get("max_labels"), where), exclusive, bool(d.get("at_least_one")),
                   dict(d.get("val") or {}))


def default_name(beta: float) -> str:
    """The name of a run's own point: f2 for beta 2, f0.5 for beta 0.5."""
    return f"f{beta:g}"


def check_target(objective: str, value: Any, where: str) -> float:
    """A floor in (0, 1] for min-precision / min-recall; a beta > 0 for fbeta."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if objective == "fbeta":
        if not ok or value <= 0:
            raise FashionStyleError(f"{where}: beta {value!r} must be a number above 0")
    elif not ok or not 0 < value <= 1:
        raise FashionStyleError(f"{where}: {objective} {value!r} must be in (0, 1]")
    return float(value)


def check_max_labels(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FashionStyleError(f"{where}: max labels {value!r} must be a whole number of at least 1")
    return value


def check_groups(groups: Sequence[Sequence[str]], label_names: Sequence[str],
                 where: str) -> tuple[tuple[int, ...], ...]:
    """Exclusive groups as label indices: each of two or more known labels, no label in two groups."""
    index, seen, out = {n: j for j, n in enumerate(label_names)}, {}, []
    for k, group in enumerate(groups):
        names = [group] if isinstance(group, str) else list(group)
        unknown = [n for n in names if n not in index]
        if unknown:
            raise FashionStyleError(f"{where}: exclusive group {k + 1} names {unknown[0]!r}, not a label of the "
                                    f"run; valid: {', '.join(label_names)}")
        if len(set(names)) < 2:
            raise FashionStyleError(f"{where}: exclusive group {k + 1} ({', '.join(names)}) needs two labels "
                                    "or more")
        for name in names:
            if name in seen and seen[name] != k:
                raise FashionStyleError(f"{where}: label {name!r} is in two exclusive groups ({seen[name] + 1} "
                                        f"and {k + 1}); a label may be in one")
            seen[name] = k
        out.append(tuple(dict.fromkeys(index[n] for n in names)))
    return tuple(out)


def _thresholds(values: Any, label_names: Sequence[str], where: str) -> np.ndarray:
    if not isinstance(values, Mapping) or set(values) != set(label_names):
        raise FashionStyleError(f"{where}: thresholds must give each of the run's {len(label_names)} labels")
    out = []
    for name in label_names:
        t = values[name]
        if t is None:
            out.append(math.inf)
        elif isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0 <= t <= 1:
            out.append(float(t))
        else:
            raise FashionStyleError(f"{where}: threshold of {name!r} is {t!r}; a number in [0, 1] or null")
    return np.array(out, np.float64)


def _best_only(p: np.ndarray, on: np.ndarray) -> np.ndarray:
    """(N, G): of the passing labels of a group, only the most probable (the first on a tie)."""
    best = np.argmax(np.where(on, p, -np.inf), axis=1)
    keep = np.zeros_like(on)
    rows = np.arange(len(on))
    keep[rows, best] = on[rows, best]
    return keep


def _top_k(p: np.ndarray, on: np.ndarray, k: int) -> np.ndarray:
    """(N, L): the k most probable passing labels of each row (ties in label order)."""
    order = np.argsort(-np.where(on, p, -np.inf), axis=1, kind="stable")[:, :k]
    keep = np.zeros_like(on)
    rows = np.arange(len(on))[:, None]
    keep[rows, order] = on[rows, order]
    return keep


def _at_least_one(p: np.ndarray, on: np.ndarray) -> np.ndarray:
    """(N, L): a readable row with no label passing gets its most probable label."""
    empty = ~on.any(axis=1) & np.isfinite(p).any(axis=1)
    rows = np.flatnonzero(empty)
    on = on.copy()
    on[rows, np.argmax(p[rows], axis=1)] = True
    return on
