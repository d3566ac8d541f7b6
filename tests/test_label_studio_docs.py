"""docs/label-less.md's commands are the test: its blocks marked `doc-test` run, as written, against a real Label
Studio started with the doc's environment, from `suggest` through a project made by the doc's script, a few
annotations (the labeller's part, through the API), to `fashionstyle round` and `train` on the export.

Only what a machine needs is changed: /srv is a folder in tmp_path, http://localhost:8080 the test server's
address, the token the test account's, `--n` fits the eight photos, runs/round0 is the session's tiny run (a
link), and the by-hand `train` gets the tiny test backbone's settings appended. Needs the Label Studio venv
(.ci/label_studio_venv.sh; FASHIONSTYLE_LABEL_STUDIO_VENV): skipped without it, failed without it under CI=true.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TINY_TRAIN, draw
from label_studio_docs import doc_blocks, running_label_studio, shell_commands, substituted
from fashionstyle.cli import main
from fashionstyle.data.labels.read import read_labels
from fashionstyle.labelstudio.client import TOKEN_ENV

LS_VENV = Path(os.environ.get("FASHIONSTYLE_LABEL_STUDIO_VENV", "/tmp/ls-venv"))
DOC_URL = "http://localhost:8080"
# The labeller's part: tick each task's true labels (what a person does in the web page).
ANNOTATE = """
import json, sys
from label_studio_sdk import LabelStudio
url, token, project, truth = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
ls = LabelStudio(base_url=url, api_key=token)
for task in ls.tasks.list(project=project):
    names = truth[task.data["image"].rsplit("/", 1)[1]]
    ls.annotations.create(id=task.id, result=[{"from_name": "style", "to_name": "image", "type": "choices",
                                                "value": {"choices": names}}] if names else [])
"""


def _photos(folder: Path, n: int = 8) -> dict[str, list[str]]:
    """`n` made photos in `folder`: file name -> its true labels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(11)
    truth = {}
    for i in range(n):
        flags = (rng.random(3) < 0.5).astype(int)
        draw(rng, flags).save(folder / f"p{i}.jpg", quality=95)
        truth[f"p{i}.jpg"] = [name for name, flag in zip(LABELS, flags) if flag]
    return truth


def test_the_doc_marks_every_step_it_gives():
    blocks = doc_blocks()
    assert list(blocks) == ["suggest", "label-studio-start", "project", "round", "train-export"]
    (round_,) = shell_commands(blocks["round"][1])
    assert list(round_.env) == [TOKEN_ENV] and round_.argv[:2] == ["fashionstyle", "round"]
    assert 'os.environ["LABEL_STUDIO_API_KEY"]' in blocks["project"][1]


@pytest.mark.slow
def test_the_docs_commands_take_a_new_user_to_a_second_round(shared_run, tmp_path, monkeypatch, capsys):
    blocks = doc_blocks()
    root = tmp_path / "srv"
    truth = _photos(root / "photos")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "round0").symlink_to(shared_run.run)  # the doc's round-0 run
    (tmp_path / "catalogue.csv").write_text("".join(f"{p}\n" for p in sorted((root / "photos").iterdir())))
    monkeypatch.chdir(tmp_path)
    with running_label_studio(LS_VENV, tmp_path, root) as (url, token):
        replace = {"/srv": str(root), DOC_URL: url}
        (suggest,) = shell_commands(blocks["suggest"][1])
        argv = substituted(suggest.argv, replace)
        argv[argv.index("--n") + 1] = "6"
        assert main(argv[1:] + ["--quiet"]) == 0
        assert len(json.loads(Path("to_label.json").read_text())) == 6

        script = blocks["project"][1].replace(DOC_URL, url).replace('"/srv', f'"{root}')
        made = subprocess.run([str(LS_VENV / "bin" / "python"), "-c", script], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={**os.environ, TOKEN_ENV: token})
        assert made.returncode == 0, made.stderr[-3000:]
        project = made.stdout.split()[-1]
        labelled = subprocess.run([str(LS_VENV / "bin" / "python"), "-c", ANNOTATE, url, token, project,
                                   json.dumps(truth)], capture_output=True, text=True, timeout=300)
        assert labelled.returncode == 0, labelled.stderr[-3000:]

        (round_,) = shell_commands(blocks["round"][1])
        monkeypatch.setenv(TOKEN_ENV, token)  # the doc's `export LABEL_STUDIO_API_KEY=...`, with the real token
        argv = substituted(round_.argv, replace)
        argv[argv.index("--project") + 1] = project
        capsys.readouterr()
        assert main(argv[1:]) == 0
    printed = capsys.readouterr().out
    assert "with 6 newly labelled photos:" in printed and "per 100 new labels" in printed
    out = Path(argv[argv.index("--out") + 1])
    merged = read_labels(out.with_name(out.name + ".round") / "labels.csv")
    for name, names in truth.items():
        if str((root / "photos" / name).resolve()) in map(str, merged.images):
            k = list(map(str, merged.images)).index(str((root / "photos" / name).resolve()))
            assert [n for n, v in zip(LABELS, merged.targets[k]) if v] == names and merged.splits[k] == "train"
    assert sum(str(p).startswith(str(root)) for p in merged.images) == 6

    (by_hand,) = shell_commands(blocks["train-export"][1])
    export = Path(by_hand.argv[by_hand.argv.index("--labels") + 1])
    shutil.copy(out.with_name(out.name + ".round") / "export.json", export)  # "Export the project as JSON"
    argv = substituted(by_hand.argv, replace)
    argv[argv.index("--out") + 1] = "runs/round1-by-hand"
    assert main(argv[1:] + TINY_TRAIN + ["--epochs", "1"]) == 0
    assert read_labels(export, root).label_names == list(LABELS)
