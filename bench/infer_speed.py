"""Batch prediction speed: fashionstyle's Predictor over JPEG files vs plain timm inference.

Run from the repository root (the issue's setting is an H100; on a CPU use small sizes):

    python bench/infer_speed.py [--backbones densenet201 resnet101 resnet152]
        [--image-size 224] [--batch-size 256] [--steps 30] [--warmup 5] [--images N]
        [--photo-size 400x533] [--device auto|cpu|cuda] [--workers N] [--threads N]
        [--cudnn-benchmark] [--out DIR] [--check]

    # tiny, on a CPU:
    python bench/infer_speed.py --backbones test_resnet --image-size 32 --batch-size 4 \\
        --steps 2 --warmup 1 --images 12 --photo-size 48x64 --device cpu --workers 0 --threads 1

For each backbone, in one process on one machine, it measures prediction images/s of

  anchor: a plain timm model (num_classes=13) in eval mode under torch.inference_mode on
      one synthetic batch already on the device; bf16 autocast + channels_last on CUDA,
      fp32 + channels_last on the CPU; batch --batch-size. --warmup untimed batches, then
      --steps batches timed between two device synchronisations.
  fashionstyle: a run directory for a random-init StyleNet of that backbone (model.pt,
      labels.json with the 13 JD styles, thresholds.json, a complete manifest), opened with
      `Predictor.from_run(run, device)`, then one
      `predict_proba(paths, batch_size, num_workers=--workers)` call over --images JPEG photos
      on disk (default steps x batch size), timed whole: DataLoader start, decoding,
      resize + centre crop + normalise, the forward passes and the copy of the
      probabilities back. A first call over --warmup batches' worth of the photos is not
      timed. The photos are random smooth JPEGs of --photo-size (the contest's are 400x533).

Prints one table: backbone | anchor img/s | fashionstyle img/s | ratio. Exit status 0
(a report) unless --check is given: then 1 if any backbone's fashionstyle figure is below
0.9x the anchor (the issue's goal).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of bench/train_speed.py
import train_speed as common  # noqa: E402
import timm  # noqa: E402

from fashionstyle.labels import JD_STYLES  # noqa: E402
from fashionstyle.models import create_model, model_record, save_model  # noqa: E402
from fashionstyle.predict import Predictor  # noqa: E402
from fashionstyle.run import RunDir  # noqa: E402
from fashionstyle.thresholds import ThresholdTuner  # noqa: E402

GOAL = 0.9  # fashionstyle / anchor (bf16, channels_last, same batch)
NUM_LABELS = len(JD_STYLES)


def anchor_infer(backbone: str, device: torch.device, image_size: int, batch_size: int, steps: int,
                 warmup: int, bf16: bool, channels_last: bool) -> float:
    """Inference images/s of a plain timm model on one synthetic batch on the device."""
    torch.manual_seed(0)
    model = timm.create_model(backbone, pretrained=False, num_classes=NUM_LABELS).to(device).eval()
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return torch.sigmoid(model(images).float())

    for _ in range(warmup):
        step()
    common.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    common.synchronize(device)
    seconds = time.perf_counter() - start
    del model, images
    common.free_memory(device)
    return steps * batch_size / seconds


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


def fashionstyle_infer(run: RunDir, device: torch.device, paths: list[Path], batch_size: int, warmup: int,
                       workers: int) -> dict:
    """Images/s of one Predictor.predict_proba call over `paths` (after an untimed warm-up call)."""
    predictor = Predictor.from_run(run.path, device=str(device))
    predictor.predict_proba(paths[:max(warmup, 1) * batch_size], batch_size=batch_size, num_workers=workers)
    common.synchronize(device)
    start = time.perf_counter()
    probs = predictor.predict_proba(paths, batch_size=batch_size, num_workers=workers)
    common.synchronize(device)
    seconds = time.perf_counter() - start
    if probs.shape != (len(paths), NUM_LABELS) or not np.isfinite(probs).all():
        raise RuntimeError(f"unexpected predictions: shape {probs.shape}")
    del predictor
    common.free_memory(device)
    return {"images_per_s": len(paths) / seconds, "images": len(paths), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["densenet201", "resnet101", "resnet152"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed anchor batches (and default photo count)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--images", type=int, default=None,
                        help="JPEG photos to write and predict (default: steps x batch size)")
    parser.add_argument("--photo-size", type=common.parse_size, default=(400, 533), help="WIDTHxHEIGHT")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=int, default=common.default_workers(), help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's; 1 is steadier on busy cores)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="set torch.backends.cudnn.benchmark for every measurement")
    parser.add_argument("--out", type=Path, default=None, help="photos and runs (default: a temporary folder)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless fashionstyle >= {GOAL}x the anchor")
    args = parser.parse_args(argv)
    for name in ("image_size", "batch_size", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    n_images = args.images if args.images is not None else args.steps * args.batch_size
    if n_images < 1:
        parser.error("--images must be at least 1")
    with common.configured(args.threads, args.cudnn_benchmark):
        return run(args, n_images)


def run(args: argparse.Namespace, n_images: int) -> int:
    device = common.pick_device(args.device)
    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="infer_speed_") as tmp:
        out = args.out or Path(tmp)
        w, h = args.photo_size
        start = time.perf_counter()
        labels = common.write_photo_set(out / f"photos-{n_images}-0-{w}x{h}", n_images, 0, args.photo_size)
        paths = [common.photo_path(labels.parent, i) for i in range(n_images)]
        print(f"{n_images} JPEG photos of {w}x{h} in {labels.parent} ({time.perf_counter() - start:.1f} s)")
        print(common.environment(device, args.workers))
        precision = "bf16" if cuda else "fp32"
        print(f"anchor: plain timm, inference_mode, synthetic batch on the device, {precision} channels_last, "
              f"batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed batches; "
              f"fashionstyle: Predictor.predict_proba over the photos, batch {args.batch_size}; "
              f"image size {args.image_size}")
        rows, failed = [], []
        for backbone in args.backbones:
            anchor = anchor_infer(backbone, device, args.image_size, args.batch_size, args.steps, args.warmup,
                                  bf16=cuda, channels_last=True)
            (out / "runs").mkdir(parents=True, exist_ok=True)
            run_dir = make_run(Path(tempfile.mkdtemp(prefix=f"{backbone}-", dir=out / "runs")) / "run",
                               backbone, args.image_size)
            fs = fashionstyle_infer(run_dir, device, paths, args.batch_size, args.warmup, args.workers)
            speed = fs["images_per_s"]
            print(f"{backbone}: fashionstyle predicted {fs['images']} photos in {fs['seconds']:.2f} s"
                  + (f"; run {run_dir.path}" if args.out else ""))
            rows.append([backbone, f"{anchor:.1f}", f"{speed:.1f}", common.ratio(speed, anchor)])
            if speed < GOAL * anchor:
                failed.append(f"{backbone}: {common.ratio(speed, anchor)} of the anchor (goal {GOAL}x)")
        print()
        common.print_table(["backbone", f"anchor {precision} b{args.batch_size} img/s", "fashionstyle img/s",
                            "ratio"], rows)
    print(f"goal: fashionstyle >= {GOAL}x anchor ({'checked' if args.check else 'not checked; pass --check'})")
    for line in failed:
        print(f"{'FAIL' if args.check else 'below goal'}: {line}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
