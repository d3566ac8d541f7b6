"""Read label files: `read_labels` into a LabelTable, `label_rows` one row at a time; JD submissions; a run's
validation images; `read_run_labels`, a file read for a run (its label order, its --image-dir for its own file).

    table = read_labels("labels.csv")                                  # every row
    table = read_labels("labels.csv", keep_splits=("train", "val"))    # training: other splits' rows never held
    table = read_labels(join_label_files(["round0.csv", "export.json"]))  # several files, merged (labels/merge.py)
    reader, rows = label_rows("labels.csv")                            # a stream of LabelRow (label_stats counts it)

Formats (labels/formats.py, detected from the first line): JD txt, label CSV, tags CSV, a plain list of
image paths (no labels: a catalogue); a Label Studio export (labels/label_studio.py).
Label names that are all JD styles (any case, Chinese names too) are those styles
(tags: all 13; a header: the ones it names); any other name makes the file's own
names, as written, the label set; `label_names` fixes it instead. Either way the set
passes label_names.check_label_set (no reserved name, no ";", each name once).
Every malformed line raises FashionStyleError as `file:line: what is wrong`, and a repeated
id (or image) is refused at its line, before the rest of the file is read.

Another format: a module with an opener `(path, image_dir, label_names) -> RowReader`
(labels/rows.py), one entry in READERS and one rule in `label_layout`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Collection, Iterator, NamedTuple, Sequence

import numpy as np

from fashionstyle.core import config as config_lib
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.data.labels.formats import is_path_list, open_jd, open_label_csv, open_path_list, open_tags
from fashionstyle.data.labels.merge import merge_tables
from fashionstyle.data.labels.names import JD_STYLES, check_label_set
from fashionstyle.data.labels.label_studio import is_export, open_label_studio
from fashionstyle.data.labels.rows import (
    SPLITS, LabelRow, RepeatFinder, RowReader, file_layout, first_row, iter_csv_rows, parse_flags,
)
from fashionstyle.data.labels.table import LabelTable

LabelFileOpener = Callable[[Path, Path, Sequence[str] | None], RowReader]
READERS: dict[str, LabelFileOpener] = {"tags": open_tags, "csv": open_label_csv, "jd": open_jd,
                                        "label-studio": open_label_studio, "paths": open_path_list}


def label_layout(path: Path) -> str:
    """The READERS entry that reads `path`: a Label Studio export (label_studio.is_export), a plain list of
    paths (label_formats.is_path_list), else a CSV layout, from its first line (label_rows.file_layout)."""
    if is_export(path):
        return "label-studio"
    if is_path_list(path):
        return "paths"
    return file_layout(first_row(path)[1])


def open_label_file(path: str | Path, images: str | Path | None = None,
                    label_names: Sequence[str] | None = None) -> RowReader:
    """The RowReader of any supported label file (its header and label set checked; no row read yet)."""
    path = Path(path)
    image_dir = Path(images) if images else path.parent
    reader = READERS[label_layout(path)](path, image_dir, label_names)
    check_label_set(reader.label_names, path)  # every label file, every command: one check
    return reader


def label_rows(path: str | Path, images: str | Path | None = None,
               label_names: Sequence[str] | None = None) -> tuple[RowReader, Iterator[LabelRow]]:
    """A label file's reader and its rows, streamed; a repeated id or image is refused at its line."""
    reader = open_label_file(path, images, label_names)
    return reader, unique_rows(reader)


def unique_rows(reader: RowReader) -> Iterator[LabelRow]:
    """The reader's rows; a row repeating an earlier row's image or id raises, naming both lines."""
    images = RepeatFinder(lambda: ((row.line, os.path.normpath(row.image)) for row in reader.rows()))
    ids = RepeatFinder(lambda: ((row.line, row.id) for row in reader.rows()))
    for row in reader.rows():
        if reader.unique_images and (first := images.first_line(os.path.normpath(row.image), row.line)) is not None:
            raise FashionStyleError(f"{reader.source}:{row.line}: duplicate image {row.image!r} "
                                    f"(first on line {first})")
        if (first := ids.first_line(row.id, row.line)) is not None:
            raise FashionStyleError(f"{reader.source}:{row.line}: duplicate id {row.id!r} (first on line {first})"
                                    + reader.id_hint)
        yield row


def merge_labels(paths: Sequence[str | Path], images: str | Path | None = None,
                 label_names: Sequence[str] | None = None, keep_splits: Collection[str] | None = None,
                 say: Callable[[str], None] | None = None) -> LabelTable:
    """The label files `paths`, each read as read_labels reads one, as one table (data/labels/merge.py's
    rules); `say` gets the one-line summary."""
    return merge_tables(paths, [read_labels(path, images, label_names) for path in paths], keep_splits, say)


