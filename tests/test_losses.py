from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fashionstyle import FashionStyleError
from fashionstyle.core.config import LOSSES, TrainConfig
from fashionstyle.data.labels.stats import loss_weights
from fashionstyle.model.losses import AsymmetricLoss, FocalLoss, create_loss


def test_weights_favour_the_rarer_side_and_sum_to_two() -> None:
    targets = np.zeros((100, 3), dtype=np.uint8)
    targets[:10, 0] = 1   # 1:9
    targets[:90, 1] = 1   # 9:1
    targets[:50, 2] = 1   # balanced
    pos, neg = loss_weights(targets, 1.0)
    np.testing.assert_allclose(pos, [1.8, 0.2, 1.0])
    np.testing.assert_allclose(neg, [0.2, 1.8, 1.0])
    np.testing.assert_allclose(pos + neg, 2.0)
    # power 0 is plain BCE; power 0.5 sits between
    np.testing.assert_allclose(loss_weights(targets, 0.0)[0], 1.0)
    assert 1.0 < loss_weights(targets, 0.5)[0][0] < 1.8


def test_label_without_positives_gets_unit_weights() -> None:
    targets = np.zeros((10, 2), dtype=np.uint8)
    targets[:3, 1] = 1
    pos, neg = loss_weights(targets, 1.0)
    assert pos[0] == 1.0 and neg[0] == 1.0


def test_weighted_bce_matches_hand_computation() -> None:
    train = np.array([[1], [0], [0], [0]], dtype=np.uint8)  # 1:3 -> A = 1.5, B = 0.5
    loss = create_loss("weighted_bce", train, weight_power=1.0)
    logits = torch.tensor([[0.0], [2.0]])
    targets = torch.tensor([[1.0], [0.0]])
    p = torch.sigmoid(logits)
    expected = (-(1.5 * torch.log(p[0, 0])) - 0.5 * torch.log(1 - p[1, 0])) / 2
    torch.testing.assert_close(loss(logits, targets), expected)


def test_plain_bce_equals_torch_sum_over_labels() -> None:
    train = (np.random.default_rng(0).random((20, 4)) < 0.3).astype(np.uint8)
    logits = torch.randn(5, 4)
    targets = (torch.rand(5, 4) < 0.5).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(1).mean()
    torch.testing.assert_close(create_loss("bce", train)(logits, targets), expected)


# -- focal loss and ASL ----------------------------------------------------------
TRAIN = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0]], dtype=np.uint8)  # only its shape matters here


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _batch_mean(rows: list[list[float]]) -> float:
    return sum(sum(row) for row in rows) / len(rows)


def _focal_term(x: float, y: int, gamma: float, alpha: float | None) -> float:
    p = _sigmoid(x)
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
    return -(a_pos * y * (1 - p) ** gamma * math.log(p) + a_neg * (1 - y) * p ** gamma * math.log(1 - p))


def _asl_term(x: float, y: int, gamma_pos: float, gamma_neg: float, clip: float) -> float:
    p = _sigmoid(x)
    p_m = max(p - clip, 0.0)
    return -(y * (1 - p) ** gamma_pos * math.log(p) + (1 - y) * p_m ** gamma_neg * math.log(1 - p_m))


LOGITS = [[0.0, 2.0, -4.0], [1.0, -1.0, 3.0]]
TARGETS = [[1, 0, 0], [0, 1, 1]]


def _expected(term, **kw) -> float:
    return _batch_mean([[term(x, y, **kw) for x, y in zip(xs, ys)] for xs, ys in zip(LOGITS, TARGETS)])


def _value(loss: torch.nn.Module) -> float:
    return float(loss(torch.tensor(LOGITS), torch.tensor(TARGETS, dtype=torch.float32)))


def test_every_loss_of_the_table_is_built_with_the_configs_defaults() -> None:
    assert LOSSES.names[:4] == ("weighted_bce", "bce", "focal", "asl")  # the report's first, the default
    for name in LOSSES:
        assert isinstance(create_loss(name, TRAIN), torch.nn.Module)
    default = TrainConfig().weight_power
    assert _value(create_loss("weighted_bce", TRAIN)) == pytest.approx(
        _value(create_loss("weighted_bce", TRAIN, weight_power=default)))
    assert _value(create_loss("weighted_bce", TRAIN)) != pytest.approx(
        _value(create_loss("weighted_bce", TRAIN, weight_power=1.0)))



