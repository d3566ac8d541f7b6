"""Smoke tests: the training and prediction speed benchmarks run end to end at a tiny size on the CPU."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import load_bench

pytestmark = pytest.mark.slow  # each runs a benchmark end to end

TINY = ["--backbones", "test_resnet", "--image-size", "32", "--batch-size", "4", "--steps", "2",
        "--warmup", "1", "--images", "12", "--photo-size", "48x64", "--device", "cpu", "--workers", "0",
        "--threads", "1"]
COLUMNS = re.compile(r"\|\s*([^|]*?)\s*(?=\|)")
RATIO = re.compile(r"\|\s+\d+\.\d\dx \|")


def table_row(out: str, backbone: str) -> str:
    rows = [line for line in out.splitlines() if line.startswith("|") and backbone in line]
    assert rows, out
    return rows[0]  # the speed table's (infer_speed's decoder agreement table follows it)


def test_train_speed_bench_tiny(tmp_path: Path, capsys) -> None:
    assert load_bench("train_speed").main([*TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for column in ("anchor fp32 b4 img/s", "report fp32 b46 img/s", "pipeline alone img/s", "plain PIL loop img/s",
                   "vs anchor", "vs plain", "bound by", "pipeline, batch decoded on cpu img/s",
                   "fashionstyle --decode gpu img/s"):
        assert column in out, column
    row = COLUMNS.findall(table_row(out, "test_resnet"))
    assert row[6].endswith("x") and row[8] in ("model", "input pipeline")
    assert "fashionstyle epoch 2: 2 steps, 8 images" in out and "input pipeline alone:" in out
    runs = list((tmp_path / "runs").glob("test_resnet-*/run"))
    assert len(runs) == 1 and (runs[0] / "epochs" / "e002.npy").is_file()


def test_infer_speed_bench_tiny(tmp_path: Path, capsys) -> None:
    assert load_bench("infer_speed").main([*TINY, "--out", str(tmp_path), "--decoders", "cpu", "gpu"]) == 0
    out = capsys.readouterr().out
    for column in ("model alone fp32 b4", "pipeline cpu", "pipeline gpu", "fashionstyle cpu", "fashionstyle gpu",
                   "plain PIL loop", "best e2e / bound", "best e2e / plain"):
        assert column in out, column
    assert RATIO.search(table_row(out, "test_resnet"))
    assert "test_resnet: fashionstyle, gpu decoder:" in out and "12 images in" in out


def test_train_speed_bench_from_the_cache(tmp_path: Path, capsys) -> None:
    assert load_bench("train_speed").main([*TINY, "--out", str(tmp_path), "--cache"]) == 0
    out = capsys.readouterr().out
    assert "fashionstyle img/s (cache)" in out and RATIO.search(table_row(out, "test_resnet"))
    assert list(tmp_path.glob("photos-*/cache-32/index.json"))  # built, then trained from
