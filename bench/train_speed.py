"""Training speed: `fashionstyle train` from JPEG files vs a plain timm training loop.

Run from the repository root (the issue's setting is an H100; on a CPU use small sizes):

    python bench/train_speed.py [--backbones densenet201 resnet101 resnet152]
        [--image-size 224] [--batch-size 128] [--steps 30] [--warmup 5]
        [--images N] [--val-images N] [--photo-size 400x533] [--device auto|cpu|cuda]
        [--workers N] [--threads N] [--report-batch 46] [--cache] [--cudnn-benchmark] [--out DIR] [--check]

    # tiny, on a CPU:
    python bench/train_speed.py --backbones test_resnet --image-size 32 --batch-size 4 \\
        --steps 2 --warmup 1 --images 12 --photo-size 48x64 --device cpu --workers 0 --threads 1

For each backbone, in one process on one machine, it measures training images/s of

  (a) anchor: a plain timm model (num_classes=13), Adam, BCE-with-logits loss, on one
      synthetic batch already on the device; bf16 autocast + channels_last on CUDA,
      fp32 + channels_last on the CPU; batch --batch-size. --warmup untimed steps,
      then --steps steps timed between two device synchronisations.
  (b) the report's setting: the same loop in fp32, NCHW, batch --report-batch (46).
  (c) fashionstyle: `fashionstyle.fit.train(TrainConfig(...), run)` end to end from
      JPEG files on disk (decode, random resized crop, flip, normalise in --workers
      DataLoader workers; StyleNet = backbone + FC-1024 head; weighted BCE; Adam;
      precision bf16-mixed on CUDA, 32-true on the CPU; channels_last), pretrained=False,
      2 epochs. The photos are random smooth JPEGs of --photo-size (the contest's are
      400x533) with a label CSV of the 13 JD styles: --val-images rows are `val`, the
      rest `train`, so an epoch has (images - val_images) // batch_size steps. With
      --cache it reads them from `fashionstyle cache`'s memory-mapped array instead.

How (c) is timed, without changing or patching train(): a thread polls the run
directory every 5 ms and notes when each file appears or is replaced (every write
there is atomic: temporary file, then rename). Epoch 1 is the warm-up. The timed
window runs from the moment epoch 1's last checkpoint (checkpoints/last.ckpt, written
after its validation) is in place to the moment epochs/e002.npy (epoch 2's validation
probabilities) appears. It therefore covers all of epoch 2's training steps plus the
epoch's fixed costs: restarting the DataLoader iterator (the workers decode the first
batches before step 1 can start) and epoch 2's validation of --val-images images
(keep it small); it excludes start-up, epoch 1 and checkpoint writing. images/s =
epoch 2's training images / window. The fixed costs weigh more in a short epoch:
pass a larger --images (or --steps) for a steadier figure.

Prints one table: backbone | anchor | report fp32 b46 | fashionstyle | ratio vs
anchor | ratio vs fp32. Exit status 0 (a report) unless --check is given: then 1 if
any backbone's fashionstyle figure is below 0.95x the anchor or below 2x the report's
setting (the issue's goals).
"""
from __future__ import annotations

import argparse
import contextlib
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

from fashionstyle.config import TrainConfig  # noqa: E402
from fashionstyle.labels import JD_STYLES  # noqa: E402

GOAL_ANCHOR = 0.95  # fashionstyle / anchor (bf16, channels_last, same batch)
GOAL_REPORT = 2.0   # fashionstyle / the report's fp32 NCHW batch-46 setting
NUM_LABELS = len(JD_STYLES)
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
                       batch_size: int, workers: int, n_train: int, cache: str = "") -> dict:
    """Train 2 epochs through fashionstyle.fit.train; epoch 2's training images/s (see the docstring)."""
    from fashionstyle.fit import train

    cuda = device.type == "cuda"
    config = TrainConfig(labels=str(labels), backbone=backbone, pretrained=False, image_size=image_size,
                         batch_size=batch_size, epochs=2, num_workers=workers,
                         precision="bf16-mixed" if cuda else "32-true", channels_last=True,
                         accelerator="gpu" if cuda else "cpu", devices=1, progress=False, cache=cache)
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


# -- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["densenet201", "resnet101", "resnet152"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps (anchors; default epoch length)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed anchor steps first")
    parser.add_argument("--images", type=int, default=None,
                        help="JPEG photos to write (default: steps x batch size + the val images)")
    parser.add_argument("--val-images", type=int, default=None,
                        help="of those, validation rows (default: min(batch size, 32))")
    parser.add_argument("--photo-size", type=parse_size, default=(400, 533), help="WIDTHxHEIGHT")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--workers", type=int, default=default_workers(), help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's; 1 is steadier on busy cores)")
    parser.add_argument("--report-batch", type=int, default=46, help="batch size of the report's setting")
    parser.add_argument("--cache", action="store_true",
                        help="train from the pre-resized image cache (`train --cache`; built before timing)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="set torch.backends.cudnn.benchmark for every measurement")
    parser.add_argument("--out", type=Path, default=None, help="photos and runs (default: a temporary folder)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless fashionstyle >= {GOAL_ANCHOR}x the anchor and >= {GOAL_REPORT}x "
                             "the report's setting")
    args = parser.parse_args(argv)
    for name in ("image_size", "batch_size", "steps", "report_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    n_val = args.val_images if args.val_images is not None else min(args.batch_size, 32)
    n_images = args.images if args.images is not None else args.steps * args.batch_size + n_val
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
              f"{args.warmup} warm-up + {args.steps} timed steps; image size {args.image_size}")
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
                  f"validation); whole train() {fs['total_s']:.1f} s" + (f"; run {run_path}" if args.out else ""))
            rows.append([backbone, f"{anchor:.1f}", f"{report:.1f}", f"{speed:.1f}",
                         ratio(speed, anchor), ratio(speed, report)])
            if speed < GOAL_ANCHOR * anchor:
                failed.append(f"{backbone}: {ratio(speed, anchor)} of the anchor (goal {GOAL_ANCHOR}x)")
            if speed < GOAL_REPORT * report:
                failed.append(f"{backbone}: {ratio(speed, report)} of the report's setting (goal {GOAL_REPORT}x)")
        print()
        ours = "fashionstyle img/s" + (" (cache)" if args.cache else "")
        print_table(["backbone", f"anchor {precision} b{args.batch_size} img/s",
                     f"report fp32 b{args.report_batch} img/s", ours, "ratio vs anchor", "ratio vs fp32"], rows)
    print(f"goals: fashionstyle >= {GOAL_ANCHOR}x anchor and >= {GOAL_REPORT}x report fp32 "
          f"({'checked' if args.check else 'not checked; pass --check'})")
    for line in failed:
        print(f"{'FAIL' if args.check else 'below goal'}: {line}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