def read_labels(path: str | Path, images: str | Path | None = None, label_names: Sequence[str] | None = None,
                keep_splits: Collection[str] | None = None) -> LabelTable:
    """Read any supported label file into a LabelTable (see the module docstring).

    With `keep_splits` (e.g. ("train", "val")), a file with a split column keeps only those
    splits' rows: the others are checked as they stream past, but never held in memory.
    """
    for name in keep_splits or ():
        if name not in SPLITS:
            raise FashionStyleError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
    if len(files := label_files(path)) > 1:
        return merge_labels(files, images, label_names, keep_splits)
    reader, rows = label_rows(path, images, label_names)
    keep = None if keep_splits is None or not reader.has_splits else frozenset(keep_splits)
    ids: list[str] = []
    paths: list[Path] = []
    lines: list[int] = []
    splits: list[str] = []
    flags = bytearray()
    for row in rows:
        if keep is not None and row.split not in keep:
            continue
        ids.append(row.id)
        paths.append(reader.image_dir / row.image)
        lines.append(row.line)
        flags += row.flags
        if row.split is not None:
            splits.append(row.split)
    targets = None
    if reader.labelled:
        targets = np.frombuffer(bytes(flags), np.uint8).reshape(len(ids), len(reader.label_names)).copy()
    return LabelTable(reader.label_names, ids, paths, targets, splits if reader.has_splits else None,
                      str(reader.source), lines)


def read_submission(path: str | Path, label_names: Sequence[str] = JD_STYLES) -> tuple[list[str], np.ndarray]:
    """Read a JD submission (`id,l1,...,lL`) back: (ids, predictions (N, L))."""
    path = Path(path)
    first_row(path)  # a missing or empty file is refused
    ids, flags = [], bytearray()
    for line, row in iter_csv_rows(path):
        if len(row) != 1 + len(label_names):
            raise FashionStyleError(f"{path}:{line}: expected {1 + len(label_names)} fields, got {len(row)}")
        ids.append(row[0])
        flags += parse_flags(path, line, row[1:], label_names)
    return ids, np.frombuffer(bytes(flags), np.uint8).reshape(len(ids), len(label_names)).copy()


def read_run_labels(run: RunDir, path: str | Path, images: str | Path | None = None,
                    label_names: Sequence[str] | None = None) -> LabelTable:
    """A label file read to score or look at `run`: in the run's label order (unless `label_names`), its
    images in `images`, or, for the very file the run trained on, in the folder the run read them from."""
    return read_labels(path, images if images is not None else trained_image_dir(run, path),
                       label_names or run.label_names())


def join_label_files(paths: Sequence[str | Path]) -> str:
    """How a config's `labels` names its label files: one as given; several absolute, joined by os.pathsep
    (as PATH), which `read_labels` reads merged."""
    if len(paths) == 1:
        return os.fspath(paths[0])
    return os.pathsep.join(os.path.abspath(p) for p in paths)


def label_files(labels: str | Path) -> list[Path]:
    """The label files a config's `labels` names (join_label_files); a path that exists is one file."""
    text = os.fspath(labels)
    if os.pathsep not in text or os.path.exists(text):
        return [Path(text)]
    return [Path(part) for part in text.split(os.pathsep) if part]


class TrainedOn(NamedTuple):
    """The label file a run trained on (as its config names it: relative to where it was trained) and
    the --image-dir it was read with (None: the file's own folder)."""

    labels: Path
    images: str | None = None


def trained_on(run: RunDir) -> TrainedOn | None:
    """What `run`'s config.yaml says it trained on (its `labels` as written: several files joined, see
    trained_on_files); None for a run without one (fused, exported)."""
    saved = run / "config.yaml"
    config = config_lib.read_yaml(saved) if saved.is_file() else {}
    return TrainedOn(Path(config["labels"]), config.get("images") or None) if config.get("labels") else None


def trained_on_files(run: RunDir) -> list[TrainedOn]:
    """Each label file `run` trained on (several for `train --labels A B`), with its --image-dir; [] for none."""
    own = trained_on(run)
    return [] if own is None else [TrainedOn(path, own.images) for path in label_files(own.labels)]


def trained_image_dir(run: RunDir, path: str | Path) -> str | None:
    """The --image-dir `run` trained with, if `path` names label files it trained on (else None)."""
    own = trained_on_files(run)
    if own and all(any(same_file(f.labels, given) for f in own) for given in label_files(path)):
        return own[0].images
    return None


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` are the same file (False when either is gone)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def val_images(run: RunDir, ids: list[str], table: LabelTable | None) -> list:
    """Image paths of the run's validation ids, from `table` or the run's config."""
    if table is None:
        if not (run / "config.yaml").is_file():
            raise FashionStyleError(f"{run.path}: no config.yaml to find its images; pass --labels FILE")
        config = config_lib.read_yaml(run / "config.yaml")
        table = read_labels(config["labels"], config.get("images") or None, config.get("label_names"),
                            keep_splits=("train", "val"))  # where validation images come from
    by_id = dict(zip(table.ids, table.images))
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise FashionStyleError(f"{table.source}: lacks {len(missing)} validation ids of the run, "
                                f"e.g. {missing[0]!r}")
    return [by_id[i] for i in ids]
