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
from typing import Iterable, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError

FORMATS = ("jd", "csv", "json", "parquet")
SUFFIXES = {"jd": ".txt", "csv": ".csv", "json": ".json", "parquet": ".parquet"}
BY_SUFFIX = {suffix: fmt for fmt, suffix in SUFFIXES.items()}
COMMA_TEXT = {"jd", "csv"}  # either may be named .txt or .csv
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
LABEL_SEPARATOR = ";"  # between the predicted names in a CSV's labels column


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise FashionStyleError(f"unknown output format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "parquet":
        _pyarrow()
    return fmt


def output_format(out: str | Path, fmt: str | None) -> str:
    """`fmt`, or the one `out`'s extension names (.txt jd, .csv, .json, .parquet; others: jd); a format
    that contradicts the extension (csv into .parquet, json into .csv, ...) is refused."""
    suffix = Path(out).suffix.lower()
    by_name = BY_SUFFIX.get(suffix)
    if fmt is None:
        return check_format(by_name or "jd")
    if by_name is not None and by_name != fmt and not {fmt, by_name} <= COMMA_TEXT:
        raise FashionStyleError(f"--format {fmt} contradicts --out {out} (a {suffix} file holds {by_name}); "
                                f"drop --format or use a {SUFFIXES[fmt]} name")
    return check_format(fmt)


def spreadsheet_safe(text: str) -> str:
    """`text` with a leading ' when a spreadsheet would run it as a formula (CSV injection);
    a plain number such as -12 or +3.5 is left as it is (a spreadsheet reads it as a number)."""
    return "'" + text if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text) else text


def write_predictions(path: str | Path, fmt: str, ids: Sequence[str], probs: np.ndarray,
                      predictions: np.ndarray, label_names: Sequence[str],
                      thresholds: np.ndarray | None = None) -> Path:
    """All rows at once: the file a merge of their parts gives."""
    if check_format(fmt) == "parquet":
        return atomic.write_atomic(path, lambda f: _pyarrow().parquet.write_table(
            _table(ids, probs, predictions, label_names, thresholds), f))
    any_rows = bool(len(ids))
    return atomic.write_text(path, _head(fmt, label_names) + _opening(fmt, any_rows)
                              + _body(fmt, ids, probs, predictions, label_names) + _tail(fmt, any_rows))


def write_part(path: Path, fmt: str, ids: Sequence[str], probs: np.ndarray, predictions: np.ndarray,
               label_names: Sequence[str], thresholds: np.ndarray | None = None) -> Path:
    """One chunk's rows, atomically (a part is either whole or absent); "npz" keeps ids and probabilities."""
    if fmt == "npz":
        return atomic.write_npz(path, ids=np.array(ids, dtype=str), probs=np.asarray(probs, np.float32))
    if fmt == "parquet":
        return write_predictions(path, fmt, ids, probs, predictions, label_names, thresholds)
    return atomic.write_text(path, _body(fmt, ids, probs, predictions, label_names))


def merge_parts(parts: Sequence[Path], path: str | Path, fmt: str, label_names: Sequence[str],
                thresholds: np.ndarray | None = None) -> Path:
    """The parts, in order, as one file at `path` (atomic; streamed one part at a time)."""
    if fmt == "parquet":
        return _merge_parquet(parts, path, label_names, thresholds)

    def copy(f) -> None:
        f.write(_head(fmt, label_names).encode())
        wrote = False
        for part in parts:
            if part.stat().st_size == 0:
                continue
            f.write((",\n" if wrote and fmt == "json" else _opening(fmt, not wrote)).encode())
            with part.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            wrote = True
        f.write(_tail(fmt, wrote).encode())

    return atomic.write_atomic(path, copy)


def read_npz_parts(parts: Sequence[Path], n_labels: int) -> tuple[list[str], np.ndarray]:
    """Ids and probabilities (N, L) of "npz" parts, in order."""
    ids: list[str] = []
    probs = [np.zeros((0, n_labels), np.float32)]
    for part in parts:
        with np.load(part) as data:
            ids += data["ids"].tolist()
            probs.append(data["probs"])
    return ids, np.concatenate(probs)


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """CSV lines ("\n"-ended); a field holding a comma, quote, CR or LF is quoted, others are as given."""
    lines = _Lines()
    csv.writer(lines, lineterminator="\r\n").writerows(rows)  # "\r\n": so that a CR in a field is quoted too
    return "".join(lines)


class _Lines(list):
    """The csv writer's file: it writes each row whole, ended by "\r\n", kept as "\n"."""

    def write(self, line: str) -> None:
        self.append(line[:-2] + "\n")


def _head(fmt: str, label_names: Sequence[str]) -> str:
    return csv_text([["id", *map(spreadsheet_safe, label_names), "labels"]]) if fmt == "csv" else ""


def _opening(fmt: str, first_rows: bool) -> str:
    """What goes before the first rows: JSON's "[\n"."""
    return "[\n" if fmt == "json" and first_rows else ""


def _tail(fmt: str, any_rows: bool) -> str:
    if fmt != "json":
        return ""
    return "\n]\n" if any_rows else "[]\n"


def _body(fmt: str, ids: Sequence[str], probs: np.ndarray, predictions: np.ndarray,
          label_names: Sequence[str]) -> str:
    """The rows of `fmt` (JSON records joined by ",\\n", without the list's brackets)."""
    if fmt == "jd":
        return csv_text([i, *map(str, row)] for i, row in zip(ids, predictions.astype(int)))
    if fmt == "csv":
        return csv_text([spreadsheet_safe(i), *(f"{p:.6f}" for p in prob), _names(pred, label_names)]
                        for i, prob, pred in zip(ids, probs, predictions))
    records = [_json_record(i, prob, pred, label_names) for i, prob, pred in zip(ids, probs, predictions)]
    return ",\n".join(records)


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


def _table(ids: Sequence[str], probs: np.ndarray, predictions: np.ndarray, label_names: Sequence[str],
           thresholds: np.ndarray | None):
    pa = _pyarrow()
    columns = {"id": pa.array(list(ids), pa.string())}
    for k, name in enumerate(label_names):
        columns[name] = pa.array(np.asarray(probs[:, k], np.float32), pa.float32())
    names = np.array(label_names, dtype=object)
    columns["labels"] = pa.array([list(names[row.astype(bool)]) for row in predictions], pa.list_(pa.string()))
    metadata = {"fashionstyle": json.dumps({"label_names": list(label_names), "thresholds":
                                            None if thresholds is None else [float(t) for t in thresholds]})}
    return pa.table(columns).replace_schema_metadata(metadata)


def _merge_parquet(parts: Sequence[Path], path: str | Path, label_names: Sequence[str],
                   thresholds: np.ndarray | None) -> Path:
    pq = _pyarrow().parquet
    empty = np.zeros((0, len(label_names)), np.float32)
    schema = _table([], empty, empty.astype(np.uint8), label_names, thresholds).schema

    def copy(f) -> None:
        with pq.ParquetWriter(f, schema) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part).replace_schema_metadata(schema.metadata))

    return atomic.write_atomic(path, copy)
