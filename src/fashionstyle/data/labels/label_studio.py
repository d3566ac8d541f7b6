"""Label Studio exports (JSON, JSON-min, CSV) of a project made by `suggest --tasks`, read as label files.

    reader = open_label_studio(Path("project-1.json"), Path("/srv/photos"), None)  # a label_rows.RowReader
    is_export(Path("export.csv"))   # whether labels.read_labels hands the file here

The project layout (shared with fashionstyle.labelstudio): an `Image` named "image" and a multiple
`Choices` named "style"; each task's data carries the run's label set (`fashionstyle_labels`), so an
export read back knows its labels. Each task's newest annotation that was not cancelled gives its labels:
the ticked choices, the rest negatives. Skipped or cancelled tasks are left out, counted in one line on
stderr (a JSON export lists them; JSON-min and CSV exports leave them out themselves). Images come back
from their local-files URLs, under the image folder (Label Studio's document root; default: the
export's folder). Refused with one line naming the task, before any row is given: an export of another
project (no label set in its data, or results of another tag), a task without an image, a choice that
is not one of the labels, a field of another type than Label Studio writes (`data` not an object,
`annotations` or `result` not a list, a `value` without its list of choices, a choice not text), a CSV
export that is not UTF-8. The newest annotation is the one with the latest `updated_at` (else
`created_at`), read as a time (a trailing Z, any number of decimals), ties going to the larger id.
"""
from __future__ import annotations

import csv
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import unquote

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.names import LABEL_SEPARATOR, LabelLookup, check_label_set, unknown_label_message
from fashionstyle.data.labels.rows import LabelRow, RowReader

FROM_NAME = "style"   # the Choices tag
TO_NAME = "image"     # the Image tag, and the task data key of its URL
LABELS_KEY = "fashionstyle_labels"  # task data: the run's label names joined by LABEL_SEPARATOR
ID_KEY = "fashionstyle_id"          # task data: the image's id, as `suggest` and `predict` name it
LOCAL_FILES_URL = "/data/local-files/?d="  # Label Studio's local-files storage
CSV_MARKERS = {"annotation_id", "annotator", LABELS_KEY}  # a Label Studio CSV export has one of these
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)  # an annotation without a time


def is_export(path: Path) -> bool:
    """A .json file (a label file in JSON can only be an export), or a CSV whose header says Label Studio."""
    if path.suffix.lower() == ".json":
        return True
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as f:
        header = next(csv.reader(f), [])
    return bool(CSV_MARKERS & {h.strip().lower() for h in header})


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time as Label Studio writes it (a trailing Z, any number of decimals; no zone: UTC),
    read on Python 3.10 too, whose fromisoformat takes neither; None for anything else."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return None
    date, clock, seconds, fraction, zone = match.groups()
    zone = "+00:00" if zone is None or zone.upper() == "Z" else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(f"{date}T{clock}{seconds or ':00'}.{(fraction or '')[:6]:0<6}{zone}")
    except ValueError:  # a month 13, an hour 25
        return None


class _Task:
    """One exported task: where it is (for messages), its data, its choices (None: skipped or cancelled)."""

    def __init__(self, where: str, data: dict[str, Any], choices: list[str] | None):
        self.where, self.data, self.choices = where, data, choices


def open_label_studio(path: Path, image_dir: Path, label_names: Sequence[str] | None) -> RowReader:
    """The export's labelled tasks as label rows (no split column: `train` makes its validation split);
    every task is checked here, before any row is read."""
    if not path.is_file():
        raise FashionStyleError(f"{path}: label file not found")
    tasks = list(_csv_tasks(path) if path.suffix.lower() == ".csv" else _json_tasks(path))
    if not tasks:
        raise FashionStyleError(f"{path}: a Label Studio export without tasks")
    lookup = LabelLookup(_label_names(path, tasks, label_names))
    rows = [_row(k, task, lookup) for k, task in enumerate(tasks, 1)]
    kept = [row for row in rows if row is not None]
    if len(kept) < len(rows):
        print(f"{path}: {len(rows) - len(kept)} skipped or cancelled task(s) left out", file=sys.stderr)
    if not kept:
        raise FashionStyleError(f"{path}: all {len(rows)} tasks were skipped or cancelled; nothing to learn from")
    return RowReader(path, image_dir, lookup.names, lambda: iter(kept))


def _row(number: int, task: _Task, lookup: LabelLookup) -> LabelRow | None:
    """The task as a label row (None when skipped); `number` stands for its line."""
    image = _image(task)  # a task without an image is refused even when skipped
    if task.choices is None:
        return None
    flags = bytearray(len(lookup.names))
    for choice in task.choices:
        at = lookup.position(choice)
        if at is None:
            raise FashionStyleError(f"{task.where}: {unknown_label_message(choice, lookup.names)}")
        flags[at] = 1
    return LabelRow(number, str(task.data.get(ID_KEY) or Path(image).stem), image, bytes(flags))


def _label_names(path: Path, tasks: list[_Task], given: Sequence[str] | None) -> list[str]:
    """The label set: `given`, else the one the tasks' data carries (every task the same), checked."""
    if given:
        return list(given)
    found: set[str] = set()
    for task in tasks:
        value = task.data.get(LABELS_KEY)
        if value is not None and not isinstance(value, str):
            raise FashionStyleError(f"{task.where}: its {LABELS_KEY} must be the label names joined by "
                                    f"{LABEL_SEPARATOR!r}, got {_short(value)}")
        if value:
            found.add(value)
    if not found:
        raise FashionStyleError(f"{tasks[0].where}: no {LABELS_KEY} in its data: not an export of a project made "
                                "by `fashionstyle suggest --tasks`; give --label-names to read it anyway")
    if len(found) > 1:
        raise FashionStyleError(f"{path}: tasks of several label sets ({' | '.join(sorted(found))}); export one project")
    names = found.pop().split(LABEL_SEPARATOR)
    check_label_set(names, path)  # before any task's choices are matched to it
    return names


