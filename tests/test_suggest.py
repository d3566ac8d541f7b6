"""`suggest`: threshold-aware uncertainty, rare labels first, no near-duplicates together, a bounded pool,
and a label-file skeleton that `train` accepts once filled in."""
from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TINY_TRAIN, draw, fingerprint
from fashionstyle.analysis import acquisition
from fashionstyle.core.errors import FashionStyleError


def test_uncertainty_peaks_at_each_labels_tuned_threshold_not_at_one_half():
    probs = np.array([[0.2, 0.5], [0.5, 0.9], [0.0, 1.0]])
    u = acquisition.threshold_uncertainty(probs, np.array([0.2, 0.9]))
    assert u[0, 0] == pytest.approx(1.0) and u[1, 1] == pytest.approx(1.0)  # on the threshold
    assert u[1, 0] < 1.0 and u[0, 1] < 1.0
    assert u[2, 0] == pytest.approx(0.0) and u[2, 1] == pytest.approx(0.0)  # certain either way
    assert acquisition.uncertainty_scores(np.array([[np.nan, 0.5]]), np.array([0.5, 0.5]))[0] == -np.inf


def test_rare_labels_weigh_more_and_the_weights_average_one():
    w = acquisition.rare_label_weights(np.array([0.5, 0.05, 0.005]), power=0.5)
    assert w[2] > w[1] > w[0] and w.mean() == pytest.approx(1.0)
    probs = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.5]])  # equally unsure, of a common or of the rarest label
    scores = acquisition.uncertainty_scores(probs, np.array([0.5, 0.5, 0.5]), w)
    assert scores[1] > scores[0]


def test_weighted_k_center_takes_a_distinct_photo_before_a_near_duplicate():
    features = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]])  # rows 0 and 1: near-duplicates
    scores = np.array([0.9, 0.89, 0.5])
    assert acquisition.weighted_k_center(features, scores, 2) == [0, 2]
    assert np.argsort(-scores)[:2].tolist() == [0, 1]  # what ranking by score alone would take


def test_candidate_pool_keeps_the_best_whatever_the_chunking_and_stays_bounded():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    ids = [f"i{k}" for k in range(1000)]
    pool = acquisition.CandidatePool(capacity=20)
    for start in range(0, 1000, 64):
        pool.add(ids[start:start + 64], ids[start:start + 64], scores[start:start + 64], np.zeros((64, 3))[:len(ids[start:start + 64])])
        assert len(pool) <= 20
    assert pool.ids == [ids[k] for k in np.argsort(-scores)[:20]] and pool.seen == 1000


def test_random_keys_do_not_depend_on_order_and_change_with_the_seed():
    a = acquisition.random_scores(["x", "y", "z"], seed=0)
    assert acquisition.random_scores(["z", "x"], seed=0).tolist() == [a[2], a[0]]
    assert acquisition.random_scores(["x"], seed=1)[0] != a[0]


def _catalogue(folder: Path, n: int = 12) -> Path:
    """`n` new photos (not in any label file), with two exact copies of the first."""
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True)
    for i in range(n):
        draw(rng, (rng.random(3) < 0.4).astype(int)).save(folder / f"new{i:02d}.jpg", quality=95)
    for k in (1, 2):
        shutil.copy(folder / "new00.jpg", folder / f"new00_copy{k}.jpg")
    return folder


def _suggest_parser() -> argparse.ArgumentParser:
    from fashionstyle.cli import suggest as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser


def _suggest(*argv: str) -> int:
    from fashionstyle.cli import suggest as command

    return command.run(_suggest_parser().parse_args(["suggest", *argv]))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_suggest_leaves_out_labelled_photos_and_writes_a_skeleton_with_hints(shared_run, tmp_path, capsys):
    photos = sorted(_catalogue(tmp_path / "catalogue").glob("*.jpg")) + shared_run.images[:3]  # 3 labelled
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("image\n" + "".join(f"{p.resolve()}\n" for p in photos))
    labelled = {p.name for p in shared_run.images[:3]}
    out = tmp_path / "to_label.csv"
    assert _suggest(str(shared_run.run), "--images", str(catalogue), "--n", "5", "--out", str(out), "--quiet") == 0
    assert "5 of 14 unlabelled photos chosen (uncertainty; 3 already labelled" in capsys.readouterr().out
    rows = _rows(out)
    assert list(rows[0]) == ["image", *LABELS, "hint", "suggest_score"]
    assert len(rows) == 5 and not {Path(r["image"]).name for r in rows} & labelled
    assert all(r[name] == "" for r in rows for name in LABELS)
    copies = [r for r in rows if Path(r["image"]).name.startswith("new00")]
    assert len(copies) <= 1  # the exact copies are never chosen together
    assert not (tmp_path / "to_label.csv.parts").exists()


