"""Test-time augmentation: views, invariance, and thresholds tuned on the TTA that predicts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import LABELS, make_image_set
from fashionstyle import FashionStyleError, Predictor, RunDir, ThresholdTuner
from fashionstyle.cli import main
from fashionstyle.data.transforms import tta_transform
from fashionstyle.model.network import StyleNet
from fashionstyle.core.run import Member


class MeanColour(nn.Module):
    """A flip-invariant backbone: the image's mean colour."""

    num_features = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # (B, 3)


@pytest.mark.parametrize("tta, views", [("none", 1), ("flip", 2), ("five-crop", 5), ("ten-crop", 10)])
def test_tta_views(tta: str, views: int) -> None:
    from PIL import Image

    image = Image.new("RGB", (50, 40), "red")
    assert tta_transform(32, (0.5,) * 3, (0.5,) * 3, tta)(image).shape == (views, 3, 32, 32)


def test_flip_tta_of_flip_invariant_model_changes_nothing(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = StyleNet(MeanColour(), num_labels=3, hidden=8).eval()
    record = {"label_names": list(LABELS), "image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}
    tuner = ThresholdTuner().fit(np.random.rand(20, 3), np.eye(3, dtype=int)[np.arange(20) % 3])
    images = sorted(make_image_set(tmp_path, n=6).parent.glob("img/*.jpg"))
    member = Member(tmp_path / "m.pt", list(LABELS))
    plain = Predictor([(model, record, member)], list(LABELS), tuner, "cpu", tta="none").predict_proba(images)
    flipped = Predictor([(model, record, member)], list(LABELS), tuner, "cpu", tta="flip").predict_proba(images)
    np.testing.assert_allclose(flipped, plain, atol=1e-6)


@pytest.mark.slow
def test_thresholds_are_tuned_on_the_tta_that_predicts(run_copy, capsys) -> None:
    run, labels, _ = run_copy
    before = RunDir.open(run).val_probs()[1]
    assert main(["tune", str(run), "--tta", "flip"]) == 0
    tuned = RunDir.open(run)
    assert tuned.tta() == "flip" and json.loads((run / "tta.json").read_text()) == {"tta": "flip"}
    ids, probs, targets = tuned.val_probs()
    assert not np.allclose(probs, before)  # validation was predicted again, with flips
    np.testing.assert_allclose(tuned.thresholds().thresholds_, ThresholdTuner().fit(probs, targets).thresholds_)
    images = [labels.parent / "img" / f"{i}.jpg" for i in ids]
    np.testing.assert_allclose(Predictor.from_run(run).predict_proba(images), probs, atol=1e-5)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--labels", str(labels), "--tta", "ten-crop", "--quiet"]) == 2
    assert "tuned with TTA 'flip'" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--labels", str(labels), "--quiet"]) == 0
    with pytest.raises(FashionStyleError, match="TTA"):
        Predictor.from_run(run, tta="none")