def _image(task: _Task) -> str:
    """The task's image path, relative to the image folder (Label Studio's document root)."""
    url = task.data.get(TO_NAME)
    if not isinstance(url, str) or not url.strip():
        raise FashionStyleError(f"{task.where}: has no image (data key {TO_NAME!r}); every task needs its photo")
    if url.startswith(LOCAL_FILES_URL):
        return unquote(url[len(LOCAL_FILES_URL):])
    if "://" in url or url.startswith("/data/"):
        raise FashionStyleError(f"{task.where}: image {url!r} is not in Label Studio's local-files storage, so it "
                                "cannot be found on this machine")
    return url


def _json_tasks(path: Path) -> Iterator[_Task]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FashionStyleError(f"{path}: not a Label Studio JSON export ({err})") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise FashionStyleError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    for k, task in enumerate(tasks, 1):
        where = f"{path}: task {_name(task.get('id', k))}"
        if "annotations" in task or "data" in task:
            data = task.get("data", {})
            if not isinstance(data, dict):
                raise FashionStyleError(f"{where}: its data must be an object ({TO_NAME}, {LABELS_KEY}), "
                                        f"got {_short(data)}")
            yield _Task(where, data, _newest_choices(where, task.get("annotations") or []))
        else:  # JSON-min: the data's keys and the tags' values side by side, one row per annotation
            yield _Task(where, task, _min_choices(where, task.get(FROM_NAME), task))


def _csv_tasks(path: Path) -> Iterator[_Task]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as err:
        raise FashionStyleError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); export it from "
                                "Label Studio again") from None
    except csv.Error as err:
        raise FashionStyleError(f"{path}: not a valid CSV export ({err})") from None
    for k, row in enumerate(rows, 2):
        where = f"{path}:{k}: task {_name(row.get('id', '?'))}"
        value: Any = row.get(FROM_NAME)
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise FashionStyleError(f"{where}: cannot read its {FROM_NAME!r} value {_short(value)}") from None
        yield _Task(where, row, _min_choices(where, value, row))


def _newest_choices(where: str, annotations: Any) -> list[str] | None:
    """The choices of the newest annotation that was not cancelled; None when there is none."""
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise FashionStyleError(f"{where}: its annotations must be a list of annotations, got {_short(annotations)}")
    kept = [a for a in annotations if not a.get("was_cancelled")]
    if not kept:
        return None
    newest = max(kept, key=lambda a: _annotation_order(where, a))
    results = newest.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise FashionStyleError(f"{where}: annotation {_name(newest.get('id'))}: its result must be a list of "
                                f"results, got {_short(results)}")
    choices: list[str] = []
    for result in results:
        if result.get("from_name") != FROM_NAME or result.get("type") != "choices":
            raise FashionStyleError(f"{where}: a result of {result.get('from_name')!r} ({result.get('type')}), not "
                                    f"of the {FROM_NAME!r} choices: an export of another project's labels")
        value = result.get("value")
        if not isinstance(value, dict):
            raise FashionStyleError(f"{where}: a {FROM_NAME!r} result's value must be {{\"choices\": [...]}}, "
                                    f"got {_short(value)}")
        choices.extend(_choice_list(where, value.get("choices", [])))
    return choices


def _annotation_order(where: str, annotation: dict[str, Any]) -> tuple[datetime, tuple[int, int, str]]:
    """Newer last: its time (updated_at, else created_at; none: oldest), then its id (see _id_order)."""
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    when = _OLDEST if stamp is None else parse_time(stamp) if isinstance(stamp, str) else None
    if when is None:
        raise FashionStyleError(f"{where}: annotation {_name(annotation.get('id'))}: {_short(stamp)} is not a time "
                                "(ISO 8601, as Label Studio writes updated_at and created_at)")
    return when, _id_order(annotation.get("id"))


def _id_order(value: Any) -> tuple[int, int, str]:
    """An annotation id as a key that any two ids compare by: numbers (ints, digit strings) by value,
    above any other id, which compare as text."""
    text = "" if value is None else str(value)
    if (isinstance(value, int) and not isinstance(value, bool)) or (text.isascii() and text.isdigit()):
        return 1, int(text), ""
    return 0, 0, text


def _min_choices(where: str, value: Any, row: dict[str, Any]) -> list[str] | None:
    """A JSON-min or CSV row's choices: {"choices": [...]}, one name, or empty (nothing ticked); None for
    a row without an annotation."""
    if not row.get("annotation_id") and not value:
        return None
    if isinstance(value, dict):
        value = value.get("choices", [])
    if value in (None, ""):
        return []
    return [value] if isinstance(value, str) else _choice_list(where, value)


def _choice_list(where: str, value: Any) -> list[str]:
    """A `choices` value: a list of label names (text); anything else is another project's labels."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise FashionStyleError(f"{where}: its {FROM_NAME!r} value {_short(value)} is not a list of choices (label "
                            "names): an export of another project's labels")


def _name(value: Any) -> str:
    """A task's or an annotation's id as messages show it: as written when short and printable."""
    text = str(value) if isinstance(value, (int, str)) else repr(value)
    return text if len(text) <= 40 and text.isprintable() else _short(value, 40)


def _short(value: Any, limit: int = 60) -> str:
    """`value` as a message shows it: its repr, cut to `limit` characters, on one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
