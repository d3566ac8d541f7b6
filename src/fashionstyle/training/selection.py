"""Per-label ensemble selection: the JD contest winner's greedy choice of models for each label.

    selected = select_runs(["runs/d201", "runs/r101", "runs/r152"], "runs/selected")
    print(selection_table(selected))

Fusion (fusion.py) averages every run for every label. Selection instead
picks, for each label separately, the runs whose average predicts that label
best on the validation split: Caruana et al.'s (2004) greedy forward
selection with replacement, scored by the label's F-beta at its tuned
threshold (`best_threshold`).

    1. start from the run with the best validation F-beta for the label;
    2. add the run (possibly one already chosen) whose addition to the running
       average gives the best F-beta; repeat while that strictly improves it,
       at most `max_rounds` times.

A run chosen c times weighs c / (the label's total count) in that label's
average, so the selection of a label never scores below its best single run
on the validation split (the split it was chosen on: expect some optimism
there; judge it on a test split with `fashionstyle evaluate`).

The selected run directory holds the chosen members' model files (like a fused
run), a member per (model, labels of equal weight) with those weights, the
selected validation probabilities, thresholds tuned on them, and
`selection.json`:

    {"beta": 2.0, "max_rounds": 10, "runs": [RUN, ...],
     "labels": {LABEL: {"counts": {RUN: count, ...},        # chosen runs only
                        "fbeta": F of the selection,
                        "best_single_fbeta": F of the best single run,
                        "best_single_run": RUN,
                        "single_fbeta": {RUN: F, ...}}, ...}}

F values are null for a label without validation positives; such a label
cannot be scored and gets the plain average of all runs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import check_beta
from fashionstyle.core.model_card import write_model_card
from fashionstyle.core.run import Member, RunDir
from fashionstyle.core.thresholds import TIE_TOL, ThresholdTuner, best_threshold
from fashionstyle.training.fusion import check_compatible, copy_model, flatten_members

__all__ = ["greedy_select", "select_runs", "selection_table", "weighted_average"]


def tuned_fbeta(scores: np.ndarray, targets: np.ndarray, beta: float = 2.0) -> float:
    """F-beta of one label at its best threshold (nan without positives)."""
    return best_threshold(scores, targets, beta)[1]


def weighted_average(probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average of the rows of `probs` (K, N), row k counted counts[k] times (float64)."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts[:, None] * probs).sum(axis=0) / counts.sum()


def _check_max_rounds(max_rounds: int) -> int:
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, (int, np.integer)) or max_rounds < 0:
        raise FashionStyleError(f"max_rounds must be an integer >= 0, got {max_rounds!r}")
    return int(max_rounds)


def _candidates(probs_list: Sequence[np.ndarray] | np.ndarray, targets: np.ndarray) -> np.ndarray:
    try:
        probs = np.asarray(probs_list, dtype=np.float64)
    except ValueError:  # ragged
        raise FashionStyleError("selection candidates must all have the same number of scores") from None
    targets = np.asarray(targets)
    if probs.ndim != 2 or len(probs) == 0 or targets.shape != probs.shape[1:]:
        raise FashionStyleError("selection needs one or more candidate score arrays of shape (N,) and "
                                f"targets of shape (N,); got {probs.shape} and {targets.shape}")
    return probs


def greedy_select(probs_list: Sequence[np.ndarray] | np.ndarray, targets: np.ndarray,
                  beta: float = 2.0, max_rounds: int = 10) -> np.ndarray:
    """How often each candidate is chosen for one label: int counts (K,).

    `probs_list` holds K candidates' validation scores (N,) for the label,
    `targets` its 0/1 targets (N,). The best single candidate (by tuned
    F-beta; the first on ties) starts with count 1; each round adds the
    candidate, repeats allowed, whose addition gives the best tuned F-beta of
    the count-weighted average, as long as that beats the current F-beta;
    at most `max_rounds` rounds, so counts sum to at most 1 + max_rounds.
    Without positive targets nothing can be scored: every candidate gets 1.
    """
    probs = _candidates(probs_list, targets)
    beta, max_rounds = check_beta(beta), _check_max_rounds(max_rounds)
    singles = np.array([tuned_fbeta(p, targets, beta) for p in probs])
    counts = np.zeros(len(probs), dtype=np.int64)
    if np.isnan(singles).any():  # no positives: F is undefined for every candidate
        counts[:] = 1
        return counts
    first = int(np.argmax(singles))
    counts[first], current = 1, singles[first]
    for _ in range(max_rounds):
        trials = []
        for k in range(len(probs)):
            trial = counts.copy()
            trial[k] += 1
            trials.append(tuned_fbeta(weighted_average(probs, trial), targets, beta))
        k = int(np.argmax(trials))
        if not trials[k] > current + TIE_TOL:
            break
        counts[k] += 1
        current = trials[k]
    return counts


def _common_tta(runs: Sequence[RunDir]) -> str:
    """The test-time augmentation all runs' validation probabilities were made with."""
    found = {str(run.path): run.tta() for run in runs}
    if len(set(found.values())) > 1:
        raise FashionStyleError("cannot select: the runs' validation probabilities use different TTA ("
                                + ", ".join(f"{p}: {t}" for p, t in found.items())
                                + "); re-tune them with the same `fashionstyle tune RUN --tta ...`")
    return next(iter(found.values()))


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def select_runs(run_paths: Sequence[str | Path], out: str | Path, beta: float = 2.0,
                max_rounds: int = 10) -> RunDir:
    """Greedy per-label selection over several runs into a new run directory (see the module docstring)."""
    if not run_paths:
        raise FashionStyleError("select needs at least one run")
    beta, max_rounds = check_beta(beta), _check_max_rounds(max_rounds)
    runs = [RunDir.open(p) for p in run_paths]
    paths = [str(run.path.resolve()) for run in runs]
    if len(set(paths)) != len(paths):
        raise FashionStyleError("select: a run is given twice (selection reuses runs by itself)")
    names, targets, ids = check_compatible(runs)
    tta = _common_tta(runs)
    probs = np.stack([run.val_probs()[1].astype(np.float64) for run in runs])  # (K, N, L)

    counts = np.zeros((len(names), len(runs)), dtype=np.int64)  # (L, K)
    selected = np.empty(probs.shape[1:])  # (N, L)
    report: dict[str, Any] = {}
    for j, name in enumerate(names):
        column, y = probs[:, :, j], targets[:, j]
        counts[j] = greedy_select(column, y, beta, max_rounds)
        selected[:, j] = weighted_average(column, counts[j])
        singles = [tuned_fbeta(p, y, beta) for p in column]
        best = None if math.isnan(singles[0]) else int(np.argmax(singles))
        report[name] = {
            "counts": {paths[k]: int(c) for k, c in enumerate(counts[j]) if c},
            "fbeta": _nan_to_none(tuned_fbeta(selected[:, j], y, beta)),
            "best_single_fbeta": None if best is None else float(singles[best]),
            "best_single_run": None if best is None else paths[best],
            "single_fbeta": {p: _nan_to_none(f) for p, f in zip(paths, singles)},
        }

    tuner = ThresholdTuner(beta=beta, rule=runs[0].threshold_rule()).fit(selected, targets)
    result = RunDir.create(out, resumable=False)
    result.write_manifest("selected", complete=False)
    result.write_label_names(names)
    result.write_members(_selected_members(runs, names, counts, result))
    result.write_val_probs(ids, selected, targets)
    result.write_thresholds(tuner)
    if tta != "none":
        result.write_tta(tta)
    atomic.write_json(result / "selection.json", {"beta": beta, "max_rounds": max_rounds,
                                                   "runs": paths, "labels": report})
    result.write_manifest("selected", complete=True, out_of_fold=any(run.out_of_fold() for run in runs))
    write_model_card(result)
    return result


