"""Drive a real Label Studio through label-studio-sdk, as a labelling team would (run with the Label Studio
venv's python, not the project's: the SDK lives there). Used by tests/test_label_studio.py.

    python label_studio_driver.py STEPS.json
    # STEPS.json: {"url", "token", "tasks", "config", "storage", "backend", "backend_auth", "out"}

Makes a project from `config`, connects `storage` (local files), imports `tasks`, labels the first
task (its first two choices), skips the second (cancelled), labels the third (nothing ticked); makes a
second project of the same photos without predictions, connects the ML backend at `backend` to it and
asks it for predictions of every task; writes to `out`: the first project's exports
(export.json, export.min.json, export.csv) and summary.json (imported predictions' scores in task
order, the backend's predictions, the backend's state).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk import LabelStudio


def choices(names: list[str]) -> list[dict]:
    return [{"from_name": "style", "to_name": "image", "type": "choices", "value": {"choices": names}}] if names else []


def main(steps_file: str) -> int:
    steps = json.loads(Path(steps_file).read_text())
    out = Path(steps["out"])
    ls = LabelStudio(base_url=steps["url"], api_key=steps["token"])
    project = ls.projects.create(title="fashionstyle round 1", label_config=Path(steps["config"]).read_text())
    ls.import_storage.local.create(project=project.id, path=steps["storage"], use_blob_urls=False)
    ls.projects.import_tasks(id=project.id, request=json.loads(Path(steps["tasks"]).read_text()))
    tasks = sorted(ls.tasks.list(project=project.id), key=lambda t: t.id)
    imported = {p.task: p for p in ls.predictions.list(project=project.id)}
    labels = tasks[0].data["fashionstyle_labels"].split(";")
    ls.annotations.create(id=tasks[0].id, result=choices(labels[:2]))
    ls.annotations.create(id=tasks[1].id, result=[], was_cancelled=True)
    ls.annotations.create(id=tasks[2].id, result=[])
    # a second project of the same photos without pre-annotations: the connected backend makes them
    # (Label Studio asks a backend only for tasks without a prediction of its model version)
    bare = ls.projects.create(title="fashionstyle backend", label_config=Path(steps["config"]).read_text())
    ls.import_storage.local.create(project=bare.id, path=steps["storage"], use_blob_urls=False)
    ls.projects.import_tasks(id=bare.id, request=[{"data": t["data"]} for t in json.loads(Path(steps["tasks"]).read_text())])
    user, _, password = steps.get("backend_auth", "").partition(":")  # as "Use basic authentication" sends them
    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": user, "basic_auth_pass": password} if user else {}
    backend = ls.ml.create(project=bare.id, url=steps["backend"], title="fashionstyle", **auth)
    ls.actions.create(id="retrieve_tasks_predictions", project=bare.id, selected_items={"all": True})
    predicted = list(ls.predictions.list(project=bare.id))
    for fmt, name in (("JSON", "export.json"), ("JSON_MIN", "export.min.json"), ("CSV", "export.csv")):
        (out / name).write_bytes(b"".join(ls.projects.exports.download_sync(project.id, export_type=fmt)))
    summary = {
        "tasks": [t.id for t in tasks],
        "images": [t.data["image"] for t in tasks],
        "imported_scores": [imported[t.id].score for t in tasks],
        "backend_state": ls.ml.get(id=backend.id).state,
        "backend_predictions": {str(p.task): {"model_version": p.model_version, "score": p.score,
                                              "result": p.result} for p in predicted},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
