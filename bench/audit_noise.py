"""How well does `fashionstyle audit` find labels flipped on purpose? Precision and recall at k.

    python bench/label_noise.py labels.csv --out noisy.csv --flips flips.csv --rate 0.05
    fashionstyle cv --labels noisy.csv --out runs/noisy_cv --folds 4 ...
    python bench/audit_noise.py runs/noisy_cv --labels noisy.csv --flips flips.csv [--seeds 20]

k is the number of flipped (image, label) pairs among the run's images. Rankings compared:
  cleanlab         the audit's ranking (flagged pairs first, then cleanlab's label-quality score)
  random           a seeded random order, mean (and sd) over --seeds seeds
  |given - p|      the held-out probability's distance from the given label, largest first
  cleanlab flagged the pairs cleanlab flags (k = how many it flags)
At k = the number of flips precision equals recall; `x random` is precision over random's.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from fashionstyle.analysis.audit import audit_probs, audit_run, given_labels
from fashionstyle.data.labels.read import read_labels
from fashionstyle.core.run import RunDir


def answer_key(flips: Path, table, ids: list[str], names: list[str]) -> tuple[np.ndarray, int]:
    """(N, L) bool of the flipped pairs among the run's ids; and how many flips lie outside them."""
    id_of = {str(Path(image).resolve()): i for i, image in zip(table.ids, table.images)}
    row_of = {image_id: r for r, image_id in enumerate(ids)}
    truth, outside = np.zeros((len(ids), len(names)), dtype=bool), 0
    with flips.open(newline="") as f:
        for rec in csv.DictReader(f):
            row = row_of.get(id_of.get(str(Path(rec["image"]).resolve()), ""))
            if row is None:
                outside += 1
            else:
                truth[row, names.index(rec["label"])] = True
    return truth, outside


def hits(order: np.ndarray, truth: np.ndarray, k: int) -> int:
    """Flipped pairs among the first k of a ranking of flat (row * L + label) indices."""
    return int(truth.ravel()[order[:k]].sum())


def rankings(run: RunDir, table, ids: list[str], names: list[str], k: int, seeds: int) -> dict:
    """method -> (k, hits per seed); every ranking is of flat pair indices."""
    given = given_labels(table, ids, names)[0]
    probs = audit_probs(run)[1]
    row_of = {image_id: r for r, image_id in enumerate(ids)}
    issues = audit_run(run, table, top=given.size)[0]
    cleanlab = np.array([row_of[i.id] * len(names) + names.index(i.label) for i in issues])
    flagged = sum(i.flagged for i in issues)
    distance = np.argsort(-np.abs(given - probs).ravel(), kind="stable")
    randoms = [np.random.default_rng(s).permutation(given.size) for s in range(seeds)]
    return {"cleanlab": (k, [cleanlab]), "random": (k, randoms), "|given - p|": (k, [distance]),
            "cleanlab flagged": (flagged, [cleanlab])}


def table_text(results: dict, truth: np.ndarray) -> str:
    n_flips = int(truth.sum())
    found = {name: np.array([hits(o, truth, k) for o in orders], dtype=float) for name, (k, orders) in results.items()}
    base = found["random"].mean() / max(results["random"][0], 1)
    lines = [f"{'ranking':<18}{'k':>6}{'hits':>9}{'precision':>11}{'recall':>9}{'x random':>10}"]
    for name, (k, orders) in results.items():
        precision, recall = found[name].mean() / max(k, 1), found[name].mean() / max(n_flips, 1)
        ratio = f"{precision / base:.1f}" if base > 0 else "-"
        spread = f"  (sd {found[name].std():.1f} over {len(orders)} seeds)" if len(orders) > 1 else ""
        lines.append(f"{name:<18}{k:>6}{found[name].mean():>9.1f}{precision:>11.3f}{recall:>9.3f}{ratio:>10}{spread}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="cv run trained on the noisy labels")
    parser.add_argument("--labels", type=Path, required=True, help="the noisy label file (from label_noise.py)")
    parser.add_argument("--flips", type=Path, required=True, help="the answer key (from label_noise.py)")
    parser.add_argument("--seeds", type=int, default=20, help="random rankings to average (default: 20)")
    args = parser.parse_args(argv)
    run = RunDir.open(args.run)
    names = run.label_names()
    table = read_labels(args.labels, None, names)
    ids = audit_probs(run)[0]
    truth, outside = answer_key(args.flips, table, ids, names)
    k = int(truth.sum())
    print(f"{run.path}: {len(ids)} images x {len(names)} labels, {k} flipped pairs"
          + (f" ({outside} more outside the run's images)" if outside else ""))
    print(table_text(rankings(run, table, ids, names, k, args.seeds), truth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
