"""A corrected copy of a label file: flip or drop (row, label) pairs; every other line stays byte-identical.

    write_cleaned(table, [(row, "Sport"), ...], "flip", "fixed.csv")

flip: the pair's 0/1 becomes 1/0 (JD txt and label CSV: the label's column; tags CSV:
the tag is added or removed). drop: every row named by a pair is left out.
Rows are found by the line numbers the table was read with.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Callable

from fashionstyle.core import atomic
from fashionstyle.core.choices import LABEL_FIXES
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.overwrite import refuse_overwriting_inputs
from fashionstyle.data.labels.names import canonical_label
from fashionstyle.data.labels.rows import META_COLUMNS, file_layout
from fashionstyle.data.labels.table import LabelTable

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def write_cleaned(table: LabelTable, pairs: list[tuple[int, str]], mode: str, out: str | Path) -> Path:
    """Write the table's file with `pairs` (table row, label name) flipped or their rows dropped."""
    LABEL_FIXES.check(mode)
    source, out = Path(table.source), Path(out)
    refuse_overwriting_inputs({"--cleaned": out}, {"--labels": source})
    lines = _read_lines(source)
    if mode == "drop":
        drop = {table.line_numbers[row] for row, _ in pairs}
        kept = [line for n, line in enumerate(lines, 1) if n not in drop]
        return atomic.write_atomic(out, lambda f: f.write("".join(kept).encode("utf-8")))
    tags, column = _layout(lines[0], table.label_names)
    for row, label in pairs:
        n = table.line_numbers[row]
        lines[n - 1] = _flip(source, n, lines[n - 1], column(label), label, tags)
    return atomic.write_atomic(out, lambda f: f.write("".join(lines).encode("utf-8")))


def _read_lines(path: Path) -> list[str]:
    """The file's physical lines with their endings (a BOM stays on the first), one per CSV row."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FashionStyleError(f"{path}: cannot edit ({err}); --fix works on UTF-8 text label files") from None
    lines = _LINE.findall(text)
    if len(list(csv.reader(io.StringIO(text, newline="")))) != len(lines):
        raise FashionStyleError(f"{path}: has quoted fields over several lines; --fix edits line by line")
    return lines


def _cells(line: str) -> tuple[str, list[str], str]:
    """(BOM or '', CSV cells, line ending) of one physical line."""
    body = line.rstrip("\r\n")
    bom = "\ufeff" if body.startswith("\ufeff") else ""
    return bom, next(csv.reader([body[len(bom):]]), []), line[len(body):]


def _layout(first: str, label_names: list[str]) -> tuple[bool, Callable[[str], int]]:
    """(is a tags CSV, label name -> the column holding it), from the file's first line."""
    _, header, _ = _cells(first)
    layout = file_layout(header)
    if layout == "tags":
        return True, lambda label: 1
    if layout == "csv":
        columns = {}
        for i, h in enumerate(header):
            name = canonical_label(h, label_names) if h.strip().lower() not in META_COLUMNS else None
            if name is not None:
                columns[name] = i
        return False, lambda label: columns[label]
    return False, lambda label: 2 + label_names.index(label)  # JD txt: id, url, flags


def _flip(path: Path, n: int, line: str, column: int, label: str, tags: bool) -> str:
    bom, cells, ending = _cells(line)
    if column >= len(cells):
        raise FashionStyleError(f"{path}:{n}: has no column {column + 1} for label {label}")
    value = cells[column].strip()
    if tags:
        given = value.split()
        kept = [t for t in given if canonical_label(t, [label]) is None]
        cells[column] = " ".join(kept if len(kept) < len(given) else [*given, label])
    elif value in ("0", "1"):
        cells[column] = "1" if value == "0" else "0"
    else:
        raise FashionStyleError(f"{path}:{n}: label {label} must be 0 or 1, got {value!r}")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return bom + buffer.getvalue() + ending

