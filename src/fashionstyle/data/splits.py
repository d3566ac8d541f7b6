"""The tables training reads: rows whose images can be read, and the train/val split.

    table, bad = drop_bad_images(read_labels("labels.csv"), on_bad="skip", decode=True)
    train, val = train_val_split(table, val_fraction=0.15, seed=0)
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.decode import decode_image
from fashionstyle.data.images.files import check_policy
from fashionstyle.data.labels.table import LabelTable, stratified_split


def drop_bad_images(table: LabelTable, on_bad: str, decode: bool, progress: bool = False,
                    opener: Callable[[str | Path], Any] = decode_image
                    ) -> tuple[LabelTable, list[tuple[str, str]]]:
    """The rows whose images exist (and, with decode, decode), and the others' (path, reason).

    With on_bad="fail" the first bad image raises instead.
    """
    check_policy(on_bad)
    bad, keep = [], []
    rows = tqdm(range(len(table)), desc="checking images", unit="img", disable=not progress)
    for i in rows:
        path = table.images[i]
        try:
            if decode:
                opener(path)
            elif not Path(path).is_file():
                raise FashionStyleError(f"{path}: image not found")
            keep.append(i)
        except FashionStyleError as err:
            where = f" ({table.source}, line {table.line_numbers[i]})" if table.line_numbers else ""
            if on_bad == "fail":
                raise FashionStyleError(f"{err}{where}; pass --on-bad-image skip to leave it out") from None
            bad.append((str(path), str(err)))
    if bad:
        warnings.warn(f"skipping {len(bad)} of {len(table)} images that cannot be read, e.g. {bad[0][1]}",
                      stacklevel=2)
    return (table if not bad else table.subset(keep)), bad


def train_val_split(table: LabelTable, val_fraction: float, seed: int) -> tuple[LabelTable, LabelTable]:
    """The file's own train/val split, or a seeded, label-stratified one."""
    if table.splits is not None and "val" in table.splits:
        return table.split("train"), table.split("val")
    rows = np.arange(len(table))
    if table.splits is not None:  # a split column without val: split its train rows
        rows = np.array([i for i, s in enumerate(table.splits) if s == "train"])
        if len(rows) == 0:
            raise FashionStyleError(f"{table.source}: no train rows")
    is_val = stratified_split(table.require_targets()[rows], val_fraction, seed)
    return table.subset(rows[~is_val]), table.subset(rows[is_val])
