"""A pre-resized image cache: every image decoded once into one memory-mapped uint8 array.

    fashionstyle cache --labels data/labels.csv --image-size 224 --out cache/224
    fashionstyle train --labels data/labels.csv --cache cache/224 ...   # builds it first if needed

CACHE/
  pixels-<build>.u8   (N, S, S, 3) uint8, raw, S = round(image_size / 0.875); a new
                      file per build, so a process still mapping the old one never
                      reads rows of another image set
  index.json          format, size, pixels (the file's name), images (absolute paths),
                      fingerprints (bytes, mtime_ns), bad (path -> why it could not be
                      read); written last, so its presence means the cache is complete
  .lock               held by the one process building (core/locks.py)

A rebuild (an image changed, or images were added) covers the old images that
still exist as well as the new ones, so a cache only grows. One process builds at a
time: another that needs the same folder waits for it, then uses what it built (or
grows it). Every process reading a pixels file holds a shared lock on it, and a
build removes an old pixels file only when no process reads it any more; so two
trainings started together on one empty folder, with the same or other label files,
both run. In a distributed run only rank 0 builds; the other ranks wait for its index.

Each image is resized so that its shorter side is S, then centre-cropped to S x S:
the first step of eval_transform, so validation sees the same pixels as from the
files (to within a one-pixel crop offset). Training's random resized crops come
from that square, so the ends of a photo's longer side (1/8 each for 3:4) are never
seen. An epoch then reads N*S*S*3 bytes from the page cache instead of decoding JPEGs.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.locks import file_lock, hold_shared, remove_if_unused
from fashionstyle.data.images.files import center_crop, resize_size
from fashionstyle.data.images.decode import decode_image
from fashionstyle.data.transforms import shorter_side_to

CACHE_FORMAT = 3  # 3: EXIF orientation applied, 16-bit images scaled to 8 bits
INDEX = "index.json"
LOCK = ".lock"
READ_TRIES = 5  # index reads when a build replaces the pixels file between reading the index and opening it
WAIT_S = 6 * 3600  # how long a secondary rank waits for rank 0's build


def cache_size(image_size: int) -> int:
    """Side of the cached squares: eval_transform's resize size."""
    return resize_size(image_size)


def _key(path: str | Path) -> str:
    return os.path.abspath(path)


def _fingerprint(path: str) -> list[int]:
    try:
        stat = os.stat(path)
    except OSError:
        return [-1, -1]
    return [stat.st_size, stat.st_mtime_ns]


def square(image: torch.Tensor, size: int) -> np.ndarray:
    """(size, size, 3) uint8 of a decoded (3, H, W) uint8 image: shorter side resized to `size`, centre-cropped
    (the input pipeline's resize, pipeline.shorter_side_to)."""
    return center_crop(shorter_side_to(image, size).permute(1, 2, 0), size).numpy()


