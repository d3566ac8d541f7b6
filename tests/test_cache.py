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
from fashionstyle.data.images.cache import ImageCache, build_cache, cache_size, image_opener, square
from fashionstyle.cli import main
from fashionstyle.data.images.files import open_rgb
from fashionstyle.data.images.decode import decode_image
from fashionstyle.data.splits import drop_bad_images
from fashionstyle.data.transforms import eval_transform
from fashionstyle.data.labels.read import read_labels


@pytest.fixture
def images(tmp_path) -> list[Path]:
    labels = make_image_set(tmp_path / "data", n=12)
    return sorted((labels.parent / "img").glob("*.jpg"))


def test_cached_images_are_the_resized_squares(images, tmp_path) -> None:
    cache = build_cache(images, tmp_path / "cache", image_size=56, num_workers=0, progress=False)
    assert cache.size == cache_size(56) == 64
    assert cache.pixels_file.stat().st_size == len(images) * 64 * 64 * 3
    for path in images[:4]:
        cached = cache.open(path)
        assert cached.size == (64, 64) and cached.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(cached), square(decode_image(path), 64))
        assert torch.equal(cache.decode(path), decode_image(path).new_tensor(np.asarray(cached)).permute(2, 0, 1))
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
    first = build_cache(images[:8], folder, 32, num_workers=0, progress=False)
    stamp = first.pixels_file.stat().st_mtime_ns
    assert build_cache(images[:5], folder, 32, num_workers=0, progress=False).pixels_file == first.pixels_file
    assert first.pixels_file.stat().st_mtime_ns == stamp  # a subset: covered, reused
    grown = build_cache(images[6:], folder, 32, num_workers=0, progress=False)  # new images: the cache grows
    assert grown.covers(images, cache_size(32)) and first.pixels_file.exists()  # `first` still reads it
    np.testing.assert_array_equal(np.asarray(first.open(images[0])), np.asarray(grown.open(images[0])))
    first.close()  # nobody reads it any more: the next build removes it
    open_rgb(images[1]).transpose(0).save(images[1], quality=95)  # the photo changed on disk
    os.utime(images[1], ns=(stamp + 10**9, stamp + 10**9))
    grown.close()
    rebuilt = build_cache(images, folder, 32, num_workers=0, progress=False)
    assert not first.pixels_file.exists() and not grown.pixels_file.exists()
    np.testing.assert_array_equal(np.asarray(rebuilt.open(images[1])), square(decode_image(images[1]), cache_size(32)))
    assert rebuilt.covers(images, cache_size(32)) and not rebuilt.covers(images, cache_size(64))


def test_cache_travels_to_worker_processes(images, tmp_path) -> None:
    cache = build_cache(images, tmp_path / "cache", 32, num_workers=0, progress=False)
    cache.open(images[0])  # maps the file in this process
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._pixels is None  # each worker maps it for itself
    np.testing.assert_array_equal(np.asarray(copy.open(images[3])), np.asarray(cache.open(images[3])))


def test_opener_and_missing_cache(images, tmp_path) -> None:
    assert image_opener("", 32) is decode_image
    with pytest.raises(FashionStyleError, match="image cache"):
        image_opener(str(tmp_path / "none"), 32)  # not built and nothing to build it from
    table = read_labels(images[0].parents[1] / "labels.csv")
    opener = image_opener(str(tmp_path / "c"), 32, table.images, num_workers=0, progress=False)
    kept, bad = drop_bad_images(table, "skip", decode=True, opener=opener)
    assert len(kept) == len(table) and bad == []


@pytest.mark.slow
def test_train_reads_the_cache_not_the_files(tmp_path) -> None:
    labels = make_image_set(tmp_path / "data", n=24)
    cache = tmp_path / "cache"
    table = read_labels(labels)
    build_cache(table.images, cache, 32, num_workers=0, progress=False)
    for path in table.images:  # garble every JPEG, keeping its size and mtime: only the cache can serve
        stat = os.stat(path)
        Path(path).write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    run = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1",
                 "--cache", str(cache), "--on-bad-image", "fail"]) == 0
    assert "cache: " in (run / "config.yaml").read_text()
    assert (run / "model.pt").is_file() and not (run / "bad_images.csv").exists()


def test_damaged_or_foreign_caches(images, tmp_path) -> None:
    folder = tmp_path / "cache"
    build_cache(images, folder, 32, num_workers=0, progress=False)
    with pytest.raises(FashionStyleError, match="image size 37 .* not 73; use another folder"):
        build_cache(images, folder, 64, num_workers=0, progress=False)
    (folder / "index.json").write_text('{"format": 3, "size": 37}')
    with pytest.raises(FashionStyleError, match="not a complete image cache index"):
        ImageCache(folder)
    assert build_cache(images, folder, 32, num_workers=0, progress=False).covers(images, 37)  # rebuilt
    for leftover in folder.glob("pixels-*.u8"):
        leftover.write_bytes(b"short")
    with pytest.raises(FashionStyleError, match="missing or short"):
        ImageCache(folder).open(images[0])


def test_no_space_and_waiting_ranks(images, tmp_path, monkeypatch) -> None:
    from fashionstyle.data.images import cache as cache_lib

    with pytest.raises(FashionStyleError, match="no image cache appeared"):
        cache_lib.wait_for_cache(tmp_path / "later", images, 32, timeout_s=0.1)
    build_cache(images, tmp_path / "later", 32, num_workers=0, progress=False)
    assert cache_lib.wait_for_cache(tmp_path / "later", images, 32, timeout_s=5).covers(images, 37)
    assert image_opener(str(tmp_path / "later"), 32, images, secondary=True)(images[0]).shape == (3, 37, 37)
    monkeypatch.setattr(cache_lib.shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    with pytest.raises(FashionStyleError, match="needs 0.00 GB, only 0.00 GB free"):
        build_cache(images, tmp_path / "full", 32, num_workers=0, progress=False)


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


def test_a_cache_let_go_without_close_releases_its_pixels_file(images, tmp_path) -> None:
    """Training drops its opener without calling close(): the shared hold on the pixels file goes with
    the cache object, closed (not left to the file's own finaliser, which warns of an unclosed file)."""
    import gc
    import warnings

    cache = build_cache(images, tmp_path / "cache", 32, num_workers=0, progress=False)
    pixels = str(cache.pixels_file.resolve())

    def held() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == pixels for fd in os.listdir("/proc/self/fd"))

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd to count open files")
    assert held() == 1
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        del cache
        gc.collect()
    assert held() == 0 and not [w for w in said if issubclass(w.category, ResourceWarning)]
