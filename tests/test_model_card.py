"""MODEL_CARD.md: written from the run's summary (in memory at the end of training; summary.json or the stored
probabilities later), with data counts, scores under the summary's names, thresholds and limits; refreshed by
the library's tune and evaluate, as the commands refresh it."""
from __future__ import annotations

import numpy as np
import pytest

from fashionstyle.core import atomic
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.model_card import model_card, write_data_counts, write_model_card
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import read_summary, run_summary, summarize
from fashionstyle.core.thresholds import ThresholdTuner

NAMES = ["Sport", "OL", "Nation"]


def make_run(tmp_path, with_test: bool = False, test_tta: str = "none") -> RunDir:
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
    if with_test:  # as `evaluate --split test` leaves it
        test_targets = (rng.random((40, 3)) < [0.5, 0.3, 0.05]).astype(np.uint8)
        test_probs = np.clip(test_targets * 0.5 + rng.random((40, 3)) * 0.6, 0, 1).astype(np.float32)
        atomic.write_npz(run / "eval_test.npz", ids=np.array([f"t{i}" for i in range(40)]), probs=test_probs,
                         targets=test_targets)
        atomic.write_json(run / "eval_test.json", {"tta": test_tta, "skipped_images": 0})
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
    assert f"- val_macro_f2 {val.mean():.4f} (validation, 60 images, thresholds by the pooled rule" in card
    assert f"| Sport | 20 | {int(targets[:, 0].sum())} |" in card  # train, val positives
    assert f"{tuner.thresholds_[1]:.3f}" in card
    assert "no test score yet" in card
    assert read_summary(run).val.macro_fbeta == pytest.approx(val.mean())  # the card's summary, kept


def test_card_at_the_end_of_training_reads_no_score_file_of_the_run(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    _, probs, targets = run.val_probs()
    summary = summarize(NAMES, run.thresholds(), probs, targets)
    for method in ("val_probs", "thresholds", "threshold_rule", "label_names"):
        monkeypatch.setattr(RunDir, method, lambda self: pytest.fail(f"the card read the run's {method}"))
    (run / "data_counts.json").unlink()
    card = write_model_card(run, summary, {"backbone": "resnet18", "hidden": 64, "lr": 0.01},
                            {"train": {"images": 30, "positives": [20, 20, 10]}}).read_text()
    assert f"val_macro_f2 {summary.val.macro_fbeta:.4f}" in card
    assert "`resnet18`" in card and "| lr | 0.01 |" in card and "train positives (of 30)" in card


def test_card_adds_test_scores_at_the_run_thresholds_and_names_labels_with_few_positives(tmp_path):
    run = make_run(tmp_path, with_test=True)
    card = model_card(run)
    test = run_summary(run).test
    assert f"- test_macro_f2 {test.macro_fbeta:.4f} (test, 40 images" in card
    assert f"all-positive baseline {test.all_positive_macro_fbeta:.4f}" in card
    assert "| test P | test R | test F2 |" in card and "no test score yet" not in card
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


def test_card_of_a_run_whose_config_is_not_a_mapping_still_reads(tmp_path):
    run = make_run(tmp_path)
    atomic.write_text(run / "config.yaml", "- a\n- list\n")
    assert "## Training recipe" not in model_card(run)


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


def test_test_scores_follow_new_thresholds_and_a_tta_change_drops_them(tmp_path):
    run = make_run(tmp_path, with_test=True)
    write_model_card(run)
    tuner = run.thresholds()
    tuner.thresholds_ = tuner.thresholds_ + 0.05  # as `fashionstyle tune` after `evaluate`
    run.write_thresholds(tuner)
    card = model_card(run)
    with np.load(run / "eval_test.npz") as data:
        expected = per_label_scores(data["targets"], tuner.predict(data["probs"]), 2.0)["fbeta"].mean()
    assert f"test_macro_f2 {expected:.4f}" in card  # scored again at the thresholds the run has now
    atomic.write_json(run / "eval_test.json", {"tta": "flip"})
    card = model_card(run)
    assert "computed with another TTA (flip)" in card and "test_macro_f2" not in card and "test P" not in card


@pytest.mark.slow
def test_library_tune_and_evaluate_refresh_the_card_as_the_commands_do(tiny_runs, tmp_path):
    from fashionstyle.analysis.evaluate import evaluate_run, tune_run
    from fashionstyle.data.labels.read import read_labels

    tiny = tiny_runs.copy(tmp_path)
    run = RunDir.open(tiny.run)
    assert "no test score yet" in (run / "MODEL_CARD.md").read_text()
    scores = evaluate_run(run, read_labels(tiny.labels).split("test"), "test", progress=False)
    card = (run / "MODEL_CARD.md").read_text()  # the demo's path: evaluate from Python, then the card
    assert "no test score yet" not in card
    assert f"test_macro_f2 {scores['macro_fbeta']:.4f}" in card
    summary_test = read_summary(run).to_dict()["test"]  # one name per score: eval_test.json and summary.json agree
    written = atomic.read_json(run / "eval_test.json")
    for key, value in summary_test.items():
        np.testing.assert_allclose(written[key], value, err_msg=key)
    tuner = tune_run(run, beta=1.0, rule="exact")
    card = (run / "MODEL_CARD.md").read_text()
    assert "(rule: exact)" in card and f"{tuner.thresholds_[0]:.3f}" in card
    assert "val_macro_f1 " in card and "test_macro_f1 " in card  # test scored again at the new thresholds
    assert read_summary(run).metrics()["val_macro_f1"] == pytest.approx(
        per_label_scores(run.val_probs()[2], tuner.predict(run.val_probs()[1]), 1.0)["fbeta"].mean())


@pytest.mark.slow
def test_evaluate_given_the_ranks_probabilities_scores_them_without_loading_a_model(tiny_runs, tmp_path,
                                                                                   monkeypatch):
    from fashionstyle.analysis import evaluate
    from fashionstyle.data.labels.read import read_labels

    tiny = tiny_runs.copy(tmp_path)
    run, test = RunDir.open(tiny.run), read_labels(tiny.labels).split("test")
    predicted = evaluate.evaluate_run(run, test, "test", progress=False)
    with np.load(run / "eval_test.npz") as stored:
        probs = stored["probs"]

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(evaluate.Predictor, "from_run", loaded)
    assert len(probs) == len(test) and evaluate.evaluate_run(run, test, "test", progress=False, probs=probs) == predicted
