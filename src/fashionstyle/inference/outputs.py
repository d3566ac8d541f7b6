"""Prediction files, written in parts and merged: JD submission, CSV, JSON and Parquet.

    write_part(folder / "part-000003", "csv", ids, probs, predictions, label_names, images=images)
    merge_parts(parts, "preds.csv", "csv", label_names, thresholds)    # header + parts, streamed, atomic

A part holds the rows of one chunk of images; merging parts in order gives,
byte for byte, the file one `write_predictions` call over every row gives. The
merge streams part by part, so memory stays that of one part.

Every format but JD holds one prediction record per image (core/prediction.py:
image as given, labels decided most probable first, scores in the run's label
order); the thresholds are written once per file, not per row. Formats
(`output_format` takes it from the file's extension when none is given):
- jd: the contest's submission, `id,l1,...,lL` with 0/1 flags, no header;
- csv: a header `image,labels,<one column per label>,error` (core/prediction.py's flat columns),
  then the image, the labels joined by ";", the scores with 6 decimals and the error; a text cell that a spreadsheet would
  read as a formula (starting with = + - @, tab or CR) or that starts with ' gets a
  leading ' (OWASP's advice); no thresholds (they are the run's, RUN/thresholds.json);
- json: {"schema", "label_names", "thresholds": {label: t}, "predictions": [records]}, a record a line;
- parquet: the same columns: image, labels (list), one float32 column per label and error; schema, label
  names and thresholds in the file's metadata (key "fashionstyle").
A name ending in .gz (`x.csv.gz`, `x.json.gz`, `x.txt.gz`) is written gzip-compressed.

JD text is not escaped: it is the contest's machine format, scored by matching
ids exactly, and a quote would change those ids.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import json
import os
import re
import shutil
from pathlib import Path
from dataclasses import replace
from typing import IO, Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.choices import OUTPUT_FORMATS
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import (
    SCHEMA,
    Prediction,
    check_label_names,
    column_kinds,
    flat_columns,
    flat_values,
    make_predictions,
    thresholds_by_label,
)
from fashionstyle.data.images.files import IMAGE_SUFFIXES

PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
ESCAPED_STARTS = (*FORMULA_STARTS, "'")  # a cell starting with ' is escaped too, so that reading undoes it exactly
LABEL_SEPARATOR = ";"  # between the predicted names in a CSV's labels column
COMMA_TEXT = {"jd", "csv"}  # either may be named .txt or .csv
GZIP = ".gz"  # a suffix after the format's: the text written gzip-compressed
DECIMALS = 6  # of the scores in CSV and JSON


def writer(fmt: str) -> "Writer":
    """The writer of output format `fmt` (choices.OUTPUT_FORMATS), or "npz" (parts of probabilities)."""
    if fmt == "npz":
        return NpzWriter()
    return OUTPUT_FORMATS.implementation(fmt)()


def check_format(fmt: str) -> str:
    writer(fmt).check()
    return fmt


def known_suffixes() -> str:
    return ", ".join(f"{c.value} ({name})" for name, c in OUTPUT_FORMATS.items())


def output_format(out: str | Path, fmt: str | None) -> str:
    """`fmt`, or the one `out`'s extension names (.txt jd, .csv, .json, .parquet; a name without one:
    jd), each text format also gzip-compressed (.csv.gz); another extension (.xlsx, .tsv, ...) or a
    format that contradicts the extension (csv into .parquet, json into .csv, ...) is refused."""
    name = Path(out).name
    compressed = name.lower().endswith(GZIP) and name.lower() != GZIP
    suffix = Path(name[:-len(GZIP)] if compressed else name).suffix.lower()
    if suffix in IMAGE_SUFFIXES:  # a typo that would write text over a photo
        raise FashionStyleError(f"--out {out} names an image; predictions go to a "
                                f"{', '.join(c.value for c in OUTPUT_FORMATS.values())} file")
    by_name = {choice.value: name for name, choice in OUTPUT_FORMATS.items()}.get(suffix)
    if suffix and by_name is None:
        raise FashionStyleError(f"--out {out}: unknown extension {suffix}; name it {known_suffixes()}, "
                                f"a text one with {GZIP} for gzip")
    if fmt is not None and by_name is not None and by_name != fmt and not {fmt, by_name} <= COMMA_TEXT:
        raise FashionStyleError(f"--format {fmt} contradicts --out {out} (a {suffix} file holds {by_name}); "
                                f"drop --format or use a {OUTPUT_FORMATS[fmt].value} name")
    fmt = fmt or by_name or "jd"
    if compressed and not writer(fmt).text:
        raise FashionStyleError(f"--out {out}: {fmt} is compressed inside the file; drop {GZIP}")
    return check_format(fmt)


def spreadsheet_safe(text: str) -> str:
    """`text` with a leading ' when a spreadsheet would run it as a formula (CSV injection), or when it
    starts with ' itself (so that `unescape` gives it back); a plain number such as -12 or +3.5 is left
    as it is (a spreadsheet reads it as a number)."""
    return "'" + text if text.startswith(ESCAPED_STARTS) and not PLAIN_NUMBER.fullmatch(text) else text


def unescape(cell: str) -> str:
    """The text `spreadsheet_safe` was given."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(ESCAPED_STARTS) else cell


