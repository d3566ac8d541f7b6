"""Batch prediction speed: the model alone, the input pipeline alone, fashionstyle end to end, a plain loop.

Run from the repository root (the issue's setting: one H200, 224 px, >= 20,000 photos):

    python bench/infer_speed.py [--backbones densenet201 resnet101 resnet152] [--image-size 224]
        [--batch-size 256] [--images 20480] [--steps 30] [--warmup 5] [--photo-size 400x533]
        [--plain-images N] [--device auto|cpu|cuda] [--decoders cpu gpu] [--workers N] [--threads N]
        [--out DIR] [--check]

    # tiny, on a CPU (the "gpu" decoder then runs torchvision's batched decoder on the CPU):
    python bench/infer_speed.py --backbones test_resnet --image-size 32 --batch-size 4 \\
        --steps 2 --warmup 1 --images 12 --photo-size 48x64 --device cpu --workers 0 --threads 1

In one process, for each backbone (a random-init StyleNet saved as a run directory):

  model alone (the anchor): the run's model on one batch already on the device, inference_mode,
      bf16 autocast + channels-last on CUDA (fp32 on the CPU): --warmup, then --steps batches.
  pipeline alone, per decoder (measured once, no model): Predictor's input pipeline over the
      photos: cpu = DataLoader workers decode (libjpeg-turbo) and crop to uint8, pinned copy,
      normalise on the device; gpu = workers read the JPEG bytes, nvJPEG decodes each batch in one
      call, resize and crop on the device.
  fashionstyle, per decoder: Predictor.from_run(run, decode=...).predict_proba(photos) end to end.
  plain PIL loop: what a user writes by hand: a Dataset that opens each photo with Pillow and
      applies torchvision's Resize, CenterCrop, ToTensor, Normalize; a DataLoader with the same
      workers and pinned memory; the same model in bf16 autocast + channels-last.

  decoder agreement (with both decoders): the end-to-end passes' probabilities for the same photos
      and model compared: the largest difference and the share of label decisions (at the run's
      thresholds) that agree; nvJPEG's pixels differ slightly from libjpeg-turbo's and the device
      resize goes through float.

With --repeats N the end-to-end passes and the plain loop alternate N times and each one's best
pass counts (on a busy machine: the least disturbed). Each pass over the photos reports its
start-up (until the first batch is done: workers starting, first batches decoded) apart from its
steady rate (images/s over the batches after the first --warmup). The plain loop reads the first
--plain-images photos (its rate is steady early). Prints two tables, a row as each backbone ends:
speed, and decoder agreement. A pass that raises shows as "failed: <one line>" in its cells and the
others go on (BENCH_FAIL=<part of a pass name> forces one, see speed_common.py); the files the
device decoder refused (decoded on the host instead) are counted in the speed table. Goals (issue
20, checked with --check): fashionstyle >= 0.8x min(model alone, best pipeline alone), and ahead of
the plain PIL loop. Photos already under --out (bench/gpu_checks.sh writes one set for both
benchmarks) are reused when there are enough of that size.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # speed_common, beside this file
from speed_common import (Pass, StreamTable, attempt, cell, configured, default_workers, environment,  # noqa: E402
                          failed, parse_size, photos_for, pick_device, ratio, synchronize)

from fashionstyle.core.run import RunDir  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402
from fashionstyle.data.labels.names import JD_STYLES  # noqa: E402
from fashionstyle.inference.torch_predictor import Predictor  # noqa: E402
from fashionstyle.model.network import create_model, model_record, save_model  # noqa: E402

GOAL_BOUND = 0.8  # fashionstyle / min(model alone, best pipeline alone)
NUM_LABELS = len(JD_STYLES)


def make_run(path: Path, backbone: str, image_size: int, seed: int = 0) -> RunDir:
    """A complete run directory for a random-init StyleNet (what `fashionstyle train` leaves)."""
    torch.manual_seed(seed)
    run = RunDir.create(path)
    labels = list(JD_STYLES)
    model = create_model(backbone, NUM_LABELS, pretrained=False)
    save_model(run / "model.pt", model_record(model, backbone, labels, image_size, hidden=1024, dropout=0.5))
    run.write_label_names(labels)
    rng = np.random.default_rng(seed)
    targets = (rng.random((64, NUM_LABELS)) < 0.3).astype(np.uint8)
    probs = np.clip(0.4 * targets + 0.6 * rng.random(targets.shape), 0, 1)
    run.write_thresholds(ThresholdTuner(beta=2.0).fit(probs, targets))
    run.write_manifest("model", complete=True)
    return run


def predictor(run: RunDir, device: torch.device, decoder: str) -> Predictor:
    """The run's Predictor; decoder "gpu" on a CPU device runs the same path with the CPU's batched decoder."""
    p = Predictor.from_run(run.path, device=str(device), decode=decoder if device.type == "cuda" else "cpu")
    p.decode_on_device = decoder == "gpu"
    return p


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def model_alone(p: Predictor, batch_size: int, steps: int, warmup: int) -> dict:
    """Images/s of the predictor's model on one normalised batch already on the device."""
    model, size = p.members[0].model, p.preprocessing[0][0]
    images = torch.randn(batch_size, 3, size, size, device=p.device)
    if p.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    timer = Pass(warmup)
    with torch.inference_mode():
        for _ in range(warmup + steps):
            with autocast(p.device, p.bf16):
                torch.sigmoid(model(images).float()).cpu()  # the copy back waits for the device
            timer.batch(batch_size)
    return timer.result()


