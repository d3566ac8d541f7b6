"""Per-label greedy ensemble selection: the pure per-label choice, then real tiny runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TINY_TRAIN, make_image_set
from fashionstyle import FashionStyleError, Predictor, RunDir
from fashionstyle.training import selection as selection_module
from fashionstyle.cli import main
from fashionstyle.training.fusion import fuse_runs
from fashionstyle.training.selection import greedy_select, select_runs, selection_table
from fashionstyle.core.thresholds import ThresholdTuner


def brute_fbeta(scores: np.ndarray, targets: np.ndarray, beta: float = 2.0) -> float:
    """Best F-beta of `scores >= t` over every score as t, written out plainly."""
    y = np.asarray(targets).astype(bool)
    best = 0.0
    for t in scores:
        pred = scores >= t
        tp, fp, fn = np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y)
        denom = (1 + beta**2) * tp + beta**2 * fn + fp
        best = max(best, (1 + beta**2) * tp / denom if denom else 0.0)
    return best


def average(probs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return sum(c * p for c, p in zip(counts, probs)) / sum(counts)


# -- the pure per-label selection -------------------------------------------------
def test_selection_never_scores_below_the_best_single_candidate() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        k, n = int(rng.integers(1, 5)), int(rng.integers(6, 40))
        targets = (rng.random(n) < rng.uniform(0.1, 0.5)).astype(np.uint8)
        targets[rng.integers(n)] = 1  # at least one positive
        # scores with some signal (none to strong) and noise per candidate, rounded:
        # coarse scores make ties, fine ones make many distinct thresholds
        signal = rng.uniform(0, 2) * (2.0 * targets - 1)
        probs = 1 / (1 + np.exp(-(signal + rng.normal(size=(k, n)))))
        probs = probs.round(int(rng.integers(1, 4)))
        beta, rounds = float(rng.choice([0.5, 1.0, 2.0])), int(rng.integers(0, 6))
        counts = greedy_select(list(probs), targets, beta, rounds)
        assert counts.shape == (k,) and counts.min() >= 0 and 1 <= counts.sum() <= 1 + rounds
        singles = [brute_fbeta(p, targets, beta) for p in probs]
        chosen = brute_fbeta(average(probs, counts), targets, beta)
        assert chosen >= max(singles) - 1e-12, trial
        if counts.sum() == 1:  # stopped at once: the first best single candidate
            assert int(np.argmax(counts)) == int(np.argmax(singles))
        else:  # every addition was a strict gain, so the end beats the start
            assert chosen > max(singles), trial


def test_one_candidate_is_returned_alone() -> None:
    rng = np.random.default_rng(1)
    probs, targets = rng.random(20), (rng.random(20) < 0.3).astype(int)
    targets[0] = 1
    np.testing.assert_array_equal(greedy_select([probs], targets), [1])


def test_greedy_adds_with_replacement_until_no_gain() -> None:
    a = np.array([0.5, 0.9, 0.2, 0.5, 0.9, 0.4])
    b = np.array([0.9, 0.7, 0.7, 0.7, 0.6, 0.7])
    y = np.array([1, 1, 0, 0, 0, 0])
    # By hand (F2 = 5 TP / (5 TP + 4 FN + FP)): a alone 10/12 (thr 0.5: 2 TP, 2 FP), b alone 10/13;
    # (a + b) / 2 scores positives 0.7, 0.8 above all negatives but 0.75: 10/11;
    # (a + 2b) / 3 puts both positives (0.767) above every negative (<= 0.7): 1.
    assert brute_fbeta(a, y) == pytest.approx(10 / 12) and brute_fbeta(b, y) == pytest.approx(10 / 13)
    assert brute_fbeta((a + b) / 2, y) == pytest.approx(10 / 11)
    assert brute_fbeta((a + 2 * b) / 3, y) == 1.0
    np.testing.assert_array_equal(greedy_select([a, b], y), [1, 2])
    np.testing.assert_array_equal(greedy_select([a, b], y, max_rounds=1), [1, 1])
    np.testing.assert_array_equal(greedy_select([a, b], y, max_rounds=0), [1, 0])
    np.testing.assert_array_equal(greedy_select([b, a], y), [2, 1])  # order does not matter


def test_label_without_positives_averages_every_candidate() -> None:
    probs = np.random.default_rng(2).random((3, 10))
    np.testing.assert_array_equal(greedy_select(probs, np.zeros(10, int)), [1, 1, 1])


def test_greedy_select_rejects_bad_input() -> None:
    y = np.array([1, 0, 0])
    with pytest.raises(FashionStyleError, match="max_rounds"):
        greedy_select([np.ones(3)], y, max_rounds=-1)
    with pytest.raises(FashionStyleError, match="same number"):
        greedy_select([np.ones(3), np.ones(4)], y)
    with pytest.raises(FashionStyleError, match="targets"):
        greedy_select([np.ones(3)], np.array([1, 0]))
    with pytest.raises(FashionStyleError, match="beta"):
        greedy_select([np.ones(3)], y, beta=0)


# -- whole runs ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("selection")
    labels = make_image_set(root / "data", n=48)
    paths = []
    for seed, lr in ((0, "1e-3"), (1, "3e-3"), (2, "1e-3")):
        paths.append(root / f"seed{seed}")
        assert main(["train", "--labels", str(labels), *TINY_TRAIN, "--epochs", "1", "--seed", str(seed),
                     "--lr", lr, "--out", str(paths[-1])]) == 0
    return {"runs": paths, "img": root / "data" / "img"}


def val_images(run: RunDir, img: Path) -> list[Path]:
    return [img / f"{i}.jpg" for i in run.val_probs()[0]]


def check_selected_run(selected: RunDir, runs: list[Path], img: Path, greedy: bool = True) -> dict:
    """Stored probabilities = the count-weighted averages of selection.json; Predictor gives them."""
    assert selected.manifest()["kind"] == "selected" and selected.manifest()["complete"]
    info = json.loads((selected / "selection.json").read_text())
    paths = [str(p.resolve()) for p in runs]
    assert info["runs"] == paths
    ids, probs, targets = selected.val_probs()
    candidates = [RunDir.open(p).val_probs()[1].astype(np.float64) for p in runs]
    for j, name in enumerate(LABELS):
        entry = info["labels"][name]
        counts = [entry["counts"].get(p, 0) for p in paths]
        np.testing.assert_allclose(probs[:, j], average([c[:, j] for c in candidates], counts), atol=1e-6)
        if greedy:  # (not where a test forces the counts)
            assert entry["fbeta"] >= entry["best_single_fbeta"]
        assert entry["best_single_fbeta"] == pytest.approx(max(brute_fbeta(c[:, j], targets[:, j])
                                                               for c in candidates))
        assert entry["fbeta"] == pytest.approx(brute_fbeta(probs[:, j].astype(np.float64), targets[:, j]))
    np.testing.assert_allclose(selected.thresholds().thresholds_,
                               ThresholdTuner(beta=2).fit(probs, targets).thresholds_, atol=1e-6)
    predicted = Predictor.from_run(selected).predict_proba(val_images(selected, img))
    np.testing.assert_allclose(predicted, probs, atol=1e-5)
    return info


@pytest.mark.slow
def test_selected_run_predicts_its_selected_validation_probabilities(runs, tmp_path: Path) -> None:
    selected = select_runs(runs["runs"], tmp_path / "sel")
    check_selected_run(selected, runs["runs"], runs["img"])
    table = selection_table(selected)
    assert "F2 selection" in table and all(name in table for name in LABELS)


@pytest.mark.slow
def test_mixed_selections_give_each_label_its_weighted_average(runs, tmp_path: Path, monkeypatch) -> None:
    # Force mixtures (the tiny runs may not need any): Red 2:1, Striped one run, Dotted 1:1:1.
    forced = iter([np.array([2, 1, 0]), np.array([0, 0, 1]), np.array([1, 1, 1])])
    monkeypatch.setattr(selection_module, "greedy_select", lambda *args: next(forced))
    selected = select_runs(runs["runs"], tmp_path / "mix")
    info = check_selected_run(selected, runs["runs"], runs["img"], greedy=False)
    paths = [str(p.resolve()) for p in runs["runs"]]
    assert info["labels"]["Red"]["counts"] == {paths[0]: 2, paths[1]: 1}
    assert info["labels"]["Striped"]["counts"] == {paths[2]: 1}
    # every label's weights sum to 1, so the selected run fuses and selects again like any run
    for name in LABELS:
        assert sum(m.weight for m in selected.members() if name in m.labels) == pytest.approx(1.0)
    assert "seed0 x2, seed1 x1" in selection_table(selected)
    fused = fuse_runs([selected, runs["runs"][0]], tmp_path / "fused")
    expected = (selected.val_probs()[1] + RunDir.open(runs["runs"][0]).val_probs()[1]) / 2
    np.testing.assert_allclose(fused.val_probs()[1], expected, atol=1e-6)
    np.testing.assert_allclose(Predictor.from_run(fused).predict_proba(val_images(fused, runs["img"])),
                               expected, atol=1e-5)
    monkeypatch.undo()
    again = select_runs([selected, runs["runs"][1]], tmp_path / "again")
    check_selected_run(again, [selected.path, runs["runs"][1]], runs["img"])

    # a run chosen for no label is left out
    forced = iter([np.array([1, 0, 0]), np.array([1, 0, 0]), np.array([0, 3, 0])])
    monkeypatch.setattr(selection_module, "greedy_select", lambda *args: next(forced))
    sparse = select_runs(runs["runs"], tmp_path / "sparse")
    assert sorted(p.name for p in (sparse / "members").iterdir()) == ["0_0_model.pt", "1_0_model.pt"]
    check_selected_run(sparse, runs["runs"], runs["img"], greedy=False)


@pytest.mark.slow
def test_one_run_selects_itself(runs, tmp_path: Path) -> None:
    only = RunDir.open(runs["runs"][0])
    selected = select_runs([only.path], tmp_path / "one", max_rounds=3)
    np.testing.assert_allclose(selected.val_probs()[1], only.val_probs()[1])
    np.testing.assert_allclose(selected.thresholds().thresholds_, only.thresholds().thresholds_)
    images = val_images(only, runs["img"])[:4]
    np.testing.assert_allclose(Predictor.from_run(selected).predict_proba(images),
                               Predictor.from_run(only).predict_proba(images), atol=1e-6)


@pytest.mark.slow
def test_select_refuses_incompatible_or_repeated_runs(runs, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(runs["runs"][1], other)
    ids, probs, targets = RunDir(other).val_probs()
    RunDir(other).write_val_probs(ids, probs, 1 - targets)
    with pytest.raises(FashionStyleError, match="validated on other images"):
        select_runs([runs["runs"][0], other], tmp_path / "bad")
    with pytest.raises(FashionStyleError, match="twice"):
        select_runs([runs["runs"][0], runs["runs"][0]], tmp_path / "bad2")
    with pytest.raises(FashionStyleError, match="at least one run"):
        select_runs([], tmp_path / "bad3")
    with pytest.raises(FashionStyleError, match="max_rounds"):
        select_runs(runs["runs"][:1], tmp_path / "bad4", max_rounds=-2)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad4").exists()
    if hasattr(RunDir, "write_tta"):  # runs whose validation probabilities used other TTA
        flipped = tmp_path / "flipped"
        shutil.copytree(runs["runs"][1], flipped)
        RunDir(flipped).write_tta("flip")
        with pytest.raises(FashionStyleError, match="TTA"):
            select_runs([runs["runs"][0], flipped], tmp_path / "bad5")


def test_run_names_in_the_table_are_short_but_distinct() -> None:
    from fashionstyle.training.selection import _short_names

    assert _short_names(["/r/a", "/r/b"]) == {"/r/a": "a", "/r/b": "b"}
    paths = ["/r/x/best_epoch", "/r/y/best_epoch", "/r/z"]
    assert list(_short_names(paths).values()) == ["x/best_epoch", "y/best_epoch", "z"]
    assert _short_names(["/r/a", "/r/a"]) == {"/r/a": "/r/a"}  # the same run twice: no shorter name
