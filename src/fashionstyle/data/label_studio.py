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
is not one of the labels.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import unquote

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.label_names import canonical_label, unknown_label_message
from fashionstyle.data.label_rows import LabelRow, RowReader

FROM_NAME = "style"   # the Choices tag
TO_NAME = "image"     # the Image tag, and the task data key of its URL
LABELS_KEY = "fashionstyle_labels"  # task data: the run's label names joined by LABEL_SEPARATOR
ID_KEY = "fashionstyle_id"          # task data: the image's id, as `suggest` and `predict` name it
LABEL_SEPARATOR = ";"
LOCAL_FILES_URL = "/data/local-files/?d="  # Label Studio's local-files storage
CSV_MARKERS = {"annotation_id", "annotator", LABELS_KEY}  # a Label Studio CSV export has one of these


def is_export(path: Path) -> bool:
    """A .json file (a label file in JSON can only be an export), or a CSV whose header says Label Studio."""
    if path.suffix.lower() == ".json":
        return True
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as f:
        header = next(csv.reader(f), [])
    return bool(CSV_MARKERS & {h.strip().lower() for h in header})


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
    names = _label_names(path, tasks, label_names)
    rows = [_row(k, task, names) for k, task in enumerate(tasks, 1)]
    kept = [row for row in rows if row is not None]
    if len(kept) < len(rows):
        print(f"{path}: {len(rows) - len(kept)} skipped or cancelled task(s) left out", file=sys.stderr)
    if not kept:
        raise FashionStyleError(f"{path}: all {len(rows)} tasks were skipped or cancelled; nothing to learn from")
    return RowReader(path, image_dir, names, lambda: iter(kept))


def _row(number: int, task: _Task, names: list[str]) -> LabelRow | None:
    """The task as a label row (None when skipped); `number` stands for its line."""
    image = _image(task)  # a task without an image is refused even when skipped
    if task.choices is None:
        return None
    flags = bytearray(len(names))
    for choice in task.choices:
        name = canonical_label(choice, names)
        if name is None:
            raise FashionStyleError(f"{task.where}: {unknown_label_message(choice, names)}")
        flags[names.index(name)] = 1
    return LabelRow(number, str(task.data.get(ID_KEY) or Path(image).stem), image, bytes(flags))


def _label_names(path: Path, tasks: list[_Task], given: Sequence[str] | None) -> list[str]:
    """The label set: `given`, else the one the tasks' data carries (every task the same)."""
    found = {str(t.data.get(LABELS_KEY)) for t in tasks if t.data.get(LABELS_KEY)}
    if given:
        return list(given)
    if not found:
        raise FashionStyleError(f"{tasks[0].where}: no {LABELS_KEY} in its data: not an export of a project made "
                                "by `fashionstyle suggest --tasks`; give --label-names to read it anyway")
    if len(found) > 1:
        raise FashionStyleError(f"{path}: tasks of several label sets ({' | '.join(sorted(found))}); export one project")
    return found.pop().split(LABEL_SEPARATOR)


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
        where = f"{path}: task {task.get('id', k)}"
        if "annotations" in task or "data" in task:
            yield _Task(where, task.get("data") or {}, _newest_choices(where, task.get("annotations") or []))
        else:  # JSON-min: the data's keys and the tags' values side by side, one row per annotation
            yield _Task(where, task, _min_choices(where, task.get(FROM_NAME), task))


def _csv_tasks(path: Path) -> Iterator[_Task]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        for k, row in enumerate(csv.DictReader(f), 2):
            where = f"{path}:{k}: task {row.get('id', '?')}"
            value: Any = row.get(FROM_NAME)
            if value and value.lstrip().startswith("{"):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise FashionStyleError(f"{where}: cannot read its {FROM_NAME!r} value {value!r}") from None
            yield _Task(where, row, _min_choices(where, value, row))


def _newest_choices(where: str, annotations: list[dict[str, Any]]) -> list[str] | None:
    """The choices of the newest annotation that was not cancelled; None when there is none."""
    kept = [a for a in annotations if not a.get("was_cancelled")]
    if not kept:
        return None
    newest = max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
    choices: list[str] = []
    for result in newest.get("result") or []:
        if result.get("from_name") != FROM_NAME or result.get("type") != "choices":
            raise FashionStyleError(f"{where}: a result of {result.get('from_name')!r} ({result.get('type')}), not "
                                    f"of the {FROM_NAME!r} choices: an export of another project's labels")
        choices.extend(result.get("value", {}).get("choices", []))
    return choices


def _min_choices(where: str, value: Any, row: dict[str, Any]) -> list[str] | None:
    """A JSON-min or CSV row's choices: {"choices": [...]}, one name, or empty (nothing ticked); None for
    a row without an annotation."""
    if not row.get("annotation_id") and not value:
        return None
    if isinstance(value, dict):
        value = value.get("choices", [])
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise FashionStyleError(f"{where}: its {FROM_NAME!r} value {value!r} is not a list of choices: an export of "
                            "another project's labels")
