"""Label names: the JD contest's 13 styles, their Chinese names, matching a written name to a label set,
and the one check of a label set every label file goes through.

    canonical_label("韩版", JD_STYLES)        # "Korean"
    all_jd_styles(["sport", "Street"])        # True: a file naming only these uses the contest's styles
    LabelLookup(names).position("korean")     # the same match in O(1), for files with many labels
    check_label_set(names, "labels.csv")      # refuses reserved names, ";" and repeated names
"""
from __future__ import annotations

import difflib
from collections import Counter
from pathlib import Path
from typing import Sequence

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import RESERVED as PREDICTION_COLUMNS
from fashionstyle.data.labels.rows import META_COLUMNS, TAGS_COLUMN

JD_STYLES: tuple[str, ...] = (
    "Sport", "Relax", "OL", "Japanese", "Korean", "European", "England",
    "Miden", "Lady", "Simple", "Nature", "Street", "Nation",
)
# The contest's Chinese names (and their variants) for each style.
CHINESE_ALIASES: dict[str, str] = {
    "运动": "Sport", "休闲": "Relax", "通勤": "OL", "OL/通勤": "OL", "日系": "Japanese",
    "韩版": "Korean", "欧美": "European", "英伦": "England", "少女": "Miden",
    "名媛": "Lady", "淑女": "Lady", "名媛/淑女": "Lady", "简约": "Simple",
    "自然": "Nature", "街头": "Street", "朋克": "Street", "街头/朋克": "Street",
    "民族": "Nation",
}


# Names no label may have (any case): the columns label readers skip or read as their own, and the
# prediction table's columns beside the labels'.
RESERVED_NAMES: frozenset[str] = frozenset({*META_COLUMNS, TAGS_COLUMN, *PREDICTION_COLUMNS})
LABEL_SEPARATOR = ";"  # between label names in one cell: predictions' `labels`, a Label Studio task's label set


def label_key(name: str) -> str:
    """What two names of one label share: the English style of a Chinese name, any case, stripped."""
    name = name.strip()
    return CHINESE_ALIASES.get(name, name).lower()


class LabelLookup:
    """A label set's positions by name, matched as `canonical_label` matches, each look-up O(1)."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self._at: dict[str, int] = {}
        for k, name in enumerate(self.names):
            self._at.setdefault(name.lower(), k)  # the first of two names that differ only in case

    def position(self, name: str) -> int | None:
        return self._at.get(label_key(name))


def canonical_label(name: str, valid: Sequence[str]) -> str | None:
    """`name` as spelt in `valid` (case-insensitive, Chinese aliases), or None."""
    names = list(valid)  # a sequence, or a mapping's keys
    at = LabelLookup(names).position(name)
    return None if at is None else names[at]


def reserved_name_message(name: str) -> str:
    return (f"a label may not be called {name!r}: reserved names (columns of label and prediction files) are "
            f"{', '.join(sorted(RESERVED_NAMES))}; rename it")


def check_label_set(names: Sequence[str], source: str | Path = "") -> None:
    """Refuse, in one line naming the label (and `source`), a label set that files and tables cannot carry:
    an empty name, a reserved one (RESERVED_NAMES), one holding LABEL_SEPARATOR, or a name twice."""
    where = f"{source}: " if str(source) else ""
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise FashionStyleError(f"{where}a label without a name ({name!r}); every label needs one")
        if name.strip().lower() in RESERVED_NAMES:
            raise FashionStyleError(f"{where}{reserved_name_message(name)}")
        if LABEL_SEPARATOR in name:
            raise FashionStyleError(f"{where}label {name!r} holds {LABEL_SEPARATOR!r}, which separates labels in a "
                                    "predictions' labels column and a Label Studio task; rename it")
    counts = Counter(label_key(n) for n in names)
    twice = [n for n in names if counts[label_key(n)] > 1]
    if twice:
        more = f" and {len(twice) - 6} more" if len(twice) > 6 else ""
        raise FashionStyleError(f"{where}labels {', '.join(map(repr, twice[:6]))}{more} repeat a name (any case, "
                                "a Chinese name as its style); each label once")


def all_jd_styles(names: Sequence[str]) -> bool:
    """Whether every name is a JD style (or its Chinese name); one other name makes a label set of the file's own."""
    return all(canonical_label(n, JD_STYLES) for n in names)


def unknown_label_message(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown label {name!r}{hint}; valid: {', '.join(valid)}"