def test_a_filled_in_skeleton_trains_and_an_unfilled_one_is_refused_naming_the_line(shared_run, tmp_path):
    from fashionstyle.cli import main

    out = tmp_path / "to_label.csv"
    assert _suggest(str(shared_run.run), "--images", str(_catalogue(tmp_path / "catalogue", 16)), "--n", "16",
                    "--strategy", "margin", "--out", str(out), "--quiet") == 0
    with pytest.raises(FashionStyleError, match=r"to_label.csv:2: label Red must be 0 or 1, got ''"):
        from fashionstyle.data.labels.read import read_labels
        read_labels(out)
    rows = _rows(out)
    rng = np.random.default_rng(1)
    for row in rows:  # the labeller's work: 0/1 under each label
        row.update({name: str(int(rng.random() < 0.5)) for name in LABELS})
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["train", "--labels", str(out), "--out", str(tmp_path / "again"), *TINY_TRAIN,
                 "--epochs", "1", "--val-fraction", "0.25"]) == 0
    from fashionstyle.core.run import RunDir
    assert RunDir(tmp_path / "again").is_complete()


def test_random_is_seeded_and_a_bad_out_is_refused_before_anything_is_read(shared_run, tmp_path):
    catalogue = _catalogue(tmp_path / "catalogue")
    mine = tmp_path / "mine.csv"
    mine.write_text("image,Red,Striped,Dotted\na.jpg,1,0,0\n")
    picks = []
    for k in (1, 2):
        out = tmp_path / f"r{k}.csv"
        with pytest.raises(FashionStyleError, match="exists .perhaps filled in already"):
            _suggest(str(shared_run.run), "--images", str(catalogue), "--out", str(mine))
        assert _suggest(str(shared_run.run), "--images", str(catalogue), "--n", "4", "--strategy", "random",
                        "--out", str(out), "--quiet") == 0
        picks.append([r["image"] for r in _rows(out)])
    assert picks[0] == picks[1] and len(set(picks[0])) == 4
    before = fingerprint(tmp_path)
    with pytest.raises(FashionStyleError, match="name a .csv file"):
        _suggest(str(shared_run.run), "--images", str(catalogue), "--out", str(tmp_path / "x.txt"))
    with pytest.raises(FashionStyleError, match=r"--tasks .*\.json file"):
        _suggest(str(shared_run.run), "--images", str(catalogue), "--out", str(tmp_path / "y.csv"),
                 "--tasks", str(tmp_path / "t.txt"))
    assert fingerprint(tmp_path) == before


def test_suggest_over_a_catalogue_of_only_labelled_photos_says_so(shared_run, tmp_path):
    with pytest.raises(FashionStyleError, match="already labelled"):
        _suggest(str(shared_run.run), "--images", str(shared_run.labels.parent / "img"), "--out",
                 str(tmp_path / "o.csv"), "--quiet")
    assert not (tmp_path / "o.csv").exists()


def _trained_run(folder: Path, labels: Path, images: Path | None) -> Path:
    """A run folder holding only the config a run trained with --labels LABELS [--image-dir IMAGES] writes."""
    from fashionstyle.core import config as config_lib
    from fashionstyle.core.config import TrainConfig

    folder.mkdir(parents=True)
    config = TrainConfig(labels=str(labels), images=str(images) if images else "")
    (folder / "config.yaml").write_text(config_lib.dump(config))
    return folder


def test_the_runs_own_labels_count_as_labelled_read_from_its_image_dir_and_through_a_fusion(tmp_path, capsys):
    """A run trained with --image-dir: its label file's paths are relative to that folder, not to the
    file's (a distilled student from a copied label file met this); a fused run counts its sources'."""
    import json

    from fashionstyle.analysis.already_labelled import labelled_images, path_key
    from fashionstyle.core.run import RunDir

    photos = tmp_path / "shop" / "img"
    photos.mkdir(parents=True)
    labels = tmp_path / "labels" / "some.csv"
    labels.parent.mkdir()
    labels.write_text("image,Red\nimg/a.jpg,1\nimg/b.jpg,0\n")
    run = _trained_run(tmp_path / "run", labels, photos.parent)
    expected = {path_key(photos / "a.jpg"), path_key(photos / "b.jpg")}
    assert labelled_images(RunDir(run)) == expected
    fused = tmp_path / "fused"
    fused.mkdir()
    (fused / "fusion.json").write_text(json.dumps({"runs": [str(run)], "weights": [1.0]}))
    assert labelled_images(RunDir(fused)) == expected
    more = tmp_path / "more.csv"
    more.write_text("image,Red\nshop/img/c.jpg,1\n")
    gone = _trained_run(tmp_path / "gone", tmp_path / "moved.csv", None)
    assert labelled_images(RunDir(gone), [more]) == {path_key(photos / "c.jpg")}
    said = capsys.readouterr().err
    assert "moved.csv, not found from here: its photos may be chosen again; pass it as --labelled FILE" in said


