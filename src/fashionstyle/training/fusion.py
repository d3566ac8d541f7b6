"""Probability fusion of several runs (the report fused DenseNet-201, ResNet-101, ResNet-152).

    fused = fuse_runs(["runs/d201", "runs/r101", "runs/r152"], "runs/fused")

The fused run averages its members' probabilities (weighted), re-tunes the
thresholds on the fused validation probabilities, and holds copies of the
member model files, so it predicts on its own like any other run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.model_card import write_model_card
from fashionstyle.core.run import Member, RunDir
from fashionstyle.core.thresholds import ThresholdTuner


def check_compatible(runs: Sequence[RunDir]) -> tuple[list[str], np.ndarray, list[str]]:
    """Same labels and the same validation images and targets, or a clear error."""
    names = runs[0].label_names()
    ids, _, targets = runs[0].val_probs()
    for run in runs[1:]:
        if run.tta() != runs[0].tta():
            raise FashionStyleError(f"cannot fuse: {run.path} was tuned with TTA {run.tta()!r}, "
                                    f"{runs[0].path} with {runs[0].tta()!r}")
        if run.label_names() != names:
            raise FashionStyleError(f"cannot fuse: {run.path} has labels {run.label_names()}, "
                                    f"{runs[0].path} has {names}")
        other_ids, _, other_targets = run.val_probs()
        if other_ids != ids or not np.array_equal(other_targets, targets):
            raise FashionStyleError(f"cannot fuse: {run.path} was validated on other images than "
                                    f"{runs[0].path}; train them on the same labels, split and seed")
    return names, targets, ids


def fusion_weights(n: int, weights: Sequence[float] | None) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != n or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise FashionStyleError(f"--weights needs {n} non-negative numbers, not all zero; got {list(w)}")
    return w / w.sum()


def fused_probs(runs: Sequence[RunDir], weights: np.ndarray) -> np.ndarray:
    return sum(w * run.val_probs()[1].astype(np.float64) for w, run in zip(weights, runs))


def member_cover(members: Sequence[Member], label: str) -> float:
    return sum(m.weight for m in members if label in m.labels)


def flatten_members(run: RunDir, weight: float, names: list[str]) -> list[Member]:
    """The run's members, their weights scaled so that the run counts `weight` per label."""
    members = run.members()
    covers = {member_cover(members, n) for n in names}
    if len(covers) != 1 or 0.0 in covers:
        raise FashionStyleError(f"{run.path}: its members do not cover every label equally")
    total = covers.pop()
    return [Member(m.model, m.labels, weight * m.weight / total) for m in members]


def copy_model(source: Path, target: Path) -> None:
    """Hard-link where possible (same file system), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def fuse_runs(run_paths: Sequence[str | Path], out: str | Path,
              weights: Sequence[float] | None = None, beta: float | None = None) -> RunDir:
    """Average several runs into a new run directory with re-tuned thresholds."""
    if not run_paths:
        raise FashionStyleError("fuse needs at least one run")
    runs = [RunDir.open(p) for p in run_paths]
    names, targets, ids = check_compatible(runs)
    w = fusion_weights(len(runs), weights)
    probs = fused_probs(runs, w)
    beta = beta if beta is not None else runs[0].thresholds().beta
    tuner = ThresholdTuner(beta=beta, rule=runs[0].threshold_rule()).fit(probs, targets)  # before writing
    fused = RunDir.create(out, resumable=False)
    fused.write_manifest("fused", complete=False)
    members = []
    for k, (run, weight) in enumerate(zip(runs, w)):
        if weight == 0:  # left out: members.json holds positive weights only
            continue
        for j, member in enumerate(flatten_members(run, float(weight), names)):
            target = fused / "members" / f"{k}_{j}_{member.model.name}"
            copy_model(member.model, target)
            members.append(Member(target, member.labels, member.weight))
    fused.write_label_names(names)
    fused.write_members(members)
    fused.write_val_probs(ids, probs, targets)
    fused.write_thresholds(tuner)
    fused.write_tta(runs[0].tta())
    atomic.write_json(fused / "fusion.json", {"runs": [str(r.path.resolve()) for r in runs],
                                               "weights": w.tolist()})
    fused.write_manifest("fused", complete=True, out_of_fold=any(run.out_of_fold() for run in runs))
    write_model_card(fused)
    return fused
