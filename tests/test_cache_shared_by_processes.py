"""One image cache folder used by two processes at once (two `train --cache C`): built once and shared, and a
build for other images never removes the pixels file another process is still reading."""
from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_image_set
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.locks import file_lock, hold_shared, remove_if_unused
from fashionstyle.data.images import cache as cache_lib
from fashionstyle.data.images.cache import ImageCache, build_cache, cache_size, square
from fashionstyle.data.images.decode import decode_image

SIZE = 32  # training image size; cached squares of cache_size(SIZE)
SLOW_S = 1.0  # each build's decoding takes at least this long, so that the two builds overlap


def _slowed(decode_into, builds: list[int]):
    """`decode_into` (cache._decode_into) taking SLOW_S longer, counting its calls in `builds`."""
    def slow(*args, **kwargs):
        builds.append(1)
        time.sleep(SLOW_S)
        return decode_into(*args, **kwargs)

    return slow


def _matches_files(cache: ImageCache, images: list[Path]) -> bool:
    worker_copy = pickle.loads(pickle.dumps(cache))  # as a DataLoader worker gets it: maps the file itself
    return all(np.array_equal(worker_copy.decode(p).permute(1, 2, 0).numpy(),
                              square(decode_image(p), cache_size(SIZE))) for p in images)


def _build_in_child(images: list[Path], folder: Path, ready, build_now, read_now, results) -> None:
    """A second `train --cache`: build (or reuse) the cache when told, then read it when told."""
    builds: list[int] = []
    cache_lib._decode_into = _slowed(cache_lib._decode_into, builds)
    ready.set()
    try:
        build_now.wait(120)
        cache = build_cache(images, folder, SIZE, num_workers=0, progress=False)
        results.put(("built", cache.pixels_file.name, len(builds)))
        read_now.wait(120)
        results.put(("read", _matches_files(cache, images), 0))
    except Exception as err:  # noqa: BLE001 - reported to the parent, which fails the test with it
        results.put(("error", f"{type(err).__name__}: {err}", 0))


def _start_child(images: list[Path], folder: Path):
    """The child process, started and waiting: (process, build_now, read_now, results)."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with torch's threads
    ready, build_now, read_now, results = context.Event(), context.Event(), context.Event(), context.Queue()
    child = context.Process(target=_build_in_child, args=(images, folder, ready, build_now, read_now, results),
                            daemon=True)
    child.start()
    assert ready.wait(120), "the child process did not start"
    return child, build_now, read_now, results


@pytest.mark.slow
def test_two_processes_started_together_build_the_cache_once_and_share_it(tmp_path: Path, monkeypatch) -> None:
    labels = make_image_set(tmp_path / "data", n=8)
    images = sorted((labels.parent / "img").glob("*.jpg"))
    folder = tmp_path / "cache"
    child, build_now, read_now, results = _start_child(images, folder)
    builds: list[int] = []
    monkeypatch.setattr(cache_lib, "_decode_into", _slowed(cache_lib._decode_into, builds))
    build_now.set()  # both build_cache calls start now, on an empty folder
    cache = build_cache(images, folder, SIZE, num_workers=0, progress=False)
    kind, pixels_name, child_builds = results.get(timeout=120)
    assert kind == "built", pixels_name  # not FileNotFoundError on a .part file the other one removed
    assert pixels_name == cache.pixels_file.name  # one pixels file, shared
    assert len(builds) + child_builds == 1  # decoded once, by whichever came first
    read_now.set()
    assert results.get(timeout=120) == ("read", True, 0)
    assert _matches_files(cache, images)
    child.join(30)
    assert sorted(p.name for p in folder.glob("pixels-*")) == [cache.pixels_file.name]


@pytest.mark.slow
def test_a_build_for_other_images_keeps_the_pixels_another_process_reads(tmp_path: Path) -> None:
    labels = make_image_set(tmp_path / "data", n=10)
    images = sorted((labels.parent / "img").glob("*.jpg"))
    first, second = images[:5], images[5:]  # two label files over one cache folder
    folder = tmp_path / "cache"
    child, build_now, read_now, results = _start_child(first, folder)
    build_now.set()
    kind, child_pixels, _ = results.get(timeout=120)  # the child has built over its images and reads them
    assert kind == "built", child_pixels
    grown = build_cache(second, folder, SIZE, num_workers=0, progress=False)  # grows it: a new pixels file
    assert grown.pixels_file.name != child_pixels and grown.covers(images, cache_size(SIZE))
    assert (folder / child_pixels).exists()  # still read by the child: kept
    read_now.set()
    assert results.get(timeout=120) == ("read", True, 0)  # its workers still map its own pixels
    child.join(30)
    third = build_cache(images, folder, SIZE, num_workers=0, progress=False)
    assert third.pixels_file == grown.pixels_file  # covered: reused
    grown.close()
    third.close()
    images[0].touch()  # a changed photo: rebuilt, and no process reads the older files any more
    rebuilt = build_cache(images, folder, SIZE, num_workers=0, progress=False)
    assert sorted(p.name for p in folder.glob("pixels-*")) == [rebuilt.pixels_file.name]


HOLD = """
import sys
from fashionstyle.core.locks import file_lock
with file_lock(sys.argv[1], what="held"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_file_lock_refuses_in_one_line_or_waits(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FashionStyleError) as err:
            with file_lock(lock, what=f"the run folder {tmp_path}"):
                pass
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"the run folder {tmp_path} is in use by another process")
        assert f"(pid {holder.pid})" in message
        with pytest.raises(FashionStyleError, match=r"still in use by another process .* after 0.2 s"):
            with file_lock(lock, what="x", wait=0.2):
                pass
        holder.stdin.write("done\n")
        holder.stdin.flush()
        with file_lock(lock, what="x", wait=30.0):  # once the holder lets go
            assert lock.read_text().strip() == str(os.getpid())
    finally:
        holder.kill()
        holder.wait(30)


def test_a_file_held_by_a_reader_is_not_removed(tmp_path: Path) -> None:
    data = tmp_path / "pixels.u8"
    data.write_bytes(b"x")
    reading = hold_shared(data)
    assert remove_if_unused(data) is False and data.exists()
    reading.close()
    assert remove_if_unused(data) is True and not data.exists()
    with pytest.raises(FileNotFoundError):
        hold_shared(data)