def refused(p: Predictor) -> dict:
    """The files the predictor's device decoder refused in the pass just done, said in the log."""
    if p.decode_on_device and p.device_decoder.refused:
        print(f"  {p.device_decoder.summary()}", flush=True)
    return {"refused": len(p.device_decoder.refused)} if p.decode_on_device else {}


def pipeline_alone(p: Predictor, paths: list[Path], batch_size: int, workers: int, warmup: int) -> dict:
    """Images/s of the input pipeline to normalised model input on the device, no model."""
    timer = Pass(warmup)
    p.device_decoder.reset()
    for _, views in p._batches(paths, batch_size, workers, "fail"):
        x = p.inputs[0](views[0].flatten(0, 1).to(p.device, non_blocking=True))
        synchronize(p.device)
        timer.batch(len(x))
    return {**timer.result(), **refused(p)}


def end_to_end(p: Predictor, paths: list[Path], batch_size: int, workers: int, warmup: int) -> dict:
    """Images/s of one predict_proba call, batch by batch (its _predict_views timed from outside), and
    the probabilities (for the decoder agreement)."""
    timer, predict_views = Pass(warmup), p._predict_views

    def timed(views):
        out = predict_views(views)
        timer.batch(len(out))
        return out

    p._predict_views = timed
    p.device_decoder.reset()
    try:
        probs = p.predict_proba(paths, batch_size=batch_size, num_workers=workers)
    finally:
        p._predict_views = predict_views
    if probs.shape != (len(paths), NUM_LABELS) or not np.isfinite(probs).all():
        raise RuntimeError(f"unexpected predictions: shape {probs.shape}")
    return {**timer.result(), **refused(p), "probs": probs}


