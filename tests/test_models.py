from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from fashionstyle import FashionStyleError, create_model, load_model, save_model
from fashionstyle.model.network import model_record


def test_output_shape_and_1024_head() -> None:
    model = create_model("test_resnet", num_labels=13)
    assert model.head[0].out_features == 1024
    assert model.head[-1].out_features == 13
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 13)
    assert create_model("test_resnet", num_labels=1)(torch.randn(2, 3, 32, 32)).shape == (2, 1)


def test_unknown_backbone_lists_close_matches() -> None:
    with pytest.raises(FashionStyleError, match="unknown backbone 'densenet210'.*densenet201"):
        create_model("densenet210", num_labels=13)


def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    source = timm.create_model("test_resnet", num_classes=1000)
    weights = tmp_path / "weights.pth"
    torch.save(source.state_dict(), weights)
    model = create_model("test_resnet", num_labels=3, weights=weights)
    for name, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[name])


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FashionStyleError, match="weights file not found"):
        create_model("test_resnet", num_labels=3, weights=tmp_path / "nope.pth")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = create_model("test_resnet", num_labels=2, hidden=16).eval()
    save_model(tmp_path / "m.pt", model_record(model, "test_resnet", ["a", "b"], 32, 16, 0.5))
    loaded, record = load_model(tmp_path / "m.pt")
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert record["label_names"] == ["a", "b"] and record["image_size"] == 32
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(FashionStyleError, match="not a readable model file"):
        load_model(tmp_path / "bad.pt")


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_050", "test_vit", "test_efficientnet"])
def test_head_fits_backbones_with_a_head_stage(backbone: str) -> None:
    model = create_model(backbone, num_labels=4, hidden=16).eval()
    size = 160 if "vit" in backbone else 64
    assert model(torch.randn(1, 3, size, size)).shape == (1, 4)
