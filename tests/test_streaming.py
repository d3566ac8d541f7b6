"""Streamed prediction: lazy lists, part files merged in order, resume after SIGKILL, Parquet, 2-process DDP."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TinyRun, TinyRuns
from fashionstyle import FashionStyleError, read_labels
from fashionstyle.cli import main
from fashionstyle.data.images.source import ImageSource
from fashionstyle.core.choices import OUTPUT_FORMATS
from fashionstyle.core import atomic
from fashionstyle.inference.jobs import await_merge
from fashionstyle.inference.outputs import merge_parts, output_format, write_part, write_predictions
from fashionstyle.inference.parts import PartsFolder
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.inference.streaming import LoaderSettings, Progress, StreamJob
from fashionstyle.core.thresholds import ThresholdTuner

pq = pytest.importorskip("pyarrow.parquet")


def torch_has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
NAMES = ["Red", "Striped", "Dotted"]


@pytest.fixture(scope="module")
def made(tiny_runs: TinyRuns) -> TinyRun:
    """The session's 40-image tiny run; read-only (a test that writes into it takes tiny_runs.copy())."""
    return tiny_runs.get(40)


def _rows(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    probs = np.random.default_rng(seed).random((n, 3)).astype(np.float32)
    return [f"img{i}" for i in range(n)], probs, (probs >= 0.5).astype(np.uint8)


def _same_file(a: Path, b: Path, fmt: str) -> None:
    if fmt == "parquet":
        left, right = pq.read_table(a), pq.read_table(b)
        assert left.equals(right) and left.schema.metadata == right.schema.metadata
    else:
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS.names)
@pytest.mark.parametrize("sizes", [(3, 0, 4, 1), (0, 0), (8,)])
def test_parts_merged_in_order_equal_one_write(tmp_path: Path, fmt: str, sizes: tuple[int, ...]) -> None:
    ids, probs, preds = _rows(sum(sizes))
    thresholds = np.full(3, 0.5)
    whole = write_predictions(tmp_path / "whole", fmt, ids, probs, preds, NAMES, thresholds)
    parts, start = [], 0
    for k, size in enumerate(sizes):
        rows = slice(start, start + size)
        parts.append(write_part(tmp_path / f"part{k}", fmt, ids[rows], probs[rows], preds[rows], NAMES, thresholds))
        start += size
    _same_file(merge_parts(parts, tmp_path / "merged", fmt, NAMES, thresholds), whole, fmt)


def _ranked(prob: np.ndarray, pred: np.ndarray) -> list[str]:
    """The decided names, most probable first."""
    return [NAMES[j] for j in np.argsort(-prob, kind="stable") if pred[j]]


def test_json_output_has_the_thresholds_once_and_a_record_per_image(tmp_path: Path) -> None:
    ids, probs, preds = _rows(4)
    images = [f"photos/{i}.jpg" for i in ids]
    found = json.loads(write_predictions(tmp_path / "p.json", "json", ids, probs, preds, NAMES,
                                         np.array([0.5, 0.4, 0.3]), images=images).read_text())
    assert list(found) == ["schema", "label_names", "thresholds", "predictions"]
    assert found["schema"] == "fashionstyle.prediction/2" and found["label_names"] == NAMES
    assert found["thresholds"] == {"Red": 0.5, "Striped": 0.4, "Dotted": 0.3}
    records = found["predictions"]
    assert [r["image"] for r in records] == images and all(list(r) == ["image", "labels", "scores", "error"]
                                                           for r in records)
    assert [r["labels"] for r in records] == [_ranked(p, d) for p, d in zip(probs, preds)]
    assert list(records[0]["scores"]) == NAMES and records[0]["scores"]["Red"] == pytest.approx(probs[0, 0], abs=1e-6)


def test_parquet_has_the_records_columns_and_the_thresholds_once_in_its_metadata(tmp_path: Path) -> None:
    ids, probs, preds = _rows(5)
    table = pq.read_table(write_predictions(tmp_path / "p.parquet", "parquet", ids, probs, preds, NAMES,
                                            np.full(3, 0.5)))
    assert table.column_names == ["image", "labels", *NAMES, "error"]
    assert all(str(table.schema.field(n).type) == "float" for n in NAMES)
    np.testing.assert_array_equal(table.column("Red").to_numpy(), probs[:, 0])
    assert table.column("labels").to_pylist()[1] == _ranked(probs[1], preds[1])
    assert table.column("error").to_pylist() == [None] * 5
    meta = json.loads(table.schema.metadata[b"fashionstyle"])
    assert meta == {"schema": "fashionstyle.prediction/2", "label_names": NAMES,
                    "thresholds": {n: 0.5 for n in NAMES}}


