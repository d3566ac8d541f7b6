"""Training-input speed per core: JPEG files through Pillow or torchvision.io, against the image cache.

Run from the repository root:

    PYTHONPATH=src python bench/data_speed.py [--images FOLDER] [--n 400] [--image-size 224]

Times, in one process on one core, turning an image into an augmented training
tensor (random resized crop, flip, normalise) by

  * Pillow: data.open_rgb + data.train_transform (what `fashionstyle train` does from files),
  * torchvision.io: read_file + decode_jpeg (libjpeg-turbo) + the same steps on tensors (v2),
  * the cache: cache.ImageCache.open + data.train_transform (`train --cache DIR`),

and prints images/s with each one's ratio over Pillow. Without --images it writes
400x533 photo-like JPEGs (the contest's size) to a temporary folder. The cache's
one-off build time is printed too. Exits 1 if the cache is not faster than Pillow
(--min-ratio, default 1.0).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

try:
    import fashionstyle  # noqa: F401
except ImportError:  # run without PYTHONPATH=src or an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fashionstyle.cache import build_cache  # noqa: E402
from fashionstyle.data import list_images, open_rgb, train_transform  # noqa: E402

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


def torchvision_io_pipeline(image_size: int) -> Callable[[Path], torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms import v2

    steps = v2.Compose([v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
                        v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    return lambda path: steps(decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB))


def images_per_second(make_tensor: Callable[[Path], torch.Tensor], images: list[Path], rounds: int) -> float:
    make_tensor(images[0])  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        for path in images:
            make_tensor(path)
    return rounds * len(images) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=None, help="a folder of JPEGs (default: generated 400x533 photos)")
    parser.add_argument("--n", type=int, default=400, help="images to use")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the images per pipeline")
    parser.add_argument("--min-ratio", type=float, default=1.0)
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
        augment = train_transform(args.image_size, MEAN, STD)
        pipelines = {
            "Pillow (files)": lambda p: augment(open_rgb(p)),
            "torchvision.io decode_jpeg (files)": torchvision_io_pipeline(args.image_size),
            "image cache (memory-mapped uint8)": lambda p: augment(cache.open(p)),
        }
        speed = {name: images_per_second(f, images, args.rounds) for name, f in pipelines.items()}
        first = Image.open(images[0]).size

    print(f"{len(images)} images like {first[0]}x{first[1]} -> training tensors at {args.image_size} px, "
          f"1 thread, torch {torch.__version__}; cache built in {build_s:.1f} s "
          f"({len(images) / build_s:.0f} images/s, one-off)")
    base = speed["Pillow (files)"]
    for name, value in speed.items():
        print(f"  {name:36s} {value:8.1f} images/s  {value / base:5.2f}x")
    ratio = speed["image cache (memory-mapped uint8)"] / base
    if ratio < args.min_ratio:
        print(f"FAIL: the cache is {ratio:.2f}x Pillow, below --min-ratio {args.min_ratio:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
