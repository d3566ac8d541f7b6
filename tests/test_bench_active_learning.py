"""bench/active_learning.py: the simulation's rounds, its choice on validation, its resume, table and plot."""
from __future__ import annotations

import json

import pytest

from conftest import load_bench, make_image_set

TINY = {"backbone": "test_resnet", "pretrained": False, "image_size": 32, "epochs": 1, "batch_size": 8, "hidden": 32,
        "num_workers": 0, "lr_schedule": "constant"}


@pytest.mark.slow
def test_rounds_add_the_chosen_photos_pick_the_best_on_val_and_resume_without_retraining(tmp_path, capsys):
    labels = make_image_set(tmp_path / "data", n=64)
    bench = load_bench("active_learning")
    out = tmp_path / "al"
    argv = ["run", "--labels", str(labels), "--out", str(out), "--strategies", "uncertainty", "margin", "random",
            "--select-after", "1", "--rounds", "2", "--start", "0.25", "--step", "0.25", "--recipe", json.dumps(TINY)]
    assert bench.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    chosen = results["chosen_on_val"]
    assert chosen in ("uncertainty", "margin")
    assert results["round0"]["labelled"] == 8
    assert {k for k in results if k.endswith("round2")} == {f"{chosen}/round2", "random/round2"}
    assert all(results[f"{s}/round1"]["labelled"] == 16 for s in ("uncertainty", "margin", "random"))
    assert results[f"{chosen}/round2"]["labelled"] == 24
    for r in (1, 2):  # each round keeps the photos of the one before and adds new ones
        import numpy as np
        before = np.load(out / chosen / "round1" / "labelled.npy") if r == 2 else None
        after = np.load(out / chosen / f"round{r}" / "labelled.npy")
        assert before is None or (after >= before).all() and after.sum() > before.sum()
    stamp = (out / "round0" / "run" / "model.pt").stat().st_mtime_ns
    assert bench.main(argv) == 0  # a second call resumes: nothing is trained again
    assert (out / "round0" / "run" / "model.pt").stat().st_mtime_ns == stamp
    table = bench.table_text(json.loads((out / "results.json").read_text()))
    assert "| 24 (round 2) |" in table and "`random` test (val)" in table
    png = tmp_path / "al.png"
    assert bench.main(["plot", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_the_round_path_merges_the_new_labels_and_trains_from_the_previous_run(tmp_path):
    import yaml

    labels = make_image_set(tmp_path / "data", n=64)
    bench = load_bench("active_learning")
    out = tmp_path / "al"
    assert bench.main(["run", "--labels", str(labels), "--out", str(out), "--strategies", "uncertainty+round",
                       "--rounds", "1", "--start", "0.25", "--step", "0.25", "--recipe", json.dumps(TINY)]) == 0
    results = json.loads((out / "results.json").read_text())
    row = results["uncertainty+round/round1"]
    assert row["labelled"] == 16 and row["train_s"] > 0
    config = yaml.safe_load((out / "uncertainty+round" / "round1" / "run" / "config.yaml").read_text())
    assert config["init_from"] == str((out / "round0" / "run").resolve())
    assert config["labels"].endswith("run.round/labels.csv")
