"""Smoke test: the threshold benchmark passes its own checks at a small size."""

from __future__ import annotations

import numpy as np
from conftest import load_bench


def test_threshold_bench_small() -> None:
    assert load_bench("threshold_speed").main(["--n", "2000", "--labels", "3"]) == 0


def test_threshold_rules_bench_chooses_on_val_halves_and_reports_test(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        parts = {}
        for split in ("val", "test"):
            targets = (rng.random((200, 3)) < [0.3, 0.1, 0.02]).astype(int)
            parts[split] = np.clip(0.4 * targets + 0.6 * rng.random((200, 3)), 0, 1)
            parts[f"{split}_targets"] = targets
        paths.append(tmp_path / f"run{i}.npz")
        np.savez(paths[-1], **parts)
    assert load_bench("threshold_rules").main([*map(str, paths), "--splits", "2"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith(str(tmp_path)) for line in out.splitlines()) == 6
    for rule in ("smooth", "bootstrap", "pooled"):
        assert f"{rule}: val (split halves) mean" in out
    assert out.count("over 6 runs ->") == 3


def test_threshold_rules_bench_verdict_follows_val_not_test(tmp_path, capsys, monkeypatch) -> None:
    bench = load_bench("threshold_rules")
    targets = np.eye(3, dtype=int)[np.arange(30) % 3]
    paths = [str(tmp_path / f"run{i}.npz") for i in range(6)]
    for path in paths:
        np.savez(path, val=targets * 0.8, val_targets=targets, test=targets * 0.8, test_targets=targets)
    # pooled wins every val halving and loses on test; smooth the other way round
    monkeypatch.setattr(bench, "split_half_score", lambda rule, *a: {"pooled": 0.9, "smooth": 0.1}.get(rule, 0.5))
    monkeypatch.setattr(bench, "tuned_score", lambda rule, *a: {"pooled": 0.1, "smooth": 0.9}.get(rule, 0.5))
    assert bench.main(paths) == 0
    verdicts = {line.split(":")[0]: line.rsplit("-> ", 1)[1] for line in capsys.readouterr().out.splitlines()
                if "->" in line}
    assert verdicts == {"smooth": "stays opt-in", "bootstrap": "stays opt-in", "pooled": "qualifies as default"}
