"""Cross-validation: out-of-fold probabilities, thresholds tuned on them, K models averaged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_TRAIN, make_image_set
from fashionstyle import Predictor, RunDir, ThresholdTuner
from fashionstyle.cli import main
from fashionstyle.training.cv import stratified_folds


def test_folds_are_balanced_and_stratified() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((500, 4)) < [0.5, 0.1, 0.04, 0.3]).astype(np.uint8)
    fold = stratified_folds(targets, 5, seed=1)
    assert np.bincount(fold).tolist() == [100] * 5
    for label in range(4):
        per_fold = np.bincount(fold[targets[:, label] == 1], minlength=5)
        assert per_fold.max() - per_fold.min() <= max(3, per_fold.mean() * 0.5)


@pytest.mark.slow
def test_cv_oof_covers_every_labelled_image_once(tmp_path: Path) -> None:
    labels = make_image_set(tmp_path / "data", n=40)  # 30 train/val rows, 10 test rows
    (labels.parent / "labels.yaml").write_text("operating_points:\n  one: {max_labels: 1}\n")
    run_path = tmp_path / "cv"
    assert main(["cv", "--labels", str(labels), "--out", str(run_path), "--folds", "3",
                 *TINY_TRAIN, "--epochs", "1"]) == 0
    run = RunDir.open(run_path)
    ids, oof, targets = run.val_probs()
    lines = labels.read_text().splitlines()[1:]
    pool = sorted(Path(line.split(",")[0]).stem for line in lines if ",test," not in line)
    assert sorted(ids) == pool and len(set(ids)) == len(ids)  # every labelled image exactly once
    assert not np.isnan(oof).any()
    held = [RunDir.open(run_path / "folds" / str(k)).val_probs()[0] for k in range(3)]
    assert sorted(sum(held, [])) == pool
    np.testing.assert_allclose(run.thresholds().thresholds_, ThresholdTuner().fit(oof, targets).thresholds_)
    np.testing.assert_allclose(run.contents().point("one").thresholds, run.thresholds().thresholds_)  # F2, out of fold
    images = sorted((labels.parent / "img").glob("*.jpg"))[:4]
    averaged = np.mean([Predictor.from_run(run_path / "folds" / str(k)).predict_proba(images)
                        for k in range(3)], axis=0)
    np.testing.assert_allclose(Predictor.from_run(run).predict_proba(images), averaged, atol=1e-5)


def test_resuming_with_another_number_of_folds_is_refused_before_writing(tmp_path, capsys) -> None:
    from fashionstyle.cli import main
    from fashionstyle.core.run import RunDir

    run = RunDir.create(tmp_path / "cv")
    run.write_manifest("cv", complete=False, folds=3)
    before = (run / "manifest.json").read_bytes()
    assert main(["cv", "--labels", str(tmp_path / "missing.csv"), "--out", str(run.path), "--folds", "4",
                 "--resume"]) == 2
    assert "was started with --folds 3, not 4" in capsys.readouterr().err
    assert (run / "manifest.json").read_bytes() == before
