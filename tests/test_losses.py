from __future__ import annotations

import numpy as np
import torch

from fashionstyle.losses import create_loss, loss_weights


def test_weights_favour_the_rarer_side_and_sum_to_two() -> None:
    targets = np.zeros((100, 3), dtype=np.uint8)
    targets[:10, 0] = 1   # 1:9
    targets[:90, 1] = 1   # 9:1
    targets[:50, 2] = 1   # balanced
    pos, neg = loss_weights(targets)
    np.testing.assert_allclose(pos, [1.8, 0.2, 1.0])
    np.testing.assert_allclose(neg, [0.2, 1.8, 1.0])
    np.testing.assert_allclose(pos + neg, 2.0)
    # power 0 is plain BCE; power 0.5 sits between
    np.testing.assert_allclose(loss_weights(targets, 0.0)[0], 1.0)
    assert 1.0 < loss_weights(targets, 0.5)[0][0] < 1.8


def test_label_without_positives_gets_unit_weights() -> None:
    targets = np.zeros((10, 2), dtype=np.uint8)
    targets[:3, 1] = 1
    pos, neg = loss_weights(targets)
    assert pos[0] == 1.0 and neg[0] == 1.0


def test_weighted_bce_matches_hand_computation() -> None:
    train = np.array([[1], [0], [0], [0]], dtype=np.uint8)  # 1:3 -> A = 1.5, B = 0.5
    loss = create_loss("weighted_bce", train)
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
