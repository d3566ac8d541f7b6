"""Host preprocessing speed per core: the uint8 input pipeline against the Pillow path it replaced.

Run from the repository root:

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python bench/data_speed.py [--images FOLDER] [--n 400]
        [--image-size 224] [--rounds 3] [--min-ratio 2.0]

Times, in one process on one core (torch.set_num_threads(1)), what a DataLoader
worker does per image, for training (random resized crop + flip) and for
prediction (resize to S/0.875 + centre crop):

  * Pillow (files), the baseline: images.open_rgb, then torchvision's PIL transforms and
    ToTensor + Normalize on the host (the project's path before the uint8 pipeline);
  * fashionstyle: torchvision.io decode (libjpeg-turbo) of the files (data.decode_image),
    crop and resize on uint8 (data.TrainCrop / data.EvalViews); normalising and flipping
    happen on the device (data.DeviceInput), so they are not host work on a GPU machine;
  * the same + DeviceInput on the host (what training on a CPU does per image);
  * the image cache: cache.ImageCache.decode + TrainCrop (`train --cache DIR`).

Speed is images per CPU-second of this process (time.process_time; --clock wall
for wall time): the cost per core, which other work on a shared machine does not
inflate. Rounds alternate between the pipelines, and each pipeline's best round
counts (as timeit's minimum). Prints images/s with each one's ratio over Pillow. Without --images it writes
400x533 photo-like JPEGs (the contest's size) to a temporary folder. Exits 1 if
fashionstyle's training path is below --min-ratio x Pillow (the issue's goal: 2).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

try:
    import fashionstyle  # noqa: F401
except ImportError:  # run without PYTHONPATH=src or an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fashionstyle.data.images.cache import build_cache  # noqa: E402
from fashionstyle.data.images.files import list_images, open_rgb  # noqa: E402
from fashionstyle.data.images.decode import decode_image  # noqa: E402
from fashionstyle.data.transforms import DeviceInput, EvalViews, TrainCrop  # noqa: E402
from fashionstyle.data.images.files import resize_size  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_photos(folder: Path, n: int, size: tuple[int, int] = (400, 533), seed: int = 0) -> list[Path]:
    """`n` smooth, noisy JPEGs of `size` (w, h), quality 90."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(n):
        colour = rng.random(3) * 255
        wave = np.sin(x[..., None] / rng.uniform(5, 40) + y[..., None] / rng.uniform(5, 40))
        pixels = np.clip(colour * (0.5 + 0.5 * wave) + rng.normal(0, 12, (h, w, 3)), 0, 255)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def pillow_train(image_size: int) -> Callable[[Path], torch.Tensor]:
    """The baseline: Pillow decoding and torchvision's PIL transforms, normalised float on the host."""
    steps = T.Compose([T.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
                       T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    return lambda path: steps(open_rgb(path))


def pillow_eval(image_size: int) -> Callable[[Path], torch.Tensor]:
    steps = T.Compose([T.Resize(resize_size(image_size), antialias=True), T.CenterCrop(image_size),
                       T.ToTensor(), T.Normalize(MEAN, STD)])
    return lambda path: steps(open_rgb(path))


def pipelines(image_size: int, cache_decode: Callable) -> dict[str, Callable[[Path], object]]:
    crop, views, to_input = TrainCrop(image_size), EvalViews(image_size), DeviceInput(MEAN, STD)
    train_decode = partial(decode_image, min_side=crop.min_side())
    eval_decode = partial(decode_image, min_side=resize_size(image_size))

    def train_on_host(path: Path) -> torch.Tensor:
        image, flip = crop(train_decode(path))
        return to_input(image[None], flip[None])

    return {
        "train: Pillow (files), today": pillow_train(image_size),
        "train: torchvision.io + uint8 crop (files)": lambda p: crop(train_decode(p)),
        "train: the same + normalise on the host": train_on_host,
        "train: image cache + uint8 crop": lambda p: crop(cache_decode(p)),
        "predict: Pillow (files), today": pillow_eval(image_size),
        "predict: torchvision.io + uint8 views (files)": lambda p: views(eval_decode(p)),
    }


def measure(functions: dict[str, Callable[[Path], object]], images: list[Path], rounds: int,
            clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Images per second of `clock` for each function in its best round; rounds alternate between the
    functions. The default clock is this process's CPU time: the cost per core, which other work on
    a shared machine does not inflate (its wall time would)."""
    seconds = dict.fromkeys(functions, float("inf"))
    for f in functions.values():
        f(images[0])  # warm-up
    for _ in range(rounds):
        for name, f in functions.items():
            start = clock()
            for path in images:
                f(path)
            seconds[name] = min(seconds[name], clock() - start)
    return {name: len(images) / max(s, 1e-9) for name, s in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=None, help="a folder of JPEGs (default: generated 400x533 photos)")
    parser.add_argument("--n", type=int, default=400, help="images to use")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the images per pipeline (best counts)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this process's CPU time (default); wall: elapsed time")
    parser.add_argument("--min-ratio", type=float, default=2.0,
                        help="fail below this ratio of the uint8 training path over Pillow's")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="data_speed_") as tmp:
        if args.images:
            images = list_images(args.images)[:args.n]
        else:
            (Path(tmp) / "photos").mkdir()
            images = write_photos(Path(tmp) / "photos", args.n)
        start = time.perf_counter()
        cache = build_cache(images, Path(tmp) / "cache", args.image_size, num_workers=0, progress=False)
        build_s = time.perf_counter() - start
        torch.manual_seed(0)
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        speed = measure(pipelines(args.image_size, cache.decode), images, args.rounds, clock)
        first = Image.open(images[0]).size

    print(f"{len(images)} images like {first[0]}x{first[1]} -> {args.image_size} px, 1 thread, best of {args.rounds} "
          f"rounds, {args.clock} time; "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {Image.__version__}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; cache built in {build_s:.1f} s (one-off)")
    for name, value in speed.items():
        base = speed[name.split(":")[0] + ": Pillow (files), today"]
        print(f"  {name:46s} {value:8.1f} images/s  {value / base:5.2f}x")
    ratio = speed["train: torchvision.io + uint8 crop (files)"] / speed["train: Pillow (files), today"]
    if ratio < args.min_ratio:
        print(f"FAIL: the uint8 training path is {ratio:.2f}x Pillow, below --min-ratio {args.min_ratio:g}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
