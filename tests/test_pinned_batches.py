"""Pinned memory and precision: a DataLoader's pin hook really pins a Batch's tensors, and pinning and
precision follow the accelerator the run uses (`--accelerator cpu` on a GPU machine: neither). No CUDA
here: Tensor.pin_memory and torch.cuda.is_available are stand-ins (monkeypatch)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data._utils.pin_memory import pin_memory as loader_pin_hook

from conftest import make_image_set
from fashionstyle.data.batches import Batch
from fashionstyle.data.images.decode import EncodedJpeg
from fashionstyle.data.transforms import PlannedCrop


@pytest.fixture
def fake_pinning(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Tensor.pin_memory gives a marked copy (pinning needs CUDA); returns the tensors it was asked for."""
    asked: list[torch.Tensor] = []

    def pin(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        asked.append(tensor)
        copy = tensor.clone()
        copy.pinned_here = True
        return copy

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    return asked


def pinned(tensor: torch.Tensor) -> bool:
    return getattr(tensor, "pinned_here", False)


def test_the_loader_pin_hook_pins_a_training_batch(fake_pinning: list[torch.Tensor]) -> None:
    batch = Batch(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.ones(2, 3), torch.tensor([4, 7]), [(5, "bad")],
                  torch.tensor([True, False]))
    got = loader_pin_hook(batch)
    assert isinstance(got, Batch) and got is not batch
    assert pinned(got.images) and pinned(got.targets) and pinned(got.index) and pinned(got.flip)
    assert got.bad == [(5, "bad")] and torch.equal(got.images, batch.images)


def test_a_prediction_batchs_view_stacks_are_pinned_and_encoded_jpegs_left_alone(
        fake_pinning: list[torch.Tensor]) -> None:
    views = (torch.zeros(2, 1, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 2, 3, 8, 8, dtype=torch.uint8))
    got = loader_pin_hook(Batch(views, None, torch.tensor([0, 1]), []))
    assert isinstance(got.images, tuple) and all(pinned(v) for v in got.images) and got.targets is None
    jpeg = EncodedJpeg(torch.zeros(10, dtype=torch.uint8), 1, "a.jpg", (4, 4))
    planned = Batch([PlannedCrop(jpeg, (0, 0, 4, 4), False)], torch.ones(1, 3), torch.tensor([0]), [])
    assert loader_pin_hook(planned).images[0].jpeg.data is jpeg.data  # read by the device decoder, not copied


@pytest.mark.parametrize("accelerator, pins", [("cpu", False), ("auto", True)])
def test_training_loaders_pin_only_when_the_run_trains_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               accelerator: str, pins: bool) -> None:
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.data.labels.read import read_labels
    from fashionstyle.data.splits import train_val_split
    from fashionstyle.training.loop import make_loaders

    labels = make_image_set(tmp_path / "data", n=8)
    config = TrainConfig(labels=str(labels), backbone="test_resnet", image_size=32, batch_size=4, num_workers=0,
                         accelerator=accelerator)
    train, val = train_val_split(read_labels(labels), config.val_fraction, config.seed)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    loaders = make_loaders(config, train, val)
    assert [loader.pin_memory for loader in loaders] == [pins, pins]


def test_auto_precision_on_a_gpu_machine_told_to_use_the_cpu_is_32_bit(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.core.run import RunDir
    from fashionstyle.training.loop import make_trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    config = TrainConfig(labels="x.csv", accelerator="cpu", precision="auto", logger=["csv"], progress=False)
    trainer = make_trainer(config, RunDir.create(tmp_path / "run"), [])
    assert trainer.precision == "32-true"
