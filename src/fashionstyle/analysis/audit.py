"""Which labels are wrong? Rank (image, label) pairs with cleanlab on held-out probabilities.

    fashionstyle cv --labels labels.csv --out runs/cv5 --folds 5     # out-of-fold probabilities
    fashionstyle audit runs/cv5 --labels labels.csv --out issues.csv [--top 200]
    fashionstyle audit runs/cv5 --labels labels.csv --out issues.csv --fix flip --cleaned fixed.csv

A pair is suspect when a model that never trained on the image disagrees with its
given label. cleanlab's confident learning (`find_multilabel_issues_per_class`,
one-vs-rest per label with thresholds per label) flags pairs; every pair gets a
label-quality score (`get_label_quality_scores_per_class`, self-confidence with
the probabilities adjusted for each label's average confidence; lower is more
suspect). The ranking puts the flagged pairs first, each group by score.

issues.csv, most suspect first: image, label, given, probability, score, flagged, id.
Without --top it lists the flagged pairs; with --top K the K most suspect pairs.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.data.labels.table import LabelTable

ISSUE_COLUMNS = ("image", "label", "given", "probability", "score", "flagged", "id")


@dataclass
class Issue:
    """One suspect (image, label) pair; `row` is its index in the label table (-1 when read back)."""

    image: str
    label: str
    given: int
    probability: float
    score: float
    flagged: bool
    id: str
    row: int = -1


def label_scores(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's (scores, flagged), both (N, L): quality of each given 0/1 label, low = suspect.

    A label given one way on every image (all 0 or all 1) cannot be audited (confident learning
    needs both classes): its scores are NaN and none of its pairs is flagged.
    """
    try:
        from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
        from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class
    except ModuleNotFoundError:
        raise FashionStyleError("audit needs cleanlab, which is not installed; "
                                "pip install 'fashionstyle[audit]'") from None
    given, probs = _check_arrays(given, probs)
    scores, flagged = np.full(given.shape, np.nan), np.zeros(given.shape, dtype=bool)
    audited = ~one_class_labels(given)
    if audited.any():
        labels = [list(np.flatnonzero(row)) for row in given[:, audited]]  # cleanlab's multi-label form
        flagged[:, audited] = find_multilabel_issues_per_class(labels, probs[:, audited], n_jobs=1)
        scores[:, audited] = get_label_quality_scores_per_class(labels, probs[:, audited], adjust_pred_probs=True)
    return scores, flagged


def one_class_labels(given: np.ndarray) -> np.ndarray:
    """(L,) bool: the labels given the same way (all 0 or all 1) on every image."""
    return given.min(axis=0) == given.max(axis=0)


def _check_arrays(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    given, probs = np.asarray(given), np.asarray(probs, dtype=np.float64)
    if given.shape != probs.shape or given.ndim != 2 or not len(given):
        raise FashionStyleError(f"labels {given.shape} and probabilities {probs.shape} must be (N, L), N > 0")
    if np.isnan(probs).any():
        raise FashionStyleError("the run's held-out probabilities contain NaN (an unfinished fold?)")
    return given.astype(np.uint8), np.clip(probs, 0.0, 1.0)


def rank_pairs(scores: np.ndarray, flagged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of every scored pair, most suspect first: flagged pairs first, then by score."""
    order = np.lexsort((scores.ravel(), ~flagged.ravel()))  # last key sorts first; stable
    order = order[~np.isnan(scores.ravel()[order])]  # the pairs of labels left out (NaN)
    return np.unravel_index(order, scores.shape)


def audit_probs(run: RunDir) -> tuple[list[str], np.ndarray, str | None]:
    """(ids, probs (N, L), a note or None): a cv run's out-of-fold probabilities, else its val ones."""
    ids, probs, _ = run.val_probs()
    if run.out_of_fold():
        return ids, probs, None
    return ids, probs, (f"{run.path} is not a cv run: its validation probabilities are held out but cover "
                        f"only its {len(ids)} validation images; `fashionstyle cv` covers every labelled image")


def given_labels(table: LabelTable, ids: list[str], label_names: list[str]) -> tuple[np.ndarray, list[int]]:
    """The file's 0/1 labels (N, L) of the run's ids, and their rows in the table."""
    if list(table.label_names) != list(label_names):
        raise FashionStyleError(f"{table.source}: labels {table.label_names} differ from the run's {label_names}")
    row_of = {image_id: i for i, image_id in enumerate(table.ids)}
    missing = [i for i in ids if i not in row_of]
    if missing:
        raise FashionStyleError(f"{table.source}: lacks {len(missing)} of the run's {len(ids)} image ids, "
                                f"e.g. {', '.join(map(repr, missing[:5]))}; is it the file the run was trained on?")
    rows = [row_of[i] for i in ids]
    return table.require_targets()[rows], rows


def audit_run(run: RunDir, table: LabelTable, top: int | None = None) -> tuple[list[Issue], list[str]]:
    """The suspect pairs of a run's images, most suspect first, and notes (coverage, labels left out).

    `top`: the `top` most suspect pairs, flagged or not; None: the flagged pairs.
    """
    if top is not None and top < 1:
        raise FashionStyleError(f"--top must be at least 1, got {top}")
    ids, probs, coverage = audit_probs(run)
    names = run.label_names()
    given, rows = given_labels(table, ids, names)
    scores, flagged = label_scores(given, probs)
    order_r, order_c = rank_pairs(scores, flagged)
    count = int(flagged.sum()) if top is None else min(top, len(order_r))
    notes = [coverage] if coverage else []
    notes += [f"label {names[c]} left out: it is {given[0, c]} on all {len(given)} held-out images, and "
              "confident learning needs both 0s and 1s" for c in np.flatnonzero(one_class_labels(given))]
    issues = [Issue(str(Path(table.images[rows[r]]).resolve()), names[c], int(given[r, c]), float(probs[r, c]),
                    float(scores[r, c]), bool(flagged[r, c]), ids[r], rows[r])
              for r, c in zip(order_r[:count], order_c[:count])]
    return issues, notes


def write_issues(path: str | Path, issues: list[Issue]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ISSUE_COLUMNS)
    writer.writerows([i.image, i.label, i.given, f"{i.probability:.6f}", f"{i.score:.6f}", int(i.flagged), i.id]
                     for i in issues)
    return atomic.write_text(path, buffer.getvalue())


def read_issues(path: str | Path) -> list[Issue]:
    """issues.csv back, in its order."""
    path = Path(path)
    if not path.is_file():
        raise FashionStyleError(f"{path}: issues file not found (write one with `fashionstyle audit`)")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not set(ISSUE_COLUMNS[:5]) <= set(reader.fieldnames or ()):
            raise FashionStyleError(f"{path}: not an audit file; expected columns {', '.join(ISSUE_COLUMNS)}")
        try:
            return [Issue(r["image"], r["label"], int(r["given"]), float(r["probability"]), float(r["score"]),
                          r.get("flagged", "1") == "1", r.get("id") or Path(r["image"]).stem)
                    for r in reader]
        except (TypeError, ValueError) as err:
            raise FashionStyleError(f"{path}:{reader.line_num}: malformed row ({err})") from None
