"""Training speed: the model step alone, the input pipeline alone, `fashionstyle train`, a plain loop.

Run from the repository root (the issue's setting: one H200, 224 px, epochs of >= 200 steps):

    python bench/train_speed.py [--backbones densenet201 resnet101 resnet152]
        [--image-size 224] [--batch-size 128] [--steps 30] [--warmup 5] [--epoch-steps 200]
        [--plain-steps N] [--images N] [--val-images N] [--photo-size 400x533] [--device auto|cpu|cuda]
        [--workers N] [--threads N] [--report-batch 46] [--gpu-decode-for BACKBONE ...] [--cache]
        [--cudnn-benchmark] [--out DIR] [--check]

    # tiny, on a CPU:
    python bench/train_speed.py --backbones test_resnet --image-size 32 --batch-size 4 \\
        --steps 2 --warmup 1 --epoch-steps 2 --images 12 --photo-size 48x64 --device cpu --workers 0 --threads 1

For each backbone, in one process on one machine, it measures training images/s of

  (a) model alone (the anchor): a plain timm model (num_classes=13), Adam, BCE-with-logits,
      on one synthetic batch already on the device; bf16 autocast + channels_last on CUDA,
      fp32 + channels_last on the CPU; batch --batch-size; --warmup untimed steps, then --steps.
  (b) the report's setting: the same loop in fp32, NCHW, batch --report-batch (46).
  (c) the input pipeline alone (once; no model): fashionstyle's training input over the photos
      for --epoch-steps batches: DataLoader workers decode (libjpeg-turbo) and take the random
      resized crop on uint8, pinned copy; on the device: to float, normalise, flip. Then again as
      `train --decode gpu` feeds it: workers read the JPEG bytes and draw the crops, the device decodes
      each batch in one call (nvJPEG on CUDA; on the CPU torchvision's batched libjpeg-turbo) and crops.
  (d) fashionstyle: `fashionstyle.training.train.train(TrainConfig(...), run)` end to end from JPEG files
      (StyleNet = backbone + FC-1024 head; weighted BCE; Adam; bf16-mixed on CUDA, 32-true on the
      CPU; channels_last), pretrained=False, 2 epochs of --epoch-steps steps. With --cache it reads
      `fashionstyle cache`'s memory-mapped array instead of the files. On CUDA (without --cache) a
      second run with decode="gpu" (`train --decode gpu`), timed the same way.
  (e) plain PIL loop: what a user writes by hand: a Dataset that opens each photo with Pillow and
      applies torchvision's RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize; a
      DataLoader with the same workers and pinned memory; the same StyleNet, Adam, BCE, bf16
      autocast + channels_last; one epoch of --plain-steps (default --epoch-steps) steps.

(c) and (e) report their start-up (until the first step is done) apart from their steady rate
(the steps after the first --warmup). How (d) is timed, without changing or patching train(): a
thread polls the run directory every 5 ms and notes when each file appears or is replaced (every
write there is atomic). Epoch 1 is the warm-up and start-up (reported apart: whole train() minus
epoch 2). The timed window runs from the moment epoch 1's last checkpoint is in place to the
moment epochs/e002.npy (epoch 2's validation probabilities) appears: all of epoch 2's steps plus
its fixed costs (restarting the DataLoader iterator and a --val-images validation, keep it small).
The photos are random smooth JPEGs of --photo-size (the contest's are 400x533) with a label CSV of
the 13 JD styles: --val-images rows are `val`, the rest `train`.

Prints one table, a row as each backbone ends: backbone | model alone | report fp32 | pipeline alone |
fashionstyle | plain loop | fashionstyle / model alone | fashionstyle / plain | bound by | pipeline
alone with device decoding | fashionstyle --decode gpu (CUDA only, else n/a) | that / model alone |
files the device decoder refused (decoded on the host instead). A pass that raises shows as
"failed: <one line>" in its cells and the others go on (BENCH_FAIL=<part of a pass name> forces one,
see speed_common.py). The plain loop runs --plain-steps (its rate is steady after a few batches). Exit
status 0 (a report) unless --check is given: then 1 if fashionstyle is below 0.9x the model alone.
"""
from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # speed_common, beside this file
from speed_common import (Pass, RunWatcher, StreamTable, attempt, cell, configured, default_workers, environment,  # noqa: E402
                          failed, free_memory, parse_size, photo_set_name, pick_device, ratio, synchronize,
                          write_photo_set)

