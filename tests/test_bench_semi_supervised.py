"""bench/semi_supervised.py: the labelled/unlabelled split of issue 23's table, and its plot."""
from __future__ import annotations

import csv
import json

import pytest

from conftest import load_bench, make_image_set


def test_split_keeps_a_share_of_train_labels_and_every_val_and_test_row_and_lists_the_rest_unlabelled(tmp_path):
    labels = make_image_set(tmp_path / "data", n=40)
    bench = load_bench("semi_supervised")
    assert bench.main(["split", "--labels", str(labels), "--fraction", "0.3", "--out", str(tmp_path / "s")]) == 0
    with (tmp_path / "s" / "labels.csv").open() as f:
        kept = list(csv.DictReader(f))
    with (tmp_path / "s" / "unlabelled.csv").open() as f:
        unlabelled = [row["image"] for row in csv.DictReader(f)]
    train = [r for r in kept if r["split"] == "train"]
    assert [r["split"] for r in kept].count("val") == 10 and [r["split"] for r in kept].count("test") == 10
    assert 0 < len(train) < 20 and len(train) + len(unlabelled) == 20
    assert not {r["image"] for r in train} & set(unlabelled)
    again = tmp_path / "again"
    bench.main(["split", "--labels", str(labels), "--fraction", "0.3", "--out", str(again)])
    assert (again / "labels.csv").read_text() == (tmp_path / "s" / "labels.csv").read_text()  # fixed seed


def test_plot_draws_one_line_per_method_given(tmp_path):
    scores = {}
    for name, f2 in (("p10", 0.3), ("p30", 0.45), ("f10", 0.4), ("f30", 0.6)):
        scores[name] = tmp_path / f"{name}.json"
        scores[name].write_text(json.dumps({"test_f2_tuned": f2}))
    out = tmp_path / "plot.png"
    assert load_bench("semi_supervised").main([
        "plot", "--out", str(out), "--plain", f"10={scores['p10']}", f"30={scores['p30']}",
        "--fusion-taught", f"10={scores['f10']}", f"30={scores['f30']}"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_split_refuses_to_write_over_the_label_file_it_reads(tmp_path):
    labels = make_image_set(tmp_path / "data", n=8)
    before = labels.read_bytes()
    with pytest.raises(SystemExit, match="would overwrite the label file it reads"):
        load_bench("semi_supervised").main(["split", "--labels", str(labels), "--fraction", "0.5",
                                            "--out", str(labels.parent)])
    assert labels.read_bytes() == before
