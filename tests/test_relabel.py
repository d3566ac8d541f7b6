"""Cleaned copies of label files: flipped or dropped pairs, every other byte as it was."""
from __future__ import annotations

from pathlib import Path

import pytest

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.read import read_labels
from fashionstyle.data.labels.relabel import write_cleaned


def test_flip_in_a_jd_file_keeps_bom_crlf_and_other_lines(tmp_path: Path) -> None:
    source = tmp_path / "train.txt"
    lines = ["\ufeffa1,http://x/a1.jpg,1,0,0,0,0,0,0,0,0,0,0,0,1\r\n", "a2,,0,0,0,0,0,0,0,0,0,0,0,0,0\r\n",
             "a3 , ,0,1,0,0,0,0,0,0,0,0,0,0,0\r\n"]
    source.write_bytes("".join(lines).encode("utf-8"))
    table = read_labels(source)
    out = write_cleaned(table, [(0, "Sport"), (0, "Relax"), (2, "Relax")], "flip", tmp_path / "fixed.txt")
    fixed = out.read_bytes().decode("utf-8").splitlines(keepends=True)
    assert fixed[0] == "\ufeffa1,http://x/a1.jpg,0,1,0,0,0,0,0,0,0,0,0,0,1\r\n"
    assert fixed[1] == lines[1]
    assert fixed[2] == "a3 , ,0,0,0,0,0,0,0,0,0,0,0,0,0\r\n"
    assert read_labels(out).targets[0, :2].tolist() == [0, 1]


def test_flip_in_a_label_csv_and_a_tags_csv(tmp_path: Path) -> None:
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text('image,split,Red,"Striped"\n"a, b.jpg",train,1,0\nc.jpg,val,0,0\n')
    out = write_cleaned(read_labels(csv_file), [(1, "Striped")], "flip", tmp_path / "fixed.csv")
    assert out.read_text() == 'image,split,Red,"Striped"\n"a, b.jpg",train,1,0\nc.jpg,val,0,1\n'
    tags = tmp_path / "tags.csv"
    tags.write_text("image,tags\nx.jpg,Sport OL\ny.jpg,\n")
    table = read_labels(tags)
    out = write_cleaned(table, [(0, "OL"), (1, "Lady")], "flip", tmp_path / "fixed_tags.csv")
    assert out.read_text() == "image,tags\nx.jpg,Sport\ny.jpg,Lady\n"


def test_drop_removes_the_named_rows_only(tmp_path: Path) -> None:
    source = tmp_path / "labels.csv"
    source.write_text("image,Red,Striped\n\na.jpg,1,0\nb.jpg,0,0\nc.jpg,1,1\n")  # a blank line is kept
    out = write_cleaned(read_labels(source), [(0, "Red"), (2, "Red"), (2, "Striped")], "drop", tmp_path / "d.csv")
    assert out.read_text() == "image,Red,Striped\n\nb.jpg,0,0\n"


def test_refusals(tmp_path: Path) -> None:
    source = tmp_path / "labels.csv"
    source.write_text('image,Red\n"multi\nline.jpg",1\n')
    table = read_labels(source)
    with pytest.raises(FashionStyleError, match="several lines"):
        write_cleaned(table, [(0, "Red")], "flip", tmp_path / "out.csv")
    with pytest.raises(FashionStyleError, match="would overwrite the input --labels"):
        write_cleaned(table, [(0, "Red")], "flip", source)
    with pytest.raises(FashionStyleError, match="unknown fix"):
        write_cleaned(table, [], "fix", tmp_path / "out.csv")
