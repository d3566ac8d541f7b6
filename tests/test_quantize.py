"""int8 ONNX exports: calibrated on real images, predicted through the same interface, fidelity measured."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from timm.layers import Conv2dSame  # noqa: E402

from conftest import LABELS, TinyRun, TinyRuns  # noqa: E402
from fashionstyle import FashionStyleError, RunDir  # noqa: E402
from fashionstyle.inference import quantize  # noqa: E402
from fashionstyle.cli import main  # noqa: E402
from fashionstyle.inference.onnx_export import export_model, export_onnx  # noqa: E402
from fashionstyle.inference.onnx_predictor import EXPORT_FORMAT, INPUT_NAME, OUTPUT_NAME, OnnxPredictor  # noqa: E402
from fashionstyle.inference.quantize import quantize_export, split_images  # noqa: E402
from fashionstyle.inference.runtimes import load_predictor  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402


@pytest.fixture(scope="module")
def trained_run(tiny_runs: TinyRuns, tmp_path_factory) -> TinyRun:
    """A copy of the session's 40-image tiny run (16 calibration + 24 check images): its tests export,
    quantise and evaluate into it."""
    return tiny_runs.copy(tmp_path_factory.mktemp("quantize"), n=40)


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


class SamePadNet(torch.nn.Module):
    """Three TF-"same" convolutions as tf_efficientnet_lite's (5x5, stride 2: pads computed from the
    input size in the graph, 1 before and 2 after) and a linear head with large outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(Conv2dSame(3, 16, 5, stride=2), torch.nn.ReLU6(),
                                        Conv2dSame(16, 16, 5, stride=2), torch.nn.ReLU6(),
                                        Conv2dSame(16, 16, 5, stride=2), torch.nn.ReLU6())
        self.head = torch.nn.Linear(16, len(LABELS))
        with torch.no_grad():
            self.head.weight.mul_(30)  # probabilities that differ between images

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 32, 32) -> (B, 3)
        return self.head(self.body(x).mean((2, 3)))


@pytest.fixture(scope="module")
def same_pad_export(tmp_path_factory) -> tuple[Path, list[Path]]:
    """An fp32 export folder of SamePadNet at 32 px, and 24 noise images: no run, no training."""
    root = tmp_path_factory.mktemp("same_pad")
    torch.manual_seed(0)
    export_model(SamePadNet(), root / "fp32" / "model.onnx", 32)
    record = {"file": "model.onnx", "source": "model.pt", "source_fingerprint": "", "backbone": "toy",
              "outputs": list(LABELS), "columns": [0, 1, 2], "targets": [0, 1, 2], "labels": list(LABELS),
              "weight": 1.0, "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    (root / "fp32" / "members.json").write_text(json.dumps(
        {"format": EXPORT_FORMAT, "opset": 17, "run": "toy", "input": INPUT_NAME, "output": OUTPUT_NAME,
         "members": [record]}))
    (root / "fp32" / "labels.json").write_text(json.dumps({"label_names": list(LABELS)}))
    tuner = ThresholdTuner().fit(np.linspace(0, 1, 60).reshape(20, 3), np.arange(60).reshape(20, 3) % 2)
    (root / "fp32" / "thresholds.json").write_text(json.dumps(tuner.to_dict()))
    rng = np.random.default_rng(0)
    images = []
    for k in range(24):
        images.append(root / f"noise{k}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images[-1])
    return root / "fp32", images


def pads(model: Path) -> list[list[int]]:
    """The `pads` input of every Pad node, computed by ONNX Runtime for one 32 px image."""
    import onnxruntime as ort

    graph = onnx.load(str(model))
    names = [node.input[1] for node in graph.graph.node if node.op_type == "Pad"]
    graph.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.INT64, None) for n in names)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return [p.tolist() for p in session.run(names, {INPUT_NAME: np.zeros((1, 3, 32, 32), np.float32)})]


def test_same_padding_is_computed_in_float_so_int8_pads_as_fp32(same_pad_export, tmp_path) -> None:
    fp32, images = same_pad_export
    fidelity = quantize_export(fp32, tmp_path / "int8", images, calibration=8, check=16)
    expected = pads(fp32 / "model.onnx")
    assert expected == [[0, 0, 1, 1, 0, 0, 2, 2]] * 3  # 1 pixel before, 2 after (rows and columns)
    assert pads(tmp_path / "int8" / "model.onnx") == expected  # quantised, the shape arithmetic gave 0 before
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(tmp_path / "int8" / "model.onnx")
    assert fidelity.mean_prob_diff < 0.02 and fidelity.label_agreement == 1.0
    assert (fidelity.int8_layers, fidelity.layers) == (2, 4)  # the stem and the output layer stay float


@pytest.mark.parametrize("layer", [torch.nn.Conv2d(3, 6, 3, groups=3),  # depthwise-like, as in EfficientNet
                                   torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                       torch.nn.Linear(3, 4))])  # a Gemm head