import timm  # noqa: E402

from fashionstyle.core.config import TrainConfig  # noqa: E402
from fashionstyle.data.labels.names import JD_STYLES  # noqa: E402

GOAL_ANCHOR = 0.9  # fashionstyle / model alone (bf16, channels_last, same batch): issue 20
NUM_LABELS = len(JD_STYLES)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# -- the plain timm loop -----------------------------------------------------------------------
def anchor_train(backbone: str, device: torch.device, image_size: int, batch_size: int, steps: int,
                 warmup: int, bf16: bool, channels_last: bool) -> float:
    """Training images/s of a plain timm model + Adam on one synthetic batch on the device."""
    torch.manual_seed(0)
    model = timm.create_model(backbone, pretrained=False, num_classes=NUM_LABELS).to(device).train()
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    targets = (torch.rand(batch_size, NUM_LABELS, device=device) < 0.2).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(images).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - start
    del model, optimizer, images, targets
    free_memory(device)
    return steps * batch_size / seconds


# -- fashionstyle train, watched from outside ----------------------------------------------------
def fashionstyle_train(backbone: str, device: torch.device, labels: Path, run_path: Path, image_size: int,
                       batch_size: int, workers: int, n_train: int, cache: str = "", decode: str = "auto") -> dict:
    """Train 2 epochs through fashionstyle.training.train.train; epoch 2's training images/s (see the docstring)."""
    from fashionstyle.training.train import train

    cuda = device.type == "cuda"
    config = TrainConfig(labels=str(labels), backbone=backbone, pretrained=False, image_size=image_size,
                         batch_size=batch_size, epochs=2, num_workers=workers,
                         precision="bf16-mixed" if cuda else "32-true", channels_last=True,
                         accelerator="gpu" if cuda else "cpu", devices=1, progress=False, cache=cache,
                         decode=decode)
    watched = ["epochs/e001.npy", "epochs/e002.npy", "checkpoints/best.ckpt", "checkpoints/last.ckpt"]
    watcher = RunWatcher(run_path, watched)
    watcher.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():  # a short epoch is the point here
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            train(config, run_path)
    finally:
        total = time.perf_counter() - start
        watcher.stop()
    watcher.poll()
    free_memory(device)
    e1, e2 = watcher.first("epochs/e001.npy"), watcher.first("epochs/e002.npy")
    if e1 is None or e2 is None:
        raise RuntimeError(f"{run_path}: epoch files were not seen ({watcher.events})")
    saved = [t for t, n in watcher.events if n.startswith("checkpoints/") and e1 <= t < e2]
    window_start, since = (max(saved), "epoch 1's checkpoint") if saved else (e1, "epoch 1's val probs")
    steps = n_train // batch_size if n_train > batch_size else 1  # drop_last when more than one batch
    images = steps * batch_size if n_train > batch_size else n_train
    seconds = e2 - window_start
    return {"steady": images / seconds, "images": images, "steps": steps, "seconds": seconds, "since": since,
            "total_s": total, "events": [(round(t - start, 4), n) for t, n in watcher.events],
            "refused": gpu_refused(device) if decode == "gpu" else None}


def gpu_refused(device: torch.device) -> str:
    """The files `train --decode gpu`'s decoder refused in the last run (DecodeReport starts its count)."""
    from fashionstyle.data.images.device_decode import shared_decoder

    decoder = shared_decoder(device)
    return str(len(decoder.refused))


# -- the input pipeline alone, and the plain loop ---------------------------------------------------
def train_rows(labels: Path, steps: int, batch_size: int) -> tuple[list[str], np.ndarray]:
    """The first steps x batch_size train rows of the photo set: (paths, targets)."""
    from fashionstyle.data.labels.read import read_labels

    table = read_labels(labels).split("train")
    n = min(len(table), steps * batch_size)
    return [str(p) for p in table.images[:n]], table.require_targets()[:n]


