"""The pre-resized image cache: built once, the same pixels as the files, bad images kept out, used by train."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, load_bench, make_image_set
from fashionstyle import FashionStyleError
from fashionstyle.cache import ImageCache, build_cache, cache_size, image_opener, square
from fashionstyle.cli import main
from fashionstyle.data import drop_bad_images, eval_transform, open_rgb
from fashionstyle.labels import read_labels



@pytest.fixture
def images(tmp_path) -> list[Path]:
    labels = make_image_set(tmp_path / "data", n=12)
    return sorted((labels.parent / "img").glob("*.jpg"))


def test_cached_images_are_the_resized_squares(images, tmp_path) -> None:
    cache = build_cache(images, tmp_path / "cache", image_size=56, num_workers=0, progress=False)
    assert cache.size == cache_size(56) == 64
    assert (tmp_path / "cache" / "pixels.u8").stat().st_size == len(images) * 64 * 64 * 3
    for path in images[:4]:
        cached = cache.open(path)
        assert cached.size == (64, 64) and cached.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(cached), square(open_rgb(path), 64))
    relative = os.path.relpath(images[0])  # any spelling of the same file
    np.testing.assert_array_equal(np.asarray(cache.open(relative)), np.asarray(cache.open(images[0])))


def test_validation_crops_match_the_files(images, tmp_path) -> None:
    cache = build_cache(images, tmp_path / "cache", image_size=56, num_workers=0, progress=False)
    transform = eval_transform(56, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    for path in images:
        from_file, from_cache = transform(open_rgb(path)), transform(cache.open(path))
        assert from_file.shape == from_cache.shape == (3, 56, 56)
        assert (from_file - from_cache).abs().mean() < 0.05  # same pixels, to within a one-pixel offset


def test_bad_images_are_recorded_and_refused(images, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    cache = build_cache([*images, broken], tmp_path / "cache", image_size=32, num_workers=2, progress=False)
    assert list(cache.bad) == [str(broken)]
    with pytest.raises(FashionStyleError, match="broken.jpg: not a readable image"):
        cache.open(broken)
    with pytest.raises(FashionStyleError, match="not in the image cache"):
        cache.open(tmp_path / "elsewhere.jpg")


def test_built_once_and_rebuilt_when_an_image_changes(images, tmp_path) -> None:
    folder = tmp_path / "cache"
    build_cache(images, folder, 32, num_workers=0, progress=False)
    stamp = (folder / "pixels.u8").stat().st_mtime_ns
    build_cache(images[:5], folder, 32, num_workers=0, progress=False)  # a subset: covered, reused
    assert (folder / "pixels.u8").stat().st_mtime_ns == stamp
    open_rgb(images[1]).transpose(0).save(images[1], quality=95)  # the photo changed on disk
    os.utime(images[1], ns=(stamp + 10**9, stamp + 10**9))
    rebuilt = build_cache(images, folder, 32, num_workers=0, progress=False)
    np.testing.assert_array_equal(np.asarray(rebuilt.open(images[1])), square(open_rgb(images[1]), cache_size(32)))
    assert rebuilt.covers(images, cache_size(32)) and not rebuilt.covers(images, cache_size(64))


def test_cache_travels_to_worker_processes(images, tmp_path) -> None:
    cache = build_cache(images, tmp_path / "cache", 32, num_workers=0, progress=False)
    cache.open(images[0])  # maps the file in this process
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._pixels is None  # each worker maps it for itself
    np.testing.assert_array_equal(np.asarray(copy.open(images[3])), np.asarray(cache.open(images[3])))


def test_opener_and_missing_cache(images, tmp_path) -> None:
    assert image_opener("", 32) is open_rgb
    with pytest.raises(FashionStyleError, match="image cache"):
        image_opener(str(tmp_path / "none"), 32)  # not built and nothing to build it from
    table = read_labels(images[0].parents[1] / "labels.csv")
    opener = image_opener(str(tmp_path / "c"), 32, table.images, num_workers=0, progress=False)
    kept, bad = drop_bad_images(table, "skip", decode=True, opener=opener)
    assert len(kept) == len(table) and bad == []


def test_train_with_cache_matches_the_file_pipeline_shapes(tmp_path) -> None:
    labels = make_image_set(tmp_path / "data", n=24)
    cache = tmp_path / "cache"
    run = tmp_path / "run"
    torch.manual_seed(0)
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1",
                 "--cache", str(cache)]) == 0
    assert (cache / "index.json").is_file() and len(ImageCache(cache).images) == 18  # train + val rows
    assert "cache: " in (run / "config.yaml").read_text()
    assert (run / "model.pt").is_file() and (run / "thresholds.json").is_file()


def test_cli_cache_command(images, tmp_path, capsys) -> None:
    assert main(["cache", str(images[0].parent), "--image-size", "32", "--out", str(tmp_path / "c"),
                 "--num-workers", "0", "--quiet"]) == 0
    assert f"{len(images)} images cached at 37x37" in capsys.readouterr().out
    assert main(["cache", str(tmp_path / "nothing"), "--image-size", "32", "--out", str(tmp_path / "d")]) == 2


def test_data_speed_bench_small(capsys) -> None:
    module = load_bench("data_speed")
    threads = torch.get_num_threads()
    try:
        assert module.main(["--n", "6", "--image-size", "32", "--rounds", "1", "--min-ratio", "0"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "Pillow (files)" in out and "image cache" in out and "torchvision.io" in out
