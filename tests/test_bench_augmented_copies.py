"""bench/augmented_copies.py: augmented copies of the train photos, listed as unlabelled images."""
from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from conftest import load_bench, make_image_set


def test_copies_are_seeded_views_of_every_train_photo_and_listed_for_distill(tmp_path) -> None:
    labels = make_image_set(tmp_path / "data", n=8)  # 4 train photos
    bench = load_bench("augmented_copies")
    assert bench.main(["--labels", str(labels), "--copies", "2", "--out", str(tmp_path / "a")]) == 0
    with (tmp_path / "a" / "unlabelled.csv").open() as f:
        listed = [row["image"] for row in csv.DictReader(f)]
    assert len(listed) == 4 * 2 and all(p.endswith(".jpg") for p in listed)
    first = np.asarray(Image.open(listed[0]))
    source = np.asarray(Image.open(tmp_path / "data" / "img" / "000.jpg"))
    assert first.shape != source.shape or not np.array_equal(first, source)  # a view, not the photo
    bench.main(["--labels", str(labels), "--copies", "2", "--out", str(tmp_path / "b")])
    again = np.asarray(Image.open(str(listed[0]).replace(str(tmp_path / "a"), str(tmp_path / "b"))))
    assert np.array_equal(first, again)  # seeded


def test_a_crop_box_stays_inside_the_photo_and_keeps_at_least_the_smallest_area() -> None:
    bench = load_bench("augmented_copies")
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = bench.random_crop_box(400, 533, rng)
        assert 0 <= left < right <= 400 and 0 <= top < bottom <= 533
        assert (right - left) * (bottom - top) >= 0.34 * 400 * 533
