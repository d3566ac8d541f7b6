"""Prediction files, written in parts and merged: JD submission, CSV, JSON and Parquet.

    write_part(folder / "part-000003", "csv", ids, probs, predictions, label_names)
    merge_parts(parts, "preds.csv", "csv", label_names)    # header + parts, streamed, atomic

A part holds the rows of one chunk of images; merging parts in order gives,
byte for byte, the file one `write_predictions` call over every row gives. The
merge streams part by part, so memory stays that of one part.

Formats (`output_format` takes it from the file's extension when none is given):
- jd: the contest's submission, `id,l1,...,lL` with 0/1 flags, no header;
- csv: a header `id,<labels>,labels`, then the probabilities with 6 decimals and
  the predicted names joined by ";"; a text cell that a spreadsheet would read as a
  formula (starting with = + - @, tab or CR) gets a leading ' (OWASP's advice);
- json: a list of {id, labels, probs} (indent 1);
- parquet: columns id (string), one float32 column of probabilities per label,
  and labels (list of the predicted names); the thresholds are in the file's metadata.

JD text is not escaped: it is the contest's machine format, scored by matching
ids exactly, and a quote would change those ids.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.choices import OUTPUT_FORMATS
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import IMAGE_SUFFIXES

PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
LABEL_SEPARATOR = ";"  # between the predicted names in a CSV's labels column
COMMA_TEXT = {"jd", "csv"}  # either may be named .txt or .csv


def writer(fmt: str) -> "Writer":
    """The writer of output format `fmt` (choices.OUTPUT_FORMATS), or "npz" (parts of probabilities)."""
    if fmt == "npz":
        return NpzWriter()
    return OUTPUT_FORMATS.check(fmt).load()()


def check_format(fmt: str) -> str:
    writer(fmt).check()
    return fmt


def output_format(out: str | Path, fmt: str | None) -> str:
    """`fmt`, or the one `out`'s extension names (.txt jd, .csv, .json, .parquet; others: jd); a format
    that contradicts the extension (csv into .parquet, json into .csv, ...) is refused."""
    suffix = Path(out).suffix.lower()
    if suffix in IMAGE_SUFFIXES:  # a typo that would write text over a photo
        raise FashionStyleError(f"--out {out} names an image; predictions go to a "
                                f"{', '.join(c.value for c in OUTPUT_FORMATS.values())} file")
    by_name = {choice.value: name for name, choice in OUTPUT_FORMATS.items()}.get(suffix)
    if fmt is None:
        return check_format(by_name or "jd")
    if by_name is not None and by_name != fmt and not {fmt, by_name} <= COMMA_TEXT:
        raise FashionStyleError(f"--format {fmt} contradicts --out {out} (a {suffix} file holds {by_name}); "
                                f"drop --format or use a {OUTPUT_FORMATS[fmt].value} name")
    return check_format(fmt)


def spreadsheet_safe(text: str) -> str:
    """`text` with a leading ' when a spreadsheet would run it as a formula (CSV injection);
    a plain number such as -12 or +3.5 is left as it is (a spreadsheet reads it as a number)."""
    return "'" + text if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text) else text


def write_predictions(path: str | Path, fmt: str, ids: Sequence[str], probs: np.ndarray,
                      predictions: np.ndarray, label_names: Sequence[str],
                      thresholds: np.ndarray | None = None) -> Path:
    """All rows at once: the file a merge of their parts gives."""
    return writer(fmt).write(Path(path), Rows(ids, probs, predictions, label_names, thresholds))


def write_part(path: Path, fmt: str, ids: Sequence[str], probs: np.ndarray, predictions: np.ndarray,
               label_names: Sequence[str], thresholds: np.ndarray | None = None) -> Path:
    """One chunk's rows, atomically (a part is either whole or absent); "npz" keeps ids and probabilities."""
    return writer(fmt).write_part(Path(path), Rows(ids, probs, predictions, label_names, thresholds))


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
    """Some images' predictions: ids, probabilities (N, L), 0/1 decisions (N, L), label names, thresholds."""

    ids: Sequence[str]
    probs: np.ndarray
    predictions: np.ndarray
    label_names: Sequence[str]
    thresholds: np.ndarray | None = None


