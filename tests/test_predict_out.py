"""`predict --out`: names refused or compressed, standard output, links written through, a user's file kept,
one writer per output, and parts of an older record layout never mixed into a resume."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TinyRun
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.source import ImageSource
from fashionstyle.inference.out_lock import out_lock
from fashionstyle.inference.outputs import merge_parts, output_format, write_part, write_predictions
from fashionstyle.inference.prediction_files import check_out, read_predictions
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.inference.streaming import LoaderSettings, StreamJob

NAMES = ["Red", "Striped", "Dotted"]


def _rows(n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    probs = np.random.default_rng(1).random((n, 3)).astype(np.float32)
    return [f"img{i}" for i in range(n)], probs, (probs >= 0.5).astype(np.uint8)


@pytest.mark.parametrize("out", ["p.xlsx", "p.tsv", "p.CSV.bak", "p.out"])
def test_an_unknown_extension_is_refused_in_one_line(out: str) -> None:
    with pytest.raises(FashionStyleError, match=r"unknown extension .*\.txt \(jd\), \.csv \(csv\)") as raised:
        output_format(out, None)
    assert "\n" not in str(raised.value)
    with pytest.raises(FashionStyleError, match="unknown extension"):
        output_format(out, "csv")  # --format does not make a spreadsheet's name hold CSV


def test_a_compressed_parquet_is_refused() -> None:
    with pytest.raises(FashionStyleError, match="parquet is compressed inside the file; drop .gz"):
        output_format("p.parquet.gz", None)


@pytest.mark.parametrize("fmt", ["csv", "json", "jd"])
def test_gz_names_are_written_gzip_compressed_the_same_merged_or_whole(tmp_path: Path, fmt: str) -> None:
    ids, probs, preds = _rows(5)
    suffix = {"csv": ".csv", "json": ".json", "jd": ".txt"}[fmt]
    plain = write_predictions(tmp_path / f"plain{suffix}", fmt, ids, probs, preds, NAMES, np.full(3, 0.5))
    whole = write_predictions(tmp_path / f"whole{suffix}.gz", fmt, ids, probs, preds, NAMES, np.full(3, 0.5))
    parts = [write_part(tmp_path / f"part{k}", fmt, ids[s], probs[s], preds[s], NAMES, np.full(3, 0.5))
             for k, s in enumerate([slice(0, 2), slice(2, 5)])]
    merged = merge_parts(parts, tmp_path / f"merged{suffix}.gz", fmt, NAMES, np.full(3, 0.5))
    assert whole.read_bytes()[:2] == b"\x1f\x8b" and merged.read_bytes() == whole.read_bytes()
    assert gzip.decompress(whole.read_bytes()) == plain.read_bytes()
    if fmt != "jd":
        assert read_predictions(whole) == read_predictions(plain)


def test_standard_output_and_a_folder_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(FashionStyleError, match="--out -: predictions are not written to standard output"):
        check_out("-")
    with pytest.raises(FashionStyleError, match="is a folder; name a file"):
        check_out(tmp_path)


def test_an_existing_file_predict_did_not_write_is_kept_unless_overwrite(tmp_path: Path) -> None:
    user = tmp_path / "labels_copy.csv"
    user.write_text("image,split,Red\na.jpg,train,1\n")
    with pytest.raises(FashionStyleError, match="exists and is not a prediction file; pass --overwrite"):
        check_out(user)
    check_out(user, overwrite=True)
    ids, probs, preds = _rows(3)
    for name, fmt in (("p.csv", "csv"), ("p.json", "json"), ("p.txt", "jd"), ("p.csv.gz", "csv")):
        check_out(write_predictions(tmp_path / name, fmt, ids, probs, preds, NAMES))  # its own outputs: replaced
    old_csv = tmp_path / "old.csv"  # a file of the layout before the record
    old_csv.write_text("id,Red,Striped,Dotted,labels\na,0.9,0.1,0.2,Red\n")
    old_json = tmp_path / "old.json"
    old_json.write_text('[\n {\n  "id": "a",\n  "labels": [],\n  "probs": {"Red": 0.1}\n }\n]\n')
    check_out(old_csv)
    check_out(old_json)
    empty = tmp_path / "empty.csv"
    empty.touch()
    check_out(empty)


def test_a_symlinked_out_is_written_through_and_the_link_kept(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "2026-12-07.csv"
    target.parent.mkdir()
    link = tmp_path / "latest.csv"
    link.symlink_to(target)  # dangling until the first write
    ids, probs, preds = _rows(3)
    write_predictions(link, "csv", ids, probs, preds, NAMES)
    assert link.is_symlink() and target.is_file() and link.read_text() == target.read_text()
    parts = [write_part(tmp_path / "part0", "csv", ids[:1], probs[:1], preds[:1], NAMES)]
    merge_parts(parts, link, "csv", NAMES)
    assert link.is_symlink() and len(target.read_text().splitlines()) == 2


def test_a_second_writer_of_one_out_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    out = tmp_path / "tags.csv"
    with out_lock(out):
        with pytest.raises(FashionStyleError, match=f"another predict is writing {out}"):
            with out_lock(out):
                pass
    with out_lock(out):  # free again
        pass


class _Constant(BasePredictor):
    def __init__(self) -> None:
        self.label_names, self.tta = list(NAMES), "none"
        self.tuner = ThresholdTuner()
        self.tuner.thresholds_ = np.full(3, 0.5)
        self.transforms = [lambda image: np.zeros((1, 3, 2, 2), np.float32)]

    def _predict_views(self, views) -> np.ndarray:
        return np.tile(np.array([[0.6, 0.2, 0.9]], np.float32), (len(views[0]), 1))


def _folder(root: Path, n: int = 4) -> Path:
    folder = root / "photos"
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (8, 8)).save(folder / f"{i}.png")
    return folder


def test_parts_of_an_older_record_layout_are_not_resumed_into_the_new_one(tmp_path: Path) -> None:
    job = StreamJob(ImageSource.open(_folder(tmp_path)), tmp_path / "p.csv", "csv", list(NAMES), np.full(3, 0.5),
                    LoaderSettings(chunk_size=2, progress=False))
    job.prepare(resume=False)
    manifest = job.folder.path / "manifest.json"
    older = {k: v for k, v in json.loads(manifest.read_text()).items() if k != "schema"}
    manifest.write_text(json.dumps(older))
    with pytest.raises(FashionStyleError, match=r"started with other settings \(schema: None, now "
                                                r"'fashionstyle.prediction/2'\)"):
        job.prepare(resume=True)


def test_a_streamed_job_names_each_record_by_the_image_as_given(tmp_path: Path) -> None:
    folder = _folder(tmp_path, 3)
    job = StreamJob(ImageSource.open(folder), tmp_path / "p.json", "json", list(NAMES), np.full(3, 0.5),
                    LoaderSettings(chunk_size=2, progress=False))
    job.prepare(resume=False)
    job.run(_Constant())
    job.merge()
    found = read_predictions(tmp_path / "p.json")
    assert [r.image for r in found.predictions] == [str(folder / f"{i}.png") for i in range(3)]
    assert found.predictions[0].labels == ["Dotted", "Red"]  # most probable first
    listed = tmp_path / "list.csv"
    listed.write_text("id,image\nx,photos/0.png\ny,photos/2.png\n")
    job = StreamJob(ImageSource.open(listed), tmp_path / "l.csv", "csv", list(NAMES), np.full(3, 0.5),
                    LoaderSettings(progress=False))
    job.prepare(resume=False)
    job.run(_Constant())
    job.merge()
    assert [r.image for r in read_predictions(tmp_path / "l.csv").predictions] == ["photos/0.png", "photos/2.png"]


def _predict(run: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", str(run), "--images", str(images), "--out", str(out), "--quiet", *extra]


@pytest.mark.slow
def test_predict_keeps_a_users_file_and_refuses_bad_names_before_writing(shared_run: TinyRun, tmp_path: Path,
                                                                         capsys) -> None:
    run, labels, _ = shared_run
    user = tmp_path / "labels_copy.csv"
    user.write_text(labels.read_text())
    for out, message in ((user, "exists and is not a prediction file; pass --overwrite"),
                         (tmp_path / "p.xlsx", "unknown extension .xlsx"),
                         (Path("-"), "not written to standard output")):
        assert main(_predict(run, labels, out)) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert user.read_text() == labels.read_text() and sorted(p.name for p in tmp_path.iterdir()) == [user.name]
    assert main(_predict(run, labels, user, "--overwrite")) == 0
    assert user.read_text().startswith("image,labels,Red,Striped,Dotted,error\n")


@pytest.mark.slow
def test_the_loser_of_two_resumes_is_told_another_predict_is_writing(shared_run: TinyRun, tmp_path: Path,
                                                                   capsys) -> None:
    run, labels, _ = shared_run
    out = tmp_path / "p.csv"
    with out_lock(out):  # the winner, still writing
        for extra in ((), ("--resume",)):
            assert main(_predict(run, labels, out, *extra)) == 2
            err = capsys.readouterr().err.strip()
            assert f"another predict is writing {out}" in err and "pass --resume" not in err
    assert not out.exists()
    assert main(_predict(run, labels, out, "--resume")) == 0 and out.is_file()
