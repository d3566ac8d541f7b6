"""The prediction record: what every surface (files, `fashionstyle.load()`, `POST /predict`, the page,
`explain`) says about one image, under the same names.

    Prediction(image="shop/0001.jpg", labels=["Street", "Casual"],
               scores={"Casual": 0.81, "Office": 0.02, "Street": 0.93})

- `image`: what the user gave (a path as written, a list's entry, an upload's file name, `<image 3>`
  for an array);
- `labels`: the decided styles, most probable first (ties in the run's label order);
- `scores`: label -> probability, in the run's label order;
- `error`: why the image has no prediction (then `labels` and `scores` are empty), else None.

The thresholds behind `labels` belong to the run, not to a row: files carry them once (a header or
metadata), responses once per response.

One table, KINDS, says how each field travels: as a JSON value (`as_dict`), and in the tabular files
(CSV, Parquet, `StyleTagger.table()`) as one column, or one per label for the scores (`flat_columns`,
`flat_values`, `from_flat`). The writers, readers and the service's schema read it: a new field is
one line here, its help, and where it is computed (`make_prediction`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError

SCHEMA = "fashionstyle.prediction/2"  # the version written into files that carry a header
# How each field is carried: text (a string), optional text (a string or None), names (a list of
# label names), per label (label -> probability: a column per label in a table).
KINDS = {"image": "text", "labels": "names", "scores": "per label", "error": "optional text"}
HELP = {
    "image": "the image as given: a path as written, a list's entry, an upload's file name",
    "labels": "the decided styles, most probable first (ties in the run's label order)",
    "scores": "label -> probability, in the run's label order",
    "error": "why the image has no prediction (then labels and scores are empty), else null",
}


@dataclass(frozen=True)
class Prediction:
    image: str
    labels: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON values, its fields in order."""
        return {f.name: copy.copy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def failed(cls, image: str, error: str) -> "Prediction":
        return cls(image=image, error=error)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Prediction":
        """The record `as_dict` gave (a JSON file's, a response's)."""
        return cls(**{name: _typed(kind, record.get(name)) for name, kind in KINDS.items()})


FIELDS = tuple(f.name for f in fields(Prediction))  # the record's keys, in this order everywhere
assert FIELDS == tuple(KINDS), "every field of Prediction has its kind in KINDS, in the same order"
RESERVED = tuple(name for name, kind in KINDS.items() if kind != "per label")  # table columns beside the labels'


def _typed(kind: str, value: Any) -> Any:
    """A JSON or table value as the field's kind holds it."""
    if kind == "names":
        return [str(v) for v in value or []]
    if kind == "per label":
        return {str(k): float(v) for k, v in (value or {}).items()}
    if kind == "optional text":
        return None if value in (None, "") else str(value)
    return "" if value is None else str(value)


def flat_columns(label_names: Sequence[str]) -> list[str]:
    """A table's column names: a field per column, the per-label field as one column per label."""
    return [c for name, kind in KINDS.items() for c in (label_names if kind == "per label" else [name])]


def column_kinds(label_names: Sequence[str]) -> list[str]:
    """The kind of each of `flat_columns`: a label's column is "score"."""
    return [k for kind in KINDS.values() for k in (["score"] * len(label_names) if kind == "per label" else [kind])]


def records_table(records: Sequence[Prediction], label_names: Sequence[str]) -> Any:
    """The records as a pandas DataFrame of the files' columns: image, labels, one score column per label
    (NaN for an unreadable image), error."""
    try:
        import pandas
    except ModuleNotFoundError:
        raise FashionStyleError("a table of predictions needs pandas: pip install pandas "
                                "(or 'fashionstyle[train]')") from None
    frame = pandas.DataFrame([flat_values(r, label_names) for r in records], columns=flat_columns(label_names))
    frame[list(label_names)] = frame[list(label_names)].astype(float)  # an unreadable image's scores: NaN
    return frame


def flat_values(record: Prediction, label_names: Sequence[str]) -> list[Any]:
    """The record's cells under `flat_columns` (a missing score: None)."""
    cells: list[Any] = []
    for name, kind in KINDS.items():
        value = getattr(record, name)
        cells += [value.get(n) for n in label_names] if kind == "per label" else [value]
    return cells


def from_flat(cells: Mapping[str, Any], label_names: Sequence[str]) -> Prediction:
    """The record of a table row given as column -> value (None or NaN scores: absent)."""
    values: dict[str, Any] = {}
    for name, kind in KINDS.items():
        if kind == "per label":
            values[name] = {n: float(cells[n]) for n in label_names if not _missing(cells.get(n))}
        else:
            values[name] = _typed(kind, cells.get(name))
    return Prediction(**values)


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def ranked_names(probs: np.ndarray, decided: np.ndarray, label_names: Sequence[str]) -> list[str]:
    """The decided names of one row (L,), most probable first, ties in label order."""
    order = np.argsort(-np.nan_to_num(probs, nan=-np.inf), kind="stable")
    return [label_names[j] for j in order if decided[j]]


def make_prediction(image: str, probs: np.ndarray, decided: np.ndarray, label_names: Sequence[str]) -> Prediction:
    """The record of one image from its probabilities (L,) and decisions (L,); a row with a NaN
    (an image that could not be read) is a record with an error."""
    if np.isnan(probs).any():
        return Prediction.failed(image, "unreadable image")
    return Prediction(image=image, labels=ranked_names(probs, decided, label_names),
                      scores={name: float(p) for name, p in zip(label_names, probs)})


def make_predictions(images: Sequence[str], probs: np.ndarray, decided: np.ndarray,
                     label_names: Sequence[str]) -> list[Prediction]:
    """One record per row of probs (N, L) and decided (N, L)."""
    return [make_prediction(image, p, d, label_names) for image, p, d in zip(images, probs, decided)]


def check_label_names(label_names: Sequence[str]) -> None:
    """Refuse label names that would collide with the record's own columns in a table."""
    clash = [n for n in label_names if n in RESERVED]
    if clash:
        raise FashionStyleError(f"label {clash[0]!r} has the name of a prediction column "
                                f"({', '.join(RESERVED)}); rename it in the label file")


def thresholds_by_label(label_names: Sequence[str],
                        thresholds: Sequence[float] | None) -> dict[str, float | None] | None:
    """{label: threshold} in label order, as files and responses carry them once (None: not known); a label
    the operating point never predicts (threshold inf) has null."""
    if thresholds is None:
        return None
    return {name: (float(t) if math.isfinite(t) else None) for name, t in zip(label_names, thresholds)}
