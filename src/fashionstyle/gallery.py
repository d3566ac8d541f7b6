"""The report's image sections: an error gallery per label and the audit's suspect labels.

Error gallery: per label, the most confident true positives (highest probability),
false positives (highest) and false negatives (lowest) at the label's tuned
threshold, as thumbnails with their probability. Thumbnails are small JPEGs in
`thumbs/` beside index.html; an image that is missing or unreadable is skipped
(the next one takes its place) and counted in a note. Each label is a collapsible
<details> block, so the page stays short and needs no JavaScript.
"""
from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from . import _atomic
from .audit import Issue
from .errors import FashionStyleError
from .images import open_rgb
from .thresholds import ThresholdTuner

THUMB_PX = 128
PER_KIND = 4
KINDS = ("TP", "FP", "FN")
KIND_TEXT = {"TP": "true positives", "FP": "false positives", "FN": "false negatives"}
CSS = """
details { margin: .4em 0; border: 1px solid #ddd; border-radius: 4px; padding: .3em .7em; }
summary { cursor: pointer; font-weight: bold; }
.thumbs { display: flex; flex-wrap: wrap; gap: .6em; margin: .4em 0 .8em; align-items: flex-end; }
.thumbs figure { margin: 0; width: 136px; font-size: .82em; text-align: center; }
.thumbs img { border: 3px solid #ccc; max-width: 128px; max-height: 128px; }
.thumbs .TP img { border-color: #2ca02c; } .thumbs .FP img { border-color: #d62728; }
.thumbs .FN img { border-color: #ff7f0e; }
.kind { margin: .3em 0 0; color: #444; }
"""


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
            picture = open_rgb(image)
        except FashionStyleError:
            return None
        picture.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", image.stem)[:40]
        name = f"{stem}_{hashlib.sha1(str(image).encode()).hexdigest()[:8]}.jpg"
        path = _atomic.write_atomic(self.folder / name, lambda f: picture.save(f, format="JPEG", quality=80))
        path.chmod(0o644)
        return f"thumbs/{name}"


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


def thumb_html(src: str, caption: str, kind: str = "") -> str:
    alt = re.sub(r"<[^>]+>", " ", caption).replace('"', "&quot;")  # the caption's (escaped) text
    return (f'<figure class="{kind}"><img src="{src}" alt="{alt}">'
            f"<figcaption>{caption}</figcaption></figure>")


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
            figures = "".join(thumb_html(src, f"{html.escape(ids[r])}<br>p = {probs[r, j]:.3f}", kind)
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
        caption = (f"{html.escape(issue.id)}<br><b>{html.escape(issue.label)}</b> given {issue.given}, "
                   f"p = {issue.probability:.3f}<br>score {issue.score:.3f}")
        figures.append(thumb_html(src, caption, "FP" if issue.given == 0 else "FN"))
        if len(figures) == count:
            break
    return f'<div class="thumbs">{"".join(figures)}</div>', skipped
