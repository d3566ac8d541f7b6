"""MODEL_CARD.md: built from a run's own files, with data counts, scores, thresholds and limits."""
from __future__ import annotations

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.model_card import model_card, write_data_counts, write_model_card
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner

NAMES = ["Sport", "OL", "Nation"]


def make_run(tmp_path, with_test: bool = False) -> RunDir:
    rng = np.random.default_rng(0)
    run = RunDir(tmp_path / "lite0")
    run.path.mkdir()
    run.write_manifest("model", complete=True, best_epoch=3)
    run.write_label_names(NAMES)
    atomic.write_text(run / "config.yaml", "backbone: tf_efficientnet_lite0\npretrained: true\nimage_size: 224\n"
                                            "hidden: 1024\nloss: weighted_bce\nweight_power: 0.5\nepochs: 8\n")
    targets = (rng.random((60, 3)) < [0.5, 0.3, 0.05]).astype(np.uint8)
    probs = np.clip(targets * 0.6 + rng.random((60, 3)) * 0.5, 0, 1).astype(np.float32)
    run.write_val_probs([f"v{i}" for i in range(60)], probs, targets)
    run.write_thresholds(ThresholdTuner().fit(probs, targets))
    write_data_counts(run, {"train": np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]] * 10), "val": targets})
    if with_test:
        atomic.write_json(run / "eval_test.json", {"thresholds": run.thresholds().thresholds_.tolist(),
            "n_images": 40, "support": [20, 12, 2], "macro_fbeta_tuned": 0.6123, "macro_fbeta_0.5": 0.5,
            "all_positive_macro_fbeta": 0.31,
            "tuned": {"precision": [0.5, 0.6, 0.7], "recall": [0.9, 0.8, 0.1], "fbeta": [0.8, 0.7, 0.12]}})
    return run


def test_card_states_backbone_recipe_data_and_validation_scores(tmp_path):
    run = make_run(tmp_path)
    card = write_model_card(run).read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: fashionstyle\n")
    assert "`tf_efficientnet_lite0`" in card and "FC-1024, FC-3" in card
    assert "| weight_power | 0.5 |" in card and "| best epoch (kept) | 3 |" in card
    _, probs, targets = run.val_probs()
    tuner = run.thresholds()
    val = per_label_scores(targets, tuner.predict(probs), 2.0)["fbeta"]
    assert f"validation macro F2 {val.mean():.4f} tuned" in card
    assert f"| Sport | 20 | {int(targets[:, 0].sum())} |" in card  # train, val positives
    assert f"{tuner.thresholds_[1]:.3f}" in card
    assert "no test score yet" in card


def test_card_adds_test_scores_and_names_labels_with_few_positives(tmp_path):
    card = model_card(make_run(tmp_path, with_test=True))
    assert "test macro F2 0.6123 tuned (0.5000 at 0.5; all-positive 0.3100)" in card
    assert "| test P | test R | test F2 |" in card and "0.120" in card
    assert "test positives (of 40)" in card
    limits = card.split("## Intended use and known limits")[1]
    assert "Nation" in limits and "Sport" not in limits


def test_card_of_a_run_without_config_or_counts_still_reads(tmp_path):
    run = make_run(tmp_path)
    (run / "config.yaml").unlink()
    (run / "data_counts.json").unlink()
    card = model_card(run)
    assert "## Training recipe" not in card
    assert "val positives (of 60)" in card


def test_card_of_a_fused_run_names_each_member_and_its_backbone(tmp_path):
    from fashionstyle.core.run import Member

    fused = make_run(tmp_path)
    (fused / "config.yaml").unlink()
    members = []
    for name, backbone in (("a", "resnet18"), ("b", "tf_efficientnet_lite1")):
        atomic.write_text(fused / "members" / name / "config.yaml", f"backbone: {backbone}\n")
        members.append(Member(fused / "members" / name / "model.pt", NAMES))
    fused.write_members(members)
    card = model_card(fused)
    assert "`resnet18`, 3 styles" in card and "`tf_efficientnet_lite1`, 3 styles" in card


def test_card_leaves_out_test_scores_computed_at_other_thresholds(tmp_path):
    run = make_run(tmp_path, with_test=True)
    tuner = run.thresholds()
    tuner.thresholds_ = tuner.thresholds_ + 0.05  # as `fashionstyle tune` after `evaluate`
    run.write_thresholds(tuner)
    card = model_card(run)
    assert "computed at earlier thresholds" in card and "test macro F2" not in card and "test P" not in card
