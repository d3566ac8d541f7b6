"""Synthetic multi-label fashion-style images for the built-in demo: labels with realistic rates and
co-occurrence, stratified splits, and `make_dataset` writing the images (synthetic/outfit.py draws
them; its docstring says which cue shows each style) and their labels.csv.

    make_dataset(Path("demo_data"), n_images=1200, image_size=64, seed=0)   # demo_data/labels.csv
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fashionstyle.data.synthetic.cues import STYLE_NAMES
from fashionstyle.data.synthetic.outfit import draw_outfit

SPLITS: tuple[str, ...] = ("train", "val", "test")

# Marginal positive rates, from common to rare (ratios as in the real data).
BASE_RATES: dict[str, float] = {
    "OL": 10 / 11, "Lady": 9 / 10, "Korean": 1 / 3, "European": 1 / 6,
    "Simple": 1 / 8, "Relax": 1 / 13, "Nature": 1 / 15, "Miden": 1 / 36,
    "Street": 1 / 44, "Sport": 1 / 55, "Japanese": 1 / 65, "England": 1 / 75,
    "Nation": 1 / 90,
}


def _cond(rng: np.random.Generator, given: np.ndarray, p_all: float,
          p_given: float, p_cond: float) -> np.ndarray:
    """Bernoulli draws with P(y|given) = p_given and marginal rate ~p_all."""
    p_else = max(0.0, (p_all - p_cond * p_given) / (1.0 - p_cond))
    return rng.random(given.shape[0]) < np.where(given, p_given, p_else)


def sample_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sample ``(n, 13)`` uint8 multi-hot labels with realistic co-occurrence.

    Marginals follow ``BASE_RATES``; Street lifts Sport, Lady lifts Miden,
    OL lifts Simple, Simple suppresses patterned styles; every row has a label.
    """
    r = BASE_RATES

    def bern(name: str, scale: float = 1.0) -> np.ndarray:
        return rng.random(n) < r[name] * scale

    no_pat = 1.0 / (1.0 - r["Simple"])  # keeps marginals of styles masked by ~Simple
    col: dict[str, np.ndarray] = {}
    for name in ("OL", "Lady", "Street", "Relax", "European", "Nature", "Japanese"):
        col[name] = bern(name)
    col["Simple"] = _cond(rng, col["OL"], r["Simple"], 0.13, r["OL"])
    col["Korean"] = _cond(rng, col["Simple"], r["Korean"], 0.08, r["Simple"])
    col["Miden"] = _cond(rng, col["Lady"], r["Miden"], 0.03, r["Lady"])
    col["Sport"] = _cond(rng, col["Street"], r["Sport"] * no_pat, 0.3, r["Street"])
    col["England"] = bern("England", no_pat)
    col["Nation"] = bern("Nation", no_pat)
    for name in ("Sport", "England", "Nation"):
        col[name] &= ~col["Simple"]
    labels = np.stack([col[s] for s in STYLE_NAMES], axis=1).astype(np.uint8)
    empty = np.flatnonzero(labels.sum(1) == 0)
    if empty.size:
        p = np.array([r[s] for s in STYLE_NAMES])
        labels[empty, rng.choice(len(STYLE_NAMES), empty.size, p=p / p.sum())] = 1
    return labels


def assign_splits(labels: np.ndarray, fractions: Sequence[float],
                  rng: np.random.Generator) -> np.ndarray:
    """Iterative stratification: split index per row (0=train, 1=val, 2=test).

    Rows are visited rarest-label first and sent to the split that most lacks
    that label, so even rare labels get positives in every split.
    """
    n = labels.shape[0]
    frac = np.asarray(fractions, dtype=float)
    frac = frac / frac.sum()
    rates = labels.mean(0) + 1e-9
    rarest = np.where(labels > 0, rates, np.inf).argmin(1)
    order = rng.permutation(n)
    order = order[np.argsort(rates[rarest[order]], kind="stable")]
    need_lab = frac[:, None] * labels.sum(0)[None, :].astype(float)
    need_n = frac * n
    out = np.zeros(n, dtype=np.int64)
    for i in order:
        score = np.where(need_n > 1e-9, need_lab[:, rarest[i]] + 1e-3 * need_n, -np.inf)
        s = int(score.argmax()) if np.isfinite(score).any() else int(need_n.argmax())
        out[i] = s
        need_lab[s] -= labels[i]
        need_n[s] -= 1
    return out



def make_dataset(out_dir: Path, n_images: int = 1200, image_size: int = 64, seed: int = 0,
                 split_fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Path:
    """Write ``images/NNNNNN.jpg`` and ``labels.csv`` under ``out_dir``; return the CSV path.

    CSV columns: ``image,split,<13 style names>``; deterministic for a seed.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    labels = sample_labels(np.random.default_rng([seed, 0]), n_images)
    splits = assign_splits(labels, split_fractions, np.random.default_rng([seed, 1]))
    csv_path = out_dir / "labels.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "split", *STYLE_NAMES])
        for i in range(n_images):
            rel = f"images/{i:06d}.jpg"
            img = draw_outfit(np.random.default_rng([seed, 2, i]), labels[i], image_size)
            img.save(out_dir / rel, format="JPEG", quality=90)
            writer.writerow([rel, SPLITS[splits[i]], *labels[i].tolist()])
    return csv_path
