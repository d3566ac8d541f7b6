"""Label files are read in bounded memory: a repeated id is refused where it comes, `stats` counts while the rows
stream past, and training keeps only its train and val rows. (Peak memory on a 1,000,000-row file: see the
notes of issue 33; these small tests check the behaviour that bounds it.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels import table as label_table
from fashionstyle.data.labels.stats import count_labels, label_stats, label_warnings
from fashionstyle.data.labels.read import read_labels

HEADER = "image,split,A,B\n"


def _rows(start: int, count: int, split: str) -> str:
    return "".join(f"img/{i:05d}.jpg,{split},{i % 2},{i % 3 == 0:d}\n" for i in range(start, start + count))


@pytest.mark.parametrize("content, line", [
    ("image,A\na.jpg,1\nb.jpg,0\na.jpg,1\n" + "c.jpg,0\n" * 3 + "d.jpg,bad,row\n", 4),  # no id column: the image
    ("id,image,A\nx,a.jpg,1\nx,b.jpg,0\nbroken\n", 3),  # an id column
    ("a,http://x/a.jpg\nb,http://x/b.jpg\na,http://x/c.jpg\nc\n", 3),  # a JD list
])
def test_a_repeated_id_is_refused_at_its_line_before_the_rest_is_read(tmp_path: Path, content: str,
                                                                        line: int) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)  # a malformed line after the repeat: reading everything first would stop there
    with pytest.raises(FashionStyleError, match=rf"labels.csv:{line}: duplicate (id|image) .*\(first on line"):
        read_labels(path)
    with pytest.raises(FashionStyleError, match=rf"labels.csv:{line}: duplicate"):
        count_labels(path) if "http" not in content else read_labels(path, keep_splits=("train",))


def test_keep_splits_holds_only_those_rows_and_still_checks_the_others(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + _rows(0, 4, "train") + _rows(4, 2, "val") + _rows(6, 500, "test") + _rows(506, 1, "val"))
    table = read_labels(path, keep_splits=("train", "val"))
    assert len(table) == 7 and set(table.splits) == {"train", "val"}
    assert table.line_numbers == [2, 3, 4, 5, 6, 7, 508]
    assert table.targets.shape == (7, 2) and table.images[-1] == tmp_path / "img" / "00506.jpg"
    np.testing.assert_array_equal(table.targets, read_labels(path).split("all").subset(
        [0, 1, 2, 3, 4, 5, 506]).targets)
    path.write_text(HEADER + _rows(0, 2, "train") + "img/x.jpg,test,7,0\n" + _rows(3, 1, "val"))
    with pytest.raises(FashionStyleError, match=r"labels.csv:4: label A must be 0 or 1, got '7'"):
        read_labels(path, keep_splits=("train", "val"))  # a row left out is still checked as it streams past
    with pytest.raises(FashionStyleError, match="unknown split 'tst'"):
        read_labels(path, keep_splits=("tst",))


@pytest.mark.slow  # imports the training engine
def test_training_reads_only_its_train_and_val_rows(tmp_path: Path, monkeypatch) -> None:
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.training import loop

    path = tmp_path / "labels.csv"
    path.write_text(HEADER + _rows(0, 3, "train") + _rows(3, 2, "val") + _rows(5, 300, "test"))
    seen: list[int] = []

    def stop(table, *args, **kwargs):
        seen.append(len(table))
        raise KeyboardInterrupt  # the split is all this test needs

    monkeypatch.setattr(loop, "train_val_split", stop)
    with pytest.raises(KeyboardInterrupt):
        loop.prepare_tables(TrainConfig(labels=str(path)))
    assert seen == [5]  # the 300 test rows were never held


def test_stats_counts_while_streaming_without_holding_the_rows(tmp_path: Path, monkeypatch, capsys) -> None:
    from fashionstyle.cli import main

    path = tmp_path / "labels.csv"
    path.write_text(HEADER + _rows(0, 6, "train") + _rows(6, 4, "val") + _rows(10, 5, "test"))
    expected = read_labels(path)
    train = expected.split("train")
    monkeypatch.setattr(label_table.LabelTable, "__init__", _no_table)  # stats must not build one
    counts = count_labels(path, chunk_rows=4)  # several chunks per split
    assert counts.rows == 15 and counts.splits["test"].rows == 5
    np.testing.assert_array_equal(counts.splits["train"].positives, train.targets.sum(axis=0))
    assert counts.unlabelled == int((expected.targets.sum(axis=1) == 0).sum())
    assert main(["stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: 6 images (train split), 2 labels" in out
    assert label_stats(counts.training_rows()[0], 0.5) in out
    monkeypatch.undo()
    assert label_stats(train, 0.5) == label_stats(counts.training_rows()[0], 0.5)
    assert label_warnings(expected) == label_warnings(counts)


def _no_table(self, *args, **kwargs) -> None:
    raise AssertionError("a LabelTable was built")
