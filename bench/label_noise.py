"""Corrupt a label file on purpose, to measure how well `fashionstyle audit` finds the damage.

    python bench/label_noise.py LABELS.csv --out NOISY.csv --flips FLIPS.csv [--rate 0.05] [--seed 0]

For every label, rate x (its positives outside the test split) positives become negatives
and as many negatives become positives: both directions, in proportion to each label's
frequency. Test rows are left alone, so test scores stay on the true labels. FLIPS.csv
lists each flipped (image, label) with its true value: the answer key for the audit.
Image paths are written absolute, so NOISY.csv works from any folder.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def flip_entries(targets: np.ndarray, rate: float, seed: int) -> list[tuple[int, int]]:
    """(row, label) pairs to flip: per label, round(rate x positives) each way."""
    rng = np.random.default_rng(seed)
    flips = []
    for label in range(targets.shape[1]):
        column = targets[:, label]
        count = int(round(rate * column.sum()))
        for value in (1, 0):
            rows = rng.choice(np.flatnonzero(column == value), size=count, replace=False)
            flips += [(int(r), label) for r in rows]
    return flips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--flips", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    header, rows = read_rows(args.labels)
    names = header[2:]
    pool = [i for i, row in enumerate(rows) if row[1] != "test"]
    targets = np.array([[int(v) for v in rows[i][2:]] for i in pool])
    flips = flip_entries(targets, args.rate, args.seed)
    root = args.labels.resolve().parent
    with args.flips.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "true"])
        for r, label in flips:
            row = rows[pool[r]]
            writer.writerow([str(root / row[0]), names[label], row[2 + label]])
            row[2 + label] = "0" if row[2 + label] == "1" else "1"
    with args.out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([str(root / row[0]), *row[1:]] for row in rows)
    print(f"{len(flips)} flips of {targets.size} entries ({len(pool)} images x {len(names)} labels) "
          f"-> {args.out}, answer key {args.flips}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