def test_focal_loss_matches_hand_computation() -> None:
    # one element by hand: x = 0, y = 1 -> p = 1/2, loss = 0.25 * (1/2)^2 * ln 2
    single = create_loss("focal", np.zeros((2, 1)))(torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    assert float(single) == pytest.approx(0.0625 * math.log(2), rel=1e-6)
    assert _value(create_loss("focal", TRAIN)) == pytest.approx(
        _expected(_focal_term, gamma=2.0, alpha=0.25), rel=1e-5)
    assert _value(create_loss("focal", TRAIN, focal_gamma=1.5, focal_alpha=0.6)) == pytest.approx(
        _expected(_focal_term, gamma=1.5, alpha=0.6), rel=1e-5)
    assert _value(create_loss("focal", TRAIN, focal_gamma=3.0, focal_alpha=None)) == pytest.approx(
        _expected(_focal_term, gamma=3.0, alpha=None), rel=1e-5)


def test_asl_matches_hand_computation() -> None:
    # one negative by hand: x = 0 -> p = 1/2, p_m = 0.45, loss = -(0.45^4 ln 0.55)
    single = create_loss("asl", np.zeros((2, 1)))(torch.tensor([[0.0]]), torch.tensor([[0.0]]))
    assert float(single) == pytest.approx(-(0.45 ** 4) * math.log(0.55), rel=1e-5)
    # a negative below the clip (x = -4, p = 0.018) adds nothing
    below = create_loss("asl", np.zeros((2, 1)))(torch.tensor([[-4.0]]), torch.tensor([[0.0]]))
    assert float(below) == pytest.approx(0.0, abs=1e-12)
    assert _value(create_loss("asl", TRAIN)) == pytest.approx(
        _expected(_asl_term, gamma_pos=0.0, gamma_neg=4.0, clip=0.05), rel=1e-5)
    params = {"asl_gamma_pos": 1.0, "asl_gamma_neg": 2.0, "asl_clip": 0.2}
    assert _value(create_loss("asl", TRAIN, **params)) == pytest.approx(
        _expected(_asl_term, gamma_pos=1.0, gamma_neg=2.0, clip=0.2), rel=1e-5)


def _bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    per_element = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return per_element.sum(1).mean()


def test_focal_without_focusing_or_alpha_is_bce() -> None:
    torch.manual_seed(0)
    logits, targets = 3 * torch.randn(6, 4), (torch.rand(6, 4) < 0.4).float()
    loss = create_loss("focal", TRAIN, focal_gamma=0.0, focal_alpha=None)
    torch.testing.assert_close(loss(logits, targets), _bce(logits, targets))


def test_asl_without_focusing_or_clip_is_bce() -> None:
    torch.manual_seed(1)
    logits, targets = 3 * torch.randn(6, 4), (torch.rand(6, 4) < 0.4).float()
    loss = create_loss("asl", TRAIN, asl_gamma_pos=0.0, asl_gamma_neg=0.0, asl_clip=0.0)
    torch.testing.assert_close(loss(logits, targets), _bce(logits, targets))


@pytest.mark.parametrize("loss", [
    FocalLoss(), FocalLoss(gamma=0.5, alpha=None), FocalLoss(gamma=0.0, alpha=0.9),
    AsymmetricLoss(), AsymmetricLoss(gamma_pos=0.5, gamma_neg=0.5, clip=0.05),
    AsymmetricLoss(gamma_pos=1.0, gamma_neg=4.0, clip=0.0), AsymmetricLoss(0.0, 0.0, 0.0),
], ids=repr)
def test_extreme_logits_give_finite_loss_and_gradients(loss: torch.nn.Module) -> None:
    logits = torch.tensor([[50.0, -50.0], [-50.0, 50.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # right and wrong, positive and negative
    value = loss(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    # the confidently wrong positive still pulls its logit up
    assert logits.grad[0, 1] < -0.01


def test_create_loss_params_and_errors() -> None:
    focal = create_loss("focal", TRAIN)
    assert (focal.gamma, focal.alpha) == (2.0, 0.25)
    asl = create_loss("asl", TRAIN)
    assert (asl.gamma_pos, asl.gamma_neg, asl.clip) == (0.0, 4.0, 0.05)
    # another loss's parameters are ignored
    weighted = create_loss("weighted_bce", TRAIN, weight_power=1.0, focal_gamma=5.0, asl_clip=0.3)
    torch.testing.assert_close(weighted.pos_weight, torch.tensor([4 / 3, 4 / 3, 2 / 3]))  # odds 2, 2, 1/2
    assert create_loss("asl", TRAIN, focal_alpha=None).clip == 0.05
    with pytest.raises(FashionStyleError, match="weighted_bce, bce, focal, asl"):
        create_loss("dice", TRAIN)
    with pytest.raises(FashionStyleError, match="focal_gama"):
        create_loss("focal", TRAIN, focal_gama=2.0)
    for name, params in [("focal", {"focal_gamma": -1.0}), ("focal", {"focal_alpha": 1.5}),
                         ("asl", {"asl_clip": 1.0}), ("asl", {"asl_gamma_neg": float("nan")}),
                         ("asl", {"asl_gamma_pos": "2"})]:
        with pytest.raises(FashionStyleError, match=next(iter(params))):
            create_loss(name, TRAIN, **params)
