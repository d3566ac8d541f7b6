"""Training speed: the model step alone, the input pipeline alone, `fashionstyle train`, a plain loop.

Run from the repository root (the issue's setting: one H200, 224 px, epochs of >= 200 steps):

    python bench/train_speed.py [--backbones densenet201 resnet101 resnet152]
        [--image-size 224] [--batch-size 128] [--steps 30] [--warmup 5] [--epoch-steps 200]
        [--images N] [--val-images N] [--photo-size 400x533] [--device auto|cpu|cuda]
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
  (d) fashionstyle: `fashionstyle.training.fit.train(TrainConfig(...), run)` end to end from JPEG files
      (StyleNet = backbone + FC-1024 head; weighted BCE; Adam; bf16-mixed on CUDA, 32-true on the
      CPU; channels_last), pretrained=False, 2 epochs of --epoch-steps steps. With --cache it reads
      `fashionstyle cache`'s memory-mapped array instead of the files. On CUDA (without --cache) a
      second run with decode="gpu" (`train --decode gpu`), timed the same way.
  (e) plain PIL loop: what a user writes by hand: a Dataset that opens each photo with Pillow and
      applies torchvision's RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize; a
      DataLoader with the same workers and pinned memory; the same StyleNet, Adam, BCE, bf16
      autocast + channels_last; one epoch of --epoch-steps steps.

(c) and (e) report their start-up (until the first step is done) apart from their steady rate
(the steps after the first --warmup). How (d) is timed, without changing or patching train(): a
thread polls the run directory every 5 ms and notes when each file appears or is replaced (every
write there is atomic). Epoch 1 is the warm-up and start-up (reported apart: whole train() minus
epoch 2). The timed window runs from the moment epoch 1's last checkpoint is in place to the
moment epochs/e002.npy (epoch 2's validation probabilities) appears: all of epoch 2's steps plus
its fixed costs (restarting the DataLoader iterator and a --val-images validation, keep it small).
The photos are random smooth JPEGs of --photo-size (the contest's are 400x533) with a label CSV of
the 13 JD styles: --val-images rows are `val`, the rest `train`.

Prints one table: backbone | model alone | report fp32 | pipeline alone | fashionstyle | plain
loop | fashionstyle / model alone | fashionstyle / plain | bound by | pipeline alone with device
decoding | fashionstyle --decode gpu (CUDA only, else n/a) | that / model alone. Exit status 0 (a report)
unless --check is given: then 1 if fashionstyle is below 0.9x the model alone (issue 20's goal).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

try:
    import fashionstyle  # noqa: F401
except ImportError:  # run without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import timm  # noqa: E402

from fashionstyle.core.config import TrainConfig  # noqa: E402
from fashionstyle.data.labels import JD_STYLES  # noqa: E402

GOAL_ANCHOR = 0.9  # fashionstyle / model alone (bf16, channels_last, same batch): issue 20
NUM_LABELS = len(JD_STYLES)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
POLL_S = 0.005


# -- shared with bench/infer_speed.py ------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def default_workers() -> int:
    return os.cpu_count() or 1


def photo_path(folder: Path, index: int) -> Path:
    return folder / "img" / f"{index:06d}.jpg"


def parse_size(text: str) -> tuple[int, int]:
    """'400x533' -> (width 400, height 533)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"photo size must be at least 8x8, got {text!r}")
    return w, h


