"""The rows of a label file, streamed: CSV rows with their line numbers, the file's layout, and one row's parts.

    for line, cells in iter_csv_rows(path): ...      # non-blank rows, stripped, one at a time
    file_layout(cells)                               # "tags", "csv" or "jd", from the first row
    reader = RowReader(path, names, make_rows)       # what a format reader gives labels.read_labels

A RowReader streams its rows as often as asked (`rows()` starts again), so a
repeated id is confirmed by reading the file again up to it instead of keeping
every id in memory (see `RepeatFinder`).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from fashionstyle.core.errors import FashionStyleError

SPLITS = ("train", "val", "test")
IMAGE_COLUMNS = ("image", "path", "file", "filename")
SUGGEST_COLUMNS = ("hint", "suggest_score")  # what `suggest` writes beside the labels to fill in
TAGS_COLUMN = "tags"  # a tags CSV's label names (image,tags)
META_COLUMNS = frozenset({"id", "split", "url", *IMAGE_COLUMNS, *SUGGEST_COLUMNS})  # a label CSV's columns not labels
_FLAG_VALUES = frozenset(("0", "1"))
_FLAG_BYTES = bytes.maketrans(b"01", b"\x00\x01")


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One image of a label file: its line, id, path (as written: relative to the reader's image_dir,
    or absolute), 0/1 flags (one byte per label; empty when unlabelled) and split (None without a
    split column)."""

    line: int
    id: str
    image: str
    flags: bytes
    split: str | None = None


@dataclass
class RowReader:
    """A label file's label names and a way to stream its rows from the start (as often as asked)."""

    source: Path
    image_dir: Path
    label_names: list[str]
    rows: Callable[[], Iterator[LabelRow]]
    labelled: bool = True  # False: a JD id,url list (no labels)
    has_splits: bool = False
    unique_images: bool = True  # refuse two rows naming one image file
    id_hint: str = ""  # added to a duplicate-id error (where the ids come from)


def iter_csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file, stripped, with their 1-based line numbers, one at a time."""
    n = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if "\0" in "".join(row):
                    _refuse_nul(path, n, row)
                row = [c.strip() for c in row]
                if any(row):
                    yield n, row
    except UnicodeDecodeError as err:
        raise FashionStyleError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise FashionStyleError(f"{path}:{n + 1}: {_csv_problem(err)}") from None


def first_row(path: Path) -> tuple[int, list[str]]:
    """The first non-blank row of a label file; a missing or empty file is refused."""
    if not path.is_file():
        raise FashionStyleError(f"{path}: label file not found")
    rows = iter_csv_rows(path)
    first = next(rows, None)
    rows.close()
    if first is None:
        raise FashionStyleError(f"{path}: empty label file")
    return first


def _csv_problem(err: csv.Error) -> str:
    if "field limit" in str(err):
        return f"a field of more than {csv.field_size_limit():,} characters; is this a label file?"
    return f"not a valid CSV line ({err})"


def _refuse_nul(path: Path, line: int, row: list[str]) -> None:
    field = next(i for i, cell in enumerate(row, 1) if "\0" in cell)
    raise FashionStyleError(f"{path}:{line}: a NUL byte in field {field}; is this a text label file?")


def file_layout(header: Sequence[str]) -> str:
    """"tags" (image,tags[,split]), "csv" (a header with an image column) or "jd" (id,url[,flags]), from line 1."""
    lower = [h.strip().lower() for h in header]
    if lower[:2] == ["image", TAGS_COLUMN]:
        return "tags"
    if lower and (lower[0] in IMAGE_COLUMNS or "image" in lower):
        return "csv"
    return "jd"


def image_column(header: Sequence[str]) -> int:
    """The position of a label CSV's image column (the first of IMAGE_COLUMNS it has)."""
    lower = [h.strip().lower() for h in header]
    return lower.index(next(c for c in IMAGE_COLUMNS if c in lower))


def parse_flags(path: Path, line: int, values: Sequence[str], names: Sequence[str]) -> bytes:
    """One byte (0 or 1) per label; anything but "0" or "1" is refused, naming the label."""
    if _FLAG_VALUES.issuperset(values):
        return "".join(values).encode("ascii").translate(_FLAG_BYTES)
    name, value = next((n, v) for n, v in zip(names, values) if v not in _FLAG_VALUES)
    raise FashionStyleError(f"{path}:{line}: label {name} must be 0 or 1, got {value!r}")


def split_value(path: Path, line: int, value: str) -> str:
    value = value.lower()
    if value not in SPLITS:
        raise FashionStyleError(f"{path}:{line}: split must be one of {', '.join(SPLITS)}, got {value!r}")
    return value


def jd_image_path(image_dir: Path, image_id: str, url: str) -> Path:
    """`<image_dir>/<id>.jpg`, else `<image_dir>/<basename of url>` when only that one exists."""
    return image_dir / jd_image_name(str(image_dir), image_id, url)


def jd_image_name(image_dir: str, image_id: str, url: str) -> str:
    """jd_image_path's file name in `image_dir` (strings: light for millions of rows)."""
    by_id = f"{image_id}.jpg"
    if not url or os.path.exists(os.path.join(image_dir, by_id)):
        return by_id
    by_url = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    return by_url if os.path.exists(os.path.join(image_dir, by_url)) else by_id


def name_stem(image: str) -> str:
    """The file name of `image` without its suffix (Path(image).stem, without making a Path)."""
    return os.path.splitext(os.path.basename(os.path.normpath(image)))[0]


class RepeatFinder:
    """Finds a repeated key as it comes, keeping one 64-bit hash per key (not the key itself).

    A hash seen before is confirmed by streaming the keys again (`earlier`) up to the current
    line: that also gives the key's first line, and two keys that only share a hash pass.
    """

    def __init__(self, earlier: Callable[[], Iterable[tuple[int, str]]]):
        self._hashes: set[int] = set()
        self._earlier = earlier

    def first_line(self, key: str, line: int) -> int | None:
        """The line where `key` came first, when it came before `line`; None for a new key."""
        digest = hash(key)
        if digest not in self._hashes:
            self._hashes.add(digest)
            return None
        for earlier_line, earlier_key in self._earlier():
            if earlier_line >= line:
                break
            if earlier_key == key:
                return earlier_line
        return None
