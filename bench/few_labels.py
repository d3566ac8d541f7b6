"""Few labels: fashionstyle's recipes against a linear probe on frozen ImageNet features, by train-set size.

    python bench/few_labels.py --labels ../shared/data/garments/labels.csv --sizes 250 1000 --seeds 0 \\
        --recipes finetune lp-ft --out runs/few [--json few.json] [--plot few.png]

For each size and seed, the train split is cut to a seeded subset (val and test kept whole) and written
as OUT/SIZE_sSEED/labels.csv. Then:
  probe    the anchor: frozen tf_efficientnet_lite0 (the bundled ImageNet weights), global-pooled features
           of the centre crop and its mirror averaged, one logistic regression per label (C from a grid,
           chosen on val macro F2 at thresholds tuned exactly on val), macro F2 on test at those thresholds
  RECIPE   `fashionstyle train --recipe RECIPE` on the subset (its own defaults otherwise), then `evaluate
           --split test`
Each row: test macro F2, val macro F2, wall seconds and peak RSS (of the child process for the recipes).
Settings are chosen on val only; test is reported once.
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from fashionstyle.core.metrics import macro_fbeta  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402
from fashionstyle.data.labels.read import read_labels  # noqa: E402

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def subset(labels: Path, size: int, seed: int, out: Path) -> Path:
    """OUT/labels.csv: `size` seeded train rows (absolute image paths), every val and test row."""
    with labels.open(newline="") as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if r["split"] == "train"]
    keep = set(np.random.default_rng(seed).choice(len(train), size=min(size, len(train)), replace=False).tolist())
    chosen = [r for k, r in enumerate(train) if k in keep] + [r for r in rows if r["split"] != "train"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "labels.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in chosen:
            writer.writerow({**row, "image": str((labels.parent / row["image"]).resolve())})
    return path


def features(paths: list[Path], image_size: int) -> np.ndarray:
    """(N, D) pooled lite0 features of the centre crop and its mirror, averaged."""
    import timm
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from fashionstyle.model.weights import bundled_weights, load_features, read_state

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    load_features(model, read_state(bundled_weights("tf_efficientnet_lite0")))
    model.eval()
    cfg = model.pretrained_cfg
    prep = T.Compose([T.Resize(int(image_size / 0.875)), T.CenterCrop(image_size), T.ToTensor(),
                      T.Normalize(cfg["mean"], cfg["std"])])
    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), 64):
            batch = torch.stack([prep(Image.open(p).convert("RGB")) for p in paths[start:start + 64]])
            out.append(((model(batch) + model(torch.flip(batch, dims=[3]))) / 2).numpy())
    return np.concatenate(out)


def cached_features(paths: list[Path], image_size: int, cache: Path) -> np.ndarray:
    """features() of `paths`, each photo computed once per `cache` file (every size and seed share it)."""
    known = dict(np.load(cache, allow_pickle=False)) if cache.is_file() else {}
    missing = [p for p in paths if str(p) not in known]
    if missing:
        known.update(zip(map(str, missing), features(missing, image_size)))
        np.savez(cache, **known)
    return np.stack([known[str(p)] for p in paths])


def probe(labels: Path, image_size: int, cache: Path) -> dict:
    """The linear probe anchor on one subset: C and thresholds chosen on val, scored on test. Its seconds
    and memory include extracting only the features no earlier subset needed (the cache)."""
    start = time.perf_counter()
    table = read_labels(labels)
    parts = {s: table.split(s) for s in ("train", "val", "test")}
    x = {s: cached_features(list(t.images), image_size, cache) for s, t in parts.items()}
    y = {s: t.require_targets() for s, t in parts.items()}
    best = None
    for c in C_GRID:
        val, test = (np.column_stack([_fit(x["train"], y["train"][:, j], c).predict_proba(x[s])[:, 1]
                                      if y["train"][:, j].any() else np.zeros(len(x[s]))
                                      for j in range(y["train"].shape[1])]) for s in ("val", "test"))
        tuner = ThresholdTuner(beta=2.0, rule="exact").fit(val, y["val"])
        score = macro_fbeta(y["val"], tuner.predict(val), 2.0)
        if best is None or score > best[0]:
            best = (score, c, macro_fbeta(y["test"], tuner.predict(test), 2.0))
    return {"val": best[0], "test": best[2], "C": best[1], "seconds": time.perf_counter() - start,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x, y)


def recipe(labels: Path, name: str, out: Path, extra: list[str]) -> dict:
    """`fashionstyle train --recipe NAME` then `evaluate --split test`; macro F2 on val and test."""
    run = out / name
    start = time.perf_counter()
    cli = [sys.executable, "-m", "fashionstyle.cli"]
    train = subprocess.run([*cli, "train", "--labels", str(labels), "--out", str(run), "--recipe", name,
                            "--no-progress", *extra], capture_output=True, text=True)
    if train.returncode:
        raise SystemExit(f"{name}: train failed\n{train.stderr[-2000:]}")
    test = subprocess.run([*cli, "evaluate", str(run), "--labels", str(labels), "--split", "test", "--quiet"],
                          capture_output=True, text=True)
    if test.returncode:
        raise SystemExit(f"{name}: evaluate failed\n{test.stderr[-2000:]}")
    summary = json.loads((run / "eval_test.json").read_text())
    val = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    return {"val": _val_macro(val), "test": summary["macro_fbeta"], "seconds": time.perf_counter() - start,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6}


def _val_macro(summary: dict) -> float | None:
    return (summary.get("val") or {}).get("macro_fbeta")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--recipes", nargs="+", default=["finetune", "lp-ft"])
    parser.add_argument("--probe-size", type=int, default=224, help="the probe's input size (default 224)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="a PNG of test macro F2 against train photos, mean and range over seeds")
    parser.add_argument("--train-flags", default="", help="extra flags for every `train`, e.g. '--epochs 6'")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        for seed in args.seeds:
            folder = args.out / f"{size}_s{seed}"
            labels = subset(args.labels, size, seed, folder)
            cache = args.out / f"probe_features_{args.probe_size}.npz"
            rows = [("probe", lambda: probe(labels, args.probe_size, cache))] + [
                (name, lambda name=name: recipe(labels, name, folder, args.train_flags.split()))
                for name in args.recipes]
            for name, measure in rows:
                result = {"size": size, "seed": seed, "method": name, **measure()}
                results.append(result)
                print(json.dumps(result), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)
    print(f"\n{'size':>6} {'seed':>4} {'method':>10} {'test F2':>8} {'val F2':>8} {'seconds':>8}")
    for r in results:
        val = f"{r['val']:.3f}" if r["val"] is not None else "-"
        print(f"{r['size']:>6} {r['seed']:>4} {r['method']:>10} {r['test']:>8.3f} {val:>8} {r['seconds']:>8.0f}")


NAMES = {"probe": "linear probe (the anchor)", "auto": "fashionstyle's default (--recipe auto)"}


def plot(results: list[dict], path: Path) -> None:
    """Test macro F2 against train photos: per method, the mean over seeds, and their range as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in results):
        sizes = sorted({r["size"] for r in results if r["method"] == method})
        scores = [[r["test"] for r in results if r["method"] == method and r["size"] == n] for n in sizes]
        means = [float(np.mean(v)) for v in scores]
        ax.errorbar(sizes, means, yerr=[[m - min(v) for m, v in zip(means, scores)],
                                        [max(v) - m for m, v in zip(means, scores)]],
                    marker="o", capsize=3, label=NAMES.get(method, f"--recipe {method}"))
    sizes = sorted({r["size"] for r in results})
    ax.set(xscale="log", xticks=sizes, xticklabels=[str(n) for n in sizes], xlabel="labelled train photos",
           ylabel="test macro F2",
           title="garments: few labels (mean over seeds, range as bars)")
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
