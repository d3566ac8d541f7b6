"""Label Studio tasks with the model's pre-annotations, and the labelling config they need.

    write_tasks(result, "to_label.json", document_root="/srv/photos")
    # -> to_label.json (tasks: image URL, the run's labels, one prediction each) and
    #    to_label.label_config.xml (an Image plus a multiple Choices of the run's labels)

Images are referenced through Label Studio's local-files storage
(`/data/local-files/?d=PATH`, PATH relative to its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT). Each
prediction's score is its place in `suggest`'s order, (rank + 1) / (n + 1): sorting the project by
prediction score, ascending, gives the photos in the order suggest chose them (the least certain first).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import numpy as np

from fashionstyle.analysis.acquisition import uncertainty_scores
from fashionstyle.core import atomic
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import ranked_names
from fashionstyle.labelstudio import (FROM_NAME, ID_KEY, LABEL_SEPARATOR, LABELS_KEY, LOCAL_FILES_URL, PRIORITY_KEY,
                                      TO_NAME)


def labelling_config(label_names: Sequence[str]) -> str:
    """The project's labelling config: the photo, and one check box per label (several may be on)."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in label_names)
    return (f'<View>\n  <Image name="{TO_NAME}" value="${TO_NAME}"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="multiple" showInLine="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def check_schema(schema: str, label_names: list[str]) -> None:
    """Refuse a labelling config without the "style" choices, or whose choices are not the run's labels (the
    ML backend's /setup and `fashionstyle round` both ask this)."""
    try:
        root = ElementTree.fromstring(schema)
    except ElementTree.ParseError as err:
        raise FashionStyleError(f"the project's labelling config is not XML ({err})") from None
    tags = [t for t in root.iter("Choices") if t.get("name") == FROM_NAME]
    if not tags:
        raise FashionStyleError(f"the project's labelling config has no Choices named {FROM_NAME!r}: a project "
                                "of other labels; make it from `fashionstyle suggest --tasks`'s config")
    choices = [c.get("value") for c in tags[0].iter("Choice")]
    unknown = [c for c in choices if c not in label_names]
    if unknown:
        raise FashionStyleError(f"the project's choice {unknown[0]!r} is not a label of this run; "
                                f"valid: {', '.join(label_names)}")
    missing = [name for name in label_names if name not in choices]
    if missing:
        raise FashionStyleError(f"the project has no choice for the run's label {missing[0]!r} "
                                f"({len(missing)} missing); its choices must be: {', '.join(label_names)}")


def local_files_url(path: str | Path, document_root: str | Path) -> str:
    """Label Studio's URL of a file under its local-files document root (refused outside it)."""
    root, full = os.path.abspath(document_root), os.path.abspath(path)
    if os.path.commonpath([root, full]) != root:
        raise FashionStyleError(f"{path}: not under the Label Studio document root {document_root} "
                                "(LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); give the folder that holds the photos")
    return LOCAL_FILES_URL + quote(Path(os.path.relpath(full, root)).as_posix())


def choices_result(names: Sequence[str]) -> list[dict[str, Any]]:
    """A Label Studio result ticking `names` (empty when none is)."""
    if not names:
        return []
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": list(names)}}]


def make_tasks(ids: Sequence[str], paths: Sequence[str], probs: np.ndarray, point: OperatingPoint,
               label_names: Sequence[str], document_root: str | Path, model_version: str) -> list[dict[str, Any]]:
    """One task per photo, in the given order, each with the model's guess (decided at `point`) as a scored
    prediction."""
    labels = LABEL_SEPARATOR.join(label_names)
    tasks = []
    scores = pre_annotation_scores(probs, point)
    for rank, (image_id, path, p, on, score) in enumerate(zip(ids, paths, probs, point.decide(probs), scores)):
        data = {TO_NAME: local_files_url(path, document_root), ID_KEY: image_id, LABELS_KEY: labels,
                PRIORITY_KEY: rank + 1}
        prediction = {"model_version": model_version, "score": score,
                      "result": choices_result(ranked_names(p, on, label_names))}
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def pre_annotation_scores(probs: np.ndarray, point: OperatingPoint) -> list[float]:
    """Each photo's pre-annotation score, one meaning wherever Label Studio shows one (stored tasks and the ML
    backend): the model's certainty in its decisions at `point`, 1 - the mean per-label uncertainty about the
    point's thresholds (analysis/acquisition.py), so an ascending sort puts the least certain first; 0 for an
    unreadable photo."""
    certainty = 1.0 - uncertainty_scores(probs, point.thresholds)
    return [round(float(c), 6) if np.isfinite(c) else 0.0 for c in certainty]


def config_path(tasks_file: str | Path) -> Path:
    """Where the labelling config is written: beside the tasks, NAME.label_config.xml."""
    tasks_file = Path(tasks_file)
    return tasks_file.with_name(f"{tasks_file.stem}.label_config.xml")


def is_own_config(path: str | Path) -> bool:
    """Whether `path` is a labelling config exactly as fashionstyle writes it (for the labels it lists):
    one nobody edited, which a new one may replace."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        names = [choice.get("value") for choice in ElementTree.fromstring(text).iter("Choice")]
    except (OSError, ValueError, ElementTree.ParseError):  # unreadable, not UTF-8, not XML
        return False
    return None not in names and text == labelling_config(names)


def check_config_out(tasks_file: str | Path, overwrite: bool = False) -> Path:
    """The config's path beside `tasks_file`, refused when a file there is not one fashionstyle wrote
    (a hand-edited config) unless `overwrite`."""
    path = config_path(tasks_file)
    if path.exists() and not overwrite and not is_own_config(path):
        raise FashionStyleError(f"{path}: a labelling config fashionstyle did not write (or edited since) would "
                                "be replaced; move it, choose another --tasks, or --overwrite")
    return path


def check_tasks_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".json" or out.is_dir():
        raise FashionStyleError(f"--tasks {out}: Label Studio imports tasks from a .json file; name one")
    return out


def write_tasks(suggestion: Any, out: str | Path, document_root: str | Path, model_version: str = "fashionstyle",
                overwrite: bool = False) -> Path:
    """`suggestion`'s photos (analysis.suggest.Suggestion) as Label Studio tasks in `out` (.json), and the
    labelling config beside them (a hand-edited one is refused unless `overwrite`); every URL is made
    before either file is written."""
    out = check_tasks_out(out)
    config = check_config_out(out, overwrite)
    tasks = make_tasks(suggestion.ids, suggestion.paths, suggestion.probs, suggestion.point,
                       suggestion.label_names, document_root, model_version)
    atomic.write_text(config, labelling_config(suggestion.label_names))
    return atomic.write_text(out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
