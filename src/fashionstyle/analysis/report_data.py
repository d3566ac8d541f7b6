"""What the HTML report reads from run directories: probabilities and targets per split, the
history, label statistics and scores (report.py lays them out, report_plots.py draws them).

    data = load_run(RunDir.open("runs/lite0"))      # RunData: tuner, val (and test) Split, history
    at_half, tuned = split_scores(data, data.val)   # per-label F-beta at 0.5 and at the thresholds
    view = only_labels(data, most_supported(train_targets))   # past SHOWN labels: the SHOWN most frequent
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashionstyle.core.config import read_yaml
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import read_history
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.labels.table import LabelTable

SHOWN = 50  # past this many labels the per-label figures, tables and galleries show this many


@dataclass
class Split:
    """Probabilities and 0/1 targets (N, L) of one labelled split, and its image ids."""

    probs: np.ndarray
    targets: np.ndarray
    ids: list[str] = field(default_factory=list)


@dataclass
class RunData:
    """Everything the report reads from one run directory."""

    name: str
    run: RunDir
    label_names: list[str]
    tuner: ThresholdTuner
    val: Split
    test: Split | None
    history: dict[str, np.ndarray] | None  # column -> values per epoch (nan where empty)
    weight_power: float
    manifest: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml; empty for a fused run
    points: dict[str, OperatingPoint] = field(default_factory=dict)  # the run's own point first, then its named
    decided: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # point -> split -> (N, L) 0/1

    @property
    def beta_name(self) -> str:
        return f"F{self.tuner.beta:g}"

    def splits(self) -> dict[str, Split]:
        return {"val": self.val} | ({"test": self.test} if self.test is not None else {})


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Read a complete run directory (RunDir.open refuses a missing or incomplete one)."""
    run = RunDir.open(path)
    ids, probs, targets = run.val_probs()
    test_path = run / "eval_test.npz"
    test = None
    if test_path.is_file():
        with np.load(test_path) as data:
            test = Split(data["probs"], data["targets"], [str(i) for i in data["ids"]])
    config = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    names, tuner = run.label_names(), run.thresholds()
    data = RunData(name or run.path.resolve().name, run, names, tuner, Split(probs, targets, ids), test,
                   history_columns(run), float(config.get("weight_power", 1.0)), run.manifest(), config)
    own = OperatingPoint.of_tuner(tuner)
    data.points = {own.name: own, **run.operating_points(names)}
    data.decided = {name: {s: p.decide(split.probs) for s, split in data.splits().items()}
                    for name, p in data.points.items()}
    return data


def history_columns(run: RunDir) -> dict[str, np.ndarray] | None:
    """history.csv as float columns, or None for a run without one."""
    rows = read_history(run)
    if not rows:
        return None
    return {key: np.array([_float(r.get(key)) for r in rows]) for key in rows[0]}


def _float(text: str | None) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def run_names(paths: Sequence[Path]) -> list[str]:
    """Folder names; duplicates get their parent folder in front (`a/run`, `b/run`)."""
    names = [p.resolve().name for p in paths]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def check_runs_comparable(main: RunData, other: RunData) -> None:
    """Refuse to compare two runs whose label sets differ."""
    if main.label_names != other.label_names:
        raise FashionStyleError(
            f"cannot compare runs with different labels: {main.run.path} has {main.label_names}, "
            f"{other.run.path} has {other.label_names}")


def image_mismatches(runs: Sequence[RunData]) -> list[str]:
    """One sentence per run scored on other images than the first (validation, or test where both have it)."""
    main, lines = runs[0], []
    for other in runs[1:]:
        pairs = [("validation", main.val, other.val)]
        if main.test is not None and other.test is not None:
            pairs.append(("test", main.test, other.test))
        splits = [name for name, a, b in pairs if a.ids != b.ids or not np.array_equal(a.targets, b.targets)]
        if splits:
            lines.append(f"{other.name} was scored on other {' and '.join(splits)} images than {main.name}: "
                         "its scores are not comparable side by side")
    return lines


