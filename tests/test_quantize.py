"""int8 ONNX exports: calibrated on real images, predicted through the same interface, fidelity measured."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from conftest import tiny_run  # noqa: E402
from fashionstyle import FashionStyleError, RunDir  # noqa: E402
from fashionstyle.cli import main  # noqa: E402
from fashionstyle.export import export_onnx  # noqa: E402
from fashionstyle.onnx_predictor import OnnxPredictor  # noqa: E402
from fashionstyle.quantize import quantize_export, split_images  # noqa: E402
from fashionstyle.runtimes import load_predictor  # noqa: E402


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    return tiny_run(tmp_path_factory.mktemp("quantize"), n=40)


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_calibration_and_check_images_are_disjoint() -> None:
    images = [f"{i}.jpg" for i in range(50)]
    calibrate, check = split_images(images, 20, 100, seed=3)
    assert len(calibrate) == 20 and len(check) == 30
    assert not set(calibrate) & set(check) and set(calibrate) | set(check) == {Path(p) for p in images}
    assert split_images(images, 20, 100, seed=3) == (calibrate, check)  # seeded
    few = split_images(images[:10], 64, 128)
    assert [len(part) for part in few] == [5, 5]  # at most half calibrates, the rest checks
    with pytest.raises(FashionStyleError, match="no images"):
        split_images([], 8, 8)


@pytest.mark.slow
def test_int8_export_is_quantised_and_close(trained_run, tmp_path) -> None:
    run, _, images = trained_run
    export_onnx(run, tmp_path / "fp32")
    fidelity = quantize_export(tmp_path / "fp32", tmp_path / "int8", images, calibration=16, check=24)
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(tmp_path / "int8" / "model.onnx")
    assert "QuantizeLinear" not in op_types(tmp_path / "fp32" / "model.onnx")
    assert fidelity.calibration_images == 16 and fidelity.check_images == 24
    assert 0 <= fidelity.mean_prob_diff <= fidelity.max_prob_diff < 0.1
    assert json.loads((tmp_path / "int8" / "fidelity.json").read_text())["check_images"] == 24
    fp32, int8 = OnnxPredictor.from_export(tmp_path / "fp32"), OnnxPredictor.from_export(tmp_path / "int8")
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    p32, p8 = fp32.predict_proba(images), int8.predict_proba(images)
    assert p8.shape == p32.shape and not np.array_equal(p8, p32)
    assert np.abs(p8 - p32).max() < 0.1
    # the reported agreement is that of the check images (a 1-epoch model's probabilities sit
    # within 0.001 of its thresholds, so how high it is says little here)
    _, check = split_images(images, 16, 24)
    c32, c8 = fp32.predict_proba(check), int8.predict_proba(check)
    same = fp32.tuner.predict(c32) == fp32.tuner.predict(c8)
    assert fidelity.label_agreement == pytest.approx(same.mean())
    assert fidelity.images_identical == pytest.approx(same.all(axis=1).mean())
    assert fidelity.max_prob_diff == pytest.approx(np.abs(c8 - c32).max())


@pytest.mark.slow
def test_from_run_makes_the_int8_export_once_from_validation_images(trained_run) -> None:
    run, _, images = trained_run
    predictor = load_predictor(run, "onnx-int8")
    model = run / "onnx-int8" / "model.onnx"
    assert predictor.precision == "int8" and model.is_file() and (run / "onnx" / "model.onnx").is_file()
    validation = len(RunDir(run).val_probs()[0])
    fidelity = json.loads((run / "onnx-int8" / "fidelity.json").read_text())
    assert fidelity["calibration_images"] + fidelity["check_images"] == validation
    stamp = model.stat().st_mtime_ns
    load_predictor(run, "onnx-int8")
    assert model.stat().st_mtime_ns == stamp  # current: reused
    assert load_predictor(run, "onnx").precision == "fp32"  # the fp32 export is not taken for int8


@pytest.mark.slow
def test_cli_export_int8_and_evaluate_keep_each_runtimes_scores(trained_run, tmp_path, capsys) -> None:
    run, labels, _ = trained_run
    calibration = labels.parent / "img"
    assert main(["export", str(run), "--precision", "int8", "--calibration", str(calibration),
                 "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "int8 ONNX model(s) written" in out and "label decisions" in out
    assert main(["export", str(run), "--calibration", str(calibration), "--out", str(tmp_path / "f")]) == 2
    assert main(["evaluate", str(run), "--labels", str(labels), "--split", "all", "--quiet"]) == 0
    torch_probs = np.load(run / "eval_all.npz")["probs"]
    assert main(["evaluate", str(run), "--labels", str(labels), "--split", "all", "--quiet",
                 "--runtime", "onnx-int8"]) == 0
    np.testing.assert_array_equal(np.load(run / "eval_all.npz")["probs"], torch_probs)  # not overwritten
    int8_probs = np.load(run / "eval_all_onnx-int8.npz")["probs"]
    assert int8_probs.shape == torch_probs.shape and not np.array_equal(int8_probs, torch_probs)
    scores = json.loads((run / "eval_all_onnx-int8.json").read_text())
    assert scores["runtime"] == "onnx-int8" and json.loads((run / "eval_all.json").read_text())["runtime"] == "torch"


@pytest.mark.slow
def test_unreadable_images_leave_fidelity_unmeasured_or_fail_calibration(trained_run, tmp_path) -> None:
    from fashionstyle.quantize import measure_fidelity

    run, _, images = trained_run
    export_onnx(run, tmp_path / "fp32")
    broken = []
    for k in range(4):
        broken.append(tmp_path / f"broken{k}.jpg")
        broken[-1].write_bytes(b"not a jpeg")
    quantize_export(tmp_path / "fp32", tmp_path / "int8", images, calibration=8, check=0)
    saved = json.loads((tmp_path / "int8" / "fidelity.json").read_text())  # strict JSON: null, not NaN
    assert saved["check_images"] == 0 and saved["max_prob_diff"] is None
    fidelity = measure_fidelity(tmp_path / "fp32", tmp_path / "int8", broken, 8)
    assert fidelity.check_images == 0 and np.isnan(fidelity.label_agreement)
    with pytest.raises(FashionStyleError, match="none of the calibration images could be read"):
        quantize_export(tmp_path / "fp32", tmp_path / "again", broken, calibration=4)
    assert not (tmp_path / "again" / "members.json").exists()


@pytest.mark.slow
def test_quantising_wrong_folders_is_a_user_error(trained_run, tmp_path) -> None:
    run, _, images = trained_run
    export_onnx(run, tmp_path / "fp32")
    with pytest.raises(FashionStyleError, match="its own folder"):
        quantize_export(tmp_path / "fp32", tmp_path / "fp32", images)
    assert quantize_export(tmp_path / "fp32", tmp_path / "int8", images, calibration=8, check=0).check_images == 0
    with pytest.raises(FashionStyleError, match="already a int8 export"):
        quantize_export(tmp_path / "int8", tmp_path / "again", images)
    assert main(["predict", str(run), "--images", str(images[0].parent), "--out", str(tmp_path / "p.txt"),
                 "--runtime", "onnx-int8", "--tta", "flip"]) == 2


@pytest.mark.slow
def test_a_fused_run_needs_calibration_images_for_int8(trained_run, tmp_path) -> None:
    from fashionstyle.ensemble import fuse_runs

    run, _, images = trained_run
    fused = fuse_runs([run, run], tmp_path / "fused")
    with pytest.raises(FashionStyleError, match="--calibration FOLDER"):
        load_predictor(fused.path, "onnx-int8")
    assert main(["export", str(fused.path), "--precision", "int8", "--calibration", str(images[0].parent)]) == 0
    assert load_predictor(fused.path, "onnx-int8").precision == "int8"  # the export made above is used
