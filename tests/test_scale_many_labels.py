"""A label file of thousands of labels: bounded checks, warnings and pages a person can read (issue 40).

Behavioural, not timed: each command's output is summarised to a handful of lines and the run folder
keeps per-epoch records of a bounded number of labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_TRAIN
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import PER_LABEL, history_labels, read_history
from fashionstyle.core.run import RunDir
from fashionstyle.core.run_checks import checked_names
from fashionstyle.data.labels.stats import count_labels, label_warnings

LABELS = 2000


def many_label_file(folder: Path, labels: int = LABELS, n: int = 40, scattered: int = 3) -> Path:
    """`n` tiny images and a CSV (image,split,L0000..) of `labels` labels: the first three common, then
    `scattered` positives a row among the others, most of which have none."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = ["image,split," + ",".join(f"L{j:04d}" for j in range(labels))]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "img" / f"{i:03d}.jpg")
        flags = np.zeros(labels, dtype=int)
        flags[rng.choice(labels, scattered, replace=False)] = 1
        flags[:3] = rng.random(3) < 0.5
        rows.append(f"img/{i:03d}.jpg,{['train', 'train', 'val', 'test'][i % 4]}," + ",".join(map(str, flags)))
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def label_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return many_label_file(tmp_path_factory.mktemp("many"))


def test_label_warnings_are_one_line_per_kind(label_file: Path) -> None:
    warnings = label_warnings(count_labels(label_file))
    assert 1 <= len(warnings) <= 4, warnings
    train = next(w for w in warnings if "no positives in the train split" in w)
    assert f"of {LABELS:,} labels have no positives in the train split (L0003, L0004" in train
    assert "they cannot be learned" in train and "fashionstyle stats --all" in train


def test_few_unlearnable_labels_are_still_named_one_by_one(tmp_path: Path) -> None:
    path = many_label_file(tmp_path, labels=6, n=12, scattered=0)
    warnings = label_warnings(count_labels(path))
    for name in ("L0003", "L0004", "L0005"):
        assert f"{path}: label {name} has no positives in the train split: cannot be learned" in warnings


def test_stats_shows_a_page_and_totals_unless_all(label_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["stats", str(label_file)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) < 50 and len(err.splitlines()) <= 4, (len(lines), err)
    assert f"... {LABELS - 40:,} more labels left out (pass --all to list every label)" in out
    assert lines[-1].startswith(f"all {LABELS:,} labels: ") and "without positives" in lines[-1]
    assert main(["stats", str(label_file), "--all"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == LABELS + 2  # the summary line, the header, every label


def test_label_name_checks_name_a_few_duplicates() -> None:
    names = [f"L{j:05d}" for j in range(50_000)]
    assert checked_names(names, "labels.json") == names
    with pytest.raises(FashionStyleError) as refused:
        checked_names(names + names[:30], "labels.json: label_names")
    assert "L00000, L00001" in str(refused.value) and "(20 more)" in str(refused.value)
    assert len(str(refused.value)) < 300


def test_history_records_the_labels_with_most_support() -> None:
    names = [f"L{j}" for j in range(PER_LABEL + 5)]
    support = np.zeros(len(names), np.uint8)  # a uint8 sum, as targets give
    support[-3:] = 7
    kept = history_labels(names, support)
    assert len(kept) == PER_LABEL and kept[-3:] == names[-3:] and kept[0] == "L0"
    assert history_labels(names[:10], support[:10]) == names[:10]
    assert len(history_labels(names, support, limit=None)) == len(names)


@pytest.mark.slow
def test_many_label_run_trains_with_summarised_warnings_and_reports_a_summary(
        label_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fashionstyle.analysis.report import write_report
    from fashionstyle.data.labels.read import read_labels

    run = tmp_path / "run"
    assert main(["train", "--labels", str(label_file), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert 1 <= len(warnings) <= 4, warnings
    opened = RunDir.open(run)
    assert len(opened.label_names()) == LABELS
    assert len(read_history(opened)[0]) < PER_LABEL + 10  # per-label columns of PER_LABEL labels at most
    page = write_report(run, tmp_path / "report", labels=read_labels(label_file), shown=4).read_text(encoding="utf-8")
    assert f"This run has {LABELS:,} labels: the per-label figures, tables and error gallery show the 4" in page
    assert page.count("<details>") == 4  # the error gallery: one block per label shown
    assert "L1999</td>" not in page


def test_a_printed_table_lists_a_page_of_labels_and_averages_them_all() -> None:
    from fashionstyle.core.metrics import format_table

    names = [f"L{i:05d}" for i in range(5_000)]
    values = np.r_[np.ones(100), np.zeros(4_900)]
    text = format_table(names, {"F2": values}, title="t")
    lines = text.splitlines()
    assert len(lines) < 110 and "L00099" in text and "L00100" not in text
    assert "... 4,900 more labels" in text and lines[-1].split() == ["macro", "0.020"]
