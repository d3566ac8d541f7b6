"""Label descriptions: one line per style name, shown on hover in the service's page and returned by GET /labels.

    descriptions = label_descriptions(names, "label_info.csv")   # {name: description} for the names described

A label-info file is a CSV with the header `label,description` and a row per label described
(any of the run's labels, each once; JD styles also by their Chinese names). A run whose labels
are all JD styles gets JD_DESCRIPTIONS; a file's rows replace those of the same labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.names import all_jd_styles, canonical_label, unknown_label_message
from fashionstyle.data.labels.rows import iter_csv_rows

HEADER = ("label", "description")
JD_DESCRIPTIONS: dict[str, str] = {
    "Sport": "sporty (运动): athletic wear, tracksuits, trainers, stripes",
    "Relax": "relaxed casual (休闲): loose, comfortable everyday clothes",
    "OL": "office lady (OL/通勤): commute and work wear, blouses, suits, pencil skirts",
    "Japanese": "Japanese (日系): soft colours, loose layers, Mori-girl touches",
    "Korean": "Korean (韩版): fitted, clean, fashionable cuts",
    "European": "European / American (欧美): bold, simple lines, high-street fashion",
    "England": "British (英伦): tartan, trench coats, preppy and college looks",
    "Miden": "'Miden' (少女): girlish, youthful and sweet; bows, lace, pastel colours",
    "Lady": "lady (名媛/淑女): elegant, feminine dresses and skirts",
    "Simple": "simple / minimalist (简约): plain colours, few details",
    "Nature": "natural (自然): linen and cotton, earthy tones, relaxed shapes",
    "Street": "street / punk (街头/朋克): hip-hop, graphic prints, rivets, dark colours",
    "Nation": "ethnic / national costume (民族): embroidery, folk patterns, cheongsam-like cuts",
}


def read_label_info(path: str | Path) -> list[tuple[int, str, str]]:
    """The (line, label, description) rows of a label-info file, or a FashionStyleError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FashionStyleError(f"{path}: label-info file not found (a CSV with the header label,description)")
    rows = list(iter_csv_rows(path))
    if not rows:
        raise FashionStyleError(f"{path}: empty label-info file (expected the header label,description)")
    line, header = rows[0]
    if tuple(h.lower() for h in header) != HEADER:
        raise FashionStyleError(f"{path}:{line}: the header must be label,description, got {','.join(header)}")
    for line, row in rows[1:]:
        if len(row) != 2:
            raise FashionStyleError(f"{path}:{line}: expected 2 fields (label,description), got {len(row)}; "
                                    "quote a description that holds commas")
    return [(line, label, description) for line, (label, description) in rows[1:]]


def label_descriptions(names: Sequence[str], path: str | Path | None = None) -> dict[str, str]:
    """A description per described label of `names`: JD_DESCRIPTIONS for JD styles, then the file's rows."""
    out = {n: JD_DESCRIPTIONS[canonical_label(n, JD_DESCRIPTIONS)] for n in names} if all_jd_styles(names) else {}
    if path is None:
        return out
    rows = read_label_info(path)
    unknown = [label for _, label, _ in rows if canonical_label(label, names) is None]
    if unknown:
        raise FashionStyleError(f"{path}: {_unknown(unknown, names)}")
    seen: dict[str, int] = {}
    for line, label, description in rows:
        name = canonical_label(label, names)
        if name in seen:
            raise FashionStyleError(f"{path}:{line}: label {name} described twice (first on line {seen[name]})")
        seen[name] = line
        out[name] = description
    return {n: d for n, d in out.items() if d}  # an empty description removes a default one


def _unknown(labels: list[str], names: Sequence[str]) -> str:
    """One line naming every unknown label and the valid ones."""
    if len(labels) == 1:
        return unknown_label_message(labels[0], names)
    return f"unknown labels {', '.join(repr(n) for n in labels)}; valid: {', '.join(names)}"
