"""Labels for a fraction of the train split, the rest as unlabelled images: the data of issue 23's
semi-supervised table, and the table itself.

    python bench/semi_supervised.py split --labels ../shared/data/garments/labels.csv --fraction 0.3 --out /tmp/g30
        # -> /tmp/g30/labels.csv (30% of train, stratified, seed 0; all of val and test) and
        #    /tmp/g30/unlabelled.csv (the other 70% of train, an `image` column of absolute paths)
    python bench/semi_supervised.py table RUN [RUN ...]
        # -> val and test macro F2 (tuned) of each run, from RUN/val_probs.npz and RUN/eval_test.json
    python bench/semi_supervised.py plot --out docs/semi_supervised.png --supervised 10=runs/sup10 30=runs/sup30 \
        --self-trained 10=runs/st10 30=runs/st30 --fusion-taught 10=runs/st10_f3 30=runs/st30_f3 \
        --plain 10=plain10.json 30=plain30.json
        # -> test macro F2 against the labelled fraction (%), one line per method

The kept rows are chosen as `train` chooses its validation rows (label_table.stratified_split: every label
keeps about `fraction` of its positives), with a fixed seed, so the subsets are the same every time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.core import atomic  # noqa: E402
from fashionstyle.core.metrics import macro_fbeta  # noqa: E402
from fashionstyle.core.run import RunDir  # noqa: E402
from fashionstyle.data.labels.table import stratified_split  # noqa: E402
from fashionstyle.data.labels.read import read_labels  # noqa: E402
from fashionstyle.inference.outputs import csv_text  # noqa: E402


def split(labels: Path, fraction: float, out: Path, seed: int = 0) -> tuple[int, int]:
    """Write out/labels.csv (kept train rows + val + test) and out/unlabelled.csv; (kept, unlabelled)."""
    if (out / "labels.csv").resolve() == labels.resolve():
        raise SystemExit(f"--out {out}: would overwrite the label file it reads; choose another folder")
    table = read_labels(labels)
    train = np.array([s == "train" for s in table.splits])
    keep = np.zeros(len(table), bool)
    rows = np.flatnonzero(train)
    keep[rows] = stratified_split(table.targets[rows], fraction, seed) if fraction < 1 else True
    out.mkdir(parents=True, exist_ok=True)
    kept_rows = ([str(table.images[i].resolve()), table.splits[i], *map(str, table.targets[i].tolist())]
                 for i in range(len(table)) if keep[i] or not train[i])
    # each file whole or not at all; the label file last, so a stopped split leaves no half pair
    atomic.write_text(out / "unlabelled.csv", csv_text([["image"], *([str(table.images[i].resolve())]
                                                                      for i in np.flatnonzero(train & ~keep))]))
    atomic.write_text(out / "labels.csv", csv_text([["image", "split", *table.label_names], *kept_rows]))
    return int(keep.sum()), int((train & ~keep).sum())


def scores(run: Path) -> tuple[float, float]:
    """(val macro F2 at the run's thresholds, test macro F2 from its eval_test.json or nan)."""
    run_dir = RunDir(run)
    _, probs, targets = run_dir.val_probs()
    tuner = run_dir.thresholds()
    val = macro_fbeta(targets, tuner.predict(probs), tuner.beta)
    test_file = run / "eval_test.json"
    test = json.loads(test_file.read_text())["macro_fbeta"] if test_file.is_file() else float("nan")
    return float(val), float(test)


def test_score(source: str) -> float:
    """Test macro F2 (tuned) of a run folder, or of bench/plain_loop.py's --json file."""
    path = Path(source)
    if path.suffix == ".json":
        return float(json.loads(path.read_text())["test_f2_tuned"])
    return scores(path)[1]


LINES = {  # plot's flags and the lines they draw
    "plain": "bench/plain_loop.py, labelled images only",
    "supervised": "fashionstyle train, labelled images only",
    "self-trained": "fashionstyle distill (teacher: that model), + unlabelled",
    "fusion-taught": "fashionstyle distill (teacher: a fusion of three), + unlabelled",
}


def plot(out: Path, lines: dict[str, list[str]]) -> Path:
    """Test macro F2 against the labelled share of the train split, one line per method."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, ((name, points), marker) in enumerate(zip(lines.items(), "osvD^")):
        pairs = sorted((float(p.split("=", 1)[0]), test_score(p.split("=", 1)[1])) for p in points)
        line, = ax.plot([x for x, _ in pairs], [y for _, y in pairs], marker=marker, label=name)
        for x, y in pairs:  # each line's values a step higher, so that close ones do not overlap
            ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(6, -16 + 9 * i), fontsize=7,
                        color=line.get_color())
    ax.set_xscale("log")
    ax.set_xticks([10, 30, 100], ["10%", "30%", "100%"])
    ax.set_xlabel("labelled share of the train split (the rest: unlabelled)")
    ax.set_ylabel("test macro F2 (thresholds tuned on val)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.margins(x=0.12, y=0.08)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("split")
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("table")
    p.add_argument("runs", type=Path, nargs="+")
    p = sub.add_parser("plot")
    p.add_argument("--out", type=Path, required=True)
    for flag in LINES:
        p.add_argument(f"--{flag}", nargs="+", default=[], metavar="PERCENT=RUN")
    args = parser.parse_args(argv)
    if args.command == "plot":
        chosen = {name: getattr(args, flag.replace("-", "_")) for flag, name in LINES.items()}
        print(plot(args.out, {name: points for name, points in chosen.items() if points}))
        return 0
    if args.command == "split":
        kept, unlabelled = split(args.labels, args.fraction, args.out, args.seed)
        print(f"{args.out}: {kept} labelled train images, {unlabelled} unlabelled")
        return 0
    print("| run | val macro F2 (tuned) | test macro F2 (tuned) |\n|---|---|---|")
    for run in args.runs:
        val, test = scores(run)
        print(f"| {run.name} | {val:.4f} | {test:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
