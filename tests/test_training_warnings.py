"""A training that diverged or whose thresholds all collapsed to 0 never passes for a normal run: it finishes
with a warning in the CLI table, RUN/warnings.json, the model card and the report, or (outputs no longer
finite) stops with a one-line error."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, make_image_set
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run_warnings import read_warnings, training_warnings, write_warnings


def rows(*losses: tuple[str, str]) -> list[dict[str, str]]:
    """history.csv rows as read back: (train_loss, val_loss) per epoch, as strings."""
    return [{"epoch": str(e), "train_loss": t, "val_loss": v} for e, (t, v) in enumerate(losses, 1)]


HEALTHY = np.array([0.3, 0.45, 0.2])


def test_a_healthy_training_has_no_warning() -> None:
    assert training_warnings(rows(("0.69", "0.66"), ("0.52", "0.58")), HEALTHY, lr=1e-3) == []
    assert training_warnings(rows(("nan", "0.66")), HEALTHY) == []  # an epoch without a step: not a divergence


@pytest.mark.parametrize("history, where", [
    (rows(("0.7", "0.6"), ("inf", "nan")), "the loss was inf (validation nan) in epoch 2"),
    (rows(("2.7e5", "8e32")), "the loss was 2.7e+05 (validation 8e+32) in epoch 1"),
    (rows(("nan", "nan")), "the loss was nan (validation nan) in epoch 1"),
    (rows(("0.5", "0.6"), ("900", "1.0")), "the training loss grew from 0.5 (epoch 1) to 900 (epoch 2)"),
])
def test_a_diverged_loss_is_named_with_its_epoch_and_the_flag_to_change(history, where: str) -> None:
    (line,) = training_warnings(history, HEALTHY, lr=10)
    assert line == f"the training diverged: {where}; train again with a lower --lr (it was 10)"


def test_thresholds_that_all_collapsed_to_0_are_the_all_positive_baseline() -> None:
    (line,) = training_warnings(rows(("0.7", "0.6")), np.zeros(3))
    assert line.startswith("every threshold collapsed to 0 (3 of 3 labels)") and "all-positive baseline" in line
    assert training_warnings(rows(("0.7", "0.6")), np.array([0.0, 0.0, 0.4])) == []  # one label still decides


def test_warnings_are_stored_with_the_run_and_read_back(tmp_path: Path) -> None:
    from fashionstyle.core.run import RunDir

    run = RunDir.create(tmp_path / "run")
    assert read_warnings(run) == []
    write_warnings(run, ["a", "b"])
    assert json.loads((run / "warnings.json").read_text()) == {"warnings": ["a", "b"]}
    assert read_warnings(run) == ["a", "b"]
    write_warnings(run, [])  # a retrained run without warnings loses the file
    assert not (run / "warnings.json").exists()


def test_non_finite_validation_outputs_stop_the_training_in_one_line() -> None:
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.model.losses import create_loss
    from fashionstyle.model.network import create_model
    from fashionstyle.training.module import StyleModule

    config = TrainConfig(backbone="test_resnet", pretrained=False, hidden=8, lr=10.0)
    targets = np.array([[1, 0, 1], [0, 1, 0]], np.uint8)
    module = StyleModule(create_model("test_resnet", 3, False, hidden=8), create_loss("weighted_bce", targets), config)
    module._trainer = SimpleNamespace(world_size=1, callback_metrics={"train_loss": torch.tensor(4.8e21)},
                                      current_epoch=2)
    module._outputs.append((torch.full((2, 3), float("nan")), torch.from_numpy(targets), torch.arange(2)))
    with pytest.raises(FashionStyleError) as error:
        module.on_validation_epoch_end()
    assert str(error.value) == ("the training diverged in epoch 3: the model's validation outputs are not finite "
                                "(training loss 4.8e+21); train again into a new --out with a lower --lr (it was 10)")


@pytest.mark.slow
def test_a_diverged_training_finishes_with_its_warning_in_the_table_card_and_report(tmp_path: Path, capsys) -> None:
    from fashionstyle.cli import main

    labels = make_image_set(tmp_path / "data", n=32)
    run = tmp_path / "run"
    args = [*TINY_TRAIN, "--lr", "10", "--epochs", "2"]  # the last --lr wins
    assert main(["train", "--labels", str(labels), "--out", str(run), *args]) == 0
    out = capsys.readouterr().out
    table_end = out[out.index("validation ("):]
    assert "warning: the training diverged: the loss was" in table_end and "--lr (it was 10)" in table_end
    stored = json.loads((run / "warnings.json").read_text())["warnings"]
    assert any(line.startswith("the training diverged") for line in stored)
    card = (run / "MODEL_CARD.md").read_text()
    assert all(line in card for line in stored)
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert all(f"Warning: {line}." in page for line in stored)
