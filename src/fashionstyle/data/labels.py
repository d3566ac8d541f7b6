"""Label sets and label files: read the JD txt, label CSV and tags CSV formats; a run's validation images.

Formats read by `read_labels` (detected from the first line):
- JD txt, no header: `id,url,l1,...,lL` (train) or `id,url` (test). The image is
  `<images>/<id>.jpg`, else `<images>/<basename of url>`.
- Label CSV, with header: an `image` column (path relative to the file or to
  `images`), one 0/1 column per label, optional `id` and `split` columns.
- Tags CSV, with header `image,tags`: space-separated label names per image.
Label names that are all JD styles (any case, Chinese names too) are those styles
(tags: all 13; a header: the ones it names); any other name makes the file's own
names, as written, the label set; `label_names` fixes it instead.
Every malformed line raises FashionStyleError as `file:line: what is wrong`.
"""
from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fashionstyle.core import config as config_lib
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir

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
SPLITS = ("train", "val", "test")
IMAGE_COLUMNS = ("image", "path", "file", "filename")
_META_COLUMNS = {"id", "split", "url", *IMAGE_COLUMNS}


@dataclass
class LabelTable:
    """Images with their labels: the one in-memory form of every label file."""

    label_names: list[str]
    ids: list[str]
    images: list[Path]
    targets: np.ndarray | None = None  # (N, L) uint8 (float32 soft targets for distillation); None: unlabelled
    splits: list[str] | None = None
    source: str = ""
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> "LabelTable":
        index = [int(i) for i in index]
        pick = lambda seq: [seq[i] for i in index] if seq else seq  # noqa: E731
        targets = None if self.targets is None else self.targets[index]
        return LabelTable(self.label_names, pick(self.ids), pick(self.images), targets,
                          pick(self.splits), self.source, pick(self.line_numbers))

    def with_labels(self, columns: Sequence[int]) -> "LabelTable":
        """The same images with only some label columns (for single-label models)."""
        targets = self.require_targets()[:, list(columns)]
        names = [self.label_names[i] for i in columns]
        return LabelTable(names, self.ids, self.images, targets, self.splits, self.source, self.line_numbers)

    def split(self, name: str) -> "LabelTable":
        """Rows of one split (`train`, `val`, `test`), or all rows for `all`."""
        if name == "all":
            return self
        if name not in SPLITS:
            raise FashionStyleError(f"unknown split {name!r}; valid: all, {', '.join(SPLITS)}")
        if self.splits is None:
            raise FashionStyleError(f"{self.source}: has no split column to take {name!r} from; use --split all "
                                    "(every row) or a file with a split column")
        rows = [i for i, s in enumerate(self.splits) if s == name]
        if not rows:
            raise FashionStyleError(f"{self.source}: no rows in split {name!r}")
        return self.subset(rows)

    def require_targets(self) -> np.ndarray:
        if self.targets is None:
            raise FashionStyleError(f"{self.source}: has no labels (an id,url list)")
        return self.targets


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


def file_layout(header: Sequence[str]) -> str:
    """"tags" (image,tags[,split]), "csv" (a header with an image column) or "jd" (id,url[,flags]), from line 1."""
    lower = [h.strip().lower() for h in header]
    if lower[:2] == ["image", "tags"]:
        return "tags"
    if lower and (lower[0] in IMAGE_COLUMNS or "image" in lower):
        return "csv"
    return "jd"


def image_column(header: Sequence[str]) -> int:
    """The position of a label CSV's image column (the first of IMAGE_COLUMNS it has)."""
    lower = [h.strip().lower() for h in header]
    return lower.index(next(c for c in IMAGE_COLUMNS if c in lower))


def read_labels(path: str | Path, images: str | Path | None = None,
                label_names: Sequence[str] | None = None) -> LabelTable:
    """Read any supported label file into a LabelTable (see the module docstring)."""
    path = Path(path)
    rows = _read_rows(path)
    image_dir = Path(images) if images else path.parent
    read = {"tags": _from_tags, "csv": _from_label_csv, "jd": _from_jd}[file_layout(rows[0][1])]
    return read(path, rows, image_dir, label_names)


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank CSV rows with their 1-based line numbers (BOM and CRLF tolerated)."""
    if not path.is_file():
        raise FashionStyleError(f"{path}: label file not found")
    rows = list(iter_csv_rows(path))
    if not rows:
        raise FashionStyleError(f"{path}: empty label file")
    return rows


def iter_csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file, stripped, with their 1-based line numbers, one at a time."""
    n = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                _check_no_nul(path, n, row)
                row = [c.strip() for c in row]
                if any(row):
                    yield n, row
    except UnicodeDecodeError as err:
        raise FashionStyleError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise FashionStyleError(f"{path}:{n + 1}: {_csv_problem(err)}") from None


