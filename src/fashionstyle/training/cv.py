"""K-fold cross-validation (`fashionstyle cv --folds K`), as the contest's winner used.

K models are trained on label-stratified folds of every labelled image outside
the test split; each predicts its held-out fold, so the out-of-fold (OOF)
probabilities cover the whole labelled set once. Thresholds are tuned on them,
and the run predicts with the K models averaged. The result is a run
directory like any other (`RUN/folds/<k>/` hold the fold runs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core import config as config_lib
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.label_rules import read_label_rules
from fashionstyle.core.model_card import write_model_card
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import Member, RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.cache import image_opener
from fashionstyle.data.labels.table import LabelTable, rarest_label_groups
from fashionstyle.data.labels.read import label_files, read_labels
from fashionstyle.data.splits import drop_bad_images
from fashionstyle.training.loop import train_multi, training_decodes_on_gpu, write_label_points
from fashionstyle.training.resume_checks import check_same_run, data_fingerprint
from fashionstyle.training.trackers.base import check_trackers


def stratified_folds(targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold id (0..folds-1) per row, stratified by each row's rarest positive label."""
    rng = np.random.default_rng(seed)
    group = rarest_label_groups(targets)
    fold = np.empty(len(targets), dtype=np.int64)
    start = 0  # continue the round robin across groups, so folds stay the same size
    for g in np.unique(group):
        members = rng.permutation(np.flatnonzero(group == g))
        fold[members] = (start + np.arange(len(members))) % folds
        start += len(members)
    return fold


def labelled_pool(config: TrainConfig) -> LabelTable:
    """Every labelled row outside the test split, readable images only."""
    if not config.labels:
        raise FashionStyleError("no label file: pass --labels FILE (or `labels:` in the config)")
    table = read_labels(config.labels, config.images or None, config.label_names, keep_splits=("train", "val"))
    table.require_targets()
    if table.splits is not None:
        table = table.subset([i for i, s in enumerate(table.splits) if s != "test"])
    opener = image_opener(config.cache, config.image_size, table.images, config.num_workers, config.progress,
                          secondary=is_secondary_process())
    table, _ = drop_bad_images(table, config.on_bad_image, decode=True, opener=opener)
    return table


def train_cv(config: TrainConfig, out: str | Path, folds: int = 5, resume: bool = False) -> RunDir:
    """Train `folds` models; returns the run that averages them, tuned on OOF probabilities."""
    if folds < 2:
        raise FashionStyleError(f"--folds must be at least 2, got {folds}")
    config.validate()
    if config.teacher:
        raise FashionStyleError("cv does not distill: drop --teacher (distil from the cv run instead: "
                                "`fashionstyle distill CV_RUN ...`)")
    if config.init_from:
        raise FashionStyleError("cv does not take --init-from: a model trained on a fold's held-out images would "
                                "make its out-of-fold probabilities optimistic")
    training_decodes_on_gpu(config)  # refused before anything is written
    check_trackers(config.logger, config.mlflow_uri)  # a tracker that cannot log fails before the run folder
    if resume:
        check_same_folds(RunDir(out), folds)  # before anything is read or written
    elif not is_secondary_process():
        RunDir(out).refuse_taken()
    pool = labelled_pool(config)
    rules = read_label_rules(label_files(config.labels), pool.label_names) if config.labels else None
    fold = stratified_folds(pool.targets, folds, config.seed)
    data = data_fingerprint(pool, pool.subset([]))
    if resume and not is_secondary_process():  # finished folds are kept: the settings and images must be theirs
        check_same_run(RunDir(out), config, data, parts="folds")
    run = RunDir.create(out, resume=resume)
    run.write_manifest("cv", complete=False, folds=folds, data=data)
    atomic.write_text(run / "config.yaml", config_lib.dump(config))
    run.write_label_names(pool.label_names)
    oof = np.full(pool.targets.shape, np.nan, np.float32)
    members = []
    for k in range(folds):
        print(f"[fold {k + 1}/{folds}]")
        held_out = np.flatnonzero(fold == k)
        fold_run = RunDir(run / "folds" / str(k))
        if not fold_run.is_complete():
            again = resume and (fold_run / "manifest.json").is_file()  # started: resumed, even before a checkpoint
            train_multi(config, fold_run.path, again,
                        (pool.subset(np.flatnonzero(fold != k)), pool.subset(held_out), []))
        oof[held_out] = fold_run.val_probs()[1]
        members.append(Member(fold_run / "model.pt", pool.label_names))
    run.write_members(members)
    run.write_val_probs(pool.ids, oof, pool.targets)
    run.write_thresholds(ThresholdTuner(beta=config.beta, rule=config.threshold_rule).fit(oof, pool.targets))
    write_label_points(run, rules)  # labels.yaml's points, on the out-of-fold probabilities
    run.write_manifest("cv", complete=True, folds=folds, data=data)
    write_model_card(run)
    return run


def check_same_folds(run: RunDir, folds: int) -> None:
    """A resumed cv run keeps its number of folds (another one would mix two fold layouts)."""
    path = run / "manifest.json"
    started = atomic.read_json(path).get("folds") if path.is_file() else None
    if started is not None and started != folds:
        raise FashionStyleError(f"{run.path}: was started with --folds {started}, not {folds}; resume it with "
                                f"--folds {started}, or start a new run in another --out")
