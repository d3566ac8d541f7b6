"""The report's method beyond one model: single-label runs, label-wise best epoch, fusion."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TINY_TRAIN, make_image_set
from fashionstyle import FashionStyleError, Predictor, RunDir
from fashionstyle.cli import main
from fashionstyle.training.fusion import fuse_runs
from fashionstyle.training.labelwise import best_epochs
from fashionstyle.core.thresholds import ThresholdTuner

pytestmark = pytest.mark.slow  # every test uses runs trained in the module fixture


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("methods")
    labels = make_image_set(root / "data", n=40)
    base = ["train", "--labels", str(labels), *TINY_TRAIN, "--epochs", "3"]
    out = {"labels": labels, "images": sorted((root / "data" / "img").glob("*.jpg"))}
    for name, extra in {"multi": [], "single": ["--mode", "single"], "perlabel": ["--select", "per-label"],
                        "other": ["--seed", "1", "--lr", "3e-3"]}.items():
        out[name] = root / name
        assert main([*base, "--out", str(out[name]), *extra]) == 0
    return out


def test_single_label_run_predicts_like_any_run(runs) -> None:
    run = RunDir.open(runs["single"])
    members = run.members()
    assert [m.labels for m in members] == [[n] for n in LABELS]
    predictor = Predictor.from_run(run)
    probs = predictor.predict_proba(runs["images"][:5])
    assert probs.shape == (5, 3)
    for i, member in enumerate(members):  # each column is that label's own model
        alone = Predictor.from_run(member.model.parent).predict_proba(runs["images"][:5])
        np.testing.assert_allclose(probs[:, i], alone[:, 0], atol=1e-6)


def test_per_label_selection_picks_each_labels_best_epoch(runs) -> None:
    run = RunDir.open(runs["perlabel"])
    from fashionstyle.training.loop import read_history

    history = read_history(run)
    best = best_epochs(history, LABELS)
    for name in LABELS:
        scores = [float(r[f"fbeta_{name}"]) for r in history]
        assert scores[best[name] - 1] == max(scores)
    kept = sorted(int(p.stem[1:]) for p in (run / "epochs").glob("e*.pt"))
    assert kept == sorted(set(best.values()))  # only what the selection needs
    _, probs, _ = run.val_probs()
    epoch_probs = run.epoch_probs()
    for i, name in enumerate(LABELS):
        np.testing.assert_allclose(probs[:, i], epoch_probs[best[name]][:, i])
    ids, _, _ = run.val_probs()
    stored = Predictor.from_run(run).predict_proba([runs["labels"].parent / "img" / f"{i}.jpg" for i in ids])
    np.testing.assert_allclose(stored, probs, atol=1e-5)


def test_fusion_of_one_run_equals_that_run(runs, tmp_path: Path) -> None:
    fused = fuse_runs([runs["multi"]], tmp_path / "f1")
    original = RunDir.open(runs["multi"])
    np.testing.assert_allclose(fused.val_probs()[1], original.val_probs()[1], atol=1e-6)
    np.testing.assert_allclose(fused.thresholds().thresholds_, original.thresholds().thresholds_)
    a = Predictor.from_run(fused).predict_proba(runs["images"][:6])
    b = Predictor.from_run(original).predict_proba(runs["images"][:6])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_fused_thresholds_are_tuned_on_fused_probabilities(runs, tmp_path: Path) -> None:
    fused = fuse_runs([runs["multi"], runs["other"], runs["single"]], tmp_path / "f3", weights=[2, 1, 1])
    probs = [RunDir.open(runs[k]).val_probs()[1] for k in ("multi", "other", "single")]
    expected = (2 * probs[0] + probs[1] + probs[2]) / 4
    _, fused_probs, targets = fused.val_probs()
    np.testing.assert_allclose(fused_probs, expected, atol=1e-6)
    np.testing.assert_allclose(fused.thresholds().thresholds_,
                               ThresholdTuner(beta=2).fit(expected, targets).thresholds_)
    predicted = Predictor.from_run(fused).predict_proba(runs["images"][:4])
    parts = [Predictor.from_run(runs[k]).predict_proba(runs["images"][:4]) for k in ("multi", "other", "single")]
    np.testing.assert_allclose(predicted, (2 * parts[0] + parts[1] + parts[2]) / 4, atol=1e-5)
    # a fused run fuses again like any run
    again = fuse_runs([fused, runs["multi"]], tmp_path / "f4")
    np.testing.assert_allclose(again.val_probs()[1], (expected + probs[0]) / 2, atol=1e-6)


def test_fusion_refuses_other_labels_or_images(runs, tmp_path: Path) -> None:
    other = make_image_set(tmp_path / "d2", n=24, seed=5)
    assert main(["train", "--labels", str(other), "--out", str(tmp_path / "r2"), *TINY_TRAIN, "--epochs", "1"]) == 0
    with pytest.raises(FashionStyleError, match="validated on other images"):
        fuse_runs([runs["multi"], tmp_path / "r2"], tmp_path / "bad")
    with pytest.raises(FashionStyleError, match="weights"):
        fuse_runs([runs["multi"]], tmp_path / "bad2", weights=[1, 2])


def test_fuse_cli(runs, tmp_path: Path, capsys) -> None:
    assert main(["fuse", str(runs["multi"]), str(runs["perlabel"]), "--out", str(tmp_path / "fc")]) == 0
    assert "F2 tuned" in capsys.readouterr().out


def test_per_label_run_keeps_its_plain_best_epoch_run(runs) -> None:
    plain = RunDir.open(runs["perlabel"] / "best_epoch")
    best = RunDir.open(runs["perlabel"]).manifest()["best_epoch"]
    np.testing.assert_allclose(plain.val_probs()[1], RunDir(runs["perlabel"]).epoch_probs()[best])
    assert len(plain.members()) == 1
