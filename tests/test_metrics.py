"""Tests for per-label metrics, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import fbeta_score, precision_score, recall_score

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import fbeta_from_counts, format_table, macro_fbeta, per_label_scores


def random_labels(seed: int, n: int = 64, n_labels: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """Random (N, L) targets and predictions with an empty and a never-predicted label."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, n_labels)) < rng.uniform(0.02, 0.6, n_labels)).astype(int)
    preds = (rng.random((n, n_labels)) < rng.uniform(0.02, 0.6, n_labels)).astype(int)
    targets[:, 0] = 0  # no positives
    preds[:, 1] = 0  # nothing predicted
    targets[:, 2] = preds[:, 2] = 0  # neither
    return targets, preds


@pytest.mark.parametrize("seed", range(10))
def test_per_label_matches_sklearn(seed: int) -> None:
    targets, preds = random_labels(seed)
    got = per_label_scores(targets, preds, beta=2.0)
    kw = {"average": None, "zero_division": 0}
    np.testing.assert_allclose(got["fbeta"], fbeta_score(targets, preds, beta=2, **kw), atol=1e-12)
    np.testing.assert_allclose(got["precision"], precision_score(targets, preds, **kw), atol=1e-12)
    np.testing.assert_allclose(got["recall"], recall_score(targets, preds, **kw), atol=1e-12)
    np.testing.assert_array_equal(got["support"], targets.sum(axis=0))
    assert got["fbeta"][0] == got["fbeta"][1] == got["fbeta"][2] == 0.0


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_other_betas_match_sklearn(beta: float) -> None:
    targets, preds = random_labels(42)
    np.testing.assert_allclose(
        per_label_scores(targets, preds, beta=beta)["fbeta"],
        fbeta_score(targets, preds, beta=beta, average=None, zero_division=0),
        atol=1e-12,
    )


def test_macro_is_mean_of_labels() -> None:
    targets, preds = random_labels(3)
    macro = macro_fbeta(targets, preds)
    assert isinstance(macro, float)
    assert macro == pytest.approx(per_label_scores(targets, preds)["fbeta"].mean(), abs=1e-15)
    assert macro == pytest.approx(
        fbeta_score(targets, preds, beta=2, average="macro", zero_division=0), abs=1e-12
    )


def test_fbeta_from_counts_formula_and_zero_division() -> None:
    tp, fp, fn = np.array([3, 0, 0, 5]), np.array([1, 0, 2, 0]), np.array([2, 0, 1, 0])
    p, r = 3 / 4, 3 / 5
    expected = [5 * p * r / (4 * p + r), 0.0, 0.0, 1.0]
    np.testing.assert_allclose(fbeta_from_counts(tp, fp, fn, 2.0), expected, atol=1e-12)


def test_shape_errors() -> None:
    with pytest.raises(FashionStyleError, match=r"\(4, 3\) and \(4, 2\)"):
        per_label_scores(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(FashionStyleError, match="2-D"):
        macro_fbeta(np.zeros(4), np.zeros(4))
    with pytest.raises(FashionStyleError, match="0 and 1"):
        per_label_scores(np.full((2, 2), 2), np.zeros((2, 2)))


def test_format_table() -> None:
    table = format_table(
        ["casual", "street"], {"precision": [0.5, 1.0], "f2": [0.25, 0.75]}, title="val"
    )
    lines = table.splitlines()
    assert lines[0] == "val"
    assert lines[1].split() == ["label", "precision", "f2"]
    assert lines[3].split() == ["casual", "0.500", "0.250"]
    assert lines[-1].split() == ["macro", "0.750", "0.500"]
    # Columns are aligned: every data row has the same width.
    assert len({len(line) for line in lines[1:] if not line.startswith("-")}) == 1


def test_format_table_length_mismatch() -> None:
    with pytest.raises(FashionStyleError, match="label_names"):
        format_table(["a", "b"], {"f2": [0.1]})


def test_format_table_prints_counts_as_whole_numbers_and_their_total() -> None:
    table = format_table(["a", "b"], {"support": [2, 3], "F2": [0.5, 0.25]}).splitlines()
    assert table[2].split() == ["a", "2", "0.500"] and table[-1].split() == ["macro", "5", "0.375"]
