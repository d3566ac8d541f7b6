"""Post-training steps on a run directory: label statistics, re-tuning, evaluation."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core import config as config_lib
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import check_beta, format_table, macro_fbeta, per_label_scores
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.labels import LabelTable, val_images
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.inference.torch_predictor import Predictor


def tune_run(run: RunDir, beta: float = 2.0, tta: str | None = None,
             table: LabelTable | None = None, rule: str | None = None) -> ThresholdTuner:
    """Re-tune the thresholds from the stored validation probabilities, by `rule` (default: the run's own).

    With a `tta` other than the run's, the validation images (found by id in
    `table`, by default the run's own label file) are predicted again with it
    first, so that thresholds and predictions use the same TTA.
    """
    check_beta(beta)  # before a long prediction
    ids, probs, targets = run.val_probs()
    predict_again = tta is not None and tta != run.tta()
    if predict_again:
        if run.out_of_fold():
            raise FashionStyleError(
                f"{run.path}: its thresholds are tuned on out-of-fold probabilities (cv); predicting those "
                f"images again with --tta {tta} would use the folds' models that trained on them. "
                f"Tune it without --tta, or tune --tta on a run with a validation split")
        images = val_images(run, ids, table)
        predictor = Predictor.from_run(run, tta=tta, retune=True)
        probs = predictor.predict_proba(images, progress=True)
    tuner = ThresholdTuner(beta=beta, rule=rule or run.threshold_rule()).fit(probs, targets)
    if predict_again:  # written only once the thresholds that go with them are found
        run.write_val_probs(ids, probs, targets)
    run.write_thresholds(tuner)
    if tta is not None:
        run.write_tta(tta)
    return tuner


def evaluation_split(run: RunDir, table: LabelTable, split: str | None) -> str:
    """The split to score: `split` as given (LabelTable.split checks it), else `test`, or every row of a
    file without a split column, unless that file is the one the run trained on (its images are in it)."""
    if split is not None or table.splits is not None:
        return split or "test"
    if _trained_on(run, table):
        raise FashionStyleError(f"{table.source}: the label file {run.path} trained on, without a split column: "
                                "every row would be scored, the training images too; pass --labels with "
                                "photos held out of training (or --split all to score them anyway)")
    return "all"


def _trained_on(run: RunDir, table: LabelTable) -> bool:
    """Whether `table` is the run's label file: the path its config names (relative paths read from here,
    as a resume reads them) and, where the run kept them, all of its validation ids."""
    config = run / "config.yaml"
    trained_on = config_lib.read_yaml(config).get("labels") if config.is_file() else None
    if not trained_on or not _same_file(trained_on, table.source):
        return False
    if not (run / "val_probs.npz").is_file():
        return True
    return set(run.val_probs()[0]) <= set(table.ids)  # another folder's file of the same name holds others


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is gone
        return False


def score_table(targets: np.ndarray, probs: np.ndarray, tuner: ThresholdTuner) -> dict[str, Any]:
    """Per-label precision, recall and F-beta at 0.5 and at the tuned thresholds."""
    beta = tuner.beta
    at_half = per_label_scores(targets, (probs >= 0.5).astype(np.uint8), beta)
    tuned = per_label_scores(targets, tuner.predict(probs), beta)
    return {
        "beta": beta, "n_images": int(len(targets)),
        "support": at_half["support"].tolist(), "thresholds": tuner.thresholds_.tolist(),
        "at_0.5": {k: at_half[k].tolist() for k in ("precision", "recall", "fbeta")},
        "tuned": {k: tuned[k].tolist() for k in ("precision", "recall", "fbeta")},
        "macro_fbeta_0.5": float(at_half["fbeta"].mean()),
        "macro_fbeta_tuned": float(tuned["fbeta"].mean()),
        "all_positive_macro_fbeta": macro_fbeta(targets, np.ones_like(targets), beta),
    }


def format_scores(label_names: list[str], scores: dict[str, Any], title: str) -> str:
    b = f"F{scores['beta']:g}"
    columns = {"support": scores["support"], "thr": scores["thresholds"],
               "P@0.5": scores["at_0.5"]["precision"], "R@0.5": scores["at_0.5"]["recall"],
               f"{b}@0.5": scores["at_0.5"]["fbeta"],
               "P tuned": scores["tuned"]["precision"], "R tuned": scores["tuned"]["recall"],
               f"{b} tuned": scores["tuned"]["fbeta"]}
    return format_table(label_names, columns, title=title)


def evaluate_run(run: RunDir, table: LabelTable, split: str, progress: bool = True,
                 batch_size: int = 64, num_workers: int = 0, predictor: BasePredictor | None = None,
                 on_bad: str = "fail", suffix: str = "", probs: np.ndarray | None = None) -> dict[str, Any]:
    """Predict the labelled images of `table` (unless `probs` has them, NaN rows unreadable),
    score them, write eval_<split><suffix>.json."""
    predictor = predictor or Predictor.from_run(run)
    check_same_labels(predictor.label_names, table)
    if probs is None:
        probs = predictor.predict_proba(table.images, batch_size=batch_size, num_workers=num_workers,
                                        progress=progress, on_bad=on_bad)
    readable = ~np.isnan(probs).any(axis=1)
    if not readable.any():
        raise FashionStyleError(f"{table.source}: none of its {len(table)} images could be read")
    table, probs = table.subset(np.flatnonzero(readable)), probs[readable]
    scores = score_table(table.require_targets(), probs, predictor.tuner)
    scores["skipped_images"] = int((~readable).sum())
    scores.update(split=split, label_names=predictor.label_names, source=table.source,
                  runtime=suffix.lstrip("_") or "torch", tta=predictor.tta)
    atomic.write_json(run / f"eval_{split}{suffix}.json", scores)
    atomic.write_npz(run / f"eval_{split}{suffix}.npz", ids=np.array(table.ids), probs=probs.astype(np.float32),
                      targets=table.require_targets())
    return scores


def check_same_labels(run_labels: list[str], table: LabelTable) -> None:
    if list(run_labels) != list(table.label_names):
        raise FashionStyleError(f"{table.source}: labels {table.label_names} differ from the run's "
                                f"{run_labels}; pass --label-names or the matching label file")