def write_predictions(path: str | Path, fmt: str, ids: Sequence[str], probs: np.ndarray,
                      predictions: np.ndarray, label_names: Sequence[str],
                      thresholds: np.ndarray | None = None, images: Sequence[str] | None = None) -> Path:
    """All rows at once: the file a merge of their parts gives. `ids` name the rows of a JD
    submission, `images` (default: the ids) the records of the other formats."""
    return writer(fmt).write(Path(path), Rows(ids, probs, predictions, label_names, thresholds, images))


def write_part(path: Path, fmt: str, ids: Sequence[str], probs: np.ndarray, predictions: np.ndarray,
               label_names: Sequence[str], thresholds: np.ndarray | None = None,
               images: Sequence[str] | None = None, errors: Sequence[str | None] | None = None) -> Path:
    """One chunk's rows, atomically (a part is either whole or absent); "npz" keeps ids and probabilities.
    `errors`: why each row's image has no prediction (None for a readable one), its record's `error`."""
    rows = Rows(ids, probs, predictions, label_names, thresholds, images, errors)
    return writer(fmt).write_part(Path(path), rows)


def merge_parts(parts: Sequence[Path], path: str | Path, fmt: str, label_names: Sequence[str],
                thresholds: np.ndarray | None = None) -> Path:
    """The parts, in order, as one file at `path` (atomic; streamed one part at a time)."""
    return writer(fmt).merge(parts, Path(path), label_names, thresholds)


def read_npz_rows(parts: Sequence[Path]) -> Iterator[np.ndarray]:
    """The probabilities (n, L) of "npz" parts, one part at a time, in order."""
    for part in parts:
        with np.load(part) as data:
            yield data["probs"]


def write_npy_rows(path: Path, shape: tuple[int, int], rows: Iterable[np.ndarray]) -> Path:
    """A float32 .npy file of `shape` written block by block (atomically), for np.load(mmap_mode="r")."""
    def write(f) -> None:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        written = 0
        for block in rows:
            f.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            written += len(block)
        if written != shape[0]:
            raise FashionStyleError(f"{path}: {written} rows written for {shape[0]}")

    return atomic.write_atomic(path, write)


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """CSV lines ("\n"-ended); a field holding a comma, quote, CR or LF is quoted, others are as given."""
    lines = _Lines()
    csv.writer(lines, lineterminator="\r\n").writerows(rows)  # "\r\n": so that a CR in a field is quoted too
    return "".join(lines)


class _Lines(list):
    """The csv writer's file: it writes each row whole, ended by "\r\n", kept as "\n"."""

    def write(self, line: str) -> None:
        self.append(line[:-2] + "\n")


