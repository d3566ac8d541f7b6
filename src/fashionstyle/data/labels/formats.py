"""The three CSV label formats, each opened as a RowReader that streams its rows (labels/rows.py).

- JD txt, no header: `id,url,l1,...,lL` (train) or `id,url` (test). The image is
  `<images>/<id>.jpg`, else `<images>/<basename of url>`.
- Label CSV, with header: an `image` column (path relative to the file or to
  `images`), one 0/1 column per label, optional `id` and `split` columns.
- Tags CSV, with header `image,tags`: space-separated label names per image.
- A plain list of image paths, no header (`is_path_list`: a first line without a comma that ends with
  an image suffix): one path per line, relative to `images` or absolute; blank lines and lines starting
  with `#` skipped; a URL refused. Its ids are the paths without their image suffix, as a folder's
  (`men/001`); it has no labels (a catalogue, as a JD `id,url` list).

Every opener has the signature of labels.READERS' entries: (path, image_dir, label_names) -> RowReader.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.files import IMAGE_SUFFIXES
from fashionstyle.data.labels.names import (
    JD_STYLES, LabelLookup, all_jd_styles, canonical_label, reserved_name_message, unknown_label_message,
)
from fashionstyle.data.labels.rows import (
    META_COLUMNS, SUGGEST_COLUMNS, LabelRow, RowReader, first_row, image_column, iter_csv_rows, jd_image_name,
    name_stem, parse_flags, split_value,
)

NAME_IDS = "; ids come from the image file names: give every image its own name"
COMMENT = "#"  # a plain list's comment lines start with it
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _body(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header, refusing a file that has none."""
    rows = iter_csv_rows(path)
    next(rows, None)
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise FashionStyleError(f"{path}: has a header but no rows")


def _check_width(path: Path, line: int, row: list[str], width: int) -> None:
    if len(row) != width:
        raise FashionStyleError(f"{path}:{line}: expected {width} fields, got {len(row)}")


def open_jd(path: Path, image_dir: Path, label_names: Sequence[str] | None) -> RowReader:
    """A JD txt file: `id,url` + one 0/1 field per label (JD_STYLES unless `label_names`), or `id,url`."""
    names = list(label_names or JD_STYLES)
    line, first = first_row(path)
    width = len(first)
    if width not in (2, 2 + len(names)):
        raise FashionStyleError(f"{path}:{line}: expected id,url (test) or id,url + {len(names)} labels (train); "
                                f"got {width} fields")
    first_labels = first[2:]
    if first_labels and not all(v in ("0", "1") for v in first_labels):
        if canonical_label(first_labels[0], names) or first_labels[0].lower() in ("l1", "label1"):
            raise FashionStyleError(f"{path}:{line}: a header line, but the JD format has none")

    def rows() -> Iterator[LabelRow]:
        folder = str(image_dir)
        for n, row in iter_csv_rows(path):
            _check_width(path, n, row, width)
            if not row[0]:
                raise FashionStyleError(f"{path}:{n}: empty id")
            yield LabelRow(n, row[0], jd_image_name(folder, row[0], row[1]), parse_flags(path, n, row[2:], names))

    return RowReader(path, image_dir, names, rows, labelled=width > 2, unique_images=False)


def open_label_csv(path: Path, image_dir: Path, label_names: Sequence[str] | None) -> RowReader:
    """A label CSV: a header with an image column, one 0/1 column per label, optional id and split columns."""
    head_line, header = first_row(path)
    image_col = image_column(header)
    meta, names, label_cols = _columns(path, header, head_line, label_names)
    id_col, split_col = meta.get("id"), meta.get("split")

    def rows() -> Iterator[LabelRow]:
        for n, row in _body(path):
            _check_width(path, n, row, len(header))
            image = row[image_col]
            if not image:
                raise FashionStyleError(f"{path}:{n}: empty {header[image_col].lower()}")
            yield LabelRow(n, row[id_col] if id_col is not None else name_stem(image), image,
                           parse_flags(path, n, [row[i] for i in label_cols], names),
                           None if split_col is None else split_value(path, n, row[split_col]))

    hint = "" if id_col is not None else NAME_IDS + ", or add an id column"
    return RowReader(path, image_dir, names, rows, has_splits=split_col is not None, id_hint=hint)


def _columns(path: Path, header: list[str], line: int, label_names) -> tuple[dict[str, int], list[str], list[int]]:
    """Meta column positions, label names and label column positions of a label CSV."""
    _check_distinct(path, line, header)
    _check_suggest_columns(path, line, header)
    meta = {h.lower(): i for i, h in enumerate(header) if h.lower() in META_COLUMNS}
    label_cols = [i for i, h in enumerate(header) if h.lower() not in META_COLUMNS]
    if not label_cols:
        raise FashionStyleError(f"{path}:{line}: no label columns in the header")
    found = [header[i] for i in label_cols]
    if label_names:
        return meta, list(label_names), _pick_columns(path, line, header, label_cols, list(label_names))
    if not all_jd_styles(found):
        return meta, found, label_cols  # the file's own label set
    valid = list(JD_STYLES)
    names = [canonical_label(h, valid) or h for h in found]
    if len(names) < len(valid):  # a subset of the styles: in the file's order
        return meta, names, label_cols
    return meta, valid, [label_cols[names.index(n)] for n in valid]  # all of them: the contest's order


