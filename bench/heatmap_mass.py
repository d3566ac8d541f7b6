"""Do the heat maps point at the styles? Grad-CAM mass inside each style's drawn region, on synthetic outfits.

    python bench/heatmap_mass.py                                   # trains the demo model first (~3-10 min CPU)
    python bench/heatmap_mass.py --run demo_run/run --labels demo_run/data/labels.csv

synthetic_outfit.draw_outfit_regions redraws every test image of a `fashionstyle demo`
(or synthetic.make_dataset) label file with, per style shown, the region that
carries its cue. For each (image, true style) the style's map (explain.Explainer)
is compared with its region, both on the centre crop the model sees:

    mass  = sum(map * region) / sum(map)     share of the map's mass inside the region
    area  = mean(region)                      what a uniform map would give
    ratio = mass / area                       1: no better than uniform

Prints per label the means over its positive test images, and the macro mean over labels.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.analysis.explain import DISPLAY, Explainer, crop_box  # noqa: E402
from fashionstyle.data.images.files import open_rgb  # noqa: E402
from fashionstyle.data.labels.read import read_labels  # noqa: E402
from fashionstyle.inference.torch_predictor import Predictor  # noqa: E402
from fashionstyle.data.synthetic.outfit import STYLE_NAMES, draw_outfit_regions  # noqa: E402

MAX_REDRAW_ERROR = 12.0  # mean |redrawn - file| in grey levels; above it the seed or size is wrong (JPEG: ~2)


def region_on_crop(region: np.ndarray, image_size: int) -> np.ndarray:
    """A region (H, W) in 0..1 cut and resized like the displayed crop: (D, D)."""
    mask = Image.fromarray(np.round(region * 255).astype(np.uint8))
    box = crop_box(mask.size, image_size)
    return np.asarray(mask.resize((DISPLAY, DISPLAY), Image.BILINEAR, box=box), np.float32) / 255


def redraw(path: Path, labels: np.ndarray, seed: int, size: int) -> dict[str, np.ndarray]:
    """The regions of a synthetic image file images/NNNNNN.jpg, checked against the file."""
    image, regions = draw_outfit_regions(np.random.default_rng([seed, 2, int(path.stem)]), labels, size)
    error = np.abs(np.asarray(image, np.float32) - np.asarray(open_rgb(path), np.float32)).mean()
    if error > MAX_REDRAW_ERROR:
        raise SystemExit(f"{path}: redrawn image differs from the file (mean error {error:.1f}); "
                         "pass the --data-seed the data set was made with")
    return regions


def measure(explainer: Explainer, table, seed: int, limit: int | None) -> dict[str, list[tuple[float, float]]]:
    """Per label, (mass, area) of each positive image's map."""
    names = explainer.label_names
    image_size = explainer.predictor.preprocessing[0][0]
    found: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for path, target in list(zip(table.images, table.targets))[:limit]:
        photo = open_rgb(path)
        full = np.array([target[names.index(s)] if s in names else 0 for s in STYLE_NAMES], np.uint8)
        regions = redraw(Path(path), full, seed, photo.size[0])
        shown = [n for n, t in zip(names, target) if t and n in regions]
        for name, cam in explainer.maps(photo, shown).items():
            region = region_on_crop(regions[name], image_size)
            found[name].append((float((cam * region).sum() / max(cam.sum(), 1e-12)), float(region.mean())))
    return found


def format_table(found: dict[str, list[tuple[float, float]]]) -> str:
    lines = [f"{'label':<10} {'n':>4} {'mass in':>8} {'area':>6} {'ratio':>6}"]
    rows = []
    for name, pairs in found.items():
        if pairs:
            mass, area = np.mean(pairs, axis=0)
            rows.append((mass, area, np.mean([m / a for m, a in pairs if a > 0])))
            lines.append(f"{name:<10} {len(pairs):>4} {mass:>8.3f} {area:>6.3f} {rows[-1][2]:>6.2f}")
    mass, area, ratio = np.mean(rows, axis=0)
    lines.append(f"{'macro':<10} {sum(map(len, found.values())):>4} {mass:>8.3f} {area:>6.3f} {ratio:>6.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run trained on synthetic outfits (default: train the demo)")
    parser.add_argument("--labels", type=Path, help="its label file (default: RUN/../data/labels.csv)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-seed", type=int, default=0, help="seed the data set was drawn with (default: 0)")
    parser.add_argument("--limit", type=int, help="at most this many images")
    parser.add_argument("--n-images", type=int, default=1500, help="demo data set size when training")
    parser.add_argument("--epochs", type=int, default=8, help="demo epochs when training")
    args = parser.parse_args(argv)
    if args.run is None:
        from fashionstyle.demo import run_demo

        folder = Path(tempfile.mkdtemp(prefix="heatmap_mass_")) / "demo"
        run_demo(folder, n_images=args.n_images, epochs=args.epochs, seed=args.data_seed)
        args.run = folder / "run"
    labels = args.labels or args.run.parent / "data" / "labels.csv"
    explainer = Explainer(Predictor.from_run(args.run, device="cpu"))
    table = read_labels(labels, label_names=explainer.label_names).split(args.split)
    found = measure(explainer, table, args.data_seed, args.limit)
    print(f"Grad-CAM mass inside each style's region, {args.run}, {args.split} split:")
    print(format_table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
