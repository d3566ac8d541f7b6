"""Smoke test: the threshold benchmark passes its own checks at a small size."""

from __future__ import annotations

from conftest import load_bench


def test_threshold_bench_small() -> None:
    assert load_bench("threshold_speed").main(["--n", "2000", "--labels", "3"]) == 0