def pipeline_alone(device: torch.device, labels: Path, image_size: int, batch_size: int, steps: int,
                   workers: int, warmup: int, decode_on_device: bool = False) -> dict:
    """fashionstyle's training input to normalised, flipped model input on the device; no model.
    decode_on_device: `train --decode gpu`'s (workers read bytes and draw crops; DeviceCrops decodes
    each batch in one call on the device, nvJPEG on CUDA, libjpeg-turbo on the CPU, and crops there)."""
    from torch.utils.data import DataLoader

    from fashionstyle.data.batches import collate_skipping, collate_unstacked
    from fashionstyle.data.dataset import ImageDataset
    from fashionstyle.data.images.decode import decode_image, read_for_device
    from fashionstyle.data.images.device_decode import DeviceCrops, DeviceDecoder
    from fashionstyle.data.transforms import DeviceInput, TrainCrop

    paths, targets = train_rows(labels, steps, batch_size)
    crop = TrainCrop(image_size)
    read = read_for_device if decode_on_device else decode_image
    dataset = ImageDataset(paths, targets, crop, "skip", seed=0,
                           opener=functools.partial(read, min_side=crop.min_side()))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda",
                        collate_fn=collate_unstacked if decode_on_device else collate_skipping,
                        prefetch_factor=4 if workers else None)
    to_input, timer = DeviceInput(IMAGENET_MEAN, IMAGENET_STD, channels_last=True), Pass(warmup)
    decoder = DeviceDecoder(device)
    on_device = DeviceCrops(image_size, device, decoder=decoder) if decode_on_device else None
    for batch in loader:
        batch = on_device(batch) if on_device else batch
        x = to_input(batch.images.to(device, non_blocking=True), batch.flip.to(device, non_blocking=True))
        synchronize(device)
        timer.batch(len(x))
    if decoder.refused:
        print(f"pipeline alone: {decoder.summary()}", flush=True)
    return {**timer.result(), "refused": str(len(decoder.refused)) if decode_on_device else None}


class PlainPhotos(torch.utils.data.Dataset):
    """What a user writes by hand: Pillow and torchvision's PIL augmentation, float32 on the host."""

    def __init__(self, paths: list[str], targets: np.ndarray, image_size: int):
        from torchvision import transforms as T

        self.paths, self.targets = paths, torch.as_tensor(targets, dtype=torch.float32)
        self.transform = T.Compose([T.RandomResizedCrop(image_size, scale=(0.35, 1.0)), T.RandomHorizontalFlip(),
                                    T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), self.targets[i]


def plain_loop(backbone: str, device: torch.device, labels: Path, image_size: int, batch_size: int, steps: int,
               workers: int, warmup: int) -> dict:
    """One epoch of a hand-written loop: PIL DataLoader, StyleNet, Adam, BCE, bf16 + channels_last on CUDA."""
    from fashionstyle.model.network import create_model

    paths, targets = train_rows(labels, steps, batch_size)
    loader = torch.utils.data.DataLoader(PlainPhotos(paths, targets, image_size), batch_size=batch_size,
                                         shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         drop_last=len(paths) > batch_size)
    torch.manual_seed(0)
    model = create_model(backbone, NUM_LABELS, pretrained=False).to(device).to(memory_format=torch.channels_last)
    optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-5), torch.nn.BCEWithLogitsLoss()
    timer = Pass(warmup)
    for images, target in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(images).float(), target.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.batch(len(images))
    synchronize(device)
    timer.done[-1] = (time.perf_counter(), timer.done[-1][1])  # the last step, finished on the device
    del model, optimizer
    free_memory(device)
    return timer.result()


