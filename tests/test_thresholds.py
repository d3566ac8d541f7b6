"""Tests for the exact per-label F-beta threshold search."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import fbeta_from_counts
from fashionstyle.core.thresholds import ThresholdTuner, best_threshold, fbeta_curve


def f_at(scores: np.ndarray, targets: np.ndarray, t: float, beta: float) -> float:
    """F-beta of ``scores >= t``, counted directly."""
    pred = scores >= t
    y = targets.astype(bool)
    return float(fbeta_from_counts((pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum(), beta))


def brute_force_best(scores: np.ndarray, targets: np.ndarray, beta: float) -> float:
    """Best F over every distinct score and one threshold above the maximum."""
    candidates = np.append(np.unique(scores), scores.max() + 1.0)
    return max(f_at(scores, targets, t, beta) for t in candidates)


@pytest.mark.parametrize("seed", range(300))
def test_exact_search_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    decimals = int(rng.choice([1, 2]))  # coarse rounding -> many ties
    targets = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
    if targets.sum() == 0:
        targets[rng.integers(n)] = 1
    scores = np.round(np.clip(rng.normal(0.3 + 0.3 * targets, 0.25), 0, 1), decimals)
    beta = float(rng.uniform(0.25, 4.0))

    t, f = best_threshold(scores, targets, beta=beta)

    assert f == pytest.approx(brute_force_best(scores, targets, beta), abs=1e-12)
    # The returned threshold really reaches the returned F.
    assert f_at(scores, targets, t, beta) == pytest.approx(f, abs=1e-12)
    assert 0.0 <= t <= 1.0


def test_negative_scores_use_min_minus_one_floor() -> None:
    # Best is predicting everything: interval (min - 1, min] -> midpoint min - 0.5.
    scores = np.array([-1.0, -2.0, -3.0])
    t, f = best_threshold(scores, np.array([1, 1, 1]))
    assert t == pytest.approx(-3.5)
    assert f == pytest.approx(1.0)


def test_picks_middle_of_gap_not_edge() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    targets = np.array([1, 1, 0, 0, 0])
    t, f = best_threshold(scores, targets)
    assert f == pytest.approx(1.0)
    assert t == pytest.approx(0.75)  # middle of (0.7, 0.8], not 0.8


def test_plateau_over_several_distinct_scores() -> None:
    # beta=1: F at >=0.9: 2/4, >=0.7: 4/6, >=0.5: 6/9, >=0.2: 6/10.
    # 0.7 and 0.5 tie (2/3), so any t in (0.2, 0.7] is best -> 0.45.
    scores = np.array([0.9, 0.7, 0.7, 0.5, 0.5, 0.5, 0.2])
    targets = np.array([1, 1, 0, 1, 0, 0, 0])
    t, f = best_threshold(scores, targets, beta=1.0)
    assert f == pytest.approx(2 / 3)
    assert t == pytest.approx(0.45)


def test_separate_tied_runs_take_widest() -> None:
    # beta=1: F at >=0.9: 4/6, >=0.8: 4/7, >=0.6: 6/9, >=0.1: 8/13.
    # Runs (0.8, 0.9] and (0.1, 0.6] both reach 2/3; the wider one wins.
    scores = np.array([0.9, 0.9, 0.8, 0.6, 0.6, 0.1, 0.1, 0.1, 0.1])
    targets = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0])
    t, f = best_threshold(scores, targets, beta=1.0)
    assert f == pytest.approx(2 / 3)
    assert t == pytest.approx(0.35)


def test_lowest_score_zero_keeps_threshold_zero() -> None:
    # Predicting everything is best and the lowest score is 0.0: threshold 0.0.
    t, f = best_threshold(np.array([0.0, 0.0, 0.5]), np.array([1, 1, 1]))
    assert t == 0.0
    assert f == pytest.approx(1.0)


def test_no_positives_returns_default_and_nan() -> None:
    scores = np.array([0.2, 0.9, 0.4])
    t, f = best_threshold(scores, np.zeros(3, dtype=int))
    assert t == 0.5 and math.isnan(f)
    t, f = best_threshold(scores, np.zeros(3, dtype=int), default=0.3)
    assert t == 0.3 and math.isnan(f)


@pytest.mark.parametrize("seed", range(20))
def test_fbeta_curve_matches_direct_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    targets = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.random(n), 2)
    grid = np.append(np.linspace(-0.1, 1.1, 49), scores[:5])  # includes exact scores
    out_grid, f = fbeta_curve(scores, targets, beta=2.0, grid=grid)
    np.testing.assert_array_equal(out_grid, grid)
    expected = [f_at(scores, targets, t, 2.0) for t in grid]
    np.testing.assert_allclose(f, expected, atol=1e-12)


def test_fbeta_curve_default_grid() -> None:
    grid, f = fbeta_curve(np.array([0.1, 0.8]), np.array([0, 1]))
    assert grid.shape == f.shape == (201,)
    assert grid[0] == 0.0 and grid[-1] == 1.0


def test_tuner_fit_predict_and_untuned_label() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 4)) < 0.3).astype(int)
    targets[:, 2] = 0  # no positives: cannot be tuned
    probs = np.clip(rng.normal(0.3 + 0.4 * targets, 0.2), 0, 1)

    tuner = ThresholdTuner(beta=2.0, default=0.4).fit(probs, targets)

    assert tuner.thresholds_.shape == tuner.best_fbeta_.shape == tuner.tuned_.shape == (4,)
    np.testing.assert_array_equal(tuner.tuned_, [True, True, False, True])
    assert tuner.thresholds_[2] == 0.4 and math.isnan(tuner.best_fbeta_[2])
    pred = tuner.predict(probs)
    assert pred.dtype == np.uint8 and pred.shape == probs.shape
    np.testing.assert_array_equal(pred, (probs >= tuner.thresholds_).astype(np.uint8))
    for j in (0, 1, 3):
        assert f_at(probs[:, j], targets[:, j], tuner.thresholds_[j], 2.0) == pytest.approx(
            tuner.best_fbeta_[j], abs=1e-12
        )


def test_tuner_round_trip_through_json() -> None:
    rng = np.random.default_rng(1)
    targets = (rng.random((100, 3)) < 0.4).astype(int)
    targets[:, 1] = 0
    probs = rng.random((100, 3))
    tuner = ThresholdTuner(beta=1.5, default=0.6).fit(probs, targets)

    d = tuner.to_dict()
    assert d["best_fbeta"][1] is None
    restored = ThresholdTuner.from_dict(json.loads(json.dumps(d, allow_nan=False)))

    assert restored.beta == 1.5 and restored.default == 0.6
    np.testing.assert_array_equal(restored.thresholds_, tuner.thresholds_)
    np.testing.assert_array_equal(restored.best_fbeta_, tuner.best_fbeta_)  # nan == nan here
    np.testing.assert_array_equal(restored.tuned_, tuner.tuned_)
    np.testing.assert_array_equal(restored.predict(probs), tuner.predict(probs))


@pytest.mark.parametrize(
    ("probs_shape", "targets_shape"),
    [((10, 3), (10, 4)), ((10, 3), (9, 3)), ((10,), (10,)), ((2, 3, 4), (2, 3, 4))],
)
def test_tuner_fit_shape_errors(probs_shape: tuple, targets_shape: tuple) -> None:
    with pytest.raises(FashionStyleError, match="shape"):
        ThresholdTuner().fit(np.zeros(probs_shape), np.zeros(targets_shape, dtype=int))


def test_predict_errors() -> None:
    with pytest.raises(FashionStyleError, match="not fitted"):
        ThresholdTuner().predict(np.zeros((2, 3)))
    tuner = ThresholdTuner().fit(np.random.default_rng(0).random((5, 3)), np.eye(5, 3, dtype=int))
    with pytest.raises(FashionStyleError, match=r"\(N, 3\)"):
        tuner.predict(np.zeros((2, 4)))
    with pytest.raises(FashionStyleError, match="shape"):
        tuner.predict(np.zeros(3))


def test_best_threshold_input_errors() -> None:
    with pytest.raises(FashionStyleError, match="shape"):
        best_threshold(np.zeros(3), np.zeros(4, dtype=int))
    with pytest.raises(FashionStyleError, match="shape"):
        best_threshold(np.zeros((3, 1)), np.zeros((3, 1), dtype=int))
    with pytest.raises(FashionStyleError, match="0 and 1"):
        best_threshold(np.zeros(3), np.array([0, 2, 1]))
    with pytest.raises(FashionStyleError, match="finite"):
        best_threshold(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(FashionStyleError, match="beta"):
        best_threshold(np.zeros(2), np.array([0, 1]), beta=0.0)


def test_from_dict_errors() -> None:
    with pytest.raises(FashionStyleError, match="missing"):
        ThresholdTuner.from_dict({"beta": 2.0})
    bad = {"beta": 2.0, "default": 0.5, "thresholds": [0.5], "best_fbeta": [], "tuned": [True]}
    with pytest.raises(FashionStyleError, match="same length"):
        ThresholdTuner.from_dict(bad)


def test_threshold_rules_agree_on_a_clean_split_and_refuse_unknown_names() -> None:
    from fashionstyle.core.thresholds import rule_threshold

    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    targets = np.array([0, 0, 0, 1, 1, 1])
    for rule in ("exact", "smooth", "bootstrap"):
        t, f = rule_threshold(scores, targets, rule=rule)
        assert 0.3 < t <= 0.7 and f == pytest.approx(1.0), rule
    with pytest.raises(FashionStyleError, match="unknown threshold rule 'mean'; valid: exact, smooth, bootstrap"):
        rule_threshold(scores, targets, rule="mean")


def test_rule_travels_with_the_thresholds_and_old_files_read_as_exact() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((300, 2)) < 0.2).astype(int)
    scores = np.clip(0.3 * targets + rng.random((300, 2)) * 0.7, 0, 1)
    smooth = ThresholdTuner(rule="smooth").fit(scores, targets)
    restored = ThresholdTuner.from_dict(smooth.to_dict())
    assert restored.rule == "smooth" and restored.thresholds_ == pytest.approx(smooth.thresholds_)
    old = {k: v for k, v in smooth.to_dict().items() if k != "rule"}
    assert ThresholdTuner.from_dict(old).rule == "exact"


def test_pooled_rule_moves_a_label_only_among_its_near_best_thresholds_toward_the_others() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    common = (rng.random((n, 2)) < 0.3).astype(int)  # best near 0.45
    common_scores = np.clip(np.where(common, 0.55, 0.35) + rng.normal(0, 0.05, (n, 2)), 0, 1)
    flat = np.zeros(n, dtype=int)
    flat[:5] = 1  # five positives at 0.9, negatives below 0.1: every threshold in (0.1, 0.9] is perfect
    flat_scores = np.where(flat, 0.9, rng.random(n) * 0.1)
    weak = (rng.random(n) < 0.1).astype(int)  # a poorly learned label: its best is a low threshold
    weak_scores = np.clip(np.where(weak, 0.12, 0.05) + rng.normal(0, 0.04, n), 0, 1)
    probs = np.column_stack([common_scores, flat_scores, weak_scores])
    targets = np.column_stack([common, flat, weak])
    pooled = ThresholdTuner(rule="pooled").fit(probs, targets)
    smooth = ThresholdTuner(rule="smooth").fit(probs, targets)
    assert pooled.thresholds_[:2] == pytest.approx(smooth.thresholds_[:2], abs=0.03)  # ~600 positives each
    assert smooth.thresholds_[2] < 0.2 and 0.35 < pooled.thresholds_[2] < 0.55  # toward the common ones
    assert pooled.best_fbeta_[2] == 1.0
    assert pooled.thresholds_[3] < 0.2  # not pulled off its own best
    assert pooled.best_fbeta_[3] >= smooth.best_fbeta_[3] - 0.03


def test_pooled_rule_alone_is_the_smooth_rule_and_the_default() -> None:
    from fashionstyle.core.thresholds import rule_threshold

    rng = np.random.default_rng(1)
    targets = (rng.random(400) < 0.1).astype(int)
    scores = np.clip(0.3 * targets + rng.random(400) * 0.7, 0, 1)
    assert rule_threshold(scores, targets, rule="pooled") == rule_threshold(scores, targets, rule="smooth")
    tuner = ThresholdTuner().fit(np.column_stack([scores, scores]), np.column_stack([targets, targets]))
    assert tuner.rule == "pooled" and tuner.to_dict()["rule"] == "pooled"


def test_pooled_rule_leaves_labels_without_positives_at_the_default() -> None:
    probs = np.array([[0.9, 0.2], [0.1, 0.8], [0.8, 0.3]])
    targets = np.array([[1, 0], [0, 0], [1, 0]])
    tuner = ThresholdTuner(rule="pooled", default=0.4).fit(probs, targets)
    assert tuner.tuned_.tolist() == [True, False] and tuner.thresholds_[1] == 0.4


def test_rule_threshold_refuses_bad_shapes_in_one_line() -> None:
    from fashionstyle.core.thresholds import rule_threshold

    with pytest.raises(FashionStyleError, match="1-D arrays of the same length"):
        rule_threshold(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(FashionStyleError, match="1-D arrays of the same length"):
        rule_threshold(np.float64(0.3), np.int64(1))


def test_grid_rules_refuse_scores_outside_0_1_and_exact_takes_them() -> None:
    logits = np.array([[-2.0], [0.5], [3.0]])
    targets = np.array([[0], [1], [1]])
    for rule in ("pooled", "smooth", "bootstrap"):
        with pytest.raises(FashionStyleError, match=f"threshold rule {rule} searches \\[0, 1\\]: it needs probabilities"):
            ThresholdTuner(rule=rule).fit(logits, targets)
    assert ThresholdTuner(rule="exact").fit(logits, targets).thresholds_[0] == pytest.approx(-0.75)


@pytest.mark.parametrize("rule", ["smooth", "bootstrap", "pooled"])
def test_grid_rules_write_thresholds_as_short_decimals(rule: str) -> None:
    """A grid rule's thresholds read as 0.288 in thresholds.json and the service, not 0.28800000000000003."""
    rng = np.random.default_rng(3)
    targets = (rng.random((400, 6)) < 0.3).astype(np.uint8)
    probs = np.clip(targets * 0.35 + rng.random((400, 6)) * 0.6, 0, 1).astype(np.float32)
    tuner = ThresholdTuner(beta=2.0, rule=rule).fit(probs, targets)
    written = json.loads(json.dumps(tuner.to_dict()))["thresholds"]
    assert all(len(repr(t).split(".")[-1]) <= 3 for t in written), written
    assert written == [round(t, 3) for t in written]
