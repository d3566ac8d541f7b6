"""Prediction files read back, recognised, and checked before `predict` writes one.

    found = read_predictions("tags.csv")       # PredictionFile: schema, label_names, thresholds, predictions
    found.predictions[0]                       # Prediction(image="img/000.jpg", labels=[...], scores={...})
    check_out(Path("tags.csv"), overwrite=False)   # refuses a folder, "-", or a file predict did not write

Reads what outputs.py writes (CSV, JSON, Parquet, each text format also .gz); a file of
an older layout (CSV `id,...,labels`, a JSON list, Parquet without the schema) is refused
in one line. A JD submission has no scores and is not read back.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any, NamedTuple

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import SCHEMA, Prediction, column_kinds, flat_columns, from_flat
from fashionstyle.inference.outputs import GZIP, LABEL_SEPARATOR, output_format, require_pyarrow, unescape

PEEK = 1 << 16  # bytes read to recognise a file
SCHEMA_FAMILY = SCHEMA.rsplit("/", 1)[0]  # "fashionstyle.prediction": any version of the record


class PredictionFile(NamedTuple):
    schema: str
    label_names: list[str]
    thresholds: dict[str, float] | None  # None: not in the file (CSV: see the run's thresholds.json)
    predictions: list[Prediction]


def read_predictions(path: str | Path) -> PredictionFile:
    """The records of a CSV, JSON or Parquet prediction file (`predict --out`), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FashionStyleError(f"{path}: no such prediction file")
    fmt = output_format(path, None)
    if fmt == "jd":
        raise FashionStyleError(f"{path}: a JD submission holds 0/1 flags, not scores; predict to .csv, "
                                ".json or .parquet to read predictions back")
    return {"csv": _read_csv, "json": _read_json, "parquet": _read_parquet}[fmt](path)


def _older(path: Path) -> FashionStyleError:
    return FashionStyleError(f"{path}: not a {SCHEMA} prediction file (written by an older fashionstyle, or "
                             f"not by predict); predict it again")


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(GZIP):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _read_csv(path: Path) -> PredictionFile:
    with _open_text(path) as f:
        rows = csv.reader(f)
        header = [unescape(h) for h in next(rows, [])]
        names = _label_columns(header)
        if names is None:
            raise _older(path)
        kinds = column_kinds(names)
        records = []
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise FashionStyleError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
            records.append(from_flat({c: _csv_value(kind, cell) for c, kind, cell in zip(header, kinds, row)}, names))
    return PredictionFile(SCHEMA, names, None, records)


def _label_columns(header: list[str]) -> list[str] | None:
    """The label names of a CSV header in the record's flat layout, None for another layout."""
    fixed = flat_columns([])
    at = fixed.index("labels") + 1  # the label columns follow the fields before them
    names = header[at:len(header) - (len(fixed) - at)]
    return names if flat_columns(names) == header else None


def _csv_value(kind: str, cell: str) -> object:
    if kind == "names":
        cell = unescape(cell)
        return cell.split(LABEL_SEPARATOR) if cell else []
    return cell if kind == "score" else unescape(cell)


def _read_json(path: Path) -> PredictionFile:
    with _open_text(path) as f:
        try:
            found = json.load(f)
        except ValueError as err:
            raise FashionStyleError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(found, dict) or found.get("schema") != SCHEMA:
        raise _older(path)
    return PredictionFile(SCHEMA, list(found["label_names"]), found.get("thresholds"),
                          [Prediction.from_dict(r) for r in found["predictions"]])


def _read_parquet(path: Path) -> PredictionFile:
    table = require_pyarrow().parquet.read_table(path)
    meta = _parquet_meta(table.schema.metadata)
    if meta.get("schema") != SCHEMA:
        raise _older(path)
    names = list(meta["label_names"])
    columns = table.to_pydict()
    records = [from_flat({c: values[i] for c, values in columns.items()}, names) for i in range(table.num_rows)]
    return PredictionFile(SCHEMA, names, meta.get("thresholds"), records)


def _parquet_meta(metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    try:
        found = json.loads((metadata or {})[b"fashionstyle"])
    except (KeyError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def is_prediction_file(path: Path) -> bool:
    """`path` is empty or looks like a file `predict` writes (any format, this layout or an older one):
    one it may replace without --overwrite."""
    try:
        if path.stat().st_size == 0:
            return True
        with path.open("rb") as f:
            head = f.read(PEEK)
        if head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as f:
                head = f.read(PEEK)
        if head.startswith(b"PAR1"):
            return bool(_parquet_meta(require_pyarrow().parquet.read_schema(path).metadata))
    except (OSError, EOFError, FashionStyleError, ValueError):
        return False
    return _looks_like_text_predictions(head.decode("utf-8", errors="replace"))


def _looks_like_text_predictions(text: str) -> bool:
    first = next(csv.reader([text.split("\n", 1)[0]]), [])
    if text.startswith(f'{{"schema": "{SCHEMA_FAMILY}'):
        return True
    if first[:2] == ["image", "labels"] or (first[:1] == ["id"] and first[-1:] == ["labels"]):  # CSV, now and before
        return True
    if text.lstrip().startswith("[") and ('"probs"' in text or text.strip() == "[]"):  # JSON before the record
        return True
    return len(first) >= 2 and all(flag in ("0", "1") for flag in first[1:])  # a JD submission


def check_out(out: str | Path, overwrite: bool = False) -> Path:
    """Refuse an --out that is standard output, a folder, or an existing file that predict did not write
    (unless `overwrite`); a symbolic link is written through (outputs.written_through)."""
    out = Path(out)
    if str(out) == "-":
        raise FashionStyleError("--out -: predictions are not written to standard output (progress and the "
                                "summary print there); name a file, e.g. --out tags.csv")
    if out.is_dir():
        raise FashionStyleError(f"--out {out}: is a folder; name a file, e.g. {out / 'tags.csv'}")
    if out.exists() and not overwrite and not is_prediction_file(out):
        raise FashionStyleError(f"--out {out}: exists and is not a prediction file; pass --overwrite to replace "
                                f"it, or choose another --out")
    return out