class Rows(NamedTuple):
    """Some images' predictions: ids, probabilities (N, L), 0/1 decisions (N, L), label names,
    thresholds, and the images as the user gave them (None: the ids)."""

    ids: Sequence[str]
    probs: np.ndarray
    predictions: np.ndarray
    label_names: Sequence[str]
    thresholds: np.ndarray | None = None
    images: Sequence[str] | None = None
    errors: Sequence[str | None] | None = None  # why a row's image has no prediction (None: read)

    def records(self) -> list[Prediction]:
        images = self.ids if self.images is None else self.images
        records = make_predictions(images, self.probs, self.predictions, self.label_names)
        if self.errors is None:
            return records
        return [replace(r, error=why) if why else r for r, why in zip(records, self.errors)]


def written_through(path: Path) -> Path:
    """Where writing `path` goes: a symbolic link's target (the link is kept), else `path`."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextlib.contextmanager
def compressed_if_named(f: IO[bytes], path: Path) -> Iterator[IO[bytes]]:
    """`f`, or a gzip stream into it when `path` ends in .gz (no name or time inside: reproducible bytes)."""
    if not path.name.lower().endswith(GZIP):
        yield f
        return
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as packed:
        yield packed


class Writer:
    """One output format. Text formats are a head, the rows (written in parts) and a tail; merging
    parts copies them between head and tail, so that parts merged give the file written at once."""

    separator = ""  # between the rows of two parts (JSON's comma)
    text = True  # may be gzip-compressed as a whole

    def check(self) -> None:
        """Refuse, in one line, a format whose package is missing."""

    def head(self, label_names: Sequence[str], thresholds: np.ndarray | None) -> str:
        return ""

    def rows(self, rows: Rows) -> str:
        raise NotImplementedError

    def opening(self, first_rows: bool) -> str:
        return ""

    def tail(self, any_rows: bool) -> str:
        return ""

    def write(self, path: Path, rows: Rows) -> Path:
        any_rows = bool(len(rows.ids))
        text = (self.head(rows.label_names, rows.thresholds) + self.opening(any_rows) + self.rows(rows)
                + self.tail(any_rows)).encode()

        def put(f) -> None:
            with compressed_if_named(f, path) as out:
                out.write(text)

        atomic.write_atomic(written_through(path), put)
        return path

    def write_part(self, path: Path, rows: Rows) -> Path:
        return atomic.write_text(path, self.rows(rows))

    def merge(self, parts: Sequence[Path], path: Path, label_names: Sequence[str],
              thresholds: np.ndarray | None) -> Path:
        def copy(f) -> None:
            with compressed_if_named(f, path) as out:
                out.write(self.head(label_names, thresholds).encode())
                wrote = False
                for part in parts:
                    if part.stat().st_size == 0:
                        continue
                    out.write((self.separator if wrote else self.opening(True)).encode())
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                    wrote = True
                out.write(self.tail(wrote).encode())

        atomic.write_atomic(written_through(path), copy)
        return path


@OUTPUT_FORMATS.implements("jd")
class JdWriter(Writer):
    """The contest's submission: `id,l1,...,lL` with 0/1 flags, no header, ids unescaped."""

    def rows(self, rows: Rows) -> str:
        return csv_text([i, *map(str, row)] for i, row in zip(rows.ids, rows.predictions.astype(int)))


@OUTPUT_FORMATS.implements("csv")
class CsvWriter(Writer):
    """The record's flat columns (`image,labels,<one column per label>,error`): the labels joined by ";",
    scores with 6 decimals, an absent value empty."""

    def head(self, label_names: Sequence[str], thresholds: np.ndarray | None) -> str:
        check_label_names(label_names)
        return csv_text([[spreadsheet_safe(c) for c in flat_columns(label_names)]])

    def rows(self, rows: Rows) -> str:
        return csv_text([csv_cell(v) for v in flat_values(r, rows.label_names)] for r in rows.records())


