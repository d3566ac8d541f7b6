"""The images to predict, read lazily: a folder, one image, a JD list (`id,url[,labels]`), a CSV with an image
column, or a plain list of image paths, one a line (label_formats.is_path_list says which list it is).

    source = ImageSource.open("catalogue.csv")        # or a folder (recursive=True: with its sub-folders), or a.jpg
    len(source)                                        # counted once, by streaming the file
    for image_id, path in source: ...                  # one row at a time, in file order

A list file is never held in memory, whatever its length (opening it keeps
8 bytes per image, to refuse a repeated id); a folder's names are listed and
sorted once (strings only), by images.scan_folder's rule, which also says what
it left out and why (`left_out`). Ids and paths are those `read_labels`
gives for the same file (data/labels/read.py), so prediction outputs are named alike; in
a folder an image's id is its path in the folder without the suffix
(`a`, `men/001`).
"""
from __future__ import annotations

import array
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.files import IMAGE_SUFFIXES, FolderListing, scan_folder
from fashionstyle.data.labels.formats import is_path_list, open_path_list
from fashionstyle.data.labels.rows import file_layout, image_column, iter_csv_rows, jd_image_path


@dataclass
class ImageSource:
    """Where the images come from: a folder, one image file or a list file (`image_dir` resolves a list's paths)."""

    path: Path
    image_dir: Path
    count: int = 0  # images listed (set by open)
    listing: FolderListing | None = None  # a folder's (set by open)

    @classmethod
    def open(cls, path: str | Path, image_dir: str | Path | None = None, recursive: bool = False) -> "ImageSource":
        path = Path(path)
        if not path.exists():
            raise FashionStyleError(f"{path}: no such folder, image or list file")
        source = cls(path, Path(image_dir) if image_dir else (path if path.is_dir() else path.parent))
        if path.is_dir():
            source.listing = scan_folder(path, recursive)
        source.count = source._check_unique_ids()
        if source.count == 0:
            raise FashionStyleError(f"{path}: no images" + (f" ({', '.join(IMAGE_SUFFIXES)})" if path.is_dir() else "")
                                    + ("" if recursive or not path.is_dir() else "; --recursive reads sub-folders"))
        return source

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, Path]]:
        return ((image_id, image) for _, image_id, image in self._numbered())

    def chunks(self, size: int) -> Iterator[list[tuple[str, Path]]]:
        return _chunks(iter(self), size)

    def is_list(self) -> bool:
        """A list file (its relative paths read from image_dir), not a folder or one image."""
        return self.listing is None and self.path.suffix.lower() not in IMAGE_SUFFIXES

    def left_out(self) -> list[tuple[str, str]]:
        """(path, why) of the folder's entries that are not images (scan_folder's rule); none for a list."""
        return [(str(self.path / name), why) for name, why in self.listing.left_out] if self.listing else []

    def identity(self) -> dict[str, Any]:
        """What a resumed job checks it is reading the same list (a folder: the same image names, whatever
        else comes and goes in it, such as the parts folder of an output written there)."""
        identity: dict[str, Any] = {"path": str(self.path.resolve()), "image_dir": str(self.image_dir.resolve())}
        if self.listing is not None:
            names = "\n".join(self.listing.images).encode("utf-8", "surrogateescape")
            return {**identity, "listing_sha256": hashlib.sha256(names).hexdigest()}
        stat = self.path.stat()
        return {**identity, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def _check_unique_ids(self) -> int:
        """The number of images; a repeated id is refused (one 64-bit hash per id is kept meanwhile)."""
        hashes = array.array("q", (hash(image_id) for image_id, _ in self))
        ordered = np.sort(np.frombuffer(hashes, dtype=np.int64)) if hashes else np.zeros(0, np.int64)
        clashes = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
        if clashes:  # the hashes of two ids are equal: find the ids themselves
            first: dict[str, str] = {}
            for where, image_id, _ in self._numbered():
                if hash(image_id) in clashes:
                    if image_id in first:
                        raise FashionStyleError(f"{self._where(where)}: duplicate id {image_id!r} (first at "
                                                f"{first[image_id]}); every image needs its own id")
                    first[image_id] = f"line {where}" if isinstance(where, int) else str(where)
        return len(hashes)

    def _where(self, where: int | str) -> str:
        return f"{self.path}:{where}" if isinstance(where, int) else str(self.path / where)

    def _numbered(self) -> Iterator[tuple[int | str, str, Path]]:
        """(line number, or file name in a folder; id; path) of every image."""
        if self.listing is not None:
            return ((name, str(PurePosixPath(name).with_suffix("")), self.path / name) for name in self.listing.images)
        if self.is_list():
            return self._rows()
        return iter([(self.path.name, self.path.stem, self.path)])  # one image

    def _rows(self) -> Iterator[tuple[int, str, Path]]:
        if is_path_list(self.path):
            rows = open_path_list(self.path, self.image_dir, None).rows()
            yield from ((row.line, row.id, self.image_dir / row.image) for row in rows)
            return
        lines = iter_csv_rows(self.path)
        first = next(lines, None)
        if first is None:
            return
        header = [h.lower() for h in first[1]]
        if file_layout(header) != "jd":  # a tags CSV lists its images in an image column too
            yield from _csv_rows(self.path, header, lines, self.image_dir)
        else:
            yield from _jd_rows(self.path, itertools.chain([first], lines), len(first[1]), self.image_dir)


@dataclass
class ListSource:
    """Images already in memory (a LabelTable's), as a source of chunks."""

    ids: list[str]
    images: list[Path]
    origin: dict[str, Any]

    def __len__(self) -> int:
        return len(self.ids)

    def chunks(self, size: int) -> Iterator[list[tuple[str, Path]]]:
        return _chunks(zip(self.ids, self.images), size)

    def identity(self) -> dict[str, Any]:
        return self.origin

    def left_out(self) -> list[tuple[str, str]]:
        return []


def _chunks(rows: Iterator[tuple[str, Path]], size: int) -> Iterator[list[tuple[str, Path]]]:
    """Consecutive lists of `size` (id, path) pairs; the last may be shorter."""
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _csv_rows(path: Path, header: list[str], lines, image_dir: Path) -> Iterator[tuple[int, str, Path]]:
    image_col = image_column(header)
    id_col = header.index("id") if "id" in header else None
    for n, row in lines:
        if len(row) != len(header):
            raise FashionStyleError(f"{path}:{n}: expected {len(header)} fields, got {len(row)}")
        image = row[image_col]
        if not image:
            raise FashionStyleError(f"{path}:{n}: empty {header[image_col]}")
        yield n, (row[id_col] if id_col is not None else Path(image).stem), image_dir / image


def _jd_rows(path: Path, lines, width: int, image_dir: Path) -> Iterator[tuple[int, str, Path]]:
    if width < 2:
        raise FashionStyleError(f"{path}:1: expected id,url (a JD list), a CSV header with an image column "
                                "or one image path a line")
    for n, row in lines:
        if len(row) != width:
            raise FashionStyleError(f"{path}:{n}: expected {width} fields, got {len(row)}")
        if not row[0]:
            raise FashionStyleError(f"{path}:{n}: empty id")
        yield n, row[0], jd_image_path(image_dir, row[0], row[1])