class ImageCache:
    """A built cache; `decode(path)` gives the cached image as pipeline.decode_image does, `open(path)` as a
    PIL image (like images.open_rgb). While it is open, its pixels file is never removed by a rebuild."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._reading = None  # the pixels file, held with a shared lock (core/locks.hold_shared)
        for _ in range(READ_TRIES):
            self._read_index()
            try:
                self._reading = hold_shared(self.pixels_file)
                weakref.finalize(self, self._reading.close)  # let go when collected, if close() was never called
                break
            except FileNotFoundError:
                continue  # a build replaced it after the index was read: read the new index
            except OSError as err:
                raise FashionStyleError(f"{self.pixels_file}: image cache data unreadable ({err.strerror}); "
                                        "build it again") from None
        else:
            raise FashionStyleError(f"{self.pixels_file}: image cache data missing; build it again")
        self.rows = {path: row for row, path in enumerate(self.images)}
        self._pixels: np.ndarray | None = None  # opened lazily, once per process

    def _read_index(self) -> None:
        index = atomic.read_json(self.folder / INDEX, "an image cache (build it with `fashionstyle cache`)")
        if index.get("format") != CACHE_FORMAT:
            raise FashionStyleError(f"{self.folder}: image cache format {index.get('format')!r} is not "
                                    f"supported (this version reads {CACHE_FORMAT}); build it again")
        try:
            self.size = int(index["size"])
            self.pixels_file = self.folder / index["pixels"]
            self.images: list[str] = index["images"]
            self.fingerprints: list[list[int]] = index["fingerprints"]
            self.bad: dict[str, str] = index["bad"]
        except (KeyError, TypeError, ValueError):
            raise FashionStyleError(f"{self.folder / INDEX}: not a complete image cache index; "
                                    "build it again") from None

    def close(self) -> None:
        """Stop reading: a later build may remove this cache's pixels file."""
        if self._reading is not None:
            self._reading.close()
            self._reading = None
        self._pixels = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers map the file themselves (this process holds it)
        return {**self.__dict__, "_pixels": None, "_reading": None}

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            shape = (len(self.images), self.size, self.size, 3)
            try:
                self._pixels = np.memmap(self.pixels_file, np.uint8, "r", shape=shape)
            except (OSError, ValueError) as err:
                raise FashionStyleError(f"{self.pixels_file}: image cache data missing or short ({err}); "
                                        "it was rebuilt or damaged: build it again") from None
        return self._pixels

    def covers(self, images: Sequence[str | Path], size: int) -> bool:
        """Whether every image is cached (or known bad) at `size`, unchanged since."""
        if size != self.size:
            return False
        for path in map(_key, images):
            row = self.rows.get(path)
            if row is None or self.fingerprints[row] != _fingerprint(path):
                return False
        return True

    def _square(self, path: str | Path) -> np.ndarray:
        """(S, S, 3) uint8, a copy of the cached row."""
        key = _key(path)
        if key in self.bad:
            raise FashionStyleError(self.bad[key])
        row = self.rows.get(key)
        if row is None:
            raise FashionStyleError(f"{path}: not in the image cache {self.folder}; build it again")
        return np.array(self.pixels[row])

    def open(self, path: str | Path) -> Image.Image:
        return Image.fromarray(self._square(path))

    def decode(self, path: str | Path) -> torch.Tensor:
        """(3, S, S) uint8, in (S, S, 3) memory, as pipeline.decode_image gives files."""
        return torch.from_numpy(self._square(path)).permute(2, 0, 1)


class _Squares(Dataset):
    """(row, (S, S, 3) uint8 or None, why not) for each image file."""

    def __init__(self, images: Sequence[str], size: int):
        self.images, self.size = images, size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, row: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return row, square(decode_image(self.images[row], self.size), self.size), ""
        except FashionStyleError as err:
            return row, None, str(err)


def _as_is(item: Any) -> Any:
    return item


def build_cache(images: Sequence[str | Path], folder: str | Path, image_size: int,
                num_workers: int = 2, progress: bool = True) -> ImageCache:
    """Decode `images` once into `folder` (reused as it is when it already covers them). One process
    builds at a time; another waits for it, then reuses or grows what it built."""
    folder, size = Path(folder), cache_size(image_size)
    existing = _existing(folder)
    if existing is not None and existing.covers(images, size):
        return existing
    _check_size(folder, existing, size)
    folder.mkdir(parents=True, exist_ok=True)
    say = lambda: print(f"waiting for another process building the image cache {folder}", file=sys.stderr)  # noqa: E731
    with file_lock(folder / LOCK, what=f"the image cache {folder}", wait=True, on_wait=say):
        if existing is not None:
            existing.close()
        existing = _existing(folder)  # another process may have built it meanwhile
        if existing is not None and existing.covers(images, size):
            return existing
        _check_size(folder, existing, size)
        return _build(folder, existing, images, size, num_workers, progress)