def _csv_problem(err: csv.Error) -> str:
    if "field limit" in str(err):
        return f"a field of more than {csv.field_size_limit():,} characters; is this a label file?"
    return f"not a valid CSV line ({err})"


def _check_no_nul(path: Path, line: int, row: list[str]) -> None:
    for i, cell in enumerate(row, 1):
        if "\0" in cell:
            raise FashionStyleError(f"{path}:{line}: a NUL byte in field {i}; is this a text label file?")


def _parse_flags(path: Path, line: int, values: Sequence[str], names: Sequence[str]) -> list[int]:
    flags = []
    for name, value in zip(names, values):
        if value not in ("0", "1"):
            raise FashionStyleError(f"{path}:{line}: label {name} must be 0 or 1, got {value!r}")
        flags.append(int(value))
    return flags


def _check_unique(path: Path, ids: list[str], lines: list[int], hint: str = "") -> None:
    seen: dict[str, int] = {}
    for image_id, line in zip(ids, lines):
        if image_id in seen:
            raise FashionStyleError(f"{path}:{line}: duplicate id {image_id!r} (first on line {seen[image_id]})"
                                    + hint)
        seen[image_id] = line


_NAME_IDS = "; ids come from the image file names: give every image its own name"


def jd_image_path(image_dir: Path, image_id: str, url: str) -> Path:
    by_id = image_dir / f"{image_id}.jpg"
    if by_id.exists() or not url:
        return by_id
    by_url = image_dir / url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    return by_url if by_url.exists() else by_id


def _from_jd(path: Path, rows, image_dir: Path, label_names) -> LabelTable:
    names = list(label_names or JD_STYLES)
    width = len(rows[0][1])
    if width not in (2, 2 + len(names)):
        raise FashionStyleError(
            f"{path}:{rows[0][0]}: expected id,url (test) or id,url + {len(names)} labels (train); "
            f"got {width} fields")
    first_labels = rows[0][1][2:]
    if first_labels and not all(v in ("0", "1") for v in first_labels):
        if canonical_label(first_labels[0], names) or first_labels[0].lower() in ("l1", "label1"):
            raise FashionStyleError(f"{path}:{rows[0][0]}: a header line, but the JD format has none")
    ids, images, targets, lines = [], [], [], []
    for line, row in rows:
        if len(row) != width:
            raise FashionStyleError(f"{path}:{line}: expected {width} fields, got {len(row)}")
        if not row[0]:
            raise FashionStyleError(f"{path}:{line}: empty id")
        ids.append(row[0])
        images.append(jd_image_path(image_dir, row[0], row[1]))
        targets.append(_parse_flags(path, line, row[2:], names))
        lines.append(line)
    _check_unique(path, ids, lines)
    array = np.array(targets, dtype=np.uint8) if width > 2 else None
    return LabelTable(names, ids, images, array, None, str(path), lines)


def _columns(path: Path, header: list[str], line: int, label_names) -> tuple[dict[str, int], list[str], list[int]]:
    """Meta column positions, label names and label column positions of a label CSV."""
    _check_distinct(path, line, header)
    meta = {h.lower(): i for i, h in enumerate(header) if h.lower() in _META_COLUMNS}
    label_cols = [i for i, h in enumerate(header) if h.lower() not in _META_COLUMNS]
    if not label_cols:
        raise FashionStyleError(f"{path}:{line}: no label columns in the header")
    found = [header[i] for i in label_cols]
    if label_names:
        return meta, list(label_names), _pick_columns(path, line, header, label_cols, list(label_names))
    if not all_jd_styles(found):
        return meta, found, label_cols  # the file's own label set
    valid = list(JD_STYLES)
    names = [canonical_label(h, valid) or h for h in found]
    if len(names) < len(valid):  # a subset of the styles: in the file's order
        return meta, names, label_cols
    return meta, valid, [label_cols[names.index(n)] for n in valid]  # all of them: the contest's order