def test_lazy_sources_list_what_read_labels_reads(tmp_path: Path, made) -> None:
    _, labels, images = made
    source = ImageSource.open(labels)
    table = read_labels(labels)
    assert len(source) == len(table) and list(source) == list(zip(table.ids, table.images))
    jd = tmp_path / "jd.txt"
    jd.write_text("".join(f"{p.stem},http://x/{p.name}\n" for p in images[:5]))
    assert list(ImageSource.open(jd, labels.parent / "img")) == list(zip(read_labels(jd, labels.parent / "img",
                                                                                   NAMES).ids, images[:5]))
    folder = ImageSource.open(labels.parent / "img")
    assert list(folder) == [(p.stem, p) for p in images]
    assert [len(c) for c in folder.chunks(15)] == [15, 15, 10]


@pytest.mark.parametrize("text, message", [
    ("image,id\n", "no images"), ("a.jpg,id\nb.jpg\n", "expected 2 fields"),
    ("id,url\n,http://x\n", "empty id"), ("only\n", "expected id,url"),
    ("a,http://x/a.jpg\nb,http://x/b.jpg\na,http://x/c.jpg\n", r"list.csv:3: duplicate id 'a' \(first at line 1\)"),
    ("image\nmen/001.jpg\nwomen/001.jpg\n", r"list.csv:3: duplicate id '001' \(first at line 2\)"),
])
def test_bad_lists_fail_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(text)
    with pytest.raises(FashionStyleError, match=message):
        list(ImageSource.open(path))


