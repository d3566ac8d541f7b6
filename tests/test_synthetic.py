"""Tests for the synthetic fashion-style image generator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionstyle.data.synthetic.dataset import (
    STYLE_NAMES,
    assign_splits,
    draw_outfit,
    make_dataset,
    sample_labels,
)

COMMON = ("OL", "Lady")
MIDDLE = ("Korean", "European", "Simple", "Relax", "Nature")
RARE = ("Sport", "Japanese", "England", "Nation")


def _read(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _labels(rows: list[dict[str, str]]) -> np.ndarray:
    return np.array([[int(r[s]) for s in STYLE_NAMES] for r in rows], dtype=np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("syn") / "ds", n_images=700, seed=3)


def test_style_names() -> None:
    assert len(STYLE_NAMES) == 13 and len(set(STYLE_NAMES)) == 13
    assert STYLE_NAMES[0] == "Sport" and STYLE_NAMES[-1] == "Nation"


def test_sample_labels_shape_and_nonempty() -> None:
    labels = sample_labels(np.random.default_rng(0), 5000)
    assert labels.shape == (5000, 13) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    assert (labels.sum(1) >= 1).all()


def test_label_rates_ordered_common_to_rare() -> None:
    rate = dict(zip(STYLE_NAMES, sample_labels(np.random.default_rng(1), 20000).mean(0)))
    top2 = sorted(rate, key=rate.get, reverse=True)[:2]
    assert set(top2) == set(COMMON) and min(rate[s] for s in COMMON) > 0.8
    assert min(rate[s] for s in MIDDLE) > max(rate[s] for s in RARE)
    assert all(0.005 < rate[s] < 0.03 for s in RARE)
    assert rate["Korean"] > rate["Simple"] > rate["Nature"] > rate["Miden"] > rate["Nation"]


def test_label_correlations() -> None:
    y = sample_labels(np.random.default_rng(2), 40000).astype(bool)
    col = {s: y[:, i] for i, s in enumerate(STYLE_NAMES)}
    cond = lambda a, b: col[a][col[b]].mean()  # noqa: E731  P(a | b)
    assert cond("Sport", "Street") > 5 * col["Sport"].mean()
    assert cond("Miden", "Lady") > 2 * col["Miden"][~col["Lady"]].mean()
    assert cond("Simple", "OL") > col["Simple"][~col["OL"]].mean()


def test_assign_splits_stratifies() -> None:
    labels = sample_labels(np.random.default_rng(4), 600)
    split = assign_splits(labels, (0.6, 0.2, 0.2), np.random.default_rng(0))
    assert np.bincount(split, minlength=3).tolist() == [360, 120, 120]
    for j in np.flatnonzero(labels.sum(0) >= 6):
        assert all(labels[split == s, j].sum() >= 1 for s in range(3)), STYLE_NAMES[j]


def test_draw_outfit_deterministic_rgb() -> None:
    lab = np.zeros(13, dtype=np.uint8)
    lab[[2, 8]] = 1
    a = draw_outfit(np.random.default_rng(7), lab, 48)
    b = draw_outfit(np.random.default_rng(7), lab, 48)
    assert a.mode == "RGB" and a.size == (48, 48)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    c = draw_outfit(np.random.default_rng(8), lab, 48)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.slow
def test_csv_header_shape_and_images(dataset: Path) -> None:
    header, rows = _read(dataset)
    assert header == ["image", "split", *STYLE_NAMES]
    assert len(rows) == 700
    assert [r["image"] for r in rows[:2]] == ["images/000000.jpg", "images/000001.jpg"]
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    assert counts == {"train": 420, "val": 140, "test": 140}
    labels = _labels(rows)
    assert set(np.unique(labels)) == {0, 1} and (labels.sum(1) >= 1).all()
    for r in rows[::50]:
        with Image.open(dataset.parent / r["image"]) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (64, 64)


def test_make_dataset_deterministic(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", n_images=30, image_size=32, seed=5)
    b = make_dataset(tmp_path / "b", n_images=30, image_size=32, seed=5)
    c = make_dataset(tmp_path / "c", n_images=30, image_size=32, seed=6)
    assert a.read_text() == b.read_text()
    assert a.read_text() != c.read_text()
    for name in ("images/000000.jpg", "images/000029.jpg"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
        with Image.open(a.parent / name) as im:
            assert im.size == (32, 32)


def _features(img: np.ndarray) -> np.ndarray:
    """Colour histograms plus horizontal/vertical gradient energy per row band."""
    x = img.astype(np.float32) / 255.0
    hist = [np.histogram(x[..., c], bins=8, range=(0, 1))[0] / x[..., c].size for c in range(3)]
    gray = x.mean(2)
    gx = np.abs(np.diff(gray, axis=1))[:-1]
    gy = np.abs(np.diff(gray, axis=0))[:, :-1]
    bands = [np.array_split(g, 8, axis=0) for g in (gx, gy)]
    energy = [b.mean() for bs in bands for b in bs]
    return np.concatenate([*hist, energy, [gray.std(), x.std(axis=(0, 1)).mean()]])


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(score)) + 1.0
    pos = y.astype(bool)
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


@pytest.mark.slow
def test_learnable_with_simple_features(dataset: Path) -> None:
    _, rows = _read(dataset)
    y = _labels(rows)
    feats = np.stack([_features(np.asarray(Image.open(dataset.parent / r["image"]))) for r in rows])
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    train = np.array([r["split"] == "train" for r in rows])
    a = np.c_[feats[train], np.ones(train.sum())]
    w = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ y[train])
    score = np.c_[feats[~train], np.ones((~train).sum())] @ w
    aucs = {s: _auc(y[~train, j], score[:, j]) for j, s in enumerate(STYLE_NAMES)
            if 8 <= y[~train, j].sum() <= (~train).sum() - 8}
    good = [s for s, v in aucs.items() if v >= 0.75]
    assert len(good) >= 3, aucs


def test_regions_come_with_the_same_image_for_the_styles_shown() -> None:
    from fashionstyle.data.synthetic.outfit import draw_outfit_regions

    for i, labels in enumerate(sample_labels(np.random.default_rng(4), 20)):
        image, regions = draw_outfit_regions(np.random.default_rng([7, i]), labels, 64)
        assert np.array_equal(np.asarray(image), np.asarray(draw_outfit(np.random.default_rng([7, i]), labels, 64)))
        assert set(regions) == {s for s, v in zip(STYLE_NAMES, labels) if v}
        for region in regions.values():
            assert region.shape == (64, 64) and 0 <= region.min() and region.max() <= 1
            assert 0 < region.mean() < 0.5  # a part of the picture, not all of it


@pytest.mark.parametrize("style, cue", [("Sport", "stripes"), ("Korean", "dots"), ("Miden", "bow"),
                                        ("England", "stripes")])
def test_region_covers_the_pixels_its_cue_draws(monkeypatch, style: str, cue: str) -> None:
    """Drawn again without the cue (the same random draws), the image changes only inside the region."""
    import fashionstyle.data.synthetic.outfit as synthetic

    labels = np.array([s in (style, "Lady") for s in STYLE_NAMES], dtype=np.uint8)
    changed = inside = 0
    for seed in range(6):
        image, regions = synthetic.draw_outfit_regions(np.random.default_rng([seed, 2]), labels, 64)
        with monkeypatch.context() as patch:
            patch.setattr(synthetic, cue, lambda size, *a, **k: Image.new("L", (size, size)) if cue != "bow" else None)
            without = synthetic.draw_outfit(np.random.default_rng([seed, 2]), labels, 64)
        diff = np.abs(np.asarray(image, np.int16) - np.asarray(without, np.int16)).max(axis=2) > 20  # (64, 64)
        changed += diff.sum()
        inside += (diff & (regions[style] > 0)).sum()
    assert changed > 20 and inside / changed > 0.9