def _check_distinct(path: Path, line: int, header: list[str]) -> None:
    """Refuse two columns with one name (case-insensitive; a Chinese alias is its English style)."""
    seen: dict[str, str] = {}
    for h in header:
        key = (canonical_label(h, JD_STYLES) or h).lower()
        if key in seen:
            name = canonical_label(h, JD_STYLES) or seen[key]
            what = f"two {key!r} columns" if key in _META_COLUMNS else f"two columns for label {name!r}"
            raise FashionStyleError(f"{path}:{line}: {what}: {seen[key]!r} and {h!r}")
        seen[key] = h


def _pick_columns(path: Path, line: int, header: list[str], label_cols: list[int],
                  names: list[str]) -> list[int]:
    """The column of each of `names` (a subset of the header's labels; the other columns are left out)."""
    by_name: dict[str, int] = {}
    for i in label_cols:  # no two columns share a name (_check_distinct)
        name = canonical_label(header[i], names)
        if name is not None:
            by_name[name] = i
    missing = [n for n in names if n not in by_name]
    if missing:
        found = [header[i] for i in label_cols]
        close = difflib.get_close_matches(missing[0], found, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise FashionStyleError(f"{path}:{line}: no column for label {missing[0]!r}{hint}; "
                                f"label columns: {', '.join(found)}")
    return [by_name[n] for n in names]


def _split_value(path: Path, line: int, value: str) -> str:
    value = value.lower()
    if value not in SPLITS:
        raise FashionStyleError(f"{path}:{line}: split must be one of {', '.join(SPLITS)}, got {value!r}")
    return value


def _from_label_csv(path: Path, rows, image_dir: Path, label_names) -> LabelTable:
    (head_line, header), body = rows[0], rows[1:]
    if not body:
        raise FashionStyleError(f"{path}: has a header but no rows")
    image_col = header[image_column(header)].lower()
    meta, names, label_cols = _columns(path, header, head_line, label_names)
    ids, images, targets, splits, lines = [], [], [], [], []
    for line, row in body:
        if len(row) != len(header):
            raise FashionStyleError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
        image = row[meta[image_col]]
        if not image:
            raise FashionStyleError(f"{path}:{line}: empty {image_col}")
        ids.append(row[meta["id"]] if "id" in meta else Path(image).stem)
        images.append(image_dir / image)
        targets.append(_parse_flags(path, line, [row[i] for i in label_cols], names))
        if "split" in meta:
            splits.append(_split_value(path, line, row[meta["split"]]))
        lines.append(line)
    _check_unique(path, [str(p) for p in images], lines)
    _check_unique(path, ids, lines, "" if "id" in meta else _NAME_IDS + ", or add an id column")
    return LabelTable(names, ids, images, np.array(targets, dtype=np.uint8),
                      splits or None, str(path), lines)


def _tag_names(path: Path, body, label_names) -> list[str]:
    if label_names:
        return list(label_names)
    tags = [t for _, row in body for t in (row[1].split() if len(row) > 1 else [])]
    if tags and all_jd_styles(tags):
        return list(JD_STYLES)
    return sorted(set(tags))


def _from_tags(path: Path, rows, image_dir: Path, label_names) -> LabelTable:
    (_, header), body = rows[0], rows[1:]
    if not body:
        raise FashionStyleError(f"{path}: has a header but no rows")
    names = _tag_names(path, body, label_names)
    if not names:
        raise FashionStyleError(f"{path}:{rows[0][0]}: no row has any tag, so there are no labels; "
                                "tags are space-separated label names")
    has_split = len(header) > 2 and header[2].lower() == "split"
    ids, images, targets, splits, lines = [], [], [], [], []
    for line, row in body:
        if len(row) != len(header):
            raise FashionStyleError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
        flags = [0] * len(names)
        for tag in row[1].split():
            name = canonical_label(tag, names)
            if name is None:
                raise FashionStyleError(f"{path}:{line}: {unknown_label_message(tag, names)}")
            flags[names.index(name)] = 1
        ids.append(Path(row[0]).stem)
        images.append(image_dir / row[0])
        targets.append(flags)
        if has_split:
            splits.append(_split_value(path, line, row[2]))
        lines.append(line)
    _check_unique(path, [str(p) for p in images], lines)
    _check_unique(path, ids, lines, _NAME_IDS)
    return LabelTable(names, ids, images, np.array(targets, dtype=np.uint8),
                      splits or None, str(path), lines)


def label_warnings(table: LabelTable) -> list[str]:
    """Plain warning lines about labels that cannot be learned or tuned, and rows without labels.

    The train split is the file's `train` rows, or all rows when it has no split column.
    """
    if table.targets is None or not len(table):
        return []
    warnings = []
    for split in ("train", "val"):
        rows = _split_rows(table, split)
        if rows is None:
            continue
        positives = table.targets[rows].sum(axis=0)
        why = "cannot be learned" if split == "train" else "its threshold cannot be tuned"
        warnings += [f"{table.source}: label {name} has no {side} in the {split} split: {why}"
                     for name, p in zip(table.label_names, positives)
                     for side, count in (("positives", p), ("negatives", len(rows) - p)) if count == 0]
    unlabelled = int((table.targets.sum(axis=1) == 0).sum())
    if unlabelled:
        warnings.append(f"{table.source}: {unlabelled} of {len(table)} rows have no label at all "
                        "(negatives for every label)")
    return warnings


def _split_rows(table: LabelTable, split: str) -> np.ndarray | None:
    """Row indices of `split` (train: all rows without a split column); None when there are none."""
    if table.splits is None:
        return np.arange(len(table)) if split == "train" else None
    rows = np.flatnonzero(np.array(table.splits) == split)
    return rows if len(rows) else None


def rarest_label_groups(targets: np.ndarray) -> np.ndarray:
    """Each row's rarest positive label (column index); L for a row without positives."""
    counts = targets.sum(axis=0)
    rarity = np.where(targets > 0, counts[None, :], np.iinfo(np.int64).max)
    return np.where(targets.any(axis=1), rarity.argmin(axis=1), targets.shape[1])


def stratified_split(targets: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Seeded train/val split, stratified by each image's rarest positive label.

    Returns a bool mask of validation rows. Each group (images whose rarest label
    is the same) sends every k-th member to validation, so every label keeps
    about `val_fraction` of its positives there.
    """
    if not 0.0 < val_fraction < 1.0:
        raise FashionStyleError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    group = rarest_label_groups(targets)
    is_val = np.zeros(len(targets), dtype=bool)
    for g in np.unique(group):
        members = rng.permutation(np.flatnonzero(group == g))
        ranks = np.arange(len(members))
        offset = rng.random()
        picked = np.floor((ranks + 1) * val_fraction + offset) > np.floor(ranks * val_fraction + offset)
        is_val[members[picked]] = True
    return is_val


def read_submission(path: str | Path, label_names: Sequence[str] = JD_STYLES) -> tuple[list[str], np.ndarray]:
    """Read a JD submission (`id,l1,...,lL`) back: (ids, predictions (N, L))."""
    path = Path(path)
    ids, flags = [], []
    for line, row in _read_rows(path):
        if len(row) != 1 + len(label_names):
            raise FashionStyleError(f"{path}:{line}: expected {1 + len(label_names)} fields, got {len(row)}")
        ids.append(row[0])
        flags.append(_parse_flags(path, line, row[1:], label_names))
    return ids, np.array(flags, dtype=np.uint8)


def val_images(run: RunDir, ids: list[str], table: LabelTable | None) -> list:
    """Image paths of the run's validation ids, from `table` or the run's config."""
    if table is None:
        if not (run / "config.yaml").is_file():
            raise FashionStyleError(f"{run.path}: no config.yaml to find its images; pass --labels FILE")
        config = config_lib.read_yaml(run / "config.yaml")
        table = read_labels(config["labels"], config.get("images") or None, config.get("label_names"))
    by_id = dict(zip(table.ids, table.images))
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise FashionStyleError(f"{table.source}: lacks {len(missing)} validation ids of the run, "
                                f"e.g. {missing[0]!r}")
    return [by_id[i] for i in ids]
