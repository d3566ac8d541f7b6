"""Augmented copies of the train split's photos, as unlabelled images for `fashionstyle distill`:
the teacher labels views of its training photos it never saw whole (a crop, a flip, other colours),
where its probabilities say more than on the photos it learnt (offline "consistent teaching").

    python bench/augmented_copies.py --labels ../shared/data/garments/labels.csv --copies 1 --out /tmp/aug
        # -> /tmp/aug/img/*.jpg and /tmp/aug/unlabelled.csv (an `image` column of absolute paths)
    fashionstyle distill runs/teacher --labels ../shared/data/garments/labels.csv --unlabelled /tmp/aug/unlabelled.csv ...

Each copy: a random resized crop (area 35-100%, aspect 3/4-4/3), a flip half the time, brightness,
contrast and saturation each scaled by 0.7-1.3; seeded, so the copies are the same every time.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.core import atomic  # noqa: E402
from fashionstyle.data.labels.read import read_labels  # noqa: E402
from fashionstyle.inference.outputs import csv_text  # noqa: E402


def random_crop_box(width: int, height: int, rng: np.random.Generator, scale: tuple[float, float] = (0.35, 1.0),
                    ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a random resized crop inside a width x height photo."""
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    return 0, 0, width, height


def augmented(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One augmented copy of `image` (RGB)."""
    view = image.crop(random_crop_box(*image.size, rng))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        view = enhance(view).enhance(float(rng.uniform(0.7, 1.3)))
    return view


def write_copies(labels: Path, copies: int, out: Path, seed: int = 0) -> int:
    """`copies` augmented copies of every train-split photo into out/img, listed in out/unlabelled.csv."""
    table = read_labels(labels).split("train")
    rng = np.random.default_rng(seed)
    (out / "img").mkdir(parents=True, exist_ok=True)
    paths = []
    for image_id, source in zip(table.ids, table.images):
        with Image.open(source) as photo:
            photo = photo.convert("RGB")
            for k in range(copies):
                path = (out / "img" / f"{image_id}_copy{k}.jpg").resolve()
                view = augmented(photo, rng)
                atomic.write_atomic(path, lambda f, view=view: view.save(f, format="JPEG", quality=90))
                paths.append(path)
    atomic.write_text(out / "unlabelled.csv", csv_text([["image"], *([str(p)] for p in paths)]))  # last, whole
    return len(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"{args.out / 'unlabelled.csv'}: {write_copies(args.labels, args.copies, args.out, args.seed)} copies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