class PlainPhotos(torch.utils.data.Dataset):
    """What a user writes by hand: Pillow, then torchvision's PIL transforms, float32 on the host."""

    def __init__(self, paths: list[Path], image_size: int, mean, std):
        from torchvision import transforms as T

        self.paths = paths
        self.transform = T.Compose([T.Resize(round(image_size / 0.875)), T.CenterCrop(image_size), T.ToTensor(),
                                    T.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def plain_loop(p: Predictor, paths: list[Path], batch_size: int, workers: int, warmup: int) -> dict:
    """The hand-written PIL DataLoader loop feeding the same model, bf16 + channels-last on CUDA."""
    size, mean, std = p.preprocessing[0]
    loader = torch.utils.data.DataLoader(PlainPhotos(paths, size, mean, std), batch_size=batch_size,
                                         num_workers=workers, pin_memory=p.device.type == "cuda")
    model, timer = p.members[0].model, Pass(warmup)
    with torch.inference_mode():
        for images in loader:
            images = images.to(p.device, non_blocking=True)
            if p.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(p.device, p.bf16):
                torch.sigmoid(model(images).float()).cpu()
            timer.batch(len(images))
    return timer.result()


def agreement(p: Predictor, a: dict, b: dict) -> dict:
    """The end-to-end passes' probabilities of two decoders compared: largest and mean difference, and the
    share of label decisions (at the run's thresholds) that agree."""
    if failed(a, b):
        return {"failed": "an end-to-end pass failed"}
    diff = np.abs(a["probs"] - b["probs"])
    agree = (p.decide(a["probs"]) == p.decide(b["probs"])).mean()
    return {"max": float(diff.max()), "mean": float(diff.mean()), "agree": float(agree), "n": len(diff)}


def report(backbone: str, what: str, result: dict) -> None:
    if failed(result):
        print(f"{backbone}: {what}: {cell(result)}", flush=True)
        return
    print(f"{backbone}: {what}: {result['steady']:.1f} images/s steady, start-up {result['startup_s']:.2f} s, "
          f"{result['images']} images in {result['total_s']:.1f} s", flush=True)


def keep_best(row: dict, key: str, result: dict) -> None:
    """row[key] = the pass with the higher steady rate (repeated passes); a failed pass only if none ran."""
    if key not in row or failed(row[key]) or (not failed(result) and result["steady"] > row[key]["steady"]):
        row[key] = result


def measure(args: argparse.Namespace, backbone: str, paths: list[Path], out: Path, device: torch.device,
            pipelines: dict) -> tuple[dict, Predictor | None]:
    """One backbone's passes, each failing alone; the pipelines alone measured once (no model)."""
    row: dict = {"backbone": backbone}
    (out / "runs").mkdir(parents=True, exist_ok=True)
    made = attempt(f"{backbone} run", lambda: {"run": make_run(Path(tempfile.mkdtemp(
        prefix=f"{backbone}-", dir=out / "runs")) / "run", backbone, args.image_size)})
    predictors = {} if failed(made) else {d: predictor(made["run"], device, d) for d in args.decoders}
    first = next(iter(predictors.values()), None)
    row["model"] = attempt(f"{backbone} model alone", lambda: model_alone(first, args.batch_size, args.steps,
                                                                         args.warmup)) if first else made
    report(backbone, "model alone", row["model"])
    for decoder, p in predictors.items():
        if decoder not in pipelines:
            pipelines[decoder] = attempt(f"pipeline alone, {decoder} decoder", lambda: pipeline_alone(
                p, paths, args.batch_size, args.workers, args.warmup))
            report("-", f"pipeline alone, {decoder} decoder", pipelines[decoder])
    for _ in range(args.repeats):  # alternating passes: a busy machine slows each alike
        for decoder, p in predictors.items():
            result = attempt(f"{backbone} fashionstyle {decoder}", lambda: end_to_end(
                p, paths, args.batch_size, args.workers, args.warmup))
            report(backbone, f"fashionstyle, {decoder} decoder", result)
            keep_best(row, f"fashionstyle {decoder}", result)
        if first:
            result = attempt(f"{backbone} plain loop", lambda: plain_loop(
                first, paths[:args.plain_images or len(paths)], args.batch_size, args.workers, args.warmup))
            report(backbone, "plain PIL loop", result)
            keep_best(row, "plain", result)
    return row, first


def speed_cells(row: dict, decoders: list[str]) -> tuple[list[str], list[str]]:
    """The speed table's cells for one backbone, and the goals it missed."""
    pipelines, e2e = [row[f"pipeline {d}"] for d in decoders], [row.get(f"fashionstyle {d}") for d in decoders]
    ran = [(r["steady"], d) for r, d in zip(e2e, decoders) if not failed(r)]
    best_pipeline = max((r["steady"] for r in pipelines if not failed(r)), default=float("nan"))
    refused = [str(r.get("refused", "-")) if not failed(r) else "n/a"
               for r in (row["pipeline gpu"], row.get("fashionstyle gpu")) if "gpu" in decoders]
    cells, missed = [row["backbone"], cell(row["model"]), *map(cell, pipelines), *map(cell, e2e),
                     cell(row.get("plain"))], []
    if not ran or failed(row["model"]) or best_pipeline != best_pipeline:
        return cells + ["n/a", "n/a", "n/a", " / ".join(refused) or "n/a"], [f"{row['backbone']}: not measured"]
    speed, best = max(ran)
    bound = min(row["model"]["steady"], best_pipeline)
    plain = row["plain"]["steady"] if not failed(row.get("plain")) else float("nan")
    bound_by = "model" if row["model"]["steady"] <= best_pipeline else "input pipeline"
    cells += [f"{ratio(speed, bound)} ({best})", ratio(speed, plain), bound_by, " / ".join(refused) or "n/a"]
    if speed < GOAL_BOUND * bound:
        missed.append(f"{row['backbone']}: end to end {ratio(speed, bound)} of its bound (goal {GOAL_BOUND}x)")
    if not speed > plain:
        missed.append(f"{row['backbone']}: end to end not ahead of the plain PIL loop")
    return cells, missed


def agreement_cells(backbone: str, result: dict) -> list[str]:
    if failed(result):
        return [backbone, "n/a", cell(result), "n/a", "n/a"]
    return [backbone, str(result["n"]), f"{result['max']:.4f}", f"{result['mean']:.5f}", f"{100 * result['agree']:.2f}%"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["densenet201", "resnet101", "resnet152"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed batches of the model alone")
    parser.add_argument("--warmup", type=int, default=5, help="batches left out of each steady rate")
    parser.add_argument("--images", type=int, default=20480, help="JPEG photos to predict (written unless there)")
    parser.add_argument("--plain-images", type=int, default=None, help="of those, the plain loop's (default: all)")
    parser.add_argument("--photo-size", type=parse_size, default=(400, 533), help="WIDTHxHEIGHT")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--decoders", nargs="+", choices=("cpu", "gpu"), default=None,
                        help="input pipelines to measure (default: cpu, and gpu on CUDA)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternating passes of fashionstyle and the plain loop; the best of each counts")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="photos and runs (default: a temporary folder)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    for name in ("image_size", "batch_size", "steps", "images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    with configured(args.threads, args.cudnn_benchmark):
        return run(args)


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    args.decoders = args.decoders or (["cpu", "gpu"] if cuda else ["cpu"])
    precision = "bf16" if cuda else "fp32"
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="infer_speed_") as tmp:
        out = args.out or Path(tmp)
        w, h = args.photo_size
        start = time.perf_counter()
        paths = photos_for(out, args.images, args.photo_size)
        print(f"{args.images} JPEG photos of {w}x{h} in {paths[0].parent.parent} ({time.perf_counter() - start:.1f} s)")
        print(environment(device, args.workers))
        print(f"image size {args.image_size}, batch {args.batch_size}; steady rates leave out each pass's first "
              f"{args.warmup} batches; decoders: {', '.join(args.decoders)}", flush=True)
        speed = StreamTable("prediction images/s (a failed pass: failed: <why>; n/a: not measured)", [
            "backbone", f"model alone {precision} b{args.batch_size}", *[f"pipeline {d}" for d in args.decoders],
            *[f"fashionstyle {d}" for d in args.decoders], "plain PIL loop", "best e2e / bound", "best e2e / plain",
            "bound by", "files the gpu decoder refused (pipeline / e2e)"])
        agree = StreamTable("decoder agreement, same photos and model: cpu (libjpeg-turbo) vs gpu "
                            f"({'nvJPEG' if cuda else 'batched CPU decoder'})",
                            ["backbone", "photos", "max prob. difference", "mean prob. difference", "label decisions that agree"])
        pipelines: dict = {}
        for backbone in args.backbones:
            row, p = measure(args, backbone, paths, out, device, pipelines)
            row.update({f"pipeline {d}": pipelines.get(d, {"failed": "no predictor"}) for d in args.decoders})
            cells, lost = speed_cells(row, args.decoders)
            speed.row(cells)
            missed += lost
            if set(args.decoders) == {"cpu", "gpu"} and p is not None:
                agree.row(agreement_cells(backbone, agreement(p, row.get("fashionstyle cpu"),
                                                              row.get("fashionstyle gpu"))))
            del row, p
    print(f"goals: fashionstyle >= {GOAL_BOUND}x min(model alone, best pipeline alone) and ahead of the plain loop "
          f"({'checked' if args.check else 'not checked; pass --check'})")
    for line in missed:
        print(f"{'FAIL' if args.check else 'below goal'}: {line}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
