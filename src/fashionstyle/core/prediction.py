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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError

SCHEMA = "fashionstyle.prediction/2"  # the version written into files that carry a header
FIELDS = ("image", "labels", "scores", "error")  # the record's keys, in this order everywhere
RESERVED = ("image", "labels", "error")  # columns of the tabular files beside one per label


@dataclass(frozen=True)
class Prediction:
    image: str
    labels: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.image, "labels": list(self.labels), "scores": dict(self.scores), "error": self.error}

    @classmethod
    def failed(cls, image: str, error: str) -> "Prediction":
        return cls(image=image, error=error)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Prediction":
        """The record `as_dict` gave (a JSON file's, a response's)."""
        return cls(image=str(record["image"]), labels=list(record.get("labels") or []),
                   scores={str(k): float(v) for k, v in (record.get("scores") or {}).items()},
                   error=record.get("error"))


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


def thresholds_by_label(label_names: Sequence[str], thresholds: Sequence[float] | None) -> dict[str, float] | None:
    """{label: threshold} in label order, as files and responses carry them once (None: not known)."""
    if thresholds is None:
        return None
    return {name: float(t) for name, t in zip(label_names, thresholds)}