def _check_size(folder: Path, existing: ImageCache | None, size: int) -> None:
    if existing is not None and existing.size != size:
        raise FashionStyleError(f"{folder}: holds a cache for image size {existing.size} (training size "
                                f"{round(existing.size * 0.875)}), not {size}; use another folder")


def _build(folder: Path, existing: ImageCache | None, images: Sequence[str | Path], size: int,
           num_workers: int, progress: bool) -> ImageCache:
    """Decode the images into a new pixels file and index (the caller holds the folder's lock)."""
    old = [p for p in (existing.images if existing else []) if os.path.exists(p)]
    if existing is not None:
        existing.close()
    keys = list(dict.fromkeys([*old, *map(_key, images)]))  # a cache only grows
    if not keys:
        raise FashionStyleError("no images to cache")
    for leftover in folder.glob("pixels-*.u8.part"):  # from an interrupted build: no other builds now
        leftover.unlink(missing_ok=True)
    _check_space(folder, len(keys) * size * size * 3)
    pixels_name = f"pixels-{uuid.uuid4().hex[:12]}.u8"
    fingerprints = [_fingerprint(p) for p in keys]
    bad = _decode_into(folder / f"{pixels_name}.part", keys, size, num_workers, progress)
    os.replace(folder / f"{pixels_name}.part", folder / pixels_name)
    atomic.write_json(folder / INDEX, {"format": CACHE_FORMAT, "size": size, "pixels": pixels_name,
                                         "images": keys, "fingerprints": fingerprints, "bad": bad})
    for stale in folder.glob("pixels-*.u8"):  # replaced builds, once no process reads them
        if stale.name != pixels_name:
            remove_if_unused(stale)
    return ImageCache(folder)


def _existing(folder: Path) -> ImageCache | None:
    """The cache in `folder`, or None when there is none or it is damaged (then it is rebuilt)."""
    if not (folder / INDEX).is_file():
        return None
    try:
        return ImageCache(folder)
    except FashionStyleError:
        return None


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FashionStyleError(f"{folder}: the image cache needs {needed / 1e9:.2f} GB, "
                                f"only {free / 1e9:.2f} GB free")


def _decode_into(path: Path, keys: list[str], size: int, num_workers: int, progress: bool) -> dict[str, str]:
    """Fill a new (N, size, size, 3) file with the squares; returns the unreadable images' reasons."""
    pixels = np.memmap(path, np.uint8, "w+", shape=(len(keys), size, size, 3))
    bad: dict[str, str] = {}
    loader = DataLoader(_Squares(keys, size), batch_size=None, num_workers=num_workers, collate_fn=_as_is)
    for row, array, reason in tqdm(loader, desc="caching images", unit="img", total=len(keys),
                                   disable=not progress):
        if array is None:
            bad[keys[row]] = reason
        else:
            pixels[row] = array
    pixels.flush()
    del pixels
    return bad


def wait_for_cache(folder: str | Path, images: Sequence[str | Path], image_size: int,
                   timeout_s: float = WAIT_S) -> ImageCache:
    """Wait until another process (rank 0) has built a cache covering `images`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        existing = _existing(Path(folder))
        if existing is not None and existing.covers(images, cache_size(image_size)):
            return existing
        if existing is not None:
            existing.close()
        time.sleep(2)
    raise FashionStyleError(f"{folder}: no image cache appeared within {timeout_s:.0f} s (rank 0 builds it)")


def image_opener(cache: str | None, image_size: int, images: Sequence[str | Path] | None = None,
                 num_workers: int = 2, progress: bool = True,
                 secondary: bool = False) -> Callable[[str | Path], torch.Tensor]:
    """pipeline.decode_image, or the cache's `decode` when a cache folder is given (built over `images` if
    needed; a `secondary` distributed process waits for rank 0 to build it)."""
    if not cache:
        return decode_image
    if images is None:
        return ImageCache(cache).decode
    if secondary:
        return wait_for_cache(cache, images, image_size).decode
    return build_cache(images, cache, image_size, num_workers, progress).decode
