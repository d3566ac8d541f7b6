"""bench/gpu_checks.sh and its benchmarks, ready for a first device call: every step's table printed as
the step ends, a failed pass recorded in its row while the others go on, the decoder agreement table,
and only the device image's packages on their path (torch, torchvision, timm, lightning, onnxruntime
and their dependencies: python -S with links to those alone, as if nothing else were installed)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_bench

pytestmark = pytest.mark.slow  # each runs benchmarks end to end

ROOT = Path(__file__).resolve().parents[1]
DEVICE_IMAGE = ["torch", "torchvision", "timm", "lightning", "onnxruntime"]  # with their dependencies


def device_image_site(folder: Path) -> Path:
    """A folder of links to the installed distributions the device image has: DEVICE_IMAGE and everything
    they require (markers as here, no extras). Python started with -S and this on its path sees no other
    package (fastapi, pyarrow, matplotlib, captum, cleanlab... are then simply not installed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen, todo = {}, list(DEVICE_IMAGE)
    while todo:
        name = todo.pop()
        if canonicalize_name(name) in seen:
            continue
        try:
            dist = seen[canonicalize_name(name)] = distribution(name)
        except PackageNotFoundError:
            continue
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    folder.mkdir(parents=True)
    for dist in seen.values():
        for top in {Path(f).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            if not top.endswith(".pth") and not (folder / top).exists():
                (folder / top).symlink_to(dist.locate_file(top))
    return folder


TINY = ["--backbones", "test_resnet", "--image-size", "32", "--batch-size", "4", "--steps", "2", "--warmup", "1",
        "--images", "12", "--photo-size", "48x64", "--device", "cpu", "--workers", "0", "--threads", "1"]


def rows(out: str, title: str) -> list[str]:
    """The rows of the table under `## title...` (header and separator left out)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {title}"))
    table = []
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table[2:]


def test_a_failed_prediction_pass_leaves_the_other_cells_and_the_agreement_says_why(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_FAIL", "fashionstyle gpu")
    assert load_bench("infer_speed").main([*TINY, "--out", str(tmp_path), "--decoders", "cpu", "gpu"]) == 0
    out = capsys.readouterr().out
    [row] = rows(out, "prediction images/s")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "failed: RuntimeError: forced by BENCH_FAIL=fashionstyle gpu"
    assert all(re.fullmatch(r"\d+\.\d", c) for c in cells[1:5] + cells[6:7])  # the other passes ran
    [agreement] = rows(out, "decoder agreement")
    assert "failed: an end-to-end pass failed" in agreement


def test_the_decoders_agree_on_the_cpu(tmp_path: Path, capsys) -> None:
    assert load_bench("infer_speed").main([*TINY, "--out", str(tmp_path), "--decoders", "cpu", "gpu"]) == 0
    [agreement] = rows(capsys.readouterr().out, "decoder agreement")
    assert [c.strip() for c in agreement.strip("|").split("|")][1:] == ["12", "0.0000", "0.00000", "100.00%"]


def test_gpu_checks_in_cpu_mode_prints_every_table_with_only_the_device_images_packages(tmp_path: Path) -> None:
    site = device_image_site(tmp_path / "site")
    python = f"{sys.executable} -S"  # no site-packages: only the device image's, through PYTHONPATH
    env = {**os.environ, "PYTHONPATH": str(site), "CHECKS_MODE": "cpu", "BENCH_FAIL": "plain loop",
           "TMPDIR": str(tmp_path), "PYTHON": python}
    probe = "import torch, timm, lightning, onnxruntime\ntry:\n import matplotlib\nexcept ImportError: print('none')"
    assert subprocess.run([*python.split(), "-c", probe], env=env, capture_output=True, text=True).stdout == "none\n"
    done = subprocess.run(["bash", "bench/gpu_checks.sh", str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [line.split()[1] for line in out.splitlines() if line.startswith("# ")]
    assert steps == ["env", "photos", "prediction", "training", "host_preprocessing"], out
    assert all("exit 0" in line for line in out.splitlines() if line.startswith("# ") and "(" in line), out
    prediction, training = out.index("# prediction"), out.index("# training")
    assert prediction < out.index("## prediction images/s") < out.index("## decoder agreement") < training
    [speed], [agree], [train] = (rows(out, t) for t in ("prediction images/s", "decoder agreement",
                                                         "training images/s"))
    assert "failed: RuntimeError: forced by BENCH_FAIL=plain loop" in speed and "100.00%" in agree
    train_cells = [c.strip() for c in train.strip("|").split("|")]
    assert train_cells[5].startswith("failed: ") and re.fullmatch(r"\d+\.\d", train_cells[4])  # fashionstyle ran
    assert "train: torchvision.io + uint8 crop" in out
    assert (tmp_path / "out" / "tables.md").read_text().count("## ") == 3
    logs = "".join(p.read_text() for p in (tmp_path / "out").glob("*.log"))
    assert "ModuleNotFoundError" not in logs and "ImportError" not in logs  # nothing else was needed
