"""--logger: MLflow (read back through its client from a real local store) and W&B offline."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import LABELS, TINY_TRAIN, make_image_set  # noqa: E402

from fashionstyle.cli import main  # noqa: E402
from fashionstyle.core.errors import FashionStyleError  # noqa: E402
from fashionstyle.core.run import RunDir  # noqa: E402


@pytest.mark.slow
def test_mlflow_and_wandb_get_settings_epochs_thresholds_and_the_card(tmp_path, monkeypatch):
    import mlflow
    monkeypatch.chdir(tmp_path)  # MLflow's default store ./mlflow.db, artefacts in ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    labels = make_image_set(tmp_path / "data", n=24)
    run = RunDir(tmp_path / "run")
    assert main(["train", "--labels", str(labels), "--out", str(run.path), *TINY_TRAIN, "--epochs", "2",
                 "--lr", "0.002", "--logger", "csv", "--logger", "mlflow", "wandb"]) == 0

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [record] = client.search_runs([client.get_experiment_by_name("fashionstyle").experiment_id])
    assert record.info.run_name == "run" and record.info.status == "FINISHED"
    assert record.data.params["lr"] == "0.002" and record.data.params["backbone"] == "test_resnet"
    thresholds = run.thresholds().thresholds_
    for name, threshold in zip(LABELS, thresholds):
        assert record.data.metrics[f"threshold/{name}"] == pytest.approx(threshold)
        history = client.get_metric_history(record.info.run_id, f"val_fbeta/{name}")
        assert len(history) == 2  # one value per epoch
    assert {a.path for a in client.list_artifacts(record.info.run_id)} >= {"MODEL_CARD.md", "thresholds.json"}

    [offline] = (run / "logs" / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))
    assert (offline / "files" / "MODEL_CARD.md").exists() and (offline / "files" / "thresholds.json").exists()
    assert (run / "logs" / "csv" / "metrics.csv").is_file()
    assert not (run / "logs" / "tensorboard").exists()  # --logger replaces the default list
    assert (run / "MODEL_CARD.md").read_text().count("| Red |") == 2  # data and scores tables


def test_a_tracker_whose_package_is_missing_is_one_line(tmp_path, monkeypatch):
    from fashionstyle.training import trackers

    def missing(*args):
        raise ModuleNotFoundError("No module named 'wandb'", name="wandb")

    monkeypatch.setattr(trackers, "wandb_logger", missing)
    with pytest.raises(FashionStyleError, match="--logger wandb needs wandb, which is not installed"):
        trackers.make_loggers(["csv", "wandb"], RunDir(tmp_path))


def test_a_store_mlflow_refuses_is_one_line(tmp_path):
    from fashionstyle.training.trackers import make_loggers

    with pytest.raises(FashionStyleError, match="--logger mlflow: tracking store .* refused"):
        make_loggers(["mlflow"], RunDir(tmp_path), mlflow_uri="nosuchscheme://x")


def test_a_missing_tensorboard_is_skipped_only_when_not_asked_for_by_name(tmp_path, monkeypatch):
    from fashionstyle.training import trackers

    def missing(*args):
        raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")

    monkeypatch.setattr(trackers, "tensorboard_logger", missing)
    [csv] = trackers.make_loggers(list(trackers.DEFAULT_TRACKERS), RunDir(tmp_path))
    assert type(csv).__name__ == "CSVLogger"
    with pytest.raises(FashionStyleError, match="--logger tensorboard needs tensorboard"):
        trackers.make_loggers(["csv", "tensorboard", "mlflow"], RunDir(tmp_path))


def test_a_resumed_run_logs_to_the_same_mlflow_and_wandb_runs(tmp_path, monkeypatch):
    from fashionstyle.training.trackers import make_loggers

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run, uri = RunDir(tmp_path / "run"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = make_loggers(["mlflow", "wandb"], run, uri)
    again = make_loggers(["mlflow", "wandb"], run, uri)  # as after --resume
    assert again[0].run_id == first[0].run_id
    assert first[1].version and again[1].version == first[1].version  # the W&B run id, without starting it
    other = make_loggers(["mlflow"], RunDir(tmp_path / "other"), uri)
    assert other[0].run_id != first[0].run_id
