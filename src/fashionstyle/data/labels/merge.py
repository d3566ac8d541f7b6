"""Several label files read as one LabelTable: what `train --labels round0.csv project-1-export.json` learns from.

    table = merge_labels(["round0.csv", "project-1-export.json"], say=print)   # data.labels: one row per photo

The rules, in one place:
- each file is read as `read_labels` reads it (any format), its relative paths from `images` (--image-dir),
  else from its own folder;
- a photo is its resolved path (os.path.realpath): relative or absolute, through a link, it is one photo;
- the files' label sets are the same names (the columns follow the first file's order), else refused;
- a photo in several files takes the LATER file's row (id, labels); its split is the later file's, or the
  earlier one's where the later file has no split column; a photo whose id another photo has already (two
  folders' `001.jpg`) takes its resolved path, without the suffix, as its id;
- where some file has splits, a photo none gives a split goes to train; where no file has, there are no
  splits (training makes its stratified validation split, as for one file).

A run records its files in its config's `labels`, absolute and joined by os.pathsep (labels.join_label_files).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.table import LabelTable


def merge_tables(paths: Sequence[str | Path], tables: list[LabelTable], keep_splits: Collection[str] | None = None,
                 say: Callable[[str], None] | None = None) -> LabelTable:
    """The label files `paths`, read into `tables` (data.labels.merge_labels reads them), as one table (the
    module's rules); `say` gets the one-line summary."""
    names = tables[0].label_names
    for path, table in zip(paths, tables):
        _check_same_labels(path, table, paths[0], names)
    kept: dict[str, tuple[int, int]] = {}  # photo -> (file, row) whose row is kept; first-seen order
    splits: dict[str, str] = {}
    several, differ = set(), set()
    for t, table in enumerate(tables):
        targets = table.require_targets()[:, [table.label_names.index(n) for n in names]]
        table.targets, table.label_names = targets, names
        for i, image in enumerate(table.images):
            photo = os.path.realpath(image)
            if photo in kept:
                several.add(photo)
                if not np.array_equal(tables[kept[photo][0]].targets[kept[photo][1]], targets[i]):
                    differ.add(photo)
            kept[photo] = (t, i)
            if table.splits is not None:
                splits[photo] = table.splits[i]
    merged = _table(tables, kept, splits if any(t.splits is not None for t in tables) else None, paths)
    if say is not None:
        unsplit = sum(photo not in splits for photo in kept) if merged.splits is not None else 0
        say(f"merged {len(paths)} label files: {len(kept)} photos, {len(several)} in several files, {len(differ)} "
            "of them with different labels: the later file's kept"
            + (f"; {unsplit} photos without a split go to train" if unsplit else ""))
    if keep_splits is None or merged.splits is None:
        return merged
    return merged.subset([i for i, s in enumerate(merged.splits) if s in keep_splits])


def _check_same_labels(path: str | Path, table: LabelTable, first: str | Path, names: list[str]) -> None:
    """Refuse a file whose label set is not the first file's, naming the labels that differ."""
    if set(table.label_names) == set(names):
        return
    only_here = [n for n in table.label_names if n not in names]
    missing = [n for n in names if n not in table.label_names]
    differ = "; ".join(part for part in (f"only here: {', '.join(only_here)}" if only_here else "",
                                         f"missing here: {', '.join(missing)}" if missing else "") if part)
    raise FashionStyleError(f"{path}: other labels than {first} ({differ}); merged label files need one label set")


def _table(tables: list[LabelTable], kept: dict[str, tuple[int, int]], splits: dict[str, str] | None,
           paths: Sequence[str | Path]) -> LabelTable:
    """The kept rows as one LabelTable (photos without a split: train)."""
    rows = list(kept.values())
    ids = _unique_ids([tables[t].ids[i] for t, i in rows], list(kept))
    targets = np.stack([tables[t].targets[i] for t, i in rows]) if rows else np.zeros((0, len(tables[0].label_names)))
    return LabelTable(tables[0].label_names, ids, [tables[t].images[i] for t, i in rows], targets.astype(np.uint8),
                      None if splits is None else [splits.get(photo, "train") for photo in kept],
                      " + ".join(str(p) for p in paths), [tables[t].line_numbers[i] for t, i in rows])


def _unique_ids(ids: list[str], photos: list[str]) -> list[str]:
    """`ids`, where one names a photo after another photo took it (two files' `001.jpg`): that photo's
    resolved path (without its suffix) instead."""
    taken: set[str] = set()
    unique = []
    for image_id, photo in zip(ids, photos):
        if image_id in taken:
            image_id = os.path.splitext(photo)[0] if os.path.splitext(photo)[0] not in taken else photo
        taken.add(image_id)
        unique.append(image_id)
    return unique
