"""Active learning, simulated: labels hidden, photos to label chosen by `suggest` or at random.

    python bench/active_learning.py run --labels ../shared/data/garments/labels.csv --out /work/team/al_run \
        --strategies uncertainty margin random --select-after 1 --rounds 3
        # round 0: 10% of the train split labelled (stratified, seed 0), one model trained on it;
        # each round each strategy labels 10% more of the train split (the model of its last round chooses),
        # retrains (default recipe, 144 px, 6 epochs) and is scored: val and test macro F2 (tuned on val).
        # --select-after 1: after round 1 only the best non-random strategy on VAL goes on (with random).
        # OUT/results.json grows after every model, so a stopped run keeps what finished; run again to resume.
        # a strategy named NAME+round (uncertainty+round) chooses as NAME does, then trains each round as
        # `fashionstyle round` does: the new labels merged into the previous round's, init-from its run
        # (--round-epochs: that path's epochs); results.json keeps each model's training seconds (train_s)
    python bench/active_learning.py table /work/team/al_run        # the markdown table (several folders: side by side)
    python bench/active_learning.py plot /work/team/al_run --out docs/active_learning.png

Val and test rows stay labelled in every round's label file (val tunes the thresholds); only the
train split is hidden. Every figure is one seed (--seed) unless run again with another.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.core import atomic  # noqa: E402
from fashionstyle.core.config import TrainConfig  # noqa: E402
from fashionstyle.core.metrics import macro_fbeta  # noqa: E402
from fashionstyle.core.run import RunDir  # noqa: E402
from fashionstyle.data.images.source import ImageSource  # noqa: E402
from fashionstyle.data.labels.table import LabelTable, stratified_split  # noqa: E402
from fashionstyle.data.labels.read import read_labels  # noqa: E402
from fashionstyle.inference.outputs import csv_text  # noqa: E402
from fashionstyle.inference.streaming import LoaderSettings  # noqa: E402
from fashionstyle.analysis.suggest import SuggestSettings, path_key, suggest  # noqa: E402
from fashionstyle.labelstudio.round import plan_round, train_round  # noqa: E402

ROUND = "+round"  # a strategy's suffix: its rounds train from the previous round's weights (`fashionstyle round`)
RECIPE = dict(image_size=144, epochs=6, batch_size=64, lr=1e-3, lr_schedule="onecycle", weight_power=0.5,
              num_workers=1, logger=["csv"])


def write_label_file(table: LabelTable, labelled: np.ndarray, path: Path, held_out: bool = True) -> Path:
    """The labelled train rows plus (with `held_out`) every val and test row, with absolute image paths."""
    train = _train_rows(table)
    rows = ([str(table.images[i].resolve()), table.splits[i], *map(str, table.targets[i].tolist())]
            for i in range(len(table)) if labelled[i] or (held_out and not train[i]))
    return atomic.write_text(path, csv_text([["image", "split", *table.label_names], *rows]))


def train_and_score(table: LabelTable, labelled: np.ndarray, folder: Path, recipe: dict, seed: int) -> dict:
    """Train on the labelled rows (folder/labels.csv -> folder/run); val and test macro F2 at its thresholds."""
    from fashionstyle.training.train import train

    folder.mkdir(parents=True, exist_ok=True)
    labels = write_label_file(table, labelled, folder / "labels.csv")
    run = RunDir(folder / "run")
    seconds = None
    if not run.is_complete():
        shutil.rmtree(run.path, ignore_errors=True)  # a model stopped half-way: train it again
        began = time.perf_counter()
        train(TrainConfig(labels=str(labels), seed=seed, **recipe), run.path)
        seconds = time.perf_counter() - began
    return score(table, run, labelled, seconds)


def train_round_and_score(table: LabelTable, before: np.ndarray, labelled: np.ndarray, folder: Path,
                          previous: Path, epochs: int | None) -> dict:
    """The round path: the photos labelled since `before` as a label file, merged into the `previous` run's
    labels and trained from its weights (labelstudio/round.py, as `fashionstyle round --export` does)."""
    folder.mkdir(parents=True, exist_ok=True)
    new = write_label_file(table, labelled & ~before & _train_rows(table), folder / "new_labels.csv", held_out=False)
    run = RunDir(folder / "run")
    seconds = None
    if not run.is_complete():
        shutil.rmtree(run.path, ignore_errors=True)
        began = time.perf_counter()
        plan = plan_round(previous, run.path, export=new, epochs=epochs, say=print)
        print(train_round(plan).table(), flush=True)
        seconds = time.perf_counter() - began
    return score(table, run, labelled, seconds)


def score(table: LabelTable, run: RunDir, labelled: np.ndarray, train_s: float | None) -> dict:
    """Val and test macro F2 of `run` at its thresholds (train_s: its training seconds, None when resumed)."""
    from fashionstyle.inference.jobs import evaluate_probs

    tuner = run.thresholds()
    _, val_probs, val_targets = run.val_probs()
    test = table.split("test")
    test_probs = evaluate_probs(run, test, "test", loader=LoaderSettings(progress=False))
    return {"labelled": int(labelled.sum()), "run": str(run.path), "train_s": train_s,
            "val_f2": macro_fbeta(val_targets, tuner.predict(val_probs), tuner.beta),
            "test_f2": macro_fbeta(test.require_targets(), tuner.predict(test_probs), tuner.beta)}


def _train_rows(table: LabelTable) -> np.ndarray:
    return np.array([s == "train" for s in table.splits])


def choose(table: LabelTable, labelled: np.ndarray, run: Path, strategy: str, n: int, folder: Path,
           seed: int, pool_factor: int) -> np.ndarray:
    """The labelled mask after `suggest` (with `strategy`) adds n train photos chosen by `run`."""
    train = np.array([s == "train" for s in table.splits])
    hidden = np.flatnonzero(train & ~labelled)
    pool = atomic.write_text(folder / "unlabelled.csv",
                             csv_text([["image"], *([str(table.images[i].resolve())] for i in hidden)]))
    result = suggest(RunDir.open(run), ImageSource.open(pool), SuggestSettings(n, strategy, pool_factor, seed=seed),
                     folder / "to_label.csv", loader=LoaderSettings(progress=False))
    by_path = {path_key(table.images[i].resolve()): i for i in hidden}
    added = labelled.copy()
    added[[by_path[path_key(p)] for p in result.paths]] = True
    return added


def simulate(labels: Path, out: Path, strategies: list[str], rounds: int, start: float, step: float,
             seed: int, select_after: int, recipe: dict, pool_factor: int, round_epochs: int | None = None) -> dict:
    table = read_labels(labels)
    train = np.array([s == "train" for s in table.splits])
    first = np.zeros(len(table), bool)
    first[np.flatnonzero(train)] = stratified_split(table.targets[train], start, seed)
    n_step = int(round(step * train.sum()))
    results_file = out / "results.json"
    results = atomic.read_json(results_file) if results_file.is_file() else {}
    record = lambda key, value: (results.__setitem__(key, value), atomic.write_json(results_file, results))  # noqa: E731
    if "round0" not in results:
        record("round0", train_and_score(table, first, out / "round0", recipe, seed))
    print("round0", results["round0"], flush=True)
    masks = {s: first for s in strategies}
    for r in range(1, rounds + 1):
        for s in list(masks):
            key = f"{s}/round{r}"
            folder = out / s / f"round{r}"
            mask_file = folder / "labelled.npy"
            if mask_file.is_file():
                masks[s] = np.load(mask_file)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                previous = results["round0" if r == 1 else f"{s}/round{r - 1}"]["run"]
                np.save(folder / "before.npy", masks[s])
                masks[s] = choose(table, masks[s], Path(previous), s.removesuffix(ROUND), n_step, folder, seed,
                                  pool_factor)
                np.save(mask_file, masks[s])
            if key not in results and s.endswith(ROUND):
                previous = results["round0" if r == 1 else f"{s}/round{r - 1}"]["run"]
                trained = train_round_and_score(table, np.load(folder / "before.npy"), masks[s], folder,
                                                Path(previous), round_epochs)
                record(key, {**trained, "strategy": s})
            elif key not in results:
                record(key, {**train_and_score(table, masks[s], folder, recipe, seed), "strategy": s})
            print(key, results[key], flush=True)
        if r == select_after:
            contenders = [s for s in masks if s != "random" and not s.endswith(ROUND)]
            best = max(contenders, key=lambda s: results[f"{s}/round{r}"]["val_f2"])
            masks = {s: m for s, m in masks.items() if s in (best, "random") or s.endswith(ROUND)}
            record("chosen_on_val", best)
    return results


def table_text(results: dict, n_train: int | None = None) -> str:
    """Rows: labelled share; columns: each strategy's test macro F2 (val in brackets, then the model's training
    seconds where results.json has them)."""
    strategies = sorted({v["strategy"] for k, v in results.items() if isinstance(v, dict) and "strategy" in v})
    head = "| labelled photos | " + " | ".join(f"`{s}` test (val)" for s in strategies) + " |"
    lines = [head, "|---" * (len(strategies) + 1) + "|"]
    zero = results["round0"]
    lines.append(f"| {zero['labelled']} (start) | " + " | ".join(
        f"{zero['test_f2']:.3f} ({zero['val_f2']:.3f})" for _ in strategies) + " |")
    r = 1
    while any(f"{s}/round{r}" in results for s in strategies):
        cells, count = [], ""
        for s in strategies:
            row = results.get(f"{s}/round{r}")
            seconds = f", {row['train_s']:.0f} s" if row and row.get("train_s") else ""
            cells.append(f"{row['test_f2']:.3f} ({row['val_f2']:.3f}{seconds})" if row else "-")
            count = count or (str(row["labelled"]) if row else "")
        lines.append(f"| {count} (round {r}) | " + " | ".join(cells) + " |")
        r += 1
    return "\n".join(lines)


def plot(results: dict, out: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    strategies = sorted({v["strategy"] for v in results.values() if isinstance(v, dict) and "strategy" in v})
    for s, marker in zip(strategies, "osvD^"):
        points = [results["round0"]] + [results[k] for k in sorted(results) if k.startswith(f"{s}/round")]
        ax.plot([p["labelled"] for p in points], [p["test_f2"] for p in points], marker=marker, label=s)
    ax.set_xlabel("labelled photos of the train split")
    ax.set_ylabel("test macro F2 (thresholds tuned on val)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--strategies", nargs="+", default=["uncertainty", "random"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--start", type=float, default=0.1)
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--select-after", type=int, default=0, help="round after which only the best on val goes on")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--image-size", type=int, default=RECIPE["image_size"])
    p.add_argument("--pool-factor", type=int, default=SuggestSettings.pool_factor)
    p.add_argument("--recipe", default="{}", help="JSON of more TrainConfig fields (tests: a tiny backbone)")
    p.add_argument("--round-epochs", type=int, default=None,
                   help=f"epochs of a NAME{ROUND} strategy's rounds, from the previous weights (default: --epochs)")
    for name in ("table", "plot"):
        p = sub.add_parser(name)
        p.add_argument("folders", type=Path, nargs="+", help="OUT folders of `run` (several: their strategies side "
                                                             "by side, round 0 from the first)")
        if name == "plot":
            p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "run":
        recipe = {**RECIPE, "epochs": args.epochs, "image_size": args.image_size, **json.loads(args.recipe)}
        args.out.mkdir(parents=True, exist_ok=True)
        results = simulate(args.labels, args.out, args.strategies, args.rounds, args.start, args.step,
                           args.seed, args.select_after, recipe, args.pool_factor, args.round_epochs)
        print(table_text(results))
        return 0
    results: dict = {}
    for folder in reversed(args.folders):
        results.update(atomic.read_json(folder / "results.json"))
    print(table_text(results) if args.command == "table" else plot(results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
