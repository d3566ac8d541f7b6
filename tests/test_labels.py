from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionstyle import JD_STYLES, FashionStyleError, read_labels
from fashionstyle.data.labels.table import stratified_split
from fashionstyle.data.labels.read import read_submission
from fashionstyle.inference.outputs import write_predictions


def jd_line(i: int, flags) -> str:
    return f"img{i},http://x/{i}.jpg," + ",".join(map(str, flags))


def test_jd_train_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((5, 13)) < 0.3).astype(np.uint8)
    ids = [f"img{i}" for i in range(5)]
    lines = [f"{i},http://x/{i}.jpg," + ",".join(map(str, row)) for i, row in zip(ids, targets)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    table = read_labels(tmp_path / "train.txt")
    assert table.label_names == list(JD_STYLES)
    assert table.ids == ids
    np.testing.assert_array_equal(table.targets, targets)
    assert table.images[0] == tmp_path / "img0.jpg"


def test_submission_round_trip(tmp_path: Path) -> None:
    targets = (np.random.default_rng(0).random((5, 13)) < 0.3).astype(np.uint8)
    ids = [f"img{i}" for i in range(5)]
    path = write_predictions(tmp_path / "submission.txt", "jd", ids, targets.astype(float), targets, JD_STYLES)
    assert path.read_text().splitlines()[0] == "img0," + ",".join(map(str, targets[0]))
    read_ids, read_targets = read_submission(path)
    assert read_ids == ids
    np.testing.assert_array_equal(read_targets, targets)


def test_jd_test_list_and_url_basename(tmp_path: Path) -> None:
    (tmp_path / "photo_a.jpg").write_bytes(b"x")
    (tmp_path / "test.txt").write_text("a1,http://host/dir/photo_a.jpg\r\na2,http://host/b.jpg\r\n",
                                       encoding="utf-8-sig")
    table = read_labels(tmp_path / "test.txt")
    assert table.targets is None
    assert table.images == [tmp_path / "photo_a.jpg", tmp_path / "a2.jpg"]


def test_label_csv_with_chinese_header_and_bom(tmp_path: Path) -> None:
    header = "image,split," + ",".join(["运动", "休闲", "OL/通勤", "日系", "韩版", "欧美", "英伦",
                                        "少女", "名媛/淑女", "简约", "自然", "街头/朋克", "民族"])
    row = "a.jpg,train," + ",".join(["1"] + ["0"] * 12)
    (tmp_path / "l.csv").write_text(header + "\r\n" + row + "\r\n", encoding="utf-8-sig")
    table = read_labels(tmp_path / "l.csv")
    assert table.label_names == list(JD_STYLES)
    assert table.targets[0, 0] == 1 and table.splits == ["train"]


def test_label_csv_custom_labels_and_reorder(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("image,B,A\nx.jpg,1,0\n")
    assert read_labels(tmp_path / "l.csv").label_names == ["B", "A"]
    table = read_labels(tmp_path / "l.csv", label_names=["A", "B"])
    assert table.label_names == ["A", "B"] and table.targets.tolist() == [[0, 1]]


def test_tags_csv(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image,tags\na.jpg,Sport Street\nb.jpg,韩版\n")
    table = read_labels(tmp_path / "t.csv")
    assert table.label_names == list(JD_STYLES)
    assert table.targets[0, JD_STYLES.index("Street")] == 1
    assert table.targets[1].tolist() == [int(n == "Korean") for n in JD_STYLES]


def test_tags_csv_free_label_set(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image,tags\na.jpg,hat dress\nb.jpg,coat\n")
    table = read_labels(tmp_path / "t.csv")
    assert table.label_names == ["coat", "dress", "hat"]


@pytest.mark.parametrize("content, message", [
    ("a,http://x/a.jpg,1,0\n", ":1: expected id,url"),
    ("a,http://x/a.jpg," + ",".join(["0"] * 13) + "\nb,http://x/b.jpg,0\n", ":2: expected 15 fields, got 3"),
    ("a,http://x/a.jpg," + ",".join(["0"] * 12 + ["2"]) + "\n", ":1: label Nation must be 0 or 1, got '2'"),
    ("a,u," + ",".join(["0"] * 13) + "\na,u," + ",".join(["0"] * 13) + "\n", ":2: duplicate id 'a'"),
    ("id,url," + ",".join(JD_STYLES) + "\n", ":1: a header line, but the JD format has none"),
    ("\n\n", "empty label file"),
])
def test_jd_errors_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(FashionStyleError) as err:
        read_labels(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_label_name_against_a_given_label_set(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image,tags\na.jpg,Sport\nb.jpg,Sprot\n")
    with pytest.raises(FashionStyleError, match=r"t.csv:3: unknown label 'Sprot' \(did you mean Sport"):
        read_labels(tmp_path / "t.csv", label_names=JD_STYLES)
    (tmp_path / "c.csv").write_text("image,Sport,Relaxx\na.jpg,1,0\n")
    with pytest.raises(FashionStyleError, match=r"c.csv:1: no column for label 'Relax' \(did you mean Relaxx"):
        read_labels(tmp_path / "c.csv", label_names=["Sport", "Relax"])


def test_names_that_are_not_all_jd_styles_are_the_files_own_label_set(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image,tags\na.jpg,Boho Grunge\nb.jpg,Sport\n")
    table = read_labels(tmp_path / "t.csv")
    assert table.label_names == ["Boho", "Grunge", "Sport"]
    assert table.targets.tolist() == [[1, 1, 0], [0, 0, 1]]
    (tmp_path / "c.csv").write_text("image,split,Sport,Hat\na.jpg,train,1,0\nb.jpg,val,0,1\n")
    table = read_labels(tmp_path / "c.csv")
    assert table.label_names == ["Sport", "Hat"] and table.targets.tolist() == [[1, 0], [0, 1]]
    (tmp_path / "jd.csv").write_text("image,tags\na.jpg,sport 韩版\n")  # every name a JD style: the 13 styles
    assert read_labels(tmp_path / "jd.csv").label_names == list(JD_STYLES)


def test_csv_errors(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("image,A,B\nx.jpg,1\n")
    with pytest.raises(FashionStyleError, match=r"a.csv:2: expected 3 fields, got 2"):
        read_labels(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("image,split,A\nx.jpg,dev,1\n")
    with pytest.raises(FashionStyleError, match=r"b.csv:2: split must be one of"):
        read_labels(tmp_path / "b.csv")
    with pytest.raises(FashionStyleError, match="label file not found"):
        read_labels(tmp_path / "missing.csv")


def test_stratified_split_keeps_every_label_in_val() -> None:
    rng = np.random.default_rng(1)
    targets = (rng.random((2000, 6)) < [0.5, 0.2, 0.05, 0.02, 0.01, 0.3]).astype(np.uint8)
    is_val = stratified_split(targets, 0.2, seed=3)
    assert abs(is_val.mean() - 0.2) < 0.02
    share = targets[is_val].sum(0) / targets.sum(0)
    assert np.all(np.abs(share - 0.2) < 0.12), share
    np.testing.assert_array_equal(is_val, stratified_split(targets, 0.2, seed=3))
    assert not np.array_equal(is_val, stratified_split(targets, 0.2, seed=4))


def test_probability_writers(tmp_path: Path) -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.7]])
    preds = (probs > 0.5).astype(np.uint8)
    csv_text = write_predictions(tmp_path / "p.csv", "csv", ["a", "b"], probs, preds, ["X", "Y"]).read_text()
    assert csv_text.splitlines()[:2] == ["image,labels,X,Y,error", "a,X,0.900000,0.100000,"]
    import json
    found = json.loads(write_predictions(tmp_path / "p.json", "json", ["a", "b"], probs, preds, ["X", "Y"]).read_text())
    assert found["predictions"][1] == {"image": "b", "labels": ["Y"], "scores": {"X": 0.2, "Y": 0.7}, "error": None}


def test_label_names_pick_a_subset_of_a_csvs_columns(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image,split,Sport,Relax,Lady\na.jpg,train,1,0,1\nb.jpg,val,0,1,0\n")
    table = read_labels(tmp_path / "c.csv", label_names=["Lady", "Sport"])
    assert table.label_names == ["Lady", "Sport"]
    np.testing.assert_array_equal(table.targets, [[1, 1], [0, 0]])
    with pytest.raises(FashionStyleError, match=r"c.csv:1: no column for label 'Relaxed' \(did you mean Relax"):
        read_labels(tmp_path / "c.csv", label_names=["Relaxed"])


def test_two_columns_for_one_label_are_refused(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image,Sport,sport\na.jpg,1,0\n")
    with pytest.raises(FashionStyleError, match=r"c.csv:1: two columns for label 'Sport'"):
        read_labels(tmp_path / "c.csv", label_names=["Sport"])


def test_csv_field_over_the_csv_limit_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image,A\na.jpg,1\n" + "b" * 200_000 + ".jpg,0\n")
    with pytest.raises(FashionStyleError, match=r"c.csv:3: a field of more than 131,072 characters"):
        read_labels(tmp_path / "c.csv")


def test_tags_csv_without_any_tag_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image,tags\na.jpg,\nb.jpg, \n")
    with pytest.raises(FashionStyleError, match=r"t.csv:1: no row has any tag"):
        read_labels(tmp_path / "t.csv")


@pytest.mark.parametrize("header", ["image,split,Boho,Boho", "image,split,Boho,boho",
                                    "image,split,Sport,运动", "image,split,split,Boho"])
def test_two_columns_with_one_name_are_refused_without_label_names(tmp_path: Path, header: str) -> None:
    (tmp_path / "c.csv").write_text(f"{header}\na.jpg,train,1,0\n")
    with pytest.raises(FashionStyleError, match=r"c.csv:1: two (columns for label 'Boho'|columns for label "
                                                r"'Sport'|'split' columns): "):
        read_labels(tmp_path / "c.csv")


def test_full_jd_header_with_a_repeated_style_is_refused(tmp_path: Path) -> None:
    header = "image," + ",".join(JD_STYLES) + ",Nation"
    (tmp_path / "c.csv").write_text(header + "\na.jpg," + ",".join(["0"] * 14) + "\n")
    with pytest.raises(FashionStyleError, match=r"c.csv:1: two columns for label 'Nation'"):
        read_labels(tmp_path / "c.csv")


def test_repeated_id_column_value_names_both_lines(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("id,image,A\nx,a.jpg,1\ny,b.jpg,0\nx,c.jpg,1\n")
    with pytest.raises(FashionStyleError, match=r"c.csv:4: duplicate id 'x' \(first on line 2\)"):
        read_labels(tmp_path / "c.csv")


@pytest.mark.parametrize("content", ["image,A\nmen/001.jpg,1\nwomen/001.jpg,0\n",
                                     "image,tags\nmen/001.jpg,A\nwomen/001.jpg,B\n"])
def test_two_images_of_one_file_name_without_an_id_column_are_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "c.csv").write_text(content)  # both would get id '001': probabilities and fixes misplaced
    with pytest.raises(FashionStyleError, match=r"c.csv:3: duplicate id '001' \(first on line 2\); ids come from "
                                                r"the image file names"):
        read_labels(tmp_path / "c.csv")


@pytest.mark.parametrize("content, line", [
    ("id,image,A\nx\0y,a.jpg,1\n", 2),
    ("image,A\na.jpg,1\nb.jpg,0\0\n", 3),
    ("a\0,http://x/a.jpg," + ",".join(["0"] * 13) + "\n", 1),
])
def test_nul_byte_in_a_line_is_refused(tmp_path: Path, content: str, line: int) -> None:
    (tmp_path / "c.csv").write_text(content)
    with pytest.raises(FashionStyleError, match=rf"c.csv:{line}: a NUL byte"):
        read_labels(tmp_path / "c.csv")


def test_label_warnings_name_unlearnable_labels_and_unlabelled_rows(tmp_path: Path) -> None:
    from fashionstyle.data.labels.stats import label_warnings
    (tmp_path / "c.csv").write_text("image,split,A,B,C\n"
                                    "a.jpg,train,1,0,0\nb.jpg,train,0,0,0\nc.jpg,train,0,0,0\n"
                                    "d.jpg,val,0,1,0\ne.jpg,val,1,0,0\n")
    warnings = label_warnings(read_labels(tmp_path / "c.csv"))
    assert any("B" in w and "no positives in the train split" in w for w in warnings), warnings
    assert any("C" in w and "no positives in the train split" in w for w in warnings), warnings
    assert not any("label A" in w for w in warnings), warnings
    assert any(w.endswith("c.csv: 2 of 5 rows have no label at all (negatives for every label)")
               for w in warnings), warnings
    (tmp_path / "ok.csv").write_text("image,A,B\na.jpg,1,0\nb.jpg,0,1\n")
    assert label_warnings(read_labels(tmp_path / "ok.csv")) == []


def test_label_stats_marks_a_label_without_positives(tmp_path: Path) -> None:
    from fashionstyle.data.labels.stats import label_stats
    (tmp_path / "c.csv").write_text("image,A,Bee\na.jpg,1,0\nb.jpg,0,0\n")
    rows = label_stats(read_labels(tmp_path / "c.csv"), 1.0).splitlines()
    assert "NO POSITIVES" in rows[2] and rows[2].startswith("Bee")
    assert "NO POSITIVES" not in rows[1]


def test_an_all_positive_label_is_warned_about_and_marked_as_an_all_negative_one(tmp_path: Path) -> None:
    from fashionstyle.data.labels.stats import label_stats
    from fashionstyle.data.labels.stats import label_warnings

    (tmp_path / "c.csv").write_text("image,split,A,Bee\na.jpg,train,1,1\nb.jpg,train,0,1\nc.jpg,val,1,0\n"
                                    "d.jpg,val,0,1\n")
    table = read_labels(tmp_path / "c.csv")
    assert label_warnings(table) == [f"{tmp_path / 'c.csv'}: label Bee has no negatives in the train split: "
                                     "cannot be learned"]
    rows = label_stats(table.split("train"), 1.0).splitlines()
    assert rows[2].startswith("Bee") and rows[2].endswith("NO NEGATIVES: cannot be learned")
    assert "NO" not in rows[1]


def test_a_subset_of_the_jd_styles_is_a_label_set(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("image,split,Street,sport,休闲\na.jpg,train,1,0,1\n")
    table = read_labels(tmp_path / "c.csv")
    assert table.label_names == ["Street", "Sport", "Relax"]
    assert table.targets.tolist() == [[1, 0, 1]]
    (tmp_path / "free.csv").write_text("image,split,Boho,Grunge\na.jpg,train,1,0\n")
    assert read_labels(tmp_path / "free.csv").label_names == ["Boho", "Grunge"]


def test_stats_warns_about_unlearnable_labels_and_unlabelled_rows(tmp_path, capsys) -> None:
    from fashionstyle.cli import main

    path = tmp_path / "l.csv"
    path.write_text("image,split,A,B\na.jpg,train,1,0\nb.jpg,train,0,0\nc.jpg,val,1,1\n")
    assert main(["stats", str(path)]) == 0
    captured = capsys.readouterr()
    assert "label B has no positives in the train split: cannot be learned" in captured.err
    assert "1 of 3 rows have no label at all" in captured.err
    assert "NO POSITIVES" in captured.out


def test_the_file_a_run_trained_on_is_read_from_the_runs_image_dir_and_any_other_from_its_own_folder(tmp_path):
    """evaluate, report, audit and tune read a label file for a run: its own file (the same file, by any
    path) takes the run's --image-dir without repeating it; a copy elsewhere, or --image-dir given, does not."""
    import shutil

    from fashionstyle.core import config as config_lib
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels.read import read_run_labels

    labels = tmp_path / "labels" / "train.csv"
    labels.parent.mkdir()
    labels.write_text("image,Red,Blue\nimg/a.jpg,1,0\nimg/b.jpg,0,1\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config_lib.dump(TrainConfig(labels=str(labels), images=str(tmp_path / "shop"))))
    (run / "labels.json").write_text('{"label_names": ["Blue", "Red"]}')
    own = read_run_labels(RunDir(run), tmp_path / "labels" / ".." / "labels" / "train.csv")
    assert own.images == [tmp_path / "shop" / "img" / "a.jpg", tmp_path / "shop" / "img" / "b.jpg"]
    assert own.label_names == ["Blue", "Red"] and own.targets.tolist() == [[0, 1], [1, 0]]  # the run's order
    shutil.copy(labels, tmp_path / "copy.csv")
    assert read_run_labels(RunDir(run), tmp_path / "copy.csv").images[0] == tmp_path / "img" / "a.jpg"
    given = read_run_labels(RunDir(run), labels, images=tmp_path / "elsewhere")
    assert given.images[0] == tmp_path / "elsewhere" / "img" / "a.jpg"


# -- issue 40: one check of every label set -------------------------------------------------------
RESERVED_MESSAGE = r"a label may not be called '{}'.*reserved names.*error.*hint.*labels.*suggest_score.*tags"


@pytest.mark.parametrize(("name", "content", "label_names", "match"), [
    ("c.csv", "image,Red,error\na.jpg,1,0\n", None, RESERVED_MESSAGE.format("error")),
    ("c.csv", "image,Labels,Red\na.jpg,1,0\n", None, RESERVED_MESSAGE.format("Labels")),
    ("c.csv", "image,Red,hint\na.jpg,1,0\n", None, RESERVED_MESSAGE.format("hint")),  # suggest's only beside its score
    ("c.csv", "image,Red,suggest_score\na.jpg,1,0\n", None, RESERVED_MESSAGE.format("suggest_score")),
    ("t.csv", "image,tags\na.jpg,Red suggest_score\n", None, RESERVED_MESSAGE.format("suggest_score")),
    ("t.csv", "image,tags\na.jpg,Red Id\n", None, RESERVED_MESSAGE.format("Id")),
    ("j.txt", "1,http://x/1.jpg,1,0\n", ["Red", "url"], RESERVED_MESSAGE.format("url")),
    ("c.csv", "image,Red,Blue;Green\na.jpg,1,0\n", None, r"label 'Blue;Green' holds ';', which separates labels"),
    ("t.csv", "image,tags\na.jpg,Red Blue;Green\n", None, r"label 'Blue;Green' holds ';'"),
])
def test_a_label_set_with_a_reserved_name_or_a_separator_is_refused_in_one_line(
        tmp_path: Path, name: str, content: str, label_names, match: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(FashionStyleError, match=match) as refused:
        read_labels(tmp_path / name, label_names=label_names)
    assert str(tmp_path / name) in str(refused.value) and "\n" not in str(refused.value)


def test_suggests_hint_and_score_columns_together_are_read_as_suggests(tmp_path: Path) -> None:
    (tmp_path / "to_label.csv").write_text("image,Red,Blue,hint,suggest_score\na.jpg,1,0,Red 0.91,0.5\n")
    table = read_labels(tmp_path / "to_label.csv")
    assert table.label_names == ["Red", "Blue"] and table.targets.tolist() == [[1, 0]]


def test_repeated_label_names_are_named_in_one_line_among_many(tmp_path: Path) -> None:
    from fashionstyle.data.labels.names import check_label_set

    names = [f"style{k}" for k in range(50_000)]
    check_label_set(names, "many.csv")  # distinct: passes (sets and a Counter, not a scan per name)
    with pytest.raises(FashionStyleError, match=r"many.csv: labels 'style7', 'Style7' repeat a name") as refused:
        check_label_set([*names, "Style7"], "many.csv")
    assert "style8" not in str(refused.value)
    (tmp_path / "t.csv").write_text("image,tags\na.jpg,Red\n")
    with pytest.raises(FashionStyleError, match=r"t.csv: labels 'Red', 'red' repeat a name"):
        read_labels(tmp_path / "t.csv", label_names=["Red", "red"])
    with pytest.raises(FashionStyleError, match=r"labels 'Sport', '运动' repeat a name"):
        check_label_set(["Sport", "运动"])


def test_a_tags_file_with_many_labels_matches_each_tag_by_lookup(tmp_path: Path) -> None:
    names = [f"style{k}" for k in range(2000)]
    rows = "".join(f"{k}.jpg,{names[k]} {names[-1 - k].upper()}\n" for k in range(1000))
    (tmp_path / "t.csv").write_text("image,tags\n" + rows)
    table = read_labels(tmp_path / "t.csv", label_names=names)
    assert table.targets.sum() == 2000 and table.targets[3, 3] == 1 and table.targets[3, 1996] == 1


def test_train_refuses_a_reserved_label_before_writing_anything(tmp_path: Path, capsys) -> None:
    from conftest import fingerprint, make_image_set
    from fashionstyle.cli import main

    labels = make_image_set(tmp_path / "data", n=8)
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[0].replace("Dotted", "error"), *lines[1:]]) + "\n")
    before = fingerprint(tmp_path)
    assert main(["train", "--labels", str(labels), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a label may not be called 'error'" in err and str(labels) in err, err
    assert fingerprint(tmp_path) == before and not (tmp_path / "run").exists()