def _refused(argv: list[str], kept: Path, capsys) -> str:
    """`fashionstyle suggest ...` exits 2 with one line, `kept` byte-identical."""
    from fashionstyle.cli import main

    before = kept.read_bytes()
    assert main(["suggest", *argv]) == 2
    err = capsys.readouterr().err
    assert kept.read_bytes() == before and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_resume_replaces_only_its_own_unfilled_skeleton(shared_run, tmp_path, capsys):
    from fashionstyle.cli import main

    catalogue = str(_catalogue(tmp_path / "catalogue"))
    out = tmp_path / "to_label.csv"
    argv = [str(shared_run.run), "--images", catalogue, "--n", "3", "--strategy", "margin", "--out", str(out),
            "--quiet"]
    assert main(["suggest", *argv]) == 0
    assert main(["suggest", *argv, "--resume"]) == 0  # its own skeleton, nothing filled in: replaced
    rows = _rows(out)
    rows[0]["Red"] = "1"  # the labeller started
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    err = _refused([*argv, "--resume"], out, capsys)
    assert f"{out}: exists and is not an unfilled skeleton suggest wrote (perhaps filled in already)" in err
    assert "or --overwrite" in err
    mine = tmp_path / "mine.csv"  # a label file of the user's: no hint, no score
    mine.write_text("image,Red,Striped,Dotted\na.jpg,,,\n")
    assert "is not an unfilled skeleton" in _refused([*argv[:-2], str(mine), "--resume"], mine, capsys)


def test_a_hand_edited_label_config_is_kept_unless_overwrite(shared_run, tmp_path, capsys):
    from fashionstyle.cli import main
    from fashionstyle.labelstudio.tasks import config_path, is_own_config, labelling_config

    catalogue = _catalogue(tmp_path / "catalogue")
    tasks, out = tmp_path / "to_label.json", tmp_path / "to_label.csv"
    argv = [str(shared_run.run), "--images", str(catalogue), "--n", "3", "--strategy", "random", "--out", str(out),
            "--tasks", str(tasks), "--quiet"]
    assert main(["suggest", *argv]) == 0
    config = config_path(tasks)
    assert is_own_config(config) and not is_own_config(tasks)
    assert main(["suggest", *argv, "--resume"]) == 0  # its own tasks and config, unchanged: replaced
    config.write_text(config.read_text().replace("<View>", "<View>\n  <Header value=\"Mine\"/>"))
    for again in ([], ["--resume"]):
        if not again:
            out.unlink()
            tasks.unlink()
        err = _refused([*argv, *again], config, capsys)
        assert f"{config}: a labelling config fashionstyle did not write (or edited since)" in err
    assert not out.exists() and not tasks.exists()
    assert main(["suggest", *argv, "--overwrite"]) == 0
    assert config.read_text() == labelling_config(list(LABELS))


@pytest.mark.parametrize("strategy", ["uncertainty", "random"])
def test_a_catalogue_of_no_readable_photo_exits_2_and_writes_nothing(shared_run, tmp_path, capsys, strategy):
    from fashionstyle.cli import main

    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    for i in range(4):
        (catalogue / f"bad{i}.jpg").write_bytes(b"not a photo")
    out = tmp_path / "to_label.csv"
    assert main(["suggest", str(shared_run.run), "--images", str(catalogue), "--n", "2", "--strategy", strategy,
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not one photo could be read" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue"]  # no skeleton, no parts


@pytest.mark.parametrize("strategy", ["uncertainty", "margin", "random"])
def test_identical_photos_are_suggested_once_and_a_linked_labelled_photo_never(shared_run, tmp_path, capsys,
                                                                                 strategy):
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    for i in range(20):
        shutil.copy(shared_run.images[-1], catalogue / f"same{i:02d}.jpg")  # one photo, 20 names
    (catalogue / "link.jpg").symlink_to(shared_run.images[0])  # a labelled photo through a link
    out = tmp_path / "to_label.csv"
    assert _suggest(str(shared_run.run), "--images", str(catalogue), "--n", "5", "--strategy", strategy,
                    "--out", str(out), "--quiet") == 0
    assert [r["image"] for r in _rows(out)] == ["catalogue/same00.jpg"]
    assert "1 already labelled" in capsys.readouterr().out