def training_split(data: RunData, labels: LabelTable | None) -> tuple[LabelTable, str] | None:
    """The label file's rows the run trained on (split as training splits them) and a phrase naming them."""
    if labels is None or labels.targets is None:
        return None
    source = f"<code>{html.escape(labels.source)}</code>"
    if "val_fraction" not in data.config:
        return labels, (f"all {len(labels)} images of {source} (the run has no config.yaml to split them "
                        "as its training did)")
    from fashionstyle.data.splits import train_val_split  # torch

    train, _ = train_val_split(labels, float(data.config["val_fraction"]), int(data.config.get("seed", 0)))
    return train, f"the {len(train)} training images of {source} (the run's own train/validation split)"


def stats_targets(data: RunData, stats_table: LabelTable | None, train_targets: np.ndarray | None,
                  train: tuple[LabelTable, str] | None = None) -> tuple[np.ndarray, str]:
    """Targets for the label statistics and a phrase naming where they come from."""
    if train_targets is not None:
        targets, source = np.asarray(train_targets), "the training labels"
    elif stats_table is not None:
        if list(stats_table.label_names) != data.label_names:
            raise FashionStyleError(f"{stats_table.source}: labels {stats_table.label_names} differ "
                                    f"from the run's {data.label_names}")
        targets, source = stats_table.require_targets(), f"<code>{html.escape(stats_table.source)}</code>"
    elif train is not None:
        targets, source = train[0].require_targets(), train[1]
    else:
        return data.val.targets, "the validation split (no training labels were given)"
    if targets.ndim != 2 or targets.shape[1] != len(data.label_names):
        raise FashionStyleError(f"training targets must have shape (N, {len(data.label_names)}), "
                                f"got {targets.shape}")
    return targets, source


def tuned_scores(data: RunData, split: Split) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F-beta and support at the tuned thresholds."""
    return per_label_scores(split.targets, data.tuner.predict(split.probs), data.tuner.beta)


def point_split_scores(data: RunData, point: str, split: str) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F-beta and support of `split` decided at the named `point` (its per-photo
    rules applied over all of the run's labels, even where `data` shows some)."""
    return per_label_scores(data.splits()[split].targets, data.decided[point][split], data.tuner.beta)


def split_scores(data: RunData, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Per-label F-beta at 0.5 and at the tuned thresholds."""
    beta = data.tuner.beta
    at_half = per_label_scores(split.targets, (split.probs >= 0.5).astype(np.uint8), beta)["fbeta"]
    tuned = per_label_scores(split.targets, data.tuner.predict(split.probs), beta)["fbeta"]
    return at_half, tuned


def most_supported(targets: np.ndarray, limit: int = SHOWN) -> np.ndarray | None:
    """The label columns the per-label sections show: None (all) up to `limit` labels, else the `limit`
    with the most positives in `targets` ((N, L); the first on ties), in label order."""
    if targets.shape[1] <= limit:
        return None
    support = np.asarray(targets.sum(axis=0), np.int64).ravel()  # signed: uint8 sums negate wrongly
    return np.sort(np.argsort(-support, kind="stable")[:limit])


def only_labels(data: RunData, columns: np.ndarray | None) -> RunData:
    """`data` restricted to the label `columns` (None: `data` itself): names, thresholds and both splits;
    the history keeps its columns, found by name."""
    if columns is None:
        return data
    tuner = ThresholdTuner(beta=data.tuner.beta, default=data.tuner.default, rule=data.tuner.rule)
    tuner.thresholds_, tuner.best_fbeta_, tuner.tuned_ = (data.tuner.thresholds_[columns],
                                                          data.tuner.best_fbeta_[columns], data.tuner.tuned_[columns])

    def cut(split: Split) -> Split:
        return Split(split.probs[:, columns], split.targets[:, columns], split.ids)

    return replace(data, label_names=[data.label_names[j] for j in columns], tuner=tuner, val=cut(data.val),
                   test=None if data.test is None else cut(data.test),
                   points={name: _cut_point(point, columns) for name, point in data.points.items()},
                   decided={name: {s: d[:, columns] for s, d in by_split.items()}
                            for name, by_split in data.decided.items()})


def _cut_point(point: OperatingPoint, columns: np.ndarray) -> OperatingPoint:
    """`point`'s thresholds and validation figures of the label `columns`, for display: its decisions are
    made over every label (RunData.decided), so the per-photo rules are left out here."""
    val = {key: [values[j] for j in columns] for key, values in point.val.items()}
    return replace(point, thresholds=point.thresholds[columns], exclusive=(), val=val)