def photo(seed: int, index: int, size: tuple[int, int]) -> Image.Image:
    """A smooth, photo-like random image: bicubic-upscaled colour fields, a finer texture, mild noise."""
    rng = np.random.default_rng([seed, index])
    w, h = size
    coarse = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    fine = Image.fromarray(rng.integers(0, 256, (max(h // 24, 2), max(w // 24, 2), 3), dtype=np.uint8))
    fine = fine.resize((w, h), Image.BILINEAR)
    pixels = 0.75 * np.asarray(coarse, np.float32) + 0.25 * np.asarray(fine, np.float32)
    pixels += rng.normal(0.0, 4.0, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_photo_set(folder: Path, n: int, n_val: int, size: tuple[int, int], seed: int = 0,
                    threads: int | None = None) -> Path:
    """`n` JPEG photos in folder/img and folder/labels.csv (image, split, the 13 JD styles).

    The last `n_val` rows are `val`, the others `train`; every label has positives in
    both parts. An existing set made with the same settings is reused.
    """
    spec = {"n": n, "val": n_val, "size": list(size), "seed": seed}
    labels, marker = folder / "labels.csv", folder / "photos.json"
    if labels.is_file() and marker.is_file() and json.loads(marker.read_text()) == spec:
        return labels
    (folder / "img").mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        photo(seed, i, size).save(photo_path(folder, i), quality=90)

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))
    rng = np.random.default_rng(seed)
    targets = rng.random((n, NUM_LABELS)) < rng.uniform(0.05, 0.4, NUM_LABELS)
    targets[np.arange(n), np.arange(n) % NUM_LABELS] = True  # no label without positives
    targets[n - n_val + np.arange(n_val), np.arange(n_val) % NUM_LABELS] = True
    rows = ["image,split," + ",".join(JD_STYLES)]
    for i in range(n):
        split = "val" if i >= n - n_val else "train"
        rows.append(f"{photo_path(Path(), i).as_posix()},{split}," + ",".join(str(int(v)) for v in targets[i]))
    labels.write_text("\n".join(rows) + "\n")
    marker.write_text(json.dumps(spec))
    return labels


def environment(device: torch.device, workers: int) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (f"device {device} ({where}), {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
            f"{workers} DataLoader workers; "
            f"torch {torch.__version__}, timm {timm.__version__}, "
            f"cudnn.benchmark={torch.backends.cudnn.benchmark}")


@contextlib.contextmanager
def configured(threads: int | None, cudnn_benchmark: bool):
    """torch's CPU threads and cudnn.benchmark for the benchmark, restored after it."""
    before = torch.get_num_threads(), torch.backends.cudnn.benchmark
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.backends.cudnn.benchmark = before[1]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


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
class RunWatcher(threading.Thread):
    """Notes (perf_counter time, name) whenever one of `names` under `root` appears or is replaced."""

    def __init__(self, root: Path, names: list[str], interval: float = POLL_S):
        super().__init__(daemon=True)
        self.root, self.names, self.interval = root, names, interval
        self.events: list[tuple[float, str]] = []
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(self.interval)

    def poll(self) -> None:
        now = time.perf_counter()
        for name in self.names:
            try:
                st = os.stat(self.root / name)
            except OSError:
                continue
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._seen.get(name) != sig:
                self._seen[name] = sig
                self.events.append((now, name))

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def first(self, name: str) -> float | None:
        return next((t for t, n in self.events if n == name), None)


def fashionstyle_train(backbone: str, device: torch.device, labels: Path, run_path: Path, image_size: int,
                       batch_size: int, workers: int, n_train: int, cache: str = "", decode: str = "auto") -> dict:
    """Train 2 epochs through fashionstyle.training.fit.train; epoch 2's training images/s (see the docstring)."""
    from fashionstyle.training.fit import train

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
    return {"images_per_s": images / seconds, "images": images, "steps": steps, "seconds": seconds,
            "since": since, "total_s": total, "events": [(round(t - start, 4), n) for t, n in watcher.events]}


# -- the input pipeline alone, and the plain loop ---------------------------------------------------
class Pass:
    """Times one pass: start-up until the first step is done, then the steady rate after `warmup` steps."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.done = warmup, time.perf_counter(), []  # (time, images)

    def batch(self, images: int) -> None:
        self.done.append((time.perf_counter(), images))

    def result(self) -> dict:
        times = [t for t, _ in self.done]
        first = max(0, min(self.warmup, len(times) - 2))  # at least one step timed when there are two
        images = sum(n for _, n in self.done[first + 1:])
        steady = images / (times[-1] - times[first]) if images and times[-1] > times[first] else float("nan")
        return {"startup_s": times[0] - self.start, "steady": steady, "images": sum(n for _, n in self.done),
                "total_s": times[-1] - self.start}


def train_rows(labels: Path, steps: int, batch_size: int) -> tuple[list[str], np.ndarray]:
    """The first steps x batch_size train rows of the photo set: (paths, targets)."""
    from fashionstyle.data.labels import read_labels

    table = read_labels(labels).split("train")
    n = min(len(table), steps * batch_size)
    return [str(p) for p in table.images[:n]], table.require_targets()[:n]


def pipeline_alone(device: torch.device, labels: Path, image_size: int, batch_size: int, steps: int,
                   workers: int, warmup: int, decode_on_device: bool = False) -> dict:
    """fashionstyle's training input to normalised, flipped model input on the device; no model.
    decode_on_device: `train --decode gpu`'s (workers read bytes and draw crops; DeviceCrops decodes
    each batch in one call on the device, nvJPEG on CUDA, libjpeg-turbo on the CPU, and crops there)."""
    from torch.utils.data import DataLoader

    from fashionstyle.data.pipeline import (DeviceCrops, DeviceInput, ImageDataset, TrainCrop, collate_skipping,
                                   collate_unstacked, decode_image, read_for_device)

    paths, targets = train_rows(labels, steps, batch_size)
    crop = TrainCrop(image_size)
    read = read_for_device if decode_on_device else decode_image
    dataset = ImageDataset(paths, targets, crop, "skip", seed=0,
                           opener=functools.partial(read, min_side=crop.min_side()))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda" and not decode_on_device,
                        collate_fn=collate_unstacked if decode_on_device else collate_skipping,
                        prefetch_factor=4 if workers else None)
    to_input, timer = DeviceInput(IMAGENET_MEAN, IMAGENET_STD, channels_last=True), Pass(warmup)
    on_device = DeviceCrops(image_size, device) if decode_on_device else None
    for batch in loader:
        batch = on_device(batch) if on_device else batch
        x = to_input(batch.images.to(device, non_blocking=True), batch.flip.to(device, non_blocking=True))
        synchronize(device)
        timer.batch(len(x))
    return timer.result()


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


def run(args: argparse.Namespace, n_images: int, n_val: int) -> int:
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        out = args.out or Path(tmp)
        w, h = args.photo_size
        start = time.perf_counter()
        labels = write_photo_set(out / f"photos-{n_images}-{n_val}-{w}x{h}", n_images, n_val, args.photo_size)
        print(f"{n_images} JPEG photos of {w}x{h} ({n_images - n_val} train, {n_val} val) in "
              f"{labels.parent} ({time.perf_counter() - start:.1f} s)")
        print(environment(device, args.workers))
        precision = "bf16" if cuda else "fp32"
        print(f"anchor: plain timm, Adam, synthetic batch on the device, {precision} channels_last, "
              f"batch {args.batch_size}; report: fp32 NCHW batch {args.report_batch}; "
              f"{args.warmup} warm-up + {args.steps} timed steps; epochs of {args.epoch_steps} steps; "
              f"image size {args.image_size}", flush=True)
        pipeline = pipeline_alone(device, labels, args.image_size, args.batch_size, args.epoch_steps, args.workers,
                                  args.warmup)
        print(f"input pipeline alone: {pipeline['steady']:.1f} images/s steady, start-up "
              f"{pipeline['startup_s']:.2f} s, {pipeline['images']} images", flush=True)
        on_device = pipeline_alone(device, labels, args.image_size, args.batch_size, args.epoch_steps, args.workers,
                                   args.warmup, decode_on_device=True)
        decoder = "nvJPEG" if cuda else "batched libjpeg-turbo"
        print(f"input pipeline alone, decoded on the {device.type} ({decoder}): {on_device['steady']:.1f} "
              f"images/s steady, start-up {on_device['startup_s']:.2f} s", flush=True)
        rows, failed = [], []
        for backbone in args.backbones:
            anchor = anchor_train(backbone, device, args.image_size, args.batch_size, args.steps, args.warmup,
                                  bf16=cuda, channels_last=True)
            report = anchor_train(backbone, device, args.image_size, args.report_batch, args.steps, args.warmup,
                                  bf16=False, channels_last=False)
            (out / "runs").mkdir(parents=True, exist_ok=True)
            run_path = Path(tempfile.mkdtemp(prefix=f"{backbone}-", dir=out / "runs")) / "run"
            cache = str(labels.parent / f"cache-{args.image_size}") if args.cache else ""
            fs = fashionstyle_train(backbone, device, labels, run_path, args.image_size, args.batch_size,
                                    args.workers, n_images - n_val, cache)
            speed = fs["images_per_s"]
            print(f"{backbone}: fashionstyle epoch 2: {fs['steps']} steps, {fs['images']} images in "
                  f"{fs['seconds']:.2f} s (since {fs['since']}, incl. loader restart and {n_val}-image "
                  f"validation); start-up and epoch 1: {fs['total_s'] - fs['seconds']:.1f} s"
                  + (f"; run {run_path}" if args.out else ""), flush=True)
            gpu_decode = float("nan")
            timed = cuda and not args.cache and backbone in (args.gpu_decode_for or args.backbones)
            if timed:  # train --decode gpu: refused without CUDA (and with a cache)
                gpu_path = Path(tempfile.mkdtemp(prefix=f"{backbone}-gpu-decode-", dir=out / "runs")) / "run"
                gpu_decode = fashionstyle_train(backbone, device, labels, gpu_path, args.image_size, args.batch_size,
                                                args.workers, n_images - n_val, decode="gpu")["images_per_s"]
                print(f"{backbone}: fashionstyle --decode gpu epoch 2: {gpu_decode:.1f} images/s", flush=True)
            plain = plain_loop(backbone, device, labels, args.image_size, args.batch_size, args.epoch_steps,
                               args.workers, args.warmup)
            print(f"{backbone}: plain PIL loop: {plain['steady']:.1f} images/s steady, start-up "
                  f"{plain['startup_s']:.2f} s", flush=True)
            bound = "model" if anchor <= pipeline["steady"] else "input pipeline"
            rows.append([backbone, f"{anchor:.1f}", f"{report:.1f}", f"{pipeline['steady']:.1f}", f"{speed:.1f}",
                         f"{plain['steady']:.1f}", ratio(speed, anchor), ratio(speed, plain["steady"]), bound,
                         f"{on_device['steady']:.1f}", f"{gpu_decode:.1f}" if timed else "n/a",
                         ratio(gpu_decode, anchor) if timed else "n/a"])
            if speed < GOAL_ANCHOR * anchor:
                failed.append(f"{backbone}: {ratio(speed, anchor)} of the model alone (goal {GOAL_ANCHOR}x)")
        print()
        ours = "fashionstyle img/s" + (" (cache)" if args.cache else "")
        print_table(["backbone", f"anchor {precision} b{args.batch_size} img/s",
                     f"report fp32 b{args.report_batch} img/s", "pipeline alone img/s", ours, "plain PIL loop img/s",
                     "vs anchor", "vs plain", "bound by", f"pipeline, batch decoded on {device.type} img/s",
                     "fashionstyle --decode gpu img/s", "--decode gpu vs anchor"], rows)
    print(f"goal: fashionstyle >= {GOAL_ANCHOR}x the model alone "
          f"({'checked' if args.check else 'not checked; pass --check'})")
    for line in failed:
        print(f"{'FAIL' if args.check else 'below goal'}: {line}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