@OUTPUT_FORMATS.implements("json")
class JsonWriter(Writer):
    """{"schema", "label_names", "thresholds", "predictions": [one record a line]}."""

    separator = ",\n"

    def head(self, label_names: Sequence[str], thresholds: np.ndarray | None) -> str:
        def dump(value) -> str:
            return json.dumps(value, ensure_ascii=False)

        return (f'{{"schema": {dump(SCHEMA)},\n "label_names": {dump(list(label_names))},\n'
                f' "thresholds": {dump(thresholds_by_label(label_names, thresholds))},\n "predictions": [')

    def rows(self, rows: Rows) -> str:  # the records, without the list's brackets
        return ",\n".join("  " + json.dumps(_rounded(r).as_dict(), ensure_ascii=False) for r in rows.records())

    def opening(self, first_rows: bool) -> str:
        return "\n" if first_rows else ""

    def tail(self, any_rows: bool) -> str:
        return "\n ]}\n" if any_rows else "]}\n"


@OUTPUT_FORMATS.implements("parquet")
class ParquetWriter(Writer):
    """Columns image, labels (list of names), one float32 column per label, error; the schema, label
    names and thresholds in the metadata. Parts are Parquet files too; the merge streams their row groups."""

    text = False

    def check(self) -> None:
        require_pyarrow()

    def write(self, path: Path, rows: Rows) -> Path:
        atomic.write_atomic(written_through(path), lambda f: require_pyarrow().parquet.write_table(_table(rows), f))
        return path

    def write_part(self, path: Path, rows: Rows) -> Path:
        return self.write(path, rows)

    def merge(self, parts: Sequence[Path], path: Path, label_names: Sequence[str],
              thresholds: np.ndarray | None) -> Path:
        pq = require_pyarrow().parquet
        empty = np.zeros((0, len(label_names)), np.float32)
        schema = _table(Rows([], empty, empty.astype(np.uint8), label_names, thresholds)).schema

        def copy(f) -> None:
            with pq.ParquetWriter(f, schema) as out:
                for part in parts:
                    out.write_table(pq.read_table(part).replace_schema_metadata(schema.metadata))

        atomic.write_atomic(written_through(path), copy)
        return path


class NpzWriter(Writer):
    """Parts of ids and probabilities (evaluate's and stored_probs'), read back by read_npz_rows, not merged into a file."""

    def write_part(self, path: Path, rows: Rows) -> Path:
        return atomic.write_npz(path, ids=np.array(rows.ids, dtype=str), probs=np.asarray(rows.probs, np.float32))


def csv_cell(value: Any) -> str:
    """A flat value as CSV text: a score with DECIMALS, names joined by LABEL_SEPARATOR, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{DECIMALS}f}"
    return spreadsheet_safe(LABEL_SEPARATOR.join(value) if isinstance(value, list) else str(value))


def _rounded(record: Prediction) -> Prediction:
    return replace(record, scores={n: round(p, DECIMALS) for n, p in record.scores.items()})


def require_pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule the caller uses
    except ModuleNotFoundError:
        raise FashionStyleError("--format parquet needs pyarrow: pip install 'fashionstyle[parquet]'") from None
    return pyarrow


def parquet_metadata(label_names: Sequence[str], thresholds: np.ndarray | None) -> dict[str, str]:
    return {"fashionstyle": json.dumps({"schema": SCHEMA, "label_names": list(label_names),
                                        "thresholds": thresholds_by_label(label_names, thresholds)})}


def _table(rows: Rows):
    pa = require_pyarrow()
    check_label_names(rows.label_names)
    types = {"text": pa.string(), "optional text": pa.string(), "names": pa.list_(pa.string()), "score": pa.float32()}
    names = flat_columns(rows.label_names)
    cells = list(zip(*(flat_values(r, rows.label_names) for r in rows.records()))) or [()] * len(names)
    columns = {name: pa.array(list(values), types[kind])
               for name, kind, values in zip(names, column_kinds(rows.label_names), cells)}
    return pa.table(columns).replace_schema_metadata(parquet_metadata(rows.label_names, rows.thresholds))