def test_bias_correction_keeps_the_mean_output_of_int8_weights(layer, tmp_path) -> None:
    from onnx import numpy_helper

    import onnxruntime as ort

    torch.manual_seed(0)
    export_model(layer, tmp_path / "model.onnx", 8)
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(16, 3, 1, 1)) + [[[1.0]], [[2.0]], [[-0.5]]]  # flat images: no edge effects
    feeds = [{INPUT_NAME: np.broadcast_to(pixels, (16, 3, 8, 8)).astype(np.float32)}]

    def mean_output(model: onnx.ModelProto, int8_weights: bool) -> np.ndarray:
        model = onnx.load_from_string(model.SerializeToString())
        weight = next(i for i in model.graph.initializer if i.name == model.graph.node[-1].input[1])
        if int8_weights:  # as the int8 model computes: weights rounded per output channel
            rounded = quantize._fake_int8(numpy_helper.to_array(weight), 0)
            weight.CopyFrom(numpy_helper.from_array(rounded, weight.name))
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        out = session.run(None, feeds[0])[0]
        return out.reshape(*out.shape[:2], -1).mean(axis=(0, 2))

    original = onnx.load(str(tmp_path / "model.onnx"))
    corrected = onnx.load(str(tmp_path / "model.onnx"))
    assert quantize.correct_biases(corrected, feeds) == 1
    exact = mean_output(original, int8_weights=False)
    shift = np.abs(mean_output(original, int8_weights=True) - exact).max()
    assert shift > 1e-4  # rounding the weights moves the mean output ...
    np.testing.assert_allclose(mean_output(corrected, int8_weights=True), exact, atol=shift / 50)  # ... no more


def test_an_int8_model_below_the_bar_is_refused_and_the_previous_export_kept(same_pad_export, tmp_path,
                                                                              monkeypatch) -> None:
    fp32, images = same_pad_export
    out = tmp_path / "int8"
    quantize_export(fp32, out, images, calibration=8, check=16)  # a good export in place
    assert (out / "members.json").is_file() and (out / "model.onnx").is_file()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(quantize, "MIN_LABEL_AGREEMENT", 1.01)  # no model reaches it
    with pytest.raises(FashionStyleError, match=r"not written: it kept 100\.00% of label decisions on 16 "
                                                r"check images, below the 101% bar.*--force"):
        quantize_export(fp32, out, images, calibration=8, check=16)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # refused: the good one stays
    fidelity = quantize_export(fp32, out, images, calibration=8, check=16, force=True)
    assert (out / "members.json").is_file() and fidelity.label_agreement == 1.0
    assert OnnxPredictor.from_export(out).precision == "int8"


def test_an_unchecked_int8_model_is_refused_unless_forced(same_pad_export, tmp_path) -> None:
    fp32, images = same_pad_export
    with pytest.raises(FashionStyleError, match="no images were left to check"):
        quantize_export(fp32, tmp_path / "int8", images, calibration=8, check=0)
    assert not (tmp_path / "int8").exists()
    assert quantize_export(fp32, tmp_path / "int8", images, calibration=8, check=0, force=True).check_images == 0


def test_force_applies_to_int8_only(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path), "--force"]) == 2
    assert "--force applies to --quantize int8 only" in capsys.readouterr().err


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
@pytest.mark.usefixtures("no_int8_bar")
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
@pytest.mark.usefixtures("no_int8_bar")
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
@pytest.mark.usefixtures("no_int8_bar")
def test_cli_export_int8_and_evaluate_keep_each_runtimes_scores(trained_run, tmp_path, capsys) -> None:
    run, labels, _ = trained_run
    calibration = labels.parent / "img"
    assert main(["export", str(run), "--quantize", "int8", "--calibration", str(calibration),
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
    from fashionstyle.inference.quantize import measure_fidelity

    run, _, images = trained_run
    export_onnx(run, tmp_path / "fp32")
    broken = []
    for k in range(4):
        broken.append(tmp_path / f"broken{k}.jpg")
        broken[-1].write_bytes(b"not a jpeg")
    quantize_export(tmp_path / "fp32", tmp_path / "int8", images, calibration=8, check=0, force=True)
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
    assert quantize_export(tmp_path / "fp32", tmp_path / "int8", images, calibration=8, check=0,
                           force=True).check_images == 0
    with pytest.raises(FashionStyleError, match="already a int8 export"):
        quantize_export(tmp_path / "int8", tmp_path / "again", images)
    assert main(["predict", str(run), "--images", str(images[0].parent), "--out", str(tmp_path / "p.txt"),
                 "--runtime", "onnx-int8", "--tta", "flip"]) == 2


@pytest.mark.slow
@pytest.mark.usefixtures("no_int8_bar")
def test_a_fused_run_needs_calibration_images_for_int8(trained_run, tmp_path) -> None:
    from fashionstyle.training.fusion import fuse_runs

    run, _, images = trained_run
    fused = fuse_runs([run, run], tmp_path / "fused")
    with pytest.raises(FashionStyleError, match="--calibration FOLDER"):
        load_predictor(fused.path, "onnx-int8")
    assert main(["export", str(fused.path), "--quantize", "int8", "--calibration", str(images[0].parent)]) == 0
    assert load_predictor(fused.path, "onnx-int8").precision == "int8"  # the export made above is used


@pytest.mark.slow
def test_cli_export_refuses_an_int8_model_below_the_bar_unless_forced(trained_run, tmp_path, capsys,
                                                                       monkeypatch) -> None:
    run, labels, _ = trained_run
    calibration, out = labels.parent / "img", tmp_path / "q"
    monkeypatch.setattr(quantize, "MIN_LABEL_AGREEMENT", 1.01)  # no model reaches it
    export = ["export", str(run), "--quantize", "int8", "--calibration", str(calibration), "--out", str(out)]
    assert main(export) == 2
    error = capsys.readouterr().err
    assert "int8 model not written" in error and "below the 101% bar" in error and len(error.splitlines()) == 1
    assert not (out / "model.onnx").exists() and not (out / "members.json").exists()
    assert main([*export, "--force"]) == 0
    printed = capsys.readouterr().out
    assert "warning: written only because of --force" in printed and "of label decisions" in printed
    assert OnnxPredictor.from_export(out).precision == "int8"
    shutil.rmtree(run / "onnx-int8", ignore_errors=True)
    with pytest.raises(FashionStyleError, match="int8 model not written"):  # the runtime's own export too
        load_predictor(RunDir(run), "onnx-int8")
    assert not (run / "onnx-int8" / "members.json").exists()