def _selected_members(runs: Sequence[RunDir], names: list[str], counts: np.ndarray,
                      result: RunDir) -> list[Member]:
    """Members giving each label exactly its selected average; model files copied into `result`.

    A run chosen c of n times for a label weighs c / n there, spread over its
    own members as in fusion, so every label's weights sum to 1 (the selected
    run can be fused or selected again). A member gets one entry per group of
    its labels with equal weight; a model chosen for no label is left out.
    """
    shares = counts / counts.sum(axis=1, keepdims=True)  # (L, K)
    members = []
    for k, run in enumerate(runs):
        for i, member in enumerate(flatten_members(run, 1.0, names)):
            groups: dict[float, list[str]] = {}
            for label in member.labels:
                share = float(shares[names.index(label), k])
                if share > 0:
                    groups.setdefault(share, []).append(label)
            if not groups:
                continue
            target = result / "members" / f"{k}_{i}_{member.model.name}"
            copy_model(member.model, target)
            members += [Member(target, labels, share * member.weight) for share, labels in groups.items()]
    return members


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    """Run folder names where they tell the runs apart, else the paths below their common folder."""
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names) and len(paths) > 1:
        root = os.path.commonpath([os.path.abspath(p) for p in paths])
        names = [os.path.relpath(os.path.abspath(p), root) for p in paths]
    return dict(zip(paths, names if len(set(names)) == len(names) and "." not in names else paths))


def selection_table(out: str | Path | RunDir) -> str:
    """Per label: the chosen runs with their counts, and validation F-beta of the selection
    against the best single run, with a macro (mean) row."""
    run = RunDir.open(out)
    data = atomic.read_json(run / "selection.json")
    short = _short_names(data["runs"])
    beta = f"F{float(data['beta']):g}"

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    header = ["label", "chosen runs (count)", f"{beta} selection", f"{beta} best single", "gain"]
    rows, sel, single = [], [], []
    for label, entry in data["labels"].items():
        chosen = sorted(entry["counts"].items(), key=lambda kv: -kv[1])  # stable: run order on ties
        f_sel, f_single = entry["fbeta"], entry["best_single_fbeta"]
        gain = None if f_sel is None or f_single is None else f_sel - f_single
        rows.append([label, ", ".join(f"{short[p]} x{c}" for p, c in chosen), fmt(f_sel), fmt(f_single),
                     "n/a" if gain is None else f"{gain:+.3f}"])
        if gain is not None:
            sel.append(f_sel)
            single.append(f_single)
    macro_gain = f"{np.mean(sel) - np.mean(single):+.3f}" if sel else "n/a"
    macro = ["macro", "", fmt(float(np.mean(sel)) if sel else None),
             fmt(float(np.mean(single)) if single else None), macro_gain]
    widths = [max(len(r[j]) for r in (header, macro, *rows)) for j in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    title = (f"per-label selection of {len(data['runs'])} runs (validation, beta={float(data['beta']):g}, "
             f"at most {data['max_rounds']} additions per label)")
    return "\n".join([title, line(header), rule, *map(line, rows), rule, line(macro)])