# -- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["densenet201", "resnet101", "resnet152"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps of the model alone")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (and left out of steady rates)")
    parser.add_argument("--epoch-steps", type=int, default=200,
                        help="steps of each epoch of the pipeline, fashionstyle and the plain loop")
    parser.add_argument("--plain-steps", type=int, default=None,
                        help="steps of the plain loop's epoch (default: --epoch-steps; its rate is steady early)")
    parser.add_argument("--images", type=int, default=None,
                        help="JPEG photos to write (default: epoch steps x batch size + the val images)")
    parser.add_argument("--val-images", type=int, default=None,
                        help="of those, validation rows (default: min(batch size, 32))")
    parser.add_argument("--photo-size", type=parse_size, default=(400, 533), help="WIDTHxHEIGHT")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=int, default=default_workers(), help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's; 1 is steadier on busy cores)")
    parser.add_argument("--report-batch", type=int, default=46, help="batch size of the report's setting")
    parser.add_argument("--gpu-decode-for", nargs="*", default=None, metavar="BACKBONE",
                        help="on CUDA, also time `train --decode gpu` for these backbones (default: all)")
    parser.add_argument("--cache", action="store_true",
                        help="train from the pre-resized image cache (`train --cache`; built before timing)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="set torch.backends.cudnn.benchmark for every measurement")
    parser.add_argument("--out", type=Path, default=None, help="photos and runs (default: a temporary folder)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless fashionstyle >= {GOAL_ANCHOR}x the model alone")
    args = parser.parse_args(argv)
    for name in ("image_size", "batch_size", "steps", "report_batch", "epoch_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    n_val = args.val_images if args.val_images is not None else min(args.batch_size, 32)
    n_images = args.images if args.images is not None else args.epoch_steps * args.batch_size + n_val
    if n_val < 1 or n_images - n_val < 1:
        parser.error("need at least one train and one val image (--images, --val-images)")

    with configured(args.threads, args.cudnn_benchmark):
        return run(args, n_images, n_val)


def pipelines(args: argparse.Namespace, device: torch.device, labels: Path) -> tuple[dict, dict]:
    """The input pipeline alone: host decoding, then decoding on the device (each its own pass)."""
    measure = functools.partial(pipeline_alone, device, labels, args.image_size, args.batch_size, args.epoch_steps,
                                args.workers, args.warmup)
    host = attempt("pipeline alone", measure)
    print(f"input pipeline alone: {cell(host)} images/s steady" +
          ("" if failed(host) else f", start-up {host['startup_s']:.2f} s, {host['images']} images"), flush=True)
    on_device = attempt("pipeline alone, decoded on the device", lambda: measure(decode_on_device=True))
    decoder = "nvJPEG" if device.type == "cuda" else "batched libjpeg-turbo"
    print(f"input pipeline alone, decoded on the {device.type} ({decoder}): {cell(on_device)} images/s steady",
          flush=True)
    return host, on_device


def backbone_row(args: argparse.Namespace, backbone: str, device: torch.device, labels: Path, out: Path,
                 n_train: int, n_val: int) -> dict:
    """Each pass for one backbone, a failed one recorded as such: anchor, report, fashionstyle (with
    --decode gpu where timed), plain loop."""
    cuda = device.type == "cuda"
    anchor = functools.partial(anchor_train, backbone, device, args.image_size, steps=args.steps, warmup=args.warmup)
    row = {"anchor": attempt(f"{backbone} anchor", lambda: {"steady": anchor(
               batch_size=args.batch_size, bf16=cuda, channels_last=True)}),
           "report": attempt(f"{backbone} report", lambda: {"steady": anchor(
               batch_size=args.report_batch, bf16=False, channels_last=False)})}
    (out / "runs").mkdir(parents=True, exist_ok=True)
    cache = str(labels.parent / f"cache-{args.image_size}") if args.cache else ""

    def train(decode: str) -> dict:
        path = Path(tempfile.mkdtemp(prefix=f"{backbone}-{'gpu-decode-' if decode == 'gpu' else ''}",
                                     dir=out / "runs")) / "run"
        return fashionstyle_train(backbone, device, labels, path, args.image_size, args.batch_size, args.workers,
                                  n_train, cache if decode != "gpu" else "", decode)

    fs = row["fashionstyle"] = attempt(f"{backbone} fashionstyle", lambda: train("auto"))
    if not failed(fs):
        print(f"{backbone}: fashionstyle epoch 2: {fs['steps']} steps, {fs['images']} images in "
              f"{fs['seconds']:.2f} s (since {fs['since']}, incl. loader restart and {n_val}-image "
              f"validation); start-up and epoch 1: {fs['total_s'] - fs['seconds']:.1f} s", flush=True)
    row["gpu"] = None  # train --decode gpu: refused without CUDA (and with a cache)
    if cuda and not args.cache and backbone in (args.gpu_decode_for or args.backbones):
        row["gpu"] = attempt(f"{backbone} fashionstyle --decode gpu", lambda: train("gpu"))
        print(f"{backbone}: fashionstyle --decode gpu epoch 2: {cell(row['gpu'])} images/s", flush=True)
    row["plain"] = attempt(f"{backbone} plain loop", lambda: plain_loop(
        backbone, device, labels, args.image_size, args.batch_size, args.plain_steps or args.epoch_steps,
        args.workers, args.warmup))
    print(f"{backbone}: plain PIL loop: {cell(row['plain'])} images/s steady", flush=True)
    return row


def vs(a: dict | None, b: dict | None) -> str:
    return "n/a" if failed(a, b) else ratio(a["steady"], b["steady"])


def run(args: argparse.Namespace, n_images: int, n_val: int) -> int:
    device = pick_device(args.device)
    precision = "bf16" if device.type == "cuda" else "fp32"
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        out = args.out or Path(tmp)
        w, h = args.photo_size
        start = time.perf_counter()
        labels = write_photo_set(out / photo_set_name(n_images, n_val, args.photo_size), n_images, n_val,
                                 args.photo_size)
        print(f"{n_images} JPEG photos of {w}x{h} ({n_images - n_val} train, {n_val} val) in "
              f"{labels.parent} ({time.perf_counter() - start:.1f} s)")
        print(environment(device, args.workers))
        print(f"anchor: plain timm, Adam, synthetic batch on the device, {precision} channels_last, "
              f"batch {args.batch_size}; report: fp32 NCHW batch {args.report_batch}; "
              f"{args.warmup} warm-up + {args.steps} timed steps; epochs of {args.epoch_steps} steps; "
              f"image size {args.image_size}", flush=True)
        pipeline, on_device = pipelines(args, device, labels)
        ours = "fashionstyle img/s" + (" (cache)" if args.cache else "")
        table = StreamTable("training images/s (a failed pass: failed: <why>; n/a: not measured)", [
            "backbone", f"anchor {precision} b{args.batch_size} img/s", f"report fp32 b{args.report_batch} img/s",
            "pipeline alone img/s", ours, "plain PIL loop img/s", "vs anchor", "vs plain", "bound by",
            f"pipeline, batch decoded on {device.type} img/s", "fashionstyle --decode gpu img/s",
            "--decode gpu vs anchor", "files the device decoder refused (pipeline / train)"])
        missed = []
        for backbone in args.backbones:
            row = backbone_row(args, backbone, device, labels, out, n_images - n_val, n_val)
            anchor, fs = row["anchor"], row["fashionstyle"]
            bound = "n/a" if failed(anchor, pipeline) else (
                "model" if anchor["steady"] <= pipeline["steady"] else "input pipeline")
            refused = f"{(on_device or {}).get('refused') or 'n/a'} / {(row['gpu'] or {}).get('refused') or 'n/a'}"
            table.row([backbone, cell(anchor), cell(row["report"]), cell(pipeline), cell(fs), cell(row["plain"]),
                       vs(fs, anchor), vs(fs, row["plain"]), bound, cell(on_device), cell(row["gpu"]),
                       vs(row["gpu"], anchor), refused])
            if failed(fs, anchor) or fs["steady"] < GOAL_ANCHOR * anchor["steady"]:
                missed.append(f"{backbone}: {vs(fs, anchor)} of the model alone (goal {GOAL_ANCHOR}x)")
    print(f"goal: fashionstyle >= {GOAL_ANCHOR}x the model alone "
          f"({'checked' if args.check else 'not checked; pass --check'})")
    for line in missed:
        print(f"{'FAIL' if args.check else 'below goal'}: {line}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