def test_a_folder_with_one_name_in_two_formats_is_refused(tmp_path: Path) -> None:
    for name in ("a.jpg", "a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(FashionStyleError, match=r"a.png: duplicate id 'a' \(first at a.jpg\)"):
        ImageSource.open(tmp_path)


def test_ids_with_commas_or_quotes_are_quoted_in_csv_and_jd(tmp_path: Path) -> None:
    ids, probs, preds = ['look, 1', 'say "hi"', "plain"], *_rows(3)[1:]
    for fmt in ("csv", "jd"):
        with write_predictions(tmp_path / fmt, fmt, ids, probs, preds, NAMES).open(newline="") as f:
            rows = list(csv.reader(f))[1 if fmt == "csv" else 0:]
        assert [r[0] for r in rows] == ids and all(len(r) == 1 + len(NAMES) + 2 * (fmt == "csv") for r in rows)


def test_rank_0_stops_waiting_when_another_rank_failed(tmp_path: Path) -> None:
    folder = PartsFolder(tmp_path / "out.csv.parts")
    folder.prepare({"images": 4}, resume=False)
    folder.mark_failed(1, RuntimeError("CUDA out of memory"))
    with pytest.raises(FashionStyleError, match="rank 1 failed: RuntimeError: CUDA out of memory.*--resume"):
        folder.wait_for(chunks=2, poll_s=0.01)
    folder.prepare({"images": 4}, resume=True)  # a resume gives the failed rank another try
    assert not list(folder.path.glob("rank-*.failed"))


def test_progress_line_gives_rate_and_eta() -> None:
    lines: list[str] = []
    progress = Progress(100, True, "[rank 1] ", out=lines.append)
    progress.skip(20)
    progress.step(30)
    assert lines[0].startswith("[rank 1] predict: 50/100 images, ") and " img/s, ETA " in lines[0]


def _predict(run: Path, labels: Path, out: Path, *extra: str, quiet: bool = True) -> list[str]:
    return ["predict", str(run), "--images", str(labels), "--out", str(out), "--batch-size", "4",
            *(["--quiet"] if quiet else []), *extra]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunked_prediction_equals_one_chunk(tmp_path: Path, made, fmt: str) -> None:
    run, labels, _ = made
    assert main(_predict(run, labels, tmp_path / "one", "--format", fmt, "--chunk-size", "1000")) == 0
    assert main(_predict(run, labels, tmp_path / "many", "--format", fmt, "--chunk-size", "8")) == 0  # whole batches
    _same_file(tmp_path / "many", tmp_path / "one", fmt)
    assert not (tmp_path / "many.parts").exists()


def test_a_tune_during_predict_cannot_make_the_files_thresholds_and_decisions_disagree(tmp_path: Path, tiny_runs,
                                                                                     monkeypatch) -> None:
    from fashionstyle.inference import jobs

    run, labels, _ = tiny_runs.copy(tmp_path, 40)
    thresholds = json.loads((run / "thresholds.json").read_text())
    launch = jobs.launch_ranks

    def tuned_meanwhile(*args):  # `tune` rewrites the run after the job recorded its thresholds
        atomic.write_json(run / "thresholds.json", {**thresholds, "thresholds": [1.0] * len(thresholds["thresholds"])})
        return launch(*args)

    monkeypatch.setattr(jobs, "launch_ranks", tuned_meanwhile)
    assert main(_predict(run, labels, tmp_path / "tags.json")) == 0
    found = json.loads((tmp_path / "tags.json").read_text())
    assert list(found["thresholds"].values()) == pytest.approx(thresholds["thresholds"])
    decided_at = found["thresholds"]
    assert [set(r["labels"]) for r in found["predictions"]] == [
        {n for n, p in r["scores"].items() if p >= decided_at[n]} for r in found["predictions"]]
    assert any(r["labels"] for r in found["predictions"])  # not decided at the thresholds of 1 written meanwhile


def test_unfinished_parts_need_resume_and_the_same_settings(tmp_path: Path, made, capsys) -> None:
    run, labels, _ = made
    parts = tmp_path / "out.csv.parts"
    parts.mkdir()
    assert main(_predict(run, labels, tmp_path / "out.csv", "--format", "csv")) == 2
    assert "pass --resume" in capsys.readouterr().err
    (parts / "manifest.json").write_text(json.dumps({"format": "jd"}))
    assert main(_predict(run, labels, tmp_path / "out.csv", "--format", "csv", "--resume")) == 2
    assert "started with other settings" in capsys.readouterr().err


def test_a_resume_with_another_image_folder_is_refused(tmp_path: Path, made, capsys, monkeypatch) -> None:
    run, labels, images = made
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p.stem},http://x/{p.name}\n" for p in images))
    elsewhere = shutil.copytree(labels.parent / "img", tmp_path / "copy")
    out = tmp_path / "p.txt"
    with monkeypatch.context() as crash:  # every part written, then the job dies before the merge
        crash.setattr(StreamJob, "merge", lambda self: (_ for _ in ()).throw(FashionStyleError("crashed")))
        assert main(_predict(run, listing, out, "--image-dir", str(labels.parent / "img"))) == 2
    capsys.readouterr()
    assert main(_predict(run, listing, out, "--image-dir", str(elsewhere), "--resume")) == 2
    assert "started with other settings (source:" in capsys.readouterr().err
    assert main(_predict(run, listing, out, "--image-dir", str(labels.parent / "img"), "--resume")) == 0
    assert len(out.read_text().splitlines()) == len(images)  # a JD list gives a JD submission


@pytest.mark.parametrize("flags, message", [
    (["--chunk-size", "0"], "--chunk-size: must be at least 1, got 0"),
    (["--strategy", "dpp"], "invalid choice: 'dpp'"),
    (["--accelerator", "tpu9"], "invalid choice: 'tpu9'"),
])
def test_bad_placement_or_chunk_flags_are_one_line(tmp_path: Path, made, capsys, flags, message) -> None:
    run, labels, _ = made
    assert main(_predict(run, labels, tmp_path / "p.csv", *flags)) == 2
    assert message in capsys.readouterr().err


def test_a_missing_gpu_is_an_error_not_a_cpu_run(tmp_path: Path, made, capsys) -> None:
    if torch_has_gpu():
        pytest.skip("this machine has a GPU")
    run, labels, _ = made
    assert main(_predict(run, labels, tmp_path / "p.csv", "--accelerator", "gpu")) == 2
    assert "--accelerator gpu: no such device on this machine" in capsys.readouterr().err


