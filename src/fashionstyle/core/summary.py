"""One run summary: the scores every surface shows (CLI table, report headline, model card, trackers).

    summary = summarize(names, tuner, val_probs, val_targets)        # at the end of training, in memory
    summary = summary.with_test(test_probs, test_targets)            # evaluate --split test adds it
    summary.val.macro_fbeta, summary.metrics()["val_macro_f2"]       # the same number, one name
    write_summary(run, summary); read_summary(run)                   # RUN/summary.json for later readers

Every score is taken at the run's thresholds (tuned by its rule on validation) unless its name says
otherwise (`..._at_0.5`, `..._all_positive`). Names come from `metric_name` alone, so that the
card, the trackers and the report cannot drift apart. Torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.thresholds import ThresholdTuner

if TYPE_CHECKING:
    from fashionstyle.core.run import RunDir

SUMMARY = "summary.json"
SCHEMA = 1
SPLITS = ("val", "test")
WARNING = "warning: "  # the prefix of a note about the training itself (core/run_warnings.py)


def metric_name(split: str, beta: float, label: str | None = None, at: str = "") -> str:
    """The one name of a score: `val_macro_f2`, `test_f2/Casual` (per label), `val_macro_f2_at_0.5`,
    `val_macro_f2_all_positive` (`at` names other thresholds than the run's)."""
    f = f"f{float(beta):g}"
    name = f"{split}_{f}/{label}" if label is not None else f"{split}_macro_{f}"
    return f"{name}_{at}" if at else name


@dataclass(frozen=True, eq=False)
class SplitScores:
    """Scores of one labelled split at the run's thresholds, per label (L,) and macro (plain mean)."""

    n_images: int
    precision: np.ndarray
    recall: np.ndarray
    fbeta: np.ndarray
    support: np.ndarray  # positives per label
    fbeta_at_half: np.ndarray  # per-label F-beta at 0.5, for comparison
    all_positive_macro_fbeta: float  # every label predicted for every image: the floor
    skipped_images: int = 0

    @property
    def macro_fbeta(self) -> float:
        return float(np.mean(self.fbeta))

    @property
    def macro_fbeta_at_half(self) -> float:
        return float(np.mean(self.fbeta_at_half))

    def to_dict(self) -> dict[str, Any]:
        return {"n_images": self.n_images, "macro_fbeta": self.macro_fbeta,
                "macro_fbeta_at_0.5": self.macro_fbeta_at_half,
                "all_positive_macro_fbeta": self.all_positive_macro_fbeta, "skipped_images": self.skipped_images,
                **{k: getattr(self, k).tolist() for k in ("precision", "recall", "fbeta", "support")},
                "fbeta_at_0.5": self.fbeta_at_half.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SplitScores:
        return cls(int(d["n_images"]), *(np.asarray(d[k], np.float64) for k in ("precision", "recall", "fbeta")),
                   np.asarray(d["support"], np.int64), np.asarray(d["fbeta_at_0.5"], np.float64),
                   float(d["all_positive_macro_fbeta"]), int(d.get("skipped_images", 0)))


def split_scores(probs: np.ndarray, targets: np.ndarray, tuner: ThresholdTuner,
                 skipped_images: int = 0) -> SplitScores:
    """Per-label P / R / F-beta / support of (N, L) probabilities at `tuner`'s thresholds and at 0.5."""
    beta = tuner.beta
    tuned = per_label_scores(targets, tuner.predict(probs), beta)
    at_half = per_label_scores(targets, (np.asarray(probs) >= 0.5).astype(np.uint8), beta)
    all_positive = per_label_scores(targets, np.ones_like(targets, dtype=np.uint8), beta)["fbeta"]
    return SplitScores(int(len(targets)), tuned["precision"], tuned["recall"], tuned["fbeta"], tuned["support"],
                       at_half["fbeta"], float(all_positive.mean()), skipped_images)


@dataclass(frozen=True, eq=False)
class RunSummary:
    """A run's final scores at its thresholds: validation, and test once evaluated."""

    label_names: list[str]
    beta: float
    rule: str
    thresholds: np.ndarray  # (L,)
    val: SplitScores | None
    test: SplitScores | None = None
    notes: list[str] = field(default_factory=list)  # e.g. why a test score was dropped

    def split(self, name: str) -> SplitScores | None:
        return {"val": self.val, "test": self.test}[name]

    def name(self, split: str, label: str | None = None, at: str = "") -> str:
        return metric_name(split, self.beta, label, at)

    def with_test(self, probs: np.ndarray, targets: np.ndarray, skipped_images: int = 0) -> RunSummary:
        """This summary with the test split scored at its thresholds."""
        return replace(self, test=split_scores(probs, targets, self.tuner(), skipped_images), notes=self.warnings())

    def warnings(self) -> list[str]:
        """The notes that warn about the training itself (`warning: ...`), kept through refreshes."""
        return [note for note in self.notes if note.startswith(WARNING)]

    def tuner(self) -> ThresholdTuner:
        tuner = ThresholdTuner(beta=self.beta, rule=self.rule)
        tuner.thresholds_ = np.asarray(self.thresholds, np.float64)
        tuner.best_fbeta_ = np.full(len(tuner.thresholds_), math.nan)
        tuner.tuned_ = np.ones(len(tuner.thresholds_), bool)
        return tuner

    def metrics(self) -> dict[str, float]:
        """Final metrics for trackers: macro and per-label F-beta of each scored split, and the thresholds."""
        out: dict[str, float] = {}
        for split in SPLITS:
            scores = self.split(split)
            if scores is None:
                continue
            out[self.name(split)] = scores.macro_fbeta
            out[self.name(split, at="at_0.5")] = scores.macro_fbeta_at_half
            out[self.name(split, at="all_positive")] = scores.all_positive_macro_fbeta
            out.update({self.name(split, n): float(f) for n, f in zip(self.label_names, scores.fbeta)})
        out.update({f"threshold/{n}": float(t) for n, t in zip(self.label_names, self.thresholds)})
        return out

    def headline(self) -> list[str]:
        """One line per scored split: `val_macro_f2 0.2250 (validation, 60 images; 0.1900 at 0.5; ...)`."""
        lines = []
        for split, words in (("val", "validation"), ("test", "test")):
            s = self.split(split)
            if s is not None:
                lines.append(f"{self.name(split)} {s.macro_fbeta:.4f} ({words}, {s.n_images} images, "
                             f"thresholds by the {self.rule} rule; {s.macro_fbeta_at_half:.4f} at 0.5, "
                             f"all-positive baseline {s.all_positive_macro_fbeta:.4f})")
        return lines + list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "label_names": list(self.label_names), "beta": float(self.beta),
                "rule": self.rule, "thresholds": [float(t) for t in self.thresholds],
                "metrics": self.metrics(), "notes": list(self.notes),
                **{split: (s.to_dict() if s is not None else None) for split in SPLITS
                   for s in [self.split(split)]}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        return cls(list(d["label_names"]), float(d["beta"]), str(d["rule"]), np.asarray(d["thresholds"], np.float64),
                   *(SplitScores.from_dict(d[s]) if d.get(s) else None for s in SPLITS), list(d.get("notes", [])))


def summarize(label_names: Sequence[str], tuner: ThresholdTuner, val_probs: np.ndarray | None,
              val_targets: np.ndarray | None, test: tuple[np.ndarray, np.ndarray] | None = None) -> RunSummary:
    """The summary of a run's in-memory validation (and test) probabilities at `tuner`'s thresholds."""
    val = split_scores(val_probs, val_targets, tuner) if val_probs is not None else None
    summary = RunSummary(list(label_names), float(tuner.beta), str(tuner.rule),
                         np.asarray(tuner.thresholds_, np.float64), val)
    return summary.with_test(*test) if test is not None else summary


def run_summary(run: RunDir) -> RunSummary | None:
    """The run's summary: RUN/summary.json while it holds the run's thresholds, else scored again from the
    stored validation (and test) probabilities; None before the run has thresholds."""
    if not (run / "thresholds.json").is_file():
        return None
    tuner, saved = run.thresholds(), read_summary(run)
    if saved is not None and _same_thresholds(saved, tuner):
        return saved
    val = run.val_probs()[1:] if (run / "val_probs.npz").is_file() else (None, None)
    summary = summarize(run.label_names(), tuner, *val)
    if saved is not None:
        summary = replace(summary, notes=saved.warnings())
    return refresh_test(run, summary)


def refresh_test(run: RunDir, summary: RunSummary) -> RunSummary:
    """`summary` with the test split scored again at its thresholds from RUN/eval_test.npz, where the run
    was evaluated on test with the TTA it has now; else with a note saying how to add it."""
    path, scores = run / "eval_test.npz", run / "eval_test.json"
    if not path.is_file():
        return summary
    tta = atomic.read_json(scores).get("tta", "none") if scores.is_file() else "none"
    if tta != run.tta():
        return replace(summary, test=None, notes=[*summary.warnings(),
            f"the test scores were computed with another TTA ({tta}); `fashionstyle evaluate {run.path.name} "
            "--labels FILE --split test` updates them"])
    with np.load(path) as data:
        probs, targets = data["probs"], data["targets"]
    skipped = int(atomic.read_json(scores).get("skipped_images", 0)) if scores.is_file() else 0
    return summary.with_test(probs, targets, skipped)


def _same_thresholds(summary: RunSummary, tuner: ThresholdTuner) -> bool:
    return (summary.beta == float(tuner.beta) and summary.rule == tuner.rule
            and summary.thresholds.shape == tuner.thresholds_.shape
            and bool(np.allclose(summary.thresholds, tuner.thresholds_, rtol=0, atol=1e-12)))


def write_summary(run: RunDir, summary: RunSummary) -> None:
    """RUN/summary.json, for readers that come later (report, history, a card refresh)."""
    atomic.write_json(run / SUMMARY, summary.to_dict())


def read_summary(run: RunDir) -> RunSummary | None:
    """RUN/summary.json, or None for a run written before summaries (or an unreadable one)."""
    path = run / SUMMARY
    if not path.is_file():
        return None
    try:
        return RunSummary.from_dict(atomic.read_json(path))
    except (KeyError, TypeError, ValueError):
        return None
