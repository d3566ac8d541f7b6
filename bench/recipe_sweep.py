"""Recipe levers against the plain timm loop, on one label file, at equal budget.

    python bench/recipe_sweep.py --labels ../shared/data/garments/labels.csv --out sweep/ \\
        --variants base wp05 ema --seeds 0 1 [--plain] [--image-size 144 --epochs 6 --batch-size 64]

Each variant is a set of `TrainConfig` overrides on top of BASE (the issue's setting:
tf_efficientnet_lite0 with its ImageNet weights, one-cycle to 1e-3). Every run is
trained, scored on val (thresholds tuned there) and on test, and appended to
OUT/results.jsonl; its val and test probabilities stay in OUT/<variant>_s<seed>/ so
threshold rules can be compared later on stored runs. `--plain` adds
bench/plain_loop.py with the same data, size, epochs, batch and seeds. Choose on
val; report test once.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.core.config import TrainConfig  # noqa: E402

BASE = dict(backbone="tf_efficientnet_lite0", pretrained=True, lr=1e-3, lr_schedule="onecycle")
VARIANTS: dict[str, dict] = {
    "base": {},
    "bce": {"loss": "bce"},
    "wp05": {"weight_power": 0.5},
    "adamw": {"optimizer": "adamw", "weight_decay": 0.01},
    "bblr": {"backbone_lr_scale": 0.3, "lr": 2e-3},
    "ema": {"ema_decay": 0.998},
    "head512": {"hidden": 512, "dropout": 0.2},
    "crop05": {"crop_scale": 0.5},
    "asl": {"loss": "asl"},
    "lr2e3": {"lr": 2e-3},
    "lr5e4": {"lr": 5e-4},
    "wp05bb": {"weight_power": 0.5, "backbone_lr_scale": 0.3, "lr": 2e-3},
    "combo": {"optimizer": "adamw", "weight_decay": 0.01, "ema_decay": 0.998, "weight_power": 0.5},
}


def run_variant(name: str, overrides: dict, seed: int, args: argparse.Namespace) -> dict:
    from fashionstyle.analysis.evaluate import evaluate_run
    from fashionstyle.data.labels.read import read_labels
    from fashionstyle.training.train import train

    out = args.out / f"{name}_s{seed}"
    shutil.rmtree(out, ignore_errors=True)
    values = {**BASE, "labels": str(args.labels), "image_size": args.image_size, "epochs": args.epochs,
              "batch_size": args.batch_size, "num_workers": args.workers, "seed": seed, "progress": False,
              **overrides}
    start = time.time()
    run = train(TrainConfig(**values), out)
    seconds = time.time() - start
    test = evaluate_run(run, read_labels(args.labels).split("test"), "test", progress=False,
                        num_workers=args.workers, batch_size=256)
    _, val_probs, val_targets = run.val_probs()
    from fashionstyle.core.metrics import macro_fbeta

    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    return {"variant": name, "seed": seed, "seconds": round(seconds, 1),
            "val_f2_tuned": macro_fbeta(val_targets, run.thresholds().predict(val_probs)),
            "test_f2_05": test["macro_fbeta_at_0.5"], "test_f2_tuned": test["macro_fbeta"],
            "overrides": overrides}


def run_plain(seed: int, args: argparse.Namespace) -> dict:
    out = args.out / f"plain_s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).with_name("plain_loop.py")), "--labels", str(args.labels),
               "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--batch-size",
               str(args.batch_size), "--workers", str(args.workers), "--seed", str(seed),
               "--json", str(out / "scores.json"), "--probs", str(out / "probs.npz")]
    subprocess.run(command, check=True)
    scores = json.loads((out / "scores.json").read_text())
    return {"variant": "plain_loop", "seed": seed, **{k: scores[k] for k in (
        "seconds", "val_f2_tuned", "test_f2_05", "test_f2_tuned")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", nargs="*", default=["base"], choices=sorted(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--plain", action="store_true", help="run bench/plain_loop.py too, first")
    p.add_argument("--image-size", type=int, default=144)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = (["plain_loop"] if args.plain else []) + args.variants
    jobs = [(name, seed) for seed in args.seeds for name in names]  # every variant once before any twice
    for name, seed in jobs:
        try:
            row = run_plain(seed, args) if name == "plain_loop" else run_variant(name, VARIANTS[name], seed, args)
        except Exception as err:  # noqa: BLE001 - one failed run must not lose the others
            row = {"variant": name, "seed": seed, "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(row), flush=True)
        with (args.out / "results.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
