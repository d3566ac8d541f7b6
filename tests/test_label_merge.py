"""`train --labels A B ...`: label files of any format merged into one row per photo (the later file's labels,
the splits files give), and a run that remembers every file it learnt from."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import LABELS, TINY_TRAIN, draw, label_studio_export, make_image_set
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.read import merge_labels
from fashionstyle.data.labels.read import join_label_files, label_files, read_labels


def _skeleton(path: Path, rows: list[tuple[Path, tuple[int, int, int]]]) -> Path:
    """A filled-in `suggest` skeleton: absolute image paths, the labels, then hint and suggest_score."""
    lines = ["image," + ",".join(LABELS) + ",hint,suggest_score"]
    lines += [f"{image},{','.join(map(str, flags))},Red?,0.5" for image, flags in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def three_files(tmp_path):
    """round0 (a label CSV with splits, 16 photos), a Label Studio export (3 of them again: 001 and 002
    relabelled, 003 the same), a skeleton (001 once more, 004 through a link, relabelled; two new photos)."""
    round0 = make_image_set(tmp_path / "data", n=16)
    base = read_labels(round0)
    flags = {Path(p).name: tuple(int(v) for v in t) for p, t in zip(base.images, base.targets)}
    as_names = lambda f: [n for n, v in zip(LABELS, f) if v]  # noqa: E731
    flip = lambda f: tuple(1 - v for v in f)  # noqa: E731
    export = label_studio_export(tmp_path / "data" / "project-1-export.json", {
        "img/001.jpg": as_names(flip(flags["001.jpg"])), "img/002.jpg": as_names(flip(flags["002.jpg"])),
        "img/003.jpg": as_names(flags["003.jpg"])})
    (tmp_path / "new").mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.jpg", "b.jpg"):
        draw(rng, np.array([1, 0, 0])).save(tmp_path / "new" / name)
    os.symlink(tmp_path / "data" / "img" / "004.jpg", tmp_path / "new" / "link.jpg")
    skeleton = _skeleton(tmp_path / "to_label.csv", [
        (tmp_path / "data" / "img" / "001.jpg", flip(flags["001.jpg"])),
        (tmp_path / "new" / "link.jpg", flip(flags["004.jpg"])),
        (tmp_path / "new" / "a.jpg", (1, 0, 0)), (tmp_path / "new" / "b.jpg", (1, 1, 0))])
    return round0, export, skeleton, flags


def test_the_later_file_wins_splits_are_kept_and_the_merge_is_said_in_one_line(three_files, tmp_path):
    round0, export, skeleton, flags = three_files
    said: list[str] = []
    table = merge_labels([round0, export, skeleton], say=said.append)
    assert said == ["merged 3 label files: 18 photos, 4 in several files, 3 of them with different labels: the "
                    "later file's kept; 2 photos without a split go to train"]
    assert table.label_names == list(LABELS) and len(table) == 18 and table.targets.dtype == np.uint8
    row = {os.path.realpath(p): i for i, p in enumerate(table.images)}
    at = lambda p: row[os.path.realpath(p)]  # noqa: E731
    img = tmp_path / "data" / "img"
    assert tuple(table.targets[at(img / "001.jpg")]) == tuple(1 - v for v in flags["001.jpg"])  # the skeleton's
    assert tuple(table.targets[at(img / "002.jpg")]) == tuple(1 - v for v in flags["002.jpg"])  # the export's
    assert tuple(table.targets[at(img / "004.jpg")]) == tuple(1 - v for v in flags["004.jpg"])  # through a link
    assert tuple(table.targets[at(img / "005.jpg")]) == flags["005.jpg"]  # round0's alone
    assert [table.splits[at(img / n)] for n in ("001.jpg", "002.jpg", "003.jpg")] == ["train", "val", "test"]
    assert table.splits[at(tmp_path / "new" / "a.jpg")] == "train" and len(set(table.ids)) == 18
    kept = merge_labels([round0, export, skeleton], keep_splits=("train", "val"))
    assert "test" not in kept.splits and len(kept) == 18 - 4  # 003, 007, 011, 015
    assert read_labels(join_label_files([round0, export, skeleton])).ids == table.ids  # as a run reads them


def test_without_any_split_training_makes_its_own_and_a_taken_id_becomes_the_photos_path(tmp_path):
    first = make_image_set(tmp_path / "one", n=4, with_split=False)
    second = make_image_set(tmp_path / "two", n=4, seed=1, with_split=False)  # the same names: 000.jpg ...
    said: list[str] = []
    table = merge_labels([first, second], say=said.append)
    assert table.splits is None and len(table) == 8
    assert said == ["merged 2 label files: 8 photos, 0 in several files, 0 of them with different labels: the "
                    "later file's kept"]
    assert table.ids[:4] == ["000", "001", "002", "003"]
    assert table.ids[4] == os.path.realpath(tmp_path / "two" / "img" / "000")


def test_other_label_sets_are_refused_in_one_line_naming_the_file_and_labels(tmp_path, capsys):
    round0 = make_image_set(tmp_path / "data", n=8)
    other = tmp_path / "data" / "other.csv"
    other.write_text("image,Red,Striped,Checked\nimg/000.jpg,1,0,1\n")
    with pytest.raises(FashionStyleError, match=r"other.csv: other labels than .*labels.csv \(only here: Checked; "
                                                r"missing here: Dotted\); merged label files need one label set$"):
        merge_labels([round0, other])
    out = tmp_path / "run"
    assert main(["train", "--labels", str(round0), str(other), "--out", str(out), *TINY_TRAIN]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Checked" in err and not out.exists()


def test_a_config_names_several_files_by_pathsep_and_one_file_as_given(tmp_path):
    assert join_label_files(["labels.csv"]) == "labels.csv"
    joined = join_label_files(["a.csv", tmp_path / "b.json"])
    assert joined == os.pathsep.join([os.path.abspath("a.csv"), str(tmp_path / "b.json")])
    assert label_files(joined) == [Path(os.path.abspath("a.csv")), tmp_path / "b.json"]
    odd = tmp_path / f"x{os.pathsep}y.csv"  # a file whose name holds the separator stays one file
    odd.write_text("image,Red\n")
    assert label_files(str(odd)) == [odd]


def test_train_on_several_files_records_them_for_evaluate_and_suggest(three_files, tmp_path, capsys):
    from fashionstyle.analysis.already_labelled import labelled_images, path_key
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels.read import trained_image_dir, trained_on_files, val_images

    round0, export, skeleton, _ = three_files
    out = tmp_path / "run"
    assert main(["train", "--labels", str(round0), str(export), str(skeleton), "--out", str(out), *TINY_TRAIN,
                 "--epochs", "1"]) == 0
    assert "merged 3 label files: 18 photos" in capsys.readouterr().out
    run = RunDir(out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert label_files(config["labels"]) == [Path(os.path.abspath(p)) for p in (round0, export, skeleton)]
    assert [f.labels for f in trained_on_files(run)] == label_files(config["labels"])
    assert trained_image_dir(run, export) is None  # each file read from its own folder, as in training
    keys = labelled_images(run)
    assert path_key(tmp_path / "new" / "b.jpg") in keys and path_key(tmp_path / "data" / "img" / "015.jpg") in keys
    ids = list(run.val_probs()[0])
    assert len(val_images(run, ids, None)) == len(ids)  # the validation photos found through the joined files
    assert main(["evaluate", str(out), "--labels", str(round0), "--split", "test"]) == 0
    joined = os.pathsep.join(map(str, (round0, export, skeleton)))  # the files as the run names them, merged
    assert trained_image_dir(run, joined) is None and read_labels(joined).ids == merge_labels(
        [round0, export, skeleton]).ids
    assert main(["evaluate", str(out), "--labels", joined, "--split", "val"]) == 0