def test_a_missing_model_file_is_one_line(tmp_path: Path, made, capsys) -> None:
    run, labels, _ = made
    copy = shutil.copytree(run, tmp_path / "run")
    (copy / "model.pt").unlink()
    assert main(_predict(copy, labels, tmp_path / "p.csv")) == 2
    assert "model.pt: model file not found" in capsys.readouterr().err


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fashionstyle.cli", *args]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, made) -> None:
    run, labels, _ = made
    many = tmp_path / "list.csv"  # 400 rows: the 40 images ten times over, with their own ids
    rows = labels.read_text().splitlines()
    many.write_text("id,image\n" + "".join(f"{k}_{r.split(',')[0].split('/')[-1]},{labels.parent / r.split(',')[0]}\n"
                                            for k in range(10) for r in rows[1:]))
    args = _predict(run, many, tmp_path / "killed.csv", "--format", "csv", "--chunk-size", "20")
    proc = subprocess.Popen(_cli(*args), env={**os.environ, "HF_HUB_OFFLINE": "1"})
    parts = tmp_path / "killed.csv.parts"
    deadline = time.monotonic() + 300
    while len(list(parts.glob("part-??????"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("part-??????")))
    assert 3 <= done < 20 and not (tmp_path / "killed.csv").exists()
    assert main(args + ["--resume"]) == 0
    assert main(_predict(run, many, tmp_path / "whole.csv", "--format", "csv", "--chunk-size", "20")) == 0
    assert (tmp_path / "killed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert len((tmp_path / "whole.csv").read_text().splitlines()) == 401


@pytest.mark.slow
def test_two_process_prediction_and_evaluation_equal_one_process(tmp_path: Path, tiny_runs: TinyRuns) -> None:
    run, labels, _ = tiny_runs.copy(tmp_path, n=40)  # evaluate writes into the run
    # one thread per process in both, as Lightning gives each of 2 ranks on 2 cores: the same float32 sums
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    for fmt in ("csv", "parquet"):
        one = _predict(run, labels, tmp_path / f"one.{fmt}", "--format", fmt, "--chunk-size", "7")
        assert subprocess.run(_cli(*one), env=env, timeout=600).returncode == 0
        two = _predict(run, labels, tmp_path / f"two.{fmt}", "--format", fmt, "--chunk-size", "7", *ddp, quiet=False)
        result = subprocess.run(_cli(*two), env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "[rank 1] predict: 19/19 images" in result.stdout  # chunks 1, 3, 5 of 7, 7, 7, 7, 7, 5
        _same_file(tmp_path / f"two.{fmt}", tmp_path / f"one.{fmt}", fmt)
    evaluate = ["evaluate", str(run), "--labels", str(labels), "--split", "all", "--quiet"]
    assert main(evaluate) == 0
    single = json.loads((run / "eval_all.json").read_text())
    result = subprocess.run(_cli(*evaluate[:-1], *ddp), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[rank 1] predict: 20/20 images" in result.stdout
    double = json.loads((run / "eval_all.json").read_text())
    assert double["n_images"] == single["n_images"] == 40
    np.testing.assert_allclose(double["fbeta"], single["fbeta"])
    assert not list(run.glob(".eval_*"))


# -- issue 19: output format from --out, CSV injection, damaged parts, folder listing, progress per batch ----------
@pytest.mark.parametrize("out, fmt, expected", [
    ("p.parquet", None, "parquet"), ("p.JSON", None, "json"), ("p.csv", None, "csv"), ("sub.txt", None, "jd"),
    ("p", None, "jd"), ("p", "json", "json"), ("sub.csv", "jd", "jd"), ("p.txt", "csv", "csv"),
    ("p.csv.gz", None, "csv"), ("p.json.GZ", None, "json"), ("sub.txt.gz", None, "jd"),
])
def test_output_format_follows_the_extension(out: str, fmt: str | None, expected: str) -> None:
    assert output_format(out, fmt) == expected


@pytest.mark.parametrize("out, fmt", [("x.parquet", "csv"), ("x.json", "jd"), ("x.csv", "parquet"), ("x.txt", "json")])
def test_a_format_contradicting_the_extension_is_refused(out: str, fmt: str) -> None:
    with pytest.raises(FashionStyleError, match=f"--format {fmt} contradicts --out {out}"):
        output_format(out, fmt)


def test_predict_writes_the_format_its_out_names(tmp_path: Path, made, capsys) -> None:
    run, labels, _ = made
    assert main(_predict(run, labels, tmp_path / "p.parquet")) == 0
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 40
    assert main(_predict(run, labels, tmp_path / "p.json")) == 0
    assert len(json.loads((tmp_path / "p.json").read_text())["predictions"]) == 40
    capsys.readouterr()
    assert main(_predict(run, labels, tmp_path / "x.parquet", "--format", "csv")) == 2
    err = capsys.readouterr().err
    assert "--format csv contradicts --out" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.parquet").exists()


def test_csv_escapes_formula_ids_and_lists_the_predicted_labels_jd_keeps_ids(tmp_path: Path) -> None:
    ids = ["=cmd|' -C calc'!A0", "+1+cmd", "-2-cmd", "@SUM(A1)", "\tx", "\rx", "plain", "a=b", "-12", "+4.5e3"]
    probs = np.tile(np.array([[0.9, 0.1, 0.6]], np.float32), (len(ids), 1))
    preds = (probs >= 0.5).astype(np.uint8)
    with write_predictions(tmp_path / "p.csv", "csv", ids, probs, preds, ["=Red", *NAMES[1:]]).open(newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["image", "labels", "'=Red", "Striped", "Dotted", "error"]
    assert [r[0] for r in rows] == ["'" + i for i in ids[:6]] + ids[6:]  # plain numbers read as numbers
    assert {r[1] for r in rows} == {"'=Red;Dotted"}
    with write_predictions(tmp_path / "p.txt", "jd", ids, probs, preds, NAMES).open(newline="") as f:
        assert [r[0] for r in csv.reader(f)] == ids  # the contest scores by exact ids: not escaped


def _interrupted(run: Path, labels: Path, out: Path, monkeypatch, *extra: str) -> PartsFolder:
    """Every part of `predict` written, then the job dies before the merge."""
    with monkeypatch.context() as crash:
        crash.setattr(StreamJob, "merge", lambda self: (_ for _ in ()).throw(FashionStyleError("crashed")))
        assert main(_predict(run, labels, out, "--chunk-size", "8", *extra)) == 2
    return PartsFolder.beside(out)


@pytest.mark.parametrize("fmt, damage", [("csv", "truncate"), ("csv", "garbage"), ("json", "truncate"),
                                         ("parquet", "garbage"), ("csv", "no record")])
def test_a_damaged_part_is_computed_again_on_resume(tmp_path: Path, made, monkeypatch, capsys, fmt, damage) -> None:
    run, labels, _ = made
    whole = tmp_path / f"whole.{fmt}"
    assert main(_predict(run, labels, whole, "--chunk-size", "8")) == 0
    out = tmp_path / f"out.{fmt}"
    folder = _interrupted(run, labels, out, monkeypatch)
    part = folder.part(1)
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:len(part.read_bytes()) // 2 + 3])
    elif damage == "garbage":
        part.write_bytes(part.read_bytes()[:40] + os.urandom(200))
    else:
        folder.record(1).unlink()
    capsys.readouterr()
    assert main(_predict(run, labels, out, "--chunk-size", "8", "--resume")) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "part-000001" in warnings[0] and "computing it again" in warnings[0]
    _same_file(out, whole, fmt)


def test_a_part_changed_after_its_record_is_not_merged(tmp_path: Path) -> None:
    folder = PartsFolder(tmp_path / "out.csv.parts")
    folder.prepare({"images": 5}, resume=False, sizes=[3, 2])
    ids, probs, preds = _rows(5)
    for k, rows in enumerate([slice(0, 3), slice(3, 5)]):
        write_part(folder.part(k), "csv", ids[rows], probs[rows], preds[rows], NAMES)
        folder.commit(k, len(ids[rows]), 0)
    folder.verify([3, 2])
    with pytest.raises(FashionStyleError, match="record does not count the chunk's 4 images"):
        folder.verify([3, 4])
    folder.part(1).write_text(folder.part(1).read_text()[:-5])
    with pytest.raises(FashionStyleError, match=r"part-000001: its checksum differs .*pass --resume"):
        folder.verify([3, 2])
    assert folder.prepare({"images": 5}, resume=True, sizes=[3, 2]) == 1 and not folder.part(1).exists()


def _folder_of_odd_entries(root: Path) -> Path:
    """Two JPEGs, a TIFF, a sub-folder with a PNG, a folder named x.jpg, a broken link, a text file."""
    folder = root / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.jpg").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.JPG", "c.tif", "sub/d.png"):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / name)
    (folder / "gone.jpg").symlink_to(folder / "missing.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_on_a_folder_lists_every_entry_it_leaves_out(tmp_path: Path, made, capsys) -> None:
    run, _, _ = made
    folder = _folder_of_odd_entries(tmp_path)
    out = tmp_path / "p.csv"
    assert main(_predict(run, folder, out)) == 0
    assert [r.split(",")[0] for r in out.read_text().splitlines()[1:]] == [str(folder / n) for n in ("a.jpg", "b.JPG",
                                                                                                      "c.tif")]
    assert "left out 4 folder entries that are not images" in capsys.readouterr().out
    skipped = {row[1]: row[2] for row in csv.reader(Path(f"{out}.skipped.txt").open())}
    assert set(skipped) == {str(folder / n) for n in ("gone.jpg", "notes.txt", "sub", "x.jpg")}
    assert "broken" in skipped[str(folder / "gone.jpg")] and "--recursive" in skipped[str(folder / "sub")]
    assert main(_predict(run, folder, tmp_path / "r.csv", "--recursive")) == 0
    assert [r.split(",")[0] for r in (tmp_path / "r.csv").read_text().splitlines()[1:]] == [
        str(folder / n) for n in ("a.jpg", "b.JPG", "c.tif", "sub/d.png")]


def test_a_folder_resumes_with_the_output_inside_it_but_not_with_other_images(tmp_path: Path, made, monkeypatch,
                                                                             capsys) -> None:
    run, _, images = made
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images[:10]:
        shutil.copy(image, folder / image.name)
    _interrupted(run, folder, folder / "p.csv", monkeypatch)  # OUT.parts/ made in the folder it lists
    assert main(_predict(run, folder, folder / "p.csv", "--chunk-size", "8", "--resume")) == 0
    assert len((folder / "p.csv").read_text().splitlines()) == 11
    assert not (folder / "p.csv.skipped.txt").exists()  # its own parts folder is not a left-out entry
    assert main(_predict(run, folder, folder / "p.csv")) == 0  # again, beside its own output
    assert not (folder / "p.csv.skipped.txt").exists()
    _interrupted(run, folder, folder / "q.csv", monkeypatch)
    (folder / images[0].name).unlink()
    capsys.readouterr()
    assert main(_predict(run, folder, folder / "q.csv", "--chunk-size", "8", "--resume")) == 2
    assert "started with other settings (images: 10, now 9)" in capsys.readouterr().err


def test_predict_takes_one_image(tmp_path: Path, made) -> None:
    run, _, images = made
    assert main(_predict(run, images[3], tmp_path / "one.txt")) == 0
    assert (tmp_path / "one.txt").read_text().startswith(f"{images[3].stem},")


class _Constant(BasePredictor):
    """A model-free predictor: every image gets the same probabilities."""

    def __init__(self) -> None:
        self.label_names, self.tta = list(NAMES), "none"
        self.tuner = ThresholdTuner()
        self.tuner.thresholds_ = np.full(3, 0.5)
        self.transforms = [lambda image: np.zeros((1, 3, 2, 2), np.float32)]

    def _predict_views(self, views) -> np.ndarray:
        return np.full((len(views[0]), 3), 0.7, np.float32)


def test_progress_moves_per_batch_within_a_chunk(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (8, 8)).save(folder / f"{i}.png")
    monkeypatch.setattr(Progress, "LINE_EVERY_S", 0.0)  # a line per batch, as a terminal's bar moves
    job = StreamJob(ImageSource.open(folder), tmp_path / "p.csv", "csv", list(NAMES), np.full(3, 0.5),
                    LoaderSettings(batch_size=3, chunk_size=10))
    job.prepare(resume=False)
    job.run(_Constant())
    done = [int(line.split()[1].split("/")[0]) for line in capsys.readouterr().out.splitlines()]
    assert done[:4] == [3, 6, 9, 10]


def test_a_rank_waiting_for_the_merge_gets_the_file_or_rank_0s_failure_as_a_refusal(tmp_path) -> None:
    out, key = tmp_path / "probs.npy", {"run": "r", "images": 2}
    atomic.write_json(out.with_suffix(".json"), {"failed": "disk full", "key": {"run": "another"}})
    stale = threading.Timer(0.05, lambda: atomic.write_json(out.with_suffix(".json"), {"failed": "disk full",
                                                                                      "key": key}))
    stale.start()  # another job's failure is not this one's: it waits on for its own record
    with pytest.raises(FashionStyleError, match="rank 0 could not merge the probabilities: disk full"):
        await_merge(out, key, poll_s=0.01)
    np.save(out, np.ones((2, 3), np.float32))
    atomic.write_json(out.with_suffix(".json"), key)
    merged = await_merge(out, key, poll_s=0.01)
    assert merged.shape == (2, 3) and isinstance(merged, np.memmap)
