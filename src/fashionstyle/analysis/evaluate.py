"""Post-training steps on a run directory: re-tuning and evaluation, each refreshing the run's summary
(RUN/summary.json) and model card, so a Python caller gets what the command gives.

    tune_run(run, beta=2, rule="exact")                         # new thresholds, summary, card
    scores = evaluate_run(run, table.split("test"), "test")     # eval_test.json, summary with test, card
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import check_beta, format_table, per_label_scores
from fashionstyle.core.model_card import write_model_card
from fashionstyle.core.operating_points import point_scores
from fashionstyle.core.run import RunContents, RunDir
from fashionstyle.core.summary import (RunSummary, metric_name, read_summary, refresh_test, split_scores, summarize,
                                      write_summary)
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.data.labels.read import same_file, trained_on_files, val_images
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
    refresh_summary(run, summarize(run.label_names(), tuner, probs, targets))
    return tuner


def refresh_summary(run: RunDir, summary: RunSummary) -> RunSummary:
    """Write `summary` (with the test split scored again at its thresholds where the run has one), the
    model card from it, and send it to the tracker runs the run was trained into."""
    from fashionstyle.analysis.tracking import update_trackers

    saved = read_summary(run)
    if saved is not None and not summary.warnings():  # the training's warnings outlive a refresh
        summary = replace(summary, notes=[*saved.warnings(), *summary.notes])
    summary = refresh_test(run, summary) if summary.test is None else summary
    write_summary(run, summary)
    write_model_card(run, summary)
    update_trackers(run, summary)
    return summary


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
    """Whether `table` is one of the run's label files: a path its config names (relative paths read from
    here, as a resume reads them) and, for its only file where the run kept them, all of its validation ids."""
    own = trained_on_files(run)
    if not any(same_file(f.labels, table.source) for f in own):
        return False
    if len(own) > 1 or not (run / "val_probs.npz").is_file():
        return True  # one of several files: a training photo may be in any of them
    return set(run.val_probs()[0]) <= set(table.ids)  # another folder's file of the same name holds others


def score_table(targets: np.ndarray, probs: np.ndarray, tuner: ThresholdTuner, split: str = "val",
                skipped_images: int = 0) -> dict[str, Any]:
    """The `split`'s scores under the run summary's names (core/summary.py SplitScores: macro_fbeta,
    macro_fbeta_at_0.5, per-label precision, recall, fbeta, support, fbeta_at_0.5), with the thresholds and
    each label's precision and recall at 0.5: eval_<split>.json and summary.json's split agree."""
    at_half = per_label_scores(targets, (np.asarray(probs) >= 0.5).astype(np.uint8), tuner.beta)
    return {"beta": tuner.beta, "split": split, "thresholds": tuner.thresholds_.tolist(),
            **split_scores(probs, targets, tuner, skipped_images).to_dict(),
            "precision_at_0.5": at_half["precision"].tolist(), "recall_at_0.5": at_half["recall"].tolist()}


def format_scores(label_names: list[str], scores: dict[str, Any], title: str) -> str:
    b = f"F{scores['beta']:g}"
    columns = {"support": scores["support"], "thr": scores["thresholds"],
               "P@0.5": scores["precision_at_0.5"], "R@0.5": scores["recall_at_0.5"], f"{b}@0.5": scores["fbeta_at_0.5"],
               "P tuned": scores["precision"], "R tuned": scores["recall"], f"{b} tuned": scores["fbeta"]}
    table = format_table(label_names, columns, title=title)
    split = scores.get("split", "val")
    return (f"{table}\n{metric_name(split, scores['beta'])} {scores['macro_fbeta']:.3f}  "
            f"(macro {b} at the run's thresholds; {scores['macro_fbeta_at_0.5']:.3f} at 0.5)")


def format_point_scores(label_names: list[str], scores: dict[str, Any], point: OperatingPoint, title: str) -> str:
    """The table of point_scores, headed by what the point is; a label it never predicts shows thr -."""
    nan = float("nan")
    columns = {"thr": [nan if t is None else t for t in scores["thresholds"]],
               "predicted": scores["predicted"], "P": scores["precision"], "R": scores["recall"],
               f"F{scores['beta']:g}": scores["fbeta"]}
    if scores["val_precision_low"] is not None:
        columns["val P low"] = [nan if v is None else v for v in scores["val_precision_low"]]
    per_photo = scores["labels_per_photo"]
    return (f"operating point {point.describe(label_names)}\n{format_table(label_names, columns, title=title)}\n"
            f"labels per photo: {per_photo['mean']:.2f} on average, at most {per_photo['max']}")


def evaluate_run(run: RunDir, table: LabelTable, split: str, progress: bool = True,
                 batch_size: int = 64, num_workers: int = 0, predictor: BasePredictor | None = None,
                 on_bad: str = "fail", suffix: str = "", probs: np.ndarray | None = None) -> dict[str, Any]:
    """Predict the labelled images of `table` (unless `probs` has them, NaN rows unreadable: then no
    model is loaded, they are scored at the run's thresholds), score them, write eval_<split><suffix>.json."""
    if probs is None and predictor is None:
        predictor = Predictor.from_run(run)
    decided_by: BasePredictor | RunContents = predictor or run.contents()  # label names, tuner, TTA
    check_table_labels_match_run(decided_by.label_names, table)
    if probs is None:
        probs = predictor.predict_proba(table.images, batch_size=batch_size, num_workers=num_workers,
                                        progress=progress, on_bad=on_bad)
    readable = ~np.isnan(probs).any(axis=1)
    if not readable.any():
        raise FashionStyleError(f"{table.source}: none of its {len(table)} images could be read; are its paths "
                                "relative to another folder? pass --image-dir DIR")
    table, probs = table.subset(np.flatnonzero(readable)), probs[readable]
    scores = score_table(table.require_targets(), probs, decided_by.tuner, split, int((~readable).sum()))
    scores.update(label_names=decided_by.label_names, source=table.source,
                  runtime=suffix.lstrip("_") or "torch", tta=decided_by.tta)
    atomic.write_json(run / f"eval_{split}{suffix}.json", scores)
    atomic.write_npz(run / f"eval_{split}{suffix}.npz", ids=np.array(table.ids), probs=probs.astype(np.float32),
                      targets=table.require_targets())
    if split == "test" and not suffix and decided_by.tta == run.tta():  # the run's own scores: its summary
        summary = summarize(decided_by.label_names, decided_by.tuner, *_stored_val(run))
        refresh_summary(run, summary.with_test(probs, table.require_targets(), scores["skipped_images"]))
    else:
        write_model_card(run)
    return scores


def _stored_val(run: RunDir) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not (run / "val_probs.npz").is_file():
        return None, None
    _, probs, targets = run.val_probs()
    return probs, targets


def check_table_labels_match_run(run_labels: list[str], table: LabelTable) -> None:
    """Refuse a label table whose labels (names and order) are not the run's."""
    if list(run_labels) != list(table.label_names):
        raise FashionStyleError(f"{table.source}: labels {table.label_names} differ from the run's "
                                f"{run_labels}; pass --label-names or the matching label file")


def evaluate_split(run: RunDir, table: LabelTable, split: str | None, settings: Any, loader: Any,
                   placement: Any, decode: str = "auto") -> dict[str, Any] | None:
    """`fashionstyle evaluate` as a library call: score `split` of `table` (evaluation_split picks the
    default), launching ranks when `placement` asks for several devices; None on a secondary rank.
    The scores carry `path` (the eval JSON written); the model card is refreshed with them."""
    from fashionstyle.core.ranks import needs_launch
    from fashionstyle.inference.jobs import evaluate_probs
    from fashionstyle.inference.runtimes import predictor_for

    split = evaluation_split(run, table, split)
    part = table.split(split)
    suffix = "" if settings.runtime == "torch" else f"_{settings.runtime}"  # keep each runtime's scores
    probs = None
    if needs_launch(placement.devices, placement.num_nodes):
        probs = evaluate_probs(run, part, split, settings, loader, placement)
        if probs is None:
            return None  # rank 0 scores
    predictor = predictor_for(run, settings, decode=decode) if probs is None else None  # the ranks' did predict
    scores = evaluate_run(run, part, split, progress=loader.progress, batch_size=loader.batch_size,
                          num_workers=loader.num_workers, on_bad=loader.on_bad, suffix=suffix,
                          predictor=predictor, probs=probs)
    scores["path"] = str(run / f"eval_{split}{suffix}.json")  # evaluate_run refreshed the summary and card
    if settings.operating_point is not None:
        with np.load(run / f"eval_{split}{suffix}.npz") as data:
            point = run.contents().point(settings.operating_point)
            scores["operating_point"] = point_scores(point, data["probs"], data["targets"], scores["beta"])
    return scores
