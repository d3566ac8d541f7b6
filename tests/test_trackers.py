"""--logger: MLflow (read back from a real local store with the installed mlflow: settings, per-epoch and final
metrics, the run folder, a pyfunc model with its signature, registered with --register, the report's figures) and
W&B offline; one val F2 under one name on every surface; stores checked before the run folder is made."""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import LABELS, TINY_TRAIN, make_image_set  # noqa: E402

from fashionstyle.cli import main  # noqa: E402
from fashionstyle.core.errors import FashionStyleError  # noqa: E402
from fashionstyle.core.run import RunDir  # noqa: E402


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A tiny run trained into MLflow (./mlflow.db, its model registered as `tagger` @champion) and W&B (offline),
    then evaluated on its test split; (folder, run, label file, what train printed, what it wrote to stderr and
    the warnings it raised)."""
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # MLflow's default store ./mlflow.db, artefacts in ./mlruns
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("WANDB_API_KEY", raising=False)
        labels = make_image_set(root / "data", n=32)
        run = RunDir(root / "run")
        printed, errors = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors), \
                warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            assert main(["train", "--labels", str(labels), "--out", str(run.path), *TINY_TRAIN, "--epochs", "2",
                         "--lr", "0.002", "--logger", "csv", "--logger", "mlflow", "wandb",
                         "--register", "tagger", "--alias", "champion"]) == 0
        assert main(["evaluate", str(run.path), "--labels", str(labels), "--split", "test", "--quiet"]) == 0
    noise = errors.getvalue() + "\n".join(str(w.message) for w in warned)
    return root, run, labels, printed.getvalue(), noise


def mlflow_record(root: Path):
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    [record] = client.search_runs([client.get_experiment_by_name("fashionstyle").experiment_id])
    return client, record


@pytest.mark.slow
def test_val_f2_is_one_number_under_one_name_in_table_report_card_tracker_and_history(tracked):
    from fashionstyle.analysis.report import headline_html
    from fashionstyle.analysis.report_data import load_run
    from fashionstyle.core.history import MONITOR, final_metrics, read_history
    from fashionstyle.core.summary import read_summary

    root, run, _, printed, _ = tracked
    val = read_summary(run).val.macro_fbeta
    assert f"val_macro_f2 {val:.3f}" in printed  # the CLI table's last line
    assert f'<span class="value">{val:.3f}</span>validation macro F2' in headline_html(load_run(run.path))
    assert f"val_macro_f2 {val:.4f}" in (run / "MODEL_CARD.md").read_text()
    client, record = mlflow_record(root)
    assert round(record.data.metrics["val_macro_f2"], 3) == round(val, 3)
    # logged once by training and once by evaluate (which adds the test scores), never twice by one command
    assert len(client.get_metric_history(record.info.run_id, "val_macro_f2")) == 2
    assert round(final_metrics(run)["val_macro_f2"], 3) == round(val, 3)
    # each epoch's score at its own exact thresholds has its own name everywhere
    rows = read_history(run)
    assert all(MONITOR in row and "val_fbeta_tuned" not in row for row in rows)
    assert "val_fbeta_tuned" not in record.data.metrics and MONITOR in record.data.metrics
    assert "at exact thresholds" in printed and " tuned  lr" not in printed


@pytest.mark.slow
def test_mlflow_store_reads_back_settings_metrics_folder_model_and_figures(tracked):
    import mlflow
    import mlflow.server
    import pandas as pd

    root, run, labels, _, _ = tracked
    client, record = mlflow_record(root)
    assert record.info.run_name == "run" and record.info.status == "FINISHED"
    assert record.data.params["lr"] == "0.002" and record.data.params["backbone"] == "test_resnet"
    metrics = record.data.metrics
    for name, threshold in zip(LABELS, run.thresholds().thresholds_):
        assert metrics[f"threshold/{name}"] == pytest.approx(threshold)
        assert len(client.get_metric_history(record.info.run_id, f"val_fbeta_epoch_exact/{name}")) == 2
        assert {f"val_f2/{name}", f"test_f2/{name}"} <= set(metrics)  # final per-label scores
    evaluated = json.loads((run / "eval_test.json").read_text())
    assert metrics["test_macro_f2"] == pytest.approx(evaluated["macro_fbeta"])
    top = {a.path for a in client.list_artifacts(record.info.run_id)}
    assert {"MODEL_CARD.md", "thresholds.json", "run", "figures"} <= top
    assert {"run/model.pt", "run/summary.json", "run/labels.json"} <= {
        a.path for a in client.list_artifacts(record.info.run_id, "run")}
    figures = {a.path for a in client.list_artifacts(record.info.run_id, "figures")}
    assert {"figures/fbeta_per_label.png", "figures/pr_curves.png"} <= figures

    assert (Path(mlflow.server.__file__).parent / "js" / "build" / "index.html").is_file()  # `mlflow ui` has its UI
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    found = mlflow.search_runs(experiment_names=["fashionstyle"])  # the full mlflow's pandas view, as the UI reads
    assert list(found["metrics.val_macro_f2"]) == [pytest.approx(metrics["val_macro_f2"])]
    model = mlflow.pyfunc.load_model(f"runs:/{record.info.run_id}/model")
    images = [str(p) for p in sorted((labels.parent / "img").glob("*.jpg"))[:2]] + [str(root / "missing.jpg")]
    table = model.predict(pd.DataFrame({"image": images}))
    assert list(table["image"]) == images and list(table.columns) == ["image", "labels", *LABELS, "error"]
    assert table["error"][2] and table.loc[2, list(LABELS)].isna().all() and not table["labels"][2]
    as_dict = model.predict({"image": images})  # a JSON object's shape: one row per image
    pd.testing.assert_frame_equal(as_dict, table)


@pytest.mark.slow
def test_the_mlflow_model_has_a_signature_and_predicts_the_table_of_fashionstyle_load(tracked):
    import mlflow
    import pandas as pd

    import fashionstyle

    root, run, labels, _, _ = tracked
    _, record = mlflow_record(root)
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    uri = f"runs:/{record.info.run_id}/model"
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.input_names() == ["image"]
    assert info.signature.outputs.input_names() == ["image", "labels", *LABELS, "error"]
    assert info.saved_input_example_info is not None  # an input example beside the signature
    images = [str(p) for p in sorted((labels.parent / "img").glob("*.jpg"))[:4]] + [str(root / "missing.jpg")]
    predicted = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"image": images}))
    expected = fashionstyle.load(run.path, device="cpu").table(images)
    expected["labels"] = [";".join(names) for names in expected["labels"]]  # as predict's CSV writes them
    pd.testing.assert_frame_equal(predicted, expected, check_dtype=False, atol=1e-6)
    champion = mlflow.pyfunc.load_model("models:/tagger@champion").predict(pd.DataFrame({"image": images}))
    pd.testing.assert_frame_equal(champion, predicted)


@pytest.mark.slow
def test_mlflows_scoring_server_answers_with_the_models_table(tracked):
    """What `mlflow models serve -m models:/tagger@champion` runs, in process: POST /invocations."""
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    root, _, labels, _, _ = tracked
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/tagger@champion")
    images = [str(p) for p in sorted((labels.parent / "img").glob("*.jpg"))[:3]] + [str(root / "missing.jpg")]
    client = TestClient(scoring_server.init(model))
    answer = client.post("/invocations", json={"dataframe_split": {"columns": ["image"], "data": [[i] for i in images]}})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert [r["image"] for r in rows] == images and set(rows[0]) == {"image", "labels", *LABELS, "error"}
    assert rows[3]["error"] == "image not found" and not isinstance(rows[0]["error"], str)  # null (NaN in pandas)
    bad = client.post("/invocations", json={"dataframe_split": {"columns": ["photo"], "data": [["a.jpg"]]}})
    assert bad.status_code == 400  # the signature's input column is `image`


@pytest.mark.slow
def test_a_spark_udf_scores_a_batch_through_the_registered_model(tracked, monkeypatch):
    pytest.importorskip("pyspark", reason="pyspark is not in the locked test environment (a 300 MB wheel and a "
                                          "JVM for one check): pip install pyspark to run it")
    import mlflow
    from pyspark.sql import SparkSession

    root, _, labels, _, _ = tracked
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    images = [str(p) for p in sorted((labels.parent / "img").glob("*.jpg"))[:3]]
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this environment's
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        # the result: a struct of the model's output columns, typed by its signature
        udf = mlflow.pyfunc.spark_udf(spark, "models:/tagger@champion", env_manager="local")
        frame = spark.createDataFrame([(i,) for i in images], ["image"])
        scored = [r["out"].asDict() for r in frame.withColumn("out", udf("image")).collect()]
    finally:
        spark.stop()
    expected = mlflow.pyfunc.load_model("models:/tagger@champion").predict({"image": images})
    assert [r["labels"] for r in scored] == list(expected["labels"])
    assert [r[LABELS[0]] for r in scored] == pytest.approx(list(expected[LABELS[0]]))


@pytest.mark.slow
def test_register_makes_a_version_with_its_alias_and_train_prints_the_mlflow_run(tracked):
    root, _, _, printed, _ = tracked
    client, record = mlflow_record(root)
    run_id = record.info.run_id
    [version] = client.search_model_versions("name='tagger'")
    assert int(version.version) == 1 and version.run_id == run_id
    assert int(client.get_model_version_by_alias("tagger", "champion").version) == 1
    [line] = [line for line in printed.splitlines() if line.startswith("MLflow run")]
    assert line.startswith(f"MLflow run {run_id}: model runs:/{run_id}/model, registered as tagger version 1;")
    assert f"mlflow ui --backend-store-uri sqlite:///{root / 'mlflow.db'}" in line


@pytest.mark.slow
def test_mlflows_own_noise_stays_out_of_the_training_log(tracked):
    noise = tracked[4]
    for said in ("Add type hints", "CloudPickle", "Downloading artifacts", "Validating input example",
                 "Operation with range"):
        assert said not in noise, said


def test_quiet_mlflow_leaves_our_warnings_and_puts_the_progress_bar_setting_back(monkeypatch):
    import logging

    from fashionstyle.training.trackers.mlflow_tracker import quiet_mlflow

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("mlflow.pyfunc").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as warned, quiet_mlflow():
            warnings.simplefilter("always")
            assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
            warnings.warn("ours: 3 images unreadable")
            logging.getLogger("mlflow.pyfunc").warning("Passing a Python object ... using CloudPickle, ...")
            logging.getLogger("mlflow.pyfunc").warning("a real MLflow problem")
    finally:
        logging.getLogger("mlflow.pyfunc").removeHandler(handler)
    assert [str(w.message) for w in warned] == ["ours: 3 images unreadable"]
    assert logged == ["a real MLflow problem"]
    assert "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ


@pytest.mark.parametrize("flags, said", [
    (["--register", "tagger"], "--register tagger: registers the MLflow model, so it needs --logger mlflow"),
    (["--logger", "mlflow", "--alias", "champion"], "--alias champion: names a registered model's version, "
                                                    "so it needs --register NAME"),
])
def test_register_without_mlflow_and_alias_without_register_are_one_line(tmp_path, capsys, flags, said):
    out = tmp_path / "run"
    assert main(["train", "--labels", str(tmp_path / "labels.csv"), "--out", str(out), *TINY_TRAIN, *flags]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_wandb_offline_gets_the_files_final_scores_model_and_figures(tracked):
    _, run, _, _, _ = tracked
    logs = sorted((run / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))  # later updates resume the run
    assert logs
    files = logs[0].parent / "files"
    assert (files / "MODEL_CARD.md").exists() and (files / "thresholds.json").exists()
    logged = b"".join(p.read_bytes() for p in logs)
    assert b"val_macro_f2" in logged and b"test_macro_f2" in logged  # final scores: the W&B run's summary
    assert b"model-" in logged  # the run folder as a model artefact
    assert list(files.glob("media/images/figures/fbeta_per_label*.png"))
    assert (run / "logs" / "csv" / "metrics.csv").is_file()
    assert not (run / "logs" / "tensorboard").exists()  # --logger replaces the default list


def test_a_tracker_whose_package_is_missing_is_one_line(tmp_path, monkeypatch):
    from fashionstyle.training.trackers import base as trackers

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(FashionStyleError, match="--logger wandb needs wandb, which is not installed"):
        trackers.make_loggers(["csv", "wandb"], RunDir(tmp_path))


def test_a_store_mlflow_refuses_is_one_line(tmp_path):
    from fashionstyle.training.trackers.base import make_loggers

    with pytest.raises(FashionStyleError, match="--logger mlflow: tracking store .* refused"):
        make_loggers(["mlflow"], RunDir(tmp_path), mlflow_uri="nosuchscheme://x")


def test_a_missing_tensorboard_is_skipped_only_when_not_asked_for_by_name(tmp_path, monkeypatch):
    from fashionstyle.core.config import TRACKERS
    from fashionstyle.training.trackers import base as trackers

    class Missing(trackers.Tracker):
        def logger(self, *args):
            raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")

    monkeypatch.setitem(TRACKERS._implementations, "tensorboard", Missing)
    [csv] = trackers.make_loggers(list(trackers.DEFAULT_TRACKERS), RunDir(tmp_path))
    assert type(csv).__name__ == "CSVLogger"
    with pytest.raises(FashionStyleError, match="--logger tensorboard needs tensorboard"):
        trackers.make_loggers(["csv", "tensorboard", "mlflow"], RunDir(tmp_path))


def test_a_resumed_run_logs_to_the_same_mlflow_and_wandb_runs(tmp_path, monkeypatch):
    from fashionstyle.training.trackers.base import make_loggers

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run, uri = RunDir(tmp_path / "run"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = make_loggers(["mlflow", "wandb"], run, uri)
    again = make_loggers(["mlflow", "wandb"], run, uri)  # as after --resume
    assert again[0].run_id == first[0].run_id
    assert first[1].version and again[1].version == first[1].version  # the W&B run id, without starting it
    other = make_loggers(["mlflow"], RunDir(tmp_path / "other"), uri)
    assert other[0].run_id != first[0].run_id


@pytest.mark.slow
def test_a_resume_into_another_mlflow_store_starts_a_run_there(tmp_path):
    from fashionstyle.training.trackers.base import make_loggers

    run = RunDir(tmp_path / "run")
    first = make_loggers(["mlflow"], run, f"sqlite:///{tmp_path / 'one.db'}")
    elsewhere = make_loggers(["mlflow"], run, f"sqlite:///{tmp_path / 'two.db'}")  # --resume --mlflow-uri ...
    assert elsewhere[0].run_id != first[0].run_id
    assert elsewhere[0].experiment.get_run(elsewhere[0].run_id).info.status == "RUNNING"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: nothing listens there


@pytest.mark.parametrize("store, cause", [
    ("sqlite:////proc/x.db", r"cannot write in /proc \("),
    ("sqlite:///{tmp}/mlflow.db", r"mlflow.db is a folder, not an SQLite file"),
    ("sqlite:///{tmp}/notes.txt", r"notes.txt is not an SQLite database"),
    ("{tmp}/notes.txt", r"notes.txt is a file, not a folder store"),
    ("sqlite:///{tmp}/no/such/folder/m.db", r"the folder .*no/such/folder does not exist"),
    ("http://127.0.0.1:{port}", r"the tracking server http://127.0.0.1:\d+ does not answer"),
])
def test_an_unusable_mlflow_store_is_one_line_within_seconds(tmp_path, store, cause):
    from fashionstyle.training.trackers.base import check_trackers

    (tmp_path / "mlflow.db").mkdir()
    (tmp_path / "notes.txt").write_text("my notes\n")
    start = time.monotonic()
    with pytest.raises(FashionStyleError, match=cause) as err:
        check_trackers(["csv", "mlflow"], store.format(tmp=tmp_path, port=closed_port()))
    assert time.monotonic() - start < 10 and "\n" not in str(err.value)
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"  # the user's file untouched


def test_wandb_online_with_a_dead_server_is_one_line_within_seconds(monkeypatch):
    from fashionstyle.training.trackers.base import check_trackers

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    with pytest.raises(FashionStyleError, match=r"--logger wandb: the W&B server .* does not answer .*WANDB_MODE="):
        check_trackers(["wandb"])
    assert time.monotonic() - start < 10
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_trackers(["wandb"])  # offline: no server needed


def test_a_good_local_store_passes_the_check(tmp_path):
    from fashionstyle.training.trackers.base import check_trackers

    check_trackers(["mlflow"], f"sqlite:///{tmp_path / 'mlflow.db'}")  # not there yet: made by the logger
    check_trackers(["mlflow"], str(tmp_path / "folder_store"))


@pytest.mark.slow
def test_a_failed_tracker_leaves_no_run_folder_and_a_rerun_with_another_logger_works(tmp_path, capsys):
    labels = make_image_set(tmp_path / "data", n=16)
    out = tmp_path / "run"
    (tmp_path / "mlflow.db").mkdir()
    start = time.monotonic()
    assert main(["train", "--labels", str(labels), "--out", str(out), *TINY_TRAIN, "--epochs", "1",
                 "--logger", "mlflow", "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 2
    assert time.monotonic() - start < 20
    assert "is a folder, not an SQLite file" in capsys.readouterr().err
    assert not out.exists()  # nothing half-made for a rerun to refuse
    assert main(["train", "--labels", str(labels), "--out", str(out), *TINY_TRAIN, "--epochs", "1",
                 "--logger", "csv"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--logger", "csv", "--logger", "mlflow",
                 "--mlflow-uri", f"sqlite:///{tmp_path / 'good.db'}"]) == 0  # --resume with another logger
    assert (out / "logs" / "trackers.json").is_file()


@pytest.mark.slow
def test_the_mlflow_ui_server_shows_the_run_its_model_figures_and_final_scores(tracked):
    """`mlflow ui` on the written store, read back through the UI's own REST API, as its pages read it."""
    import subprocess
    import urllib.request

    root, run, _, _, _ = tracked
    port = closed_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                               "--host", "127.0.0.1", "--port", str(port)], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> dict:
        with urllib.request.urlopen(base + path, timeout=10) as answer:
            return json.loads(answer.read())

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(base + path, method="POST", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                experiment = get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=fashionstyle")["experiment"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start"
                time.sleep(2)
        experiments = {"experiment_ids": [experiment["experiment_id"]]}
        [found] = post("/api/2.0/mlflow/runs/search", experiments)["runs"]
        metrics = {m["key"]: m["value"] for m in found["data"]["metrics"]}
        summary = json.loads((run / "summary.json").read_text())
        assert metrics["val_macro_f2"] == pytest.approx(summary["metrics"]["val_macro_f2"])
        assert "test_macro_f2" in metrics
        run_id = found["info"]["run_id"]
        top = {f["path"] for f in get(f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")["files"]}
        assert {"figures", "run", "MODEL_CARD.md"} <= top
        [output] = found["outputs"]["model_outputs"]  # the pyfunc model, an MLflow 3 logged model of the run
        models = {m["info"]["model_id"]: m["info"] for m in post("/api/2.0/mlflow/logged-models/search",
                                                                 experiments)["models"]}
        model = models[output["model_id"]]
        assert model["name"] == "model" and model["status"] == "LOGGED_MODEL_READY" and model["source_run_id"] == run_id
        figures = {f["path"] for f in get(f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=figures")["files"]}
        assert "figures/fbeta_per_label.png" in figures
    finally:
        server.terminate()
        server.wait(timeout=30)


class _FakePredictor:
    """What RunModel.predict uses of a Predictor: two labels, an image named `bad.jpg` unreadable."""

    label_names = ["Red", "Blue"]

    @staticmethod
    def predict_proba(images, **kwargs):
        import numpy as np

        return np.array([[np.nan, np.nan] if str(i).endswith("bad.jpg") else [0.9, 0.1] for i in images])

    def records(self, images, probs):
        from fashionstyle.core.prediction import make_predictions

        return make_predictions(images, probs, probs > 0.5, self.label_names)


def test_the_pyfunc_model_gives_one_row_per_image_of_any_input_shape(tmp_path):
    import pandas as pd

    from fashionstyle.inference.mlflow_model import RunModel, image_paths

    model = RunModel()
    model.predictor = _FakePredictor()
    images = ["a.jpg", "b.jpg", "bad.jpg"]
    for given in ({"image": images}, pd.DataFrame({"image": images}), images, {"other": images},
                  [{"image": i} for i in images], pd.DataFrame([{"image": images}])):  # the last: MLflow's dict
        table = model.predict(None, given)
        assert list(table["image"]) == images, given
        assert list(table.columns) == ["image", "labels", "Red", "Blue", "error"]
        assert table["labels"][0] == "Red" and table["Red"][0] == pytest.approx(0.9) and table["error"][2]
    assert list(model.predict(None, "a.jpg")["image"]) == ["a.jpg"]
    assert image_paths({"image": "a.jpg"}) == ["a.jpg"] and image_paths(tmp_path / "a.jpg") == [str(tmp_path / "a.jpg")]
    empty = model.predict(None, {"image": []})
    assert empty.empty and list(empty.columns) == ["image", "labels", "Red", "Blue", "error"]
    for bad, match in (({}, "has no column"), ([1, 2], "holds int '1' at 0, not an image path"),
                       ({"image": 3}, "the model's input is int '3'")):
        with pytest.raises(FashionStyleError, match=match):
            image_paths(bad)


@pytest.mark.slow
def test_a_new_operating_point_reaches_the_card_and_the_mlflow_run(tracked, tmp_path):
    import shutil

    root, run, _, _, _ = tracked
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)  # the copy logs to the same MLflow run (RUN/logs/trackers.json)
    assert main(["tune", str(copy), "--operating-point", "store", "--max-labels", "1"]) == 0
    card = (copy / "MODEL_CARD.md").read_text()
    assert "## Operating points" in card and "- store: F2; at most 1 label" in card
    client, record = mlflow_record(root)
    assert "operating_points.json" in {a.path for a in client.list_artifacts(record.info.run_id)}
    logged = json.loads(Path(client.download_artifacts(record.info.run_id, "operating_points.json",
                                                       str(tmp_path))).read_text())
    assert [p["name"] for p in logged["points"]] == ["store"]
