"""`fashionstyle audit`: cleanlab's ranking on made-up held-out probabilities, issues.csv, --fix, errors."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TINY_TRAIN, load_bench, make_image_set
from fashionstyle.analysis.audit import label_scores, rank_pairs, read_issues
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner

FLIPS = [(5, 0), (17, 2)]  # (pool row, label) given wrong in the noisy file


def confident_probs(targets: np.ndarray, sure: list[tuple[int, int]] = (), seed: int = 0) -> np.ndarray:
    """Probabilities that agree with `targets` (0.05-0.2 for 0, 0.8-0.95 for 1; 0.01 / 0.99 at `sure`)."""
    noise = np.random.default_rng(seed).uniform(0.0, 0.15, targets.shape)
    noise[tuple(np.array(sure, dtype=int).reshape(-1, 2).T)] = -0.04
    return np.where(targets == 1, 0.95 - noise, 0.05 + noise).astype(np.float32)


def test_ranking_puts_obvious_flips_first() -> None:
    rng = np.random.default_rng(1)
    truth = (rng.random((300, 4)) < [0.5, 0.3, 0.15, 0.08]).astype(np.uint8)
    flips = [(3, 0), (40, 1), (41, 3), (150, 2), (299, 3)]
    probs = confident_probs(truth, flips)  # the model is sure where the given label is wrong
    given = truth.copy()
    for r, c in flips:
        given[r, c] ^= 1
    scores, flagged = label_scores(given, probs)
    assert scores.shape == flagged.shape == given.shape
    rows, cols = rank_pairs(scores, flagged)
    assert set(zip(rows[:5].tolist(), cols[:5].tolist())) == set(flips)
    assert flagged[tuple(np.array(flips).T)].all()
    assert flagged.sum() == len(flips)
    unsure = label_scores(given, confident_probs(truth))[1]  # confident learning flags only sure disagreements
    assert 0 < unsure.sum() < len(flips) and (unsure <= flagged).all()


def test_ranking_refuses_bad_arrays() -> None:
    with pytest.raises(FashionStyleError, match="must be"):
        label_scores(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(FashionStyleError, match="NaN"):
        label_scores(np.zeros((2, 2)), np.full((2, 2), np.nan))


def corrupt(labels: Path, out: Path, flips: list[tuple[int, int]]) -> list[tuple[str, str]]:
    """Copy of a made label file with (pool row, label) pairs flipped; returns their (id, label name)."""
    lines = labels.read_text().splitlines(keepends=True)
    pool = [n for n, line in enumerate(lines) if n and ",test," not in line]
    changed = []
    for r, c in flips:
        cells = lines[pool[r]].rstrip("\n").split(",")
        cells[2 + c] = "1" if cells[2 + c] == "0" else "0"
        lines[pool[r]] = ",".join(cells) + "\n"
        changed.append((Path(cells[0]).stem, LABELS[c]))
    out.write_text("".join(lines))
    return changed


def fake_run(path: Path, labels: Path, kind: str = "cv", sure: list[tuple[int, int]] = ()) -> Path:
    """A complete run whose held-out probabilities agree with the true labels of the non-test rows."""
    rows = list(csv.DictReader(labels.open()))
    pool = [r for r in rows if r["split"] != "test"]
    ids = [Path(r["image"]).stem for r in pool]
    targets = np.array([[int(r[n]) for n in LABELS] for r in pool], dtype=np.uint8)
    probs = confident_probs(targets, sure)
    run = RunDir.create(path)
    run.write_label_names(list(LABELS))
    run.write_val_probs(ids, probs, targets)
    run.write_thresholds(ThresholdTuner().fit(probs, targets))
    run.write_manifest(kind, complete=True)
    return run.path


@pytest.fixture
def noisy(tmp_path: Path) -> tuple[Path, Path, Path, list[tuple[str, str]]]:
    """(run, clean label file, noisy label file, flipped (id, label))."""
    clean = make_image_set(tmp_path / "data", n=48)
    noisy = tmp_path / "data" / "noisy.csv"
    changed = corrupt(clean, noisy, FLIPS)
    return fake_run(tmp_path / "cv", clean, sure=FLIPS), clean, noisy, changed


def test_audit_lists_the_flips_and_flip_restores_the_file(noisy, tmp_path: Path, capsys) -> None:
    run, clean, labels, changed = noisy
    issues, cleaned = tmp_path / "issues.csv", tmp_path / "fixed.csv"
    assert main(["audit", str(run), "--labels", str(labels), "--out", str(issues)]) == 0
    found = read_issues(issues)
    assert {(i.id, i.label) for i in found} == set(changed)  # only the flips are flagged
    header = issues.read_text().splitlines()[0]
    assert header == "image,label,given,probability,score,flagged,id"
    assert all(Path(i.image).is_file() and i.flagged for i in found)
    assert "not a cv run" not in capsys.readouterr().out
    assert main(["audit", str(run), "--labels", str(labels), "--out", str(issues), "--top", "2",
                 "--fix", "flip", "--cleaned", str(cleaned)]) == 0
    assert cleaned.read_bytes() == clean.read_bytes()  # flipping the flips back gives the true file


def test_top_lists_more_pairs_and_drop_removes_their_images(noisy, tmp_path: Path) -> None:
    run, _, labels, changed = noisy
    issues, cleaned = tmp_path / "issues.csv", tmp_path / "dropped.csv"
    assert main(["audit", str(run), "--labels", str(labels), "--out", str(issues), "--top", "10"]) == 0
    found = read_issues(issues)
    assert len(found) == 10 and [i.flagged for i in found] == [True] * 2 + [False] * 8
    assert {(i.id, i.label) for i in found[:2]} == set(changed)
    assert found[2].score >= found[1].score
    assert main(["audit", str(run), "--labels", str(labels), "--out", str(issues), "--top", "2",
                 "--fix", "drop", "--cleaned", str(cleaned)]) == 0
    kept = cleaned.read_text().splitlines(keepends=True)
    original = labels.read_text().splitlines(keepends=True)
    assert kept == [line for line in original if Path(line.split(",")[0]).stem not in {i for i, _ in changed}]
    assert len(kept) == len(original) - 2


def test_plain_run_is_audited_with_a_note(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=24)
    run = fake_run(tmp_path / "plain", labels, kind="model")
    assert main(["audit", str(run), "--labels", str(labels), "--out", str(tmp_path / "i.csv")]) == 0
    assert "note:" in capsys.readouterr().out


def test_a_label_with_one_class_is_left_out_with_a_note(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=24)
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[0]] + [line[:-1] + "1" for line in lines[1:]]) + "\n")  # Dotted: all 1
    run = fake_run(tmp_path / "cv", labels)
    issues = tmp_path / "issues.csv"
    assert main(["audit", str(run), "--labels", str(labels), "--out", str(issues), "--top", "1000"]) == 0
    out = capsys.readouterr().out
    assert "note: label Dotted left out: it is 1 on all 18 held-out images" in out
    found = read_issues(issues)
    assert len(found) == 18 * 2 and {i.label for i in found} == {"Red", "Striped"}
    given = np.ones((6, 2), dtype=np.uint8)
    given[:3, 0] = 0
    scores, flagged = label_scores(given, np.full((6, 2), 0.7))
    assert np.isnan(scores[:, 1]).all() and not flagged[:, 1].any() and not np.isnan(scores[:, 0]).any()


def test_audit_errors(noisy, tmp_path: Path, capsys) -> None:
    run, _, labels, _ = noisy
    out = str(tmp_path / "issues.csv")
    short = tmp_path / "data" / "short.csv"
    short.write_text("".join(labels.read_text().splitlines(keepends=True)[:10]))
    assert main(["audit", str(run), "--labels", str(short), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "lacks" in err and "'009'" in err and "Traceback" not in err
    assert main(["audit", str(run), "--labels", str(labels), "--out", out, "--fix", "flip"]) == 2
    assert "--cleaned" in capsys.readouterr().err
    assert main(["audit", str(run), "--labels", str(labels), "--out", out, "--top", "0"]) == 2
    assert main(["audit", str(run), "--labels", str(labels), "--out", out, "--fix", "flip",
                 "--cleaned", str(labels)]) == 2
    assert "would overwrite the input --labels" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "nowhere"), "--labels", str(labels), "--out", out]) == 2
    with pytest.raises(FashionStyleError, match="not an audit file"):
        read_issues(labels)


@pytest.mark.slow
def test_audit_and_noise_bench_on_a_tiny_cv_run(tmp_path: Path, capsys, monkeypatch) -> None:
    clean = make_image_set(tmp_path / "data", n=40)
    noisy, flips = tmp_path / "noisy.csv", tmp_path / "flips.csv"
    label_noise, audit_noise = load_bench("label_noise"), load_bench("audit_noise")
    monkeypatch.setattr(sys, "argv", ["label_noise.py", str(clean), "--out", str(noisy), "--flips", str(flips),
                                      "--rate", "0.2"])
    assert label_noise.main() == 0
    run = tmp_path / "cv"
    assert main(["cv", "--labels", str(noisy), "--out", str(run), "--folds", "2", *TINY_TRAIN, "--epochs", "1"]) == 0
    assert audit_noise.main([str(run), "--labels", str(noisy), "--flips", str(flips), "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    for method in ("cleanlab", "random", "|given - p|"):
        assert method in out
    assert main(["audit", str(run), "--labels", str(noisy), "--out", str(tmp_path / "issues.csv"),
                 "--top", "5"]) == 0
    assert len(read_issues(tmp_path / "issues.csv")) == 5
