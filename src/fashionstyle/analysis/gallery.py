"""The report's image sections: predictions on test images, augmented training images, an error
gallery per label and the audit's suspect labels.

Predictions (fastai's `show_results` / `plot_top_losses`): test images (else validation) with
their true and predicted label sets at the tuned thresholds, the most wrong first (most wrong
labels, then the highest binary cross-entropy). Augmented training images (as Ultralytics shows
training batches): a few training images beside the crops and flips the run's own training
transform (pipeline.TrainCrop through pipeline.ImageDataset, seeded as in training) drew in its first
epochs. Error gallery: per label, the most confident true positives (highest probability), false
positives (highest) and false negatives (lowest) at the label's tuned threshold. Thumbnails are
small JPEGs in `thumbs/` beside index.html; an image that is missing or unreadable is skipped
(the next one takes its place) and counted in a note. Each label of the error gallery is a
collapsible <details> block, so the page stays short and needs no JavaScript.
"""
from __future__ import annotations

import hashlib
import html
import re
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from fashionstyle.analysis.audit import Issue
from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.files import open_rgb
from fashionstyle.data.labels.table import LabelTable

THUMB_PX = 256  # the file; shown at TILE_PX (sharp on a phone's dense screen)
PER_KIND = 4
PREDICTIONS = 24
AUGMENTED_IMAGES, AUGMENTED_DRAWS = 6, 4
KINDS = ("TP", "FP", "FN")
KIND_TEXT = {"TP": "true positives", "FP": "false positives", "FN": "false negatives"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CSS = """
details { margin: .4em 0; border: 1px solid #ddd; border-radius: 4px; padding: .3em .7em; }
summary { cursor: pointer; font-weight: bold; }
.thumbs { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .7em;
          margin: .4em 0 .8em; }
.thumbs figure { margin: 0; min-width: 0; font-size: .82em; overflow-wrap: anywhere; }
.thumbs img { display: block; box-sizing: border-box; width: 100%; aspect-ratio: 1; object-fit: contain;
              border: 3px solid #ccc; background: #f4f4f4; }
.thumbs .id { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.thumbs .TP img { border-color: #2ca02c; } .thumbs .FP img { border-color: #d62728; }
.thumbs .FN img { border-color: #ff7f0e; } .thumbs .right img { border-color: #2ca02c; }
.thumbs .wrong img { border-color: #d62728; }
.fp { color: #c62828; font-weight: bold; } .fn { color: #d35400; font-weight: bold; text-decoration: line-through; }
.kind { margin: .3em 0 0; color: #444; }
.augmented { margin: .8em 0 1.2em; } .augmented > p { margin: 0 0 .3em; overflow-wrap: anywhere; }
.augmented .thumbs { grid-template-columns: repeat(5, minmax(0, 1fr)); max-width: 60em; }
@media (max-width: 600px) { .augmented .thumbs { grid-template-columns: repeat(3, minmax(0, 1fr)); } }
"""


# -- thumbnails ------------------------------------------------------------------------------
def save_jpeg(path: Path, picture: Image.Image) -> Path:
    path = atomic.write_atomic(path, lambda f: picture.save(f, format="JPEG", quality=85))
    path.chmod(0o644)  # a page to share, not a private temporary file
    return path


class Thumbnails:
    """Writes each image's thumbnail once into `out/thumbs/`; remembers the ones that failed."""

    def __init__(self, out: Path, size: int = THUMB_PX):
        self.folder, self.size = out / "thumbs", size
        self.made: dict[str, str | None] = {}  # image path -> src relative to out, or None

    def __call__(self, image: str | Path) -> str | None:
        key = str(image)
        if key not in self.made:
            self.made[key] = self._write(Path(image))
        return self.made[key]

    def _write(self, image: Path) -> str | None:
        try:
            picture = open_rgb(image, min_side=self.size)
        except FashionStyleError:
            return None
        picture.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        return self.save(picture, f"{re.sub(r'[^A-Za-z0-9_-]+', '_', image.stem)[:40]}_{_digest(image)}.jpg")

    def save(self, picture: Image.Image, name: str) -> str:
        save_jpeg(self.folder / name, picture)
        return f"thumbs/{name}"


def _digest(text: object) -> str:
    return hashlib.sha1(str(text).encode()).hexdigest()[:8]


def id_html(image_id: str) -> str:
    """An image id on one line, cut with an ellipsis where too long (the whole id on hover)."""
    text = html.escape(image_id)
    return f'<b class="id" title="{text}">{text}</b>'


def thumb_html(src: str, caption: str, kind: str = "") -> str:
    alt = re.sub(r"<[^>]+>", " ", caption).replace('"', "&quot;")  # the caption's (escaped) text
    return (f'<figure class="{kind}"><img src="{src}" alt="{alt}" loading="lazy">'
            f"<figcaption>{caption}</figcaption></figure>")


def label_sets_html(names: Sequence[str], target: np.ndarray, predicted: np.ndarray, probs: np.ndarray) -> str:
    """'true: ...<br>predicted: ...'; missed labels (FN) and wrong ones (FP) marked with their probability."""
    def listed(rows: np.ndarray, wrong: np.ndarray, css: str) -> str:
        items = [f'<span class="{css}">{html.escape(names[j])} ({probs[j]:.2f})</span>' if wrong[j]
                 else html.escape(names[j]) for j in np.flatnonzero(rows)]
        return ", ".join(items) or "none"

    truth, guess = target.astype(bool), predicted.astype(bool)
    return (f"true: {listed(truth, truth & ~guess, 'fn')}<br>"
            f"predicted: {listed(guess, guess & ~truth, 'fp')}")


# -- predictions, most wrong first -------------------------------------------------------------
def most_wrong_order(probs: np.ndarray, targets: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Row indices by wrong labels (FP + FN at the thresholds), then mean binary cross-entropy, both descending."""
    wrong = (predicted.astype(bool) != targets.astype(bool)).sum(axis=1)
    return np.lexsort((-image_losses(probs, targets), -wrong))


def image_losses(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy of each image over its labels (fastai's loss per item)."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return -np.where(targets == 1, np.log(p), np.log1p(-p)).mean(axis=1)


def prediction_grid(label_names: list[str], ids: list[str], probs: np.ndarray, targets: np.ndarray,
                    tuner: ThresholdTuner, images: dict[str, Path], thumbs: Thumbnails,
                    count: int = PREDICTIONS) -> tuple[str, int, int]:
    """Thumbnails of the `count` most wrong images that can be shown; images skipped; images all right."""
    predicted = tuner.predict(probs)
    paths = [images.get(i) for i in ids]
    picked, skipped = pick_thumbs(most_wrong_order(probs, targets, predicted), paths, thumbs, count)
    losses, figures = image_losses(probs, targets), []
    for row, src in picked:
        wrong = int((predicted[row] != targets[row]).sum())
        caption = (f"{id_html(ids[row])}{wrong} wrong · loss {losses[row]:.2f}<br>"
                   + label_sets_html(label_names, targets[row], predicted[row], probs[row]))
        figures.append(thumb_html(src, caption, "wrong" if wrong else "right"))
    all_right = int((predicted == targets).all(axis=1).sum())
    return f'<div class="thumbs">{"".join(figures)}</div>', len(skipped), all_right


# -- augmented training images -----------------------------------------------------------------
def display_pixels(sample: Any, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """(H, W, 3) uint8 of what a training transform returned: an (image, flip) pair or a (3, H, W)
    tensor, uint8 (pipeline.TrainCrop: the flip is applied later, on the device) or normalised float."""
    image, flip = (sample[0], bool(sample[1])) if isinstance(sample, tuple) else (sample, False)
    pixels = image.detach().cpu().numpy()
    if pixels.dtype != np.uint8:  # normalised on the host: undo (x - mean) / std
        pixels = pixels * np.asarray(std).reshape(3, 1, 1) + np.asarray(mean).reshape(3, 1, 1)
        pixels = np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8)
    pixels = pixels.transpose(1, 2, 0)
    return np.ascontiguousarray(pixels[:, ::-1] if flip else pixels)


def varied_rows(targets: np.ndarray, count: int, seed: int) -> list[int]:
    """`count` rows in a seeded order, each one adding a label not shown yet while it can."""
    order = np.random.default_rng(seed).permutation(len(targets))
    picked, seen = [], np.zeros(targets.shape[1], bool)
    for row in order:
        if len(picked) < count and (targets[row].astype(bool) & ~seen).any():
            picked.append(int(row))
            seen |= targets[row].astype(bool)
    return picked + [int(r) for r in order if r not in picked][:count - len(picked)]


def augmentation_blocks(train: LabelTable, config: dict[str, Any], thumbs: Thumbnails,
                        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                        count: int = AUGMENTED_IMAGES, draws: int = AUGMENTED_DRAWS) -> tuple[list[str], int]:
    """Per training image: the photo, then the crops of its first epochs (`draws` at most, no more than
    the run's epochs), each captioned `epoch i/N`; and the images skipped."""
    from fashionstyle.data.dataset import ImageDataset  # torch: only for this section
    from fashionstyle.data.images.decode import decode_image
    from fashionstyle.data.transforms import TrainCrop

    augment = TrainCrop(int(config["image_size"]), float(config.get("crop_scale", 0.35)),
                        bool(config.get("hflip", True)), str(config.get("augment", "none")))
    seed = int(config.get("seed", 0))
    epochs = int(config.get("epochs", draws))
    draws = max(1, min(draws, epochs))  # crops of epochs the run never trained are not its augmentation
    dataset = ImageDataset(train.images, None, augment, seed=seed,  # rows and seed as training's
                           opener=partial(decode_image, min_side=augment.min_side()))
    blocks, skipped = [], 0
    for row in varied_rows(train.require_targets(), count + 4, seed):
        src = thumbs(train.images[row])
        if src is None:
            skipped += 1
            continue
        names = ", ".join(html.escape(n) for n, t in zip(train.label_names, train.targets[row]) if t) or "none"
        tiles = [thumb_html(src, "the photo")]
        for epoch in range(draws):
            pixels = display_pixels(dataset[epoch * len(dataset) + row][0], mean, std)
            name = f"aug_{_digest(train.images[row])}_e{epoch + 1}.jpg"
            tiles.append(thumb_html(thumbs.save(Image.fromarray(pixels), name), f"epoch {epoch + 1}/{epochs}"))
        blocks.append(f'<div class="augmented"><p><b>{html.escape(train.ids[row])}</b>: {names}</p>'
                      f'<div class="thumbs">{"".join(tiles)}</div></div>')
        if len(blocks) == count:
            break
    return blocks, skipped


# -- error gallery and audit -------------------------------------------------------------------
def candidates(probs: np.ndarray, targets: np.ndarray, predicted: np.ndarray, kind: str) -> np.ndarray:
    """Row indices of one label's TP / FP / FN, most confident first (FN: lowest probability)."""
    mask = {"TP": (targets == 1) & (predicted == 1), "FP": (targets == 0) & (predicted == 1),
            "FN": (targets == 1) & (predicted == 0)}[kind]
    rows = np.flatnonzero(mask)
    order = np.argsort(probs[rows], kind="stable")
    return rows[order if kind == "FN" else order[::-1]]


def pick_thumbs(rows: np.ndarray, paths: Sequence[Path | None], thumbs: Thumbnails,
                count: int) -> tuple[list[tuple[int, str]], set[int]]:
    """Up to `count` (row, src) in order, skipping images that cannot be shown; and the rows skipped."""
    picked, skipped = [], set()
    for row in rows:
        src = thumbs(paths[row]) if paths[row] is not None else None
        if src is None:
            skipped.add(int(row))
            continue
        picked.append((int(row), src))
        if len(picked) == count:
            break
    return picked, skipped


def error_gallery(label_names: list[str], ids: list[str], probs: np.ndarray, targets: np.ndarray,
                  tuner: ThresholdTuner, images: dict[str, Path], thumbs: Thumbnails,
                  per_kind: int = PER_KIND) -> tuple[list[str], int]:
    """One <details> block per label with its TP, FP and FN thumbnails; and how many images were skipped."""
    paths = [images.get(i) for i in ids]
    predicted, thresholds = tuner.predict(probs), tuner.thresholds_
    blocks, skipped = [], set()
    for j, name in enumerate(label_names):
        parts, counts = [], []
        for kind in KINDS:
            rows = candidates(probs[:, j], targets[:, j], predicted[:, j], kind)
            picked, missed = pick_thumbs(rows, paths, thumbs, per_kind)
            skipped |= missed
            counts.append(f"{len(rows)} {kind}")
            figures = "".join(thumb_html(src, f"{id_html(ids[r])}p = {probs[r, j]:.3f}<br>"
                                         + label_sets_html(label_names, targets[r], predicted[r], probs[r]), kind)
                              for r, src in picked)
            parts.append(f'<p class="kind">{KIND_TEXT[kind]}</p>'
                         f'<div class="thumbs">{figures or "<em>none</em>"}</div>')
        summary = f"{html.escape(name)}: threshold {thresholds[j]:.3f}; {', '.join(counts)}"
        blocks.append(f"<details><summary>{summary}</summary>{''.join(parts)}</details>")
    return blocks, len(skipped)


def audit_gallery(issues: list[Issue], thumbs: Thumbnails, count: int = 24) -> tuple[str, int]:
    """Thumbnails of the `count` most suspect pairs that can be shown; and the images skipped."""
    figures, skipped = [], 0
    for issue in issues:
        src = thumbs(issue.image)
        if src is None:
            skipped += 1
            continue
        caption = (f"{id_html(issue.id)}<b>{html.escape(issue.label)}</b> given {issue.given}, "
                   f"p = {issue.probability:.3f}<br>score {issue.score:.3f}")
        figures.append(thumb_html(src, caption, "FP" if issue.given == 0 else "FN"))
        if len(figures) == count:
            break
    return f'<div class="thumbs">{"".join(figures)}</div>', skipped
