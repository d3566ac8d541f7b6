"""Every numeric training setting is checked before a run folder is made: one line naming the flag."""
from __future__ import annotations

import pytest

from conftest import TINY_TRAIN, make_image_set

from fashionstyle.cli import main
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.config_ranges import RANGES, Range
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import check_beta


@pytest.mark.parametrize("flag, value", [
    ("--lr", "nan"), ("--lr", "inf"), ("--weight-decay", "-1"), ("--mixup", "nan"), ("--crop-scale", "0"),
    ("--crop-scale", "nan"), ("--image-size", "100000"), ("--val-fraction", "1.5"), ("--dropout", "1"),
    ("--lr-factor", "0"), ("--cutmix", "-0.5"), ("--weight-power", "inf"),
])
def test_train_refuses_a_bad_number_in_one_line_before_making_the_run(flag, value, tmp_path, capsys) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("image,a\nx.jpg,1\n")
    out = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{flag} must be a finite number in" in err, err
    assert not out.exists()


def test_every_float_setting_of_the_config_has_a_range() -> None:
    floats = [name for name, f in TrainConfig.__dataclass_fields__.items()
              if isinstance(f.default, float) and not isinstance(f.default, bool)]
    assert floats and set(floats) <= set(RANGES), sorted(set(floats) - set(RANGES))


def test_the_defaults_lie_inside_their_ranges() -> None:
    TrainConfig(labels="x.csv").validate()


def test_a_range_says_its_bounds_as_a_reader_expects() -> None:
    assert str(Range(0, 1, low_open=True)) == "(0, 1]" and str(Range(0)) == "[0, inf)"
    assert not Range(0, 1).holds(float("nan")) and Range(0, 1).holds(1.0)


def test_beta_too_large_to_square_is_refused() -> None:
    with pytest.raises(FashionStyleError, match=r"beta must be a finite number in \(0, 100\], got 1e\+300"):
        check_beta(1e300)
    assert check_beta(2) == 2.0


def test_too_few_training_images_are_refused_before_the_run_folder(tmp_path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=12, with_split=False)
    out = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(out), *TINY_TRAIN, "--val-fraction", "0.95"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "readable train image" in err and "2 needed (--val-fraction 0.95)" in err and "--image-dir" not in err
    assert not out.exists()


def test_images_that_are_not_found_get_a_hint_at_image_dir(tmp_path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=12)
    moved = tmp_path / "elsewhere.csv"
    moved.write_text(labels.read_text())  # its relative paths now point nowhere
    assert main(["train", "--labels", str(moved), "--out", str(tmp_path / "run"), *TINY_TRAIN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "pass --image-dir DIR" in err[-1]
    assert all(line.startswith(("warning: ", "fashionstyle train: error: ")) for line in err), err
