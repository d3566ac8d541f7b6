"""Smoke test: the threshold benchmark passes its own checks at a small size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "threshold_speed.py"


def test_threshold_bench_small() -> None:
    spec = importlib.util.spec_from_file_location("threshold_speed", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--n", "2000", "--labels", "3"]) == 0
