from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from fashionstyle import FashionStyleError, create_model, load_model, save_model
from fashionstyle.model.network import model_record, start_from


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


def _saved(folder: Path, labels: list[str], hidden: int = 16, backbone: str = "test_resnet") -> tuple[Path, torch.nn.Module]:
    model = create_model(backbone, num_labels=len(labels), hidden=hidden).eval()
    path = save_model(folder / "model.pt", model_record(model, backbone, labels, 32, hidden, 0.5))
    return path, model


def test_start_from_copies_backbone_and_head_from_a_run_folder_or_file(tmp_path: Path) -> None:
    path, source = _saved(tmp_path, ["a", "b"])
    x = torch.randn(2, 3, 32, 32)
    for where in (tmp_path, path):
        model = create_model("test_resnet", num_labels=2, hidden=16).eval()
        assert not torch.allclose(model(x), source(x))
        start_from(model, where, "test_resnet", ["a", "b"])
        torch.testing.assert_close(model(x), source(x))


@pytest.mark.parametrize("backbone, labels, hidden, message", [
    ("test_efficientnet", ["a", "b"], 16, "needs a test_efficientnet model, this one is test_resnet"),
    ("test_resnet", ["b", "a"], 16, r"needs the labels \['b', 'a'\]"),
    ("test_resnet", ["a", "b"], 8, "layers differ.*--hidden"),
])
def test_start_from_refuses_a_model_that_does_not_fit(tmp_path: Path, backbone: str, labels: list[str],
                                                       hidden: int, message: str) -> None:
    _saved(tmp_path, ["a", "b"])
    model = create_model(backbone, num_labels=2, hidden=hidden)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FashionStyleError, match=message):
        start_from(model, tmp_path, backbone, labels)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    with pytest.raises(FashionStyleError, match="model file not found"):
        start_from(model, tmp_path / "nope", backbone, labels)


def test_train_init_from_starts_at_the_runs_weights_and_refuses_other_labels(shared_run, tmp_path: Path,
                                                                            capsys) -> None:
    from conftest import TINY_TRAIN

    from fashionstyle.cli import main

    args = ["train", "--labels", str(shared_run.labels), *TINY_TRAIN, "--epochs", "1", "--lr", "1e-12",
            "--init-from", str(shared_run.run)]
    assert main([*args, "--out", str(tmp_path / "warm")]) == 0
    source, _ = load_model(shared_run.run / "model.pt")
    warm, _ = load_model(tmp_path / "warm" / "model.pt")
    weights = {k: v for k, v in source.state_dict().items() if k.endswith("weight")}  # not BatchNorm statistics
    for name, value in weights.items():
        torch.testing.assert_close(warm.state_dict()[name], value, atol=1e-6, rtol=0)
    assert f"init_from: {shared_run.run}" in (tmp_path / "warm" / "config.yaml").read_text()

    assert main([*args, "--label-names", "Red", "Striped", "--out", str(tmp_path / "other")]) == 2
    assert "--init-from needs the labels ['Red', 'Striped']" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()  # refused before anything is written
