"""Label names: the JD contest's 13 styles, their Chinese names, and matching a written name to a label set.

    canonical_label("韩版", JD_STYLES)        # "Korean"
    all_jd_styles(["sport", "Street"])        # True: a file naming only these uses the contest's styles
"""
from __future__ import annotations

import difflib
from typing import Sequence

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


def canonical_label(name: str, valid: Sequence[str]) -> str | None:
    """`name` as spelt in `valid` (case-insensitive, Chinese aliases), or None."""
    name = name.strip()
    english = CHINESE_ALIASES.get(name, name)
    for candidate in valid:
        if candidate.lower() == english.lower():
            return candidate
    return None


def all_jd_styles(names: Sequence[str]) -> bool:
    """Whether every name is a JD style (or its Chinese name); one other name makes a label set of the file's own."""
    return all(canonical_label(n, JD_STYLES) for n in names)


def unknown_label_message(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown label {name!r}{hint}; valid: {', '.join(valid)}"