class Writer:
    """One output format. Text formats are a head, the rows (written in parts) and a tail; merging
    parts copies them between head and tail, so that parts merged give the file written at once."""

    separator = ""  # between the rows of two parts (JSON's comma)

    def check(self) -> None:
        """Refuse, in one line, a format whose package is missing."""

    def head(self, label_names: Sequence[str]) -> str:
        return ""

    def rows(self, rows: Rows) -> str:
        raise NotImplementedError

    def opening(self, first_rows: bool) -> str:
        return ""

    def tail(self, any_rows: bool) -> str:
        return ""

    def write(self, path: Path, rows: Rows) -> Path:
        any_rows = bool(len(rows.ids))
        return atomic.write_text(path, self.head(rows.label_names) + self.opening(any_rows) + self.rows(rows)
                                 + self.tail(any_rows))

    def write_part(self, path: Path, rows: Rows) -> Path:
        return atomic.write_text(path, self.rows(rows))

    def merge(self, parts: Sequence[Path], path: Path, label_names: Sequence[str],
              thresholds: np.ndarray | None) -> Path:
        def copy(f) -> None:
            f.write(self.head(label_names).encode())
            wrote = False
            for part in parts:
                if part.stat().st_size == 0:
                    continue
                f.write((self.separator if wrote else self.opening(True)).encode())
                with part.open("rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
                wrote = True
            f.write(self.tail(wrote).encode())

        return atomic.write_atomic(path, copy)


class JdWriter(Writer):
    """The contest's submission: `id,l1,...,lL` with 0/1 flags, no header, ids unescaped."""

    def rows(self, rows: Rows) -> str:
        return csv_text([i, *map(str, row)] for i, row in zip(rows.ids, rows.predictions.astype(int)))


class CsvWriter(Writer):
    """`id,<labels>,labels`: probabilities with 6 decimals, the predicted names joined by ";"."""

    def head(self, label_names: Sequence[str]) -> str:
        return csv_text([["id", *map(spreadsheet_safe, label_names), "labels"]])

    def rows(self, rows: Rows) -> str:
        return csv_text([spreadsheet_safe(i), *(f"{p:.6f}" for p in prob), _names(pred, rows.label_names)]
                        for i, prob, pred in zip(rows.ids, rows.probs, rows.predictions))


class JsonWriter(Writer):
    """A list of {id, labels, probs} (indent 1)."""

    separator = ",\n"

    def rows(self, rows: Rows) -> str:  # the records, without the list's brackets
        return ",\n".join(_json_record(i, prob, pred, rows.label_names)
                           for i, prob, pred in zip(rows.ids, rows.probs, rows.predictions))

    def opening(self, first_rows: bool) -> str:
        return "[\n" if first_rows else ""

    def tail(self, any_rows: bool) -> str:
        return "\n]\n" if any_rows else "[]\n"


class ParquetWriter(Writer):
    """Columns id, one float32 probability column per label, labels (list of names); thresholds in
    the metadata. Parts are Parquet files too; the merge streams their row groups."""

    def check(self) -> None:
        _pyarrow()

    def write(self, path: Path, rows: Rows) -> Path:
        return atomic.write_atomic(path, lambda f: _pyarrow().parquet.write_table(_table(rows), f))

    def write_part(self, path: Path, rows: Rows) -> Path:
        return self.write(path, rows)

    def merge(self, parts: Sequence[Path], path: Path, label_names: Sequence[str],
              thresholds: np.ndarray | None) -> Path:
        pq = _pyarrow().parquet
        empty = np.zeros((0, len(label_names)), np.float32)
        schema = _table(Rows([], empty, empty.astype(np.uint8), label_names, thresholds)).schema

        def copy(f) -> None:
            with pq.ParquetWriter(f, schema) as out:
                for part in parts:
                    out.write_table(pq.read_table(part).replace_schema_metadata(schema.metadata))

        return atomic.write_atomic(path, copy)


class NpzWriter(Writer):
    """Parts of ids and probabilities (evaluate's and stored_probs'), read back by read_npz_rows, not merged into a file."""

    def write_part(self, path: Path, rows: Rows) -> Path:
        return atomic.write_npz(path, ids=np.array(rows.ids, dtype=str), probs=np.asarray(rows.probs, np.float32))


def _names(pred: np.ndarray, label_names: Sequence[str]) -> str:
    """The predicted names of one row, as a CSV cell."""
    return spreadsheet_safe(LABEL_SEPARATOR.join(n for n, on in zip(label_names, pred) if on))


def _json_record(image_id: str, prob: np.ndarray, pred: np.ndarray, label_names: Sequence[str]) -> str:
    record = {"id": image_id, "labels": [n for n, on in zip(label_names, pred) if on],
              "probs": {n: round(float(p), 6) for n, p in zip(label_names, prob)}}
    text = json.dumps(record, indent=1, ensure_ascii=False)
    return "\n".join(" " + line for line in text.split("\n"))  # as an item of a list dumped with indent 1


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule the caller uses
    except ModuleNotFoundError:
        raise FashionStyleError("--format parquet needs pyarrow: pip install 'fashionstyle[parquet]'") from None
    return pyarrow


def _table(rows: Rows):
    pa = _pyarrow()
    columns = {"id": pa.array(list(rows.ids), pa.string())}
    for k, name in enumerate(rows.label_names):
        columns[name] = pa.array(np.asarray(rows.probs[:, k], np.float32), pa.float32())
    names = np.array(rows.label_names, dtype=object)
    columns["labels"] = pa.array([list(names[row.astype(bool)]) for row in rows.predictions],
                                 pa.list_(pa.string()))
    thresholds = None if rows.thresholds is None else [float(t) for t in rows.thresholds]
    metadata = {"fashionstyle": json.dumps({"label_names": list(rows.label_names), "thresholds": thresholds})}
    return pa.table(columns).replace_schema_metadata(metadata)