def _check_distinct(path: Path, line: int, header: list[str]) -> None:
    """Refuse two columns with one name (case-insensitive; a Chinese alias is its English style)."""
    seen: dict[str, str] = {}
    for h in header:
        key = (canonical_label(h, JD_STYLES) or h).lower()
        if key in seen:
            name = canonical_label(h, JD_STYLES) or seen[key]
            what = f"two {key!r} columns" if key in META_COLUMNS else f"two columns for label {name!r}"
            raise FashionStyleError(f"{path}:{line}: {what}: {seen[key]!r} and {h!r}")
        seen[key] = h


def _check_suggest_columns(path: Path, line: int, header: list[str]) -> None:
    """`hint` and `suggest_score` are read as suggest's (and skipped) only together, as suggest writes them:
    one alone is a label with a reserved name, refused rather than dropped."""
    lower = {h.lower() for h in header}
    present = [c for c in SUGGEST_COLUMNS if c in lower]
    if 0 < len(present) < len(SUGGEST_COLUMNS):
        raise FashionStyleError(f"{path}:{line}: {reserved_name_message(present[0])} (a column of suggest's only "
                                f"beside {', '.join(c for c in SUGGEST_COLUMNS if c not in present)})")


def _pick_columns(path: Path, line: int, header: list[str], label_cols: list[int],
                  names: list[str]) -> list[int]:
    """The column of each of `names` (a subset of the header's labels; the other columns are left out)."""
    lookup, by_name = LabelLookup(names), {}
    for i in label_cols:  # no two columns share a name (_check_distinct)
        at = lookup.position(header[i])
        if at is not None:
            by_name[names[at]] = i
    missing = [n for n in names if n not in by_name]
    if missing:
        found = [header[i] for i in label_cols]
        close = difflib.get_close_matches(missing[0], found, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise FashionStyleError(f"{path}:{line}: no column for label {missing[0]!r}{hint}; "
                                f"label columns: {', '.join(found)}")
    return [by_name[n] for n in names]


def open_tags(path: Path, image_dir: Path, label_names: Sequence[str] | None) -> RowReader:
    """A tags CSV: `image,tags[,split]`, the tags space-separated label names (their set is the label set
    unless `label_names`; all JD styles: the 13 styles)."""
    head_line, header = first_row(path)
    names = list(label_names) if label_names else _tag_names(path)
    if not names:
        raise FashionStyleError(f"{path}:{head_line}: no row has any tag, so there are no labels; "
                                "tags are space-separated label names")
    has_split = len(header) > 2 and header[2].lower() == "split"
    lookup = LabelLookup(names)

    def rows() -> Iterator[LabelRow]:
        for n, row in _body(path):
            _check_width(path, n, row, len(header))
            flags = bytearray(len(names))
            for tag in row[1].split():
                at = lookup.position(tag)
                if at is None:
                    raise FashionStyleError(f"{path}:{n}: {unknown_label_message(tag, names)}")
                flags[at] = 1
            yield LabelRow(n, name_stem(row[0]), row[0], bytes(flags),
                           split_value(path, n, row[2]) if has_split else None)

    return RowReader(path, image_dir, names, rows, has_splits=has_split, id_hint=NAME_IDS)


def _tag_names(path: Path) -> list[str]:
    """The label set of a tags CSV: every tag it uses (sorted), or the 13 styles when all are JD styles."""
    tags: set[str] = set()
    for _, row in _body(path):
        if len(row) > 1:
            tags.update(row[1].split())
    if tags and all_jd_styles(sorted(tags)):
        return list(JD_STYLES)
    return sorted(tags)


def is_path_list(path: Path) -> bool:
    """Whether `path` is a plain list of image paths: its first line that is neither blank nor a `#` comment
    holds no comma (a JD list has `id,url`, a CSV several columns) and ends with an image suffix (any case)
    or is a URL (refused then, by its line). Whatever the file's suffix: `.txt` is a JD list's too."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = next((s for s in map(str.strip, f) if s and not s.startswith(COMMENT)), "")
    except (OSError, UnicodeDecodeError):
        return False  # not read here: the CSV readers say what is wrong with it
    looks_like_image = os.path.splitext(first)[1].lower() in IMAGE_SUFFIXES or _URL.match(first) is not None
    return "," not in first and looks_like_image


def open_path_list(path: Path, image_dir: Path, label_names: Sequence[str] | None) -> RowReader:
    """A plain list of image paths (`is_path_list`): one unlabelled row per path; a URL is refused."""
    names = list(label_names or JD_STYLES)

    def rows() -> Iterator[LabelRow]:
        with path.open(encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                image = line.strip()
                if not image or image.startswith(COMMENT):
                    continue
                if _URL.match(image):
                    raise FashionStyleError(f"{path}:{n}: {image!r} is a URL, not an image path; fetch the "
                                            "images first (`fashionstyle download` reads id,url lines), then "
                                            "list their files")
                yield LabelRow(n, _without_image_suffix(image), image, b"")

    return RowReader(path, image_dir, names, rows, labelled=False,
                     id_hint="; ids are the paths without their suffix: list each image once")


def _without_image_suffix(image: str) -> str:
    """`men/001` for `men/001.jpg`: a plain list's id, as a folder's."""
    stem, suffix = os.path.splitext(image)
    return stem if suffix.lower() in IMAGE_SUFFIXES else image
