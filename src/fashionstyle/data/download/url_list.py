"""The (id, url) pairs of a JD-format label file, each line checked: what `fashionstyle download` fetches.

    items = read_url_list("train.txt")    # [("id", "https://..."), ...]

A line is ``id,url,l1,...,l13`` (train) or ``id,url`` (test); the url is everything
between the id and the trailing 0/1 labels, commas included.
"""
from __future__ import annotations

import csv
import os

from fashionstyle.core.errors import FashionStyleError


def read_url_list(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read the (id, url) pairs of a JD-format label file, checking each line.

    Blank lines are skipped; a UTF-8 BOM and CRLF line ends are accepted.
    A malformed line raises FashionStyleError naming ``file:line``.
    """
    name = os.fspath(path)
    items: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    fields = _id_and_url(line)
                except csv.Error as e:
                    raise FashionStyleError(f"{name}:{lineno}: not a valid CSV line ({e})") from None
                problem = _line_problem(fields, first_line)
                if problem:
                    raise FashionStyleError(f"{name}:{lineno}: {problem}")
                first_line[fields[0]] = lineno
                items.append((fields[0], fields[1]))
    except FileNotFoundError:
        raise FashionStyleError(f"{name}: no such file") from None
    except UnicodeDecodeError as e:
        raise FashionStyleError(f"{name}: not UTF-8 text ({e.reason})") from None
    return items


def _id_and_url(line: str) -> list[str]:
    """[id, url] of one list line (or its one field): the url is everything between the first comma
    and the trailing 0/1 label fields, so a url that holds a comma stays whole (quoted or not)."""
    fields = next(csv.reader([line.strip()]), [])
    if len(fields) < 2:
        return [f.strip() for f in fields]
    labels = 0  # trailing 0/1 fields after the id and the url's first piece
    while labels < len(fields) - 2 and fields[-1 - labels].strip() in ("0", "1"):
        labels += 1
    return [fields[0].strip(), ",".join(fields[1:len(fields) - labels]).strip()]


def _line_problem(fields: list[str], first_line: dict[str, int]) -> str | None:
    """What is wrong with one split label line, or None."""
    if len(fields) < 2:
        plural = "" if len(fields) == 1 else "s"
        return f"expected id,url,...; got {len(fields)} field{plural}"
    id_, url = fields[0], fields[1]
    if id_ in first_line:
        return f"duplicate id {id_!r} (first on line {first_line[id_]})"
    return item_problem(id_, url)


def item_problem(id_: str, url: str) -> str | None:
    """What makes (id, url) unusable, or None."""
    if not id_:
        return "empty id"
    if id_ in (".", "..") or any(c in id_ for c in "/\\\0"):
        return f"id {id_!r} cannot be used as a file name"
    if not url.lower().startswith(("http://", "https://")):
        return f"url must start with http:// or https://; got {url!r}"
    return None
