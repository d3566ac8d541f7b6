"""ONNX export of tiny runs: the folder's layout, multi-member runs, stale and broken exports.

The behaviour every runtime shares (empty input, bad images, TTA) is in test_predictors.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from conftest import LABELS, int8_bar_off, load_bench  # noqa: E402
from fashionstyle import FashionStyleError, Predictor, RunDir  # noqa: E402
from fashionstyle.training.fusion import fuse_runs  # noqa: E402
from fashionstyle.inference.onnx_export import export_onnx  # noqa: E402
from fashionstyle.model.network import create_model, model_record, save_model  # noqa: E402
from fashionstyle.inference.onnx_predictor import OnnxPredictor, sigmoid  # noqa: E402
from fashionstyle.inference.predictor import combine_probs  # noqa: E402
from fashionstyle.core.run import Member  # noqa: E402
from fashionstyle.inference.runtimes import load_predictor  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402


def assert_same_predictions(onnx_predictor, run: Path, images: list[Path]) -> None:
    torch_predictor = Predictor.from_run(run)
    expected = torch_predictor.predict_proba(images, batch_size=8)
    got = onnx_predictor.predict_proba(images, batch_size=5)  # other batch sizes: dynamic batch axis
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-4
    np.testing.assert_array_equal(onnx_predictor.predict(images, batch_size=16), torch_predictor.predict(images))
    assert onnx_predictor.label_names == torch_predictor.label_names


@pytest.mark.slow
def test_single_model_export(shared_run, tmp_path) -> None:
    run, _, images = shared_run
    files = export_onnx(run, tmp_path / "onnx")
    assert files == [tmp_path / "onnx" / "model.onnx"]
    model = onnx.load(str(files[0]))
    onnx.checker.check_model(model)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "images" and out.name == "logits"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, 32, 32]
    meta = json.loads((tmp_path / "onnx" / "members.json").read_text())
    (member,) = meta["members"]
    assert member["file"] == "model.onnx" and member["image_size"] == 32 and member["weight"] == 1.0
    assert member["columns"] == [0, 1, 2] and member["targets"] == [0, 1, 2] and len(member["mean"]) == 3
    assert json.loads((tmp_path / "onnx" / "labels.json").read_text())["label_names"] == list(LABELS)
    assert json.loads((tmp_path / "onnx" / "thresholds.json").read_text()) == RunDir(run).thresholds().to_dict()
    assert_same_predictions(OnnxPredictor.from_export(tmp_path / "onnx"), run, images)


@pytest.mark.slow
def test_load_predictor_exports_once_into_the_run(run_copy) -> None:
    run, _, images = run_copy
    predictor = load_predictor(run, "onnx")
    assert isinstance(predictor, OnnxPredictor)
    model_file = run / "onnx" / "model.onnx"
    assert model_file.is_file()
    stamp = model_file.stat().st_mtime_ns
    again = load_predictor(run, "onnx")  # current export: reused, not rewritten
    assert model_file.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.predict_proba(images[:4]), predictor.predict_proba(images[:4]))
    np.testing.assert_array_equal(OnnxPredictor.from_run(run).predict_proba(images[:4]),
                                  predictor.predict_proba(images[:4]))


def make_member(path: Path, outputs: list[str], image_size: int, seed: int) -> Path:
    torch.manual_seed(seed)
    model = create_model("test_resnet", len(outputs), hidden=16)
    return save_model(path, model_record(model, "test_resnet", outputs, image_size, 16, 0.5))


@pytest.fixture
def composite_run(tmp_path) -> Path:
    """Three members with other output orders, partial label cover, weights and image sizes."""
    run = RunDir.create(tmp_path / "composite")
    run.write_manifest("single", complete=False)
    run.write_label_names(list(LABELS))
    members = [
        Member(make_member(run / "m" / "a.pt", ["Dotted", "Red"], 32, 1), ["Red", "Dotted"], 0.7),
        Member(make_member(run / "m" / "b.pt", ["Striped", "Red", "Dotted"], 40, 2), ["Striped", "Red"], 0.3),
        Member(make_member(run / "m" / "c.pt", ["Dotted"], 32, 3), ["Dotted"], 1.5),
    ]
    run.write_members(members)
    rng = np.random.default_rng(0)
    run.write_thresholds(ThresholdTuner().fit(rng.random((40, 3)), rng.random((40, 3)) < 0.4))
    run.write_manifest("single", complete=True)
    return run.path


@pytest.mark.slow
def test_multi_member_run_exports_each_member(composite_run, shared_run, tmp_path) -> None:
    _, _, images = shared_run
    files = export_onnx(composite_run, tmp_path / "onnx")
    assert [f.name for f in files] == ["member_0.onnx", "member_1.onnx", "member_2.onnx"]
    meta = json.loads((tmp_path / "onnx" / "members.json").read_text())["members"]
    assert [(m["columns"], m["targets"], m["weight"], m["image_size"]) for m in meta] == [
        ([1, 0], [0, 2], 0.7, 32), ([0, 1], [1, 0], 0.3, 40), ([0], [2], 1.5, 32)]
    predictor = OnnxPredictor.from_export(tmp_path / "onnx")
    assert len(predictor.transforms) == 2  # two distinct preprocessings
    assert_same_predictions(predictor, composite_run, images[:12])


@pytest.mark.slow
def test_tta_views_match_pytorch_for_members_of_two_image_sizes(composite_run, shared_run, tmp_path) -> None:
    _, _, images = shared_run
    export_onnx(composite_run, tmp_path / "onnx")
    onnx_predictor = OnnxPredictor.from_export(tmp_path / "onnx", tta="ten-crop")
    torch_predictor = Predictor.from_run(composite_run, tta="ten-crop", retune=True)
    got = onnx_predictor.predict_proba(images[:6], batch_size=4)
    assert np.abs(got - torch_predictor.predict_proba(images[:6])).max() <= 1e-4
    assert np.abs(got - OnnxPredictor.from_export(tmp_path / "onnx").predict_proba(images[:6])).max() > 1e-6


@pytest.mark.slow
def test_fused_run_exports_and_matches(shared_run, tmp_path) -> None:
    run, _, images = shared_run
    fused = fuse_runs([run, run], tmp_path / "fused", weights=[0.25, 0.75])
    predictor = load_predictor(fused.path, "onnx")
    assert sorted(p.name for p in (fused / "onnx").glob("*.onnx")) == ["member_0.onnx", "member_1.onnx"]
    assert_same_predictions(predictor, fused.path, images[:12])


@pytest.mark.slow
def test_stale_export_is_redone(composite_run) -> None:
    with pytest.raises(FashionStyleError, match="no current fp32 ONNX export"):
        OnnxPredictor.from_run(composite_run)  # the predictor reads exports; load_predictor makes them
    load_predictor(composite_run, "onnx")
    first = (Path(composite_run) / "onnx" / "member_2.onnx").read_bytes()
    make_member(Path(composite_run) / "m" / "c.pt", ["Dotted"], 32, seed=9)  # the member model changed
    with pytest.raises(FashionStyleError, match="made from another c.pt"):
        OnnxPredictor.from_run(composite_run)
    load_predictor(composite_run, "onnx")
    assert (Path(composite_run) / "onnx" / "member_2.onnx").read_bytes() != first


@pytest.mark.slow
def test_broken_exports_are_user_errors(shared_run, tmp_path) -> None:
    with pytest.raises(FashionStyleError, match="members.json"):
        OnnxPredictor.from_export(tmp_path)
    run, _, _ = shared_run
    export_onnx(run, tmp_path / "onnx")
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(FashionStyleError, match="not a loadable ONNX model"):
        OnnxPredictor.from_export(tmp_path / "onnx")


def test_combine_and_sigmoid_match_torch() -> None:
    logits = np.array([[-200.0, -3.0, 0.0, 2.5, 90.0]], np.float32)
    np.testing.assert_allclose(sigmoid(logits), torch.sigmoid(torch.from_numpy(logits)).numpy(), atol=1e-7)
    a, b = np.array([[0.2, 0.9]], np.float32), np.array([[0.6]], np.float32)
    out = combine_probs(1, 2, [(a, [0, 1], [1, 0], 1.0), (b, [0], [1], 3.0)])
    np.testing.assert_allclose(out, [[0.9, (0.2 + 3 * 0.6) / 4]], atol=1e-7)


def test_cpu_bench_small() -> None:
    module = load_bench("cpu_infer")
    threads = torch.get_num_threads()
    try:
        assert module.main(["--backbone", "test_resnet", "--image-size", "32", "--batch-size", "4",
                            "--batches", "2", "--warmup", "1", "--threads", "1", "--labels", "3"]) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_members_sharing_a_model_file_share_its_export(shared_run, tmp_path) -> None:
    run, _, images = shared_run
    fused = fuse_runs([run, run, run], tmp_path / "fused", weights=[1, 2, 1])  # one model file, three members
    shared = RunDir(fused.path)
    model = fused / "shared.pt"
    model.write_bytes(Path(shared.members()[0].model).read_bytes())
    shared.write_members([Member(model, m.labels, m.weight) for m in shared.members()])
    files = export_onnx(fused, tmp_path / "onnx")
    assert [f.name for f in files] == ["model.onnx"]
    meta = json.loads((tmp_path / "onnx" / "members.json").read_text())["members"]
    assert [m["file"] for m in meta] == ["model.onnx"] * 3 and [m["weight"] for m in meta] == [0.25, 0.5, 0.25]
    predictor = OnnxPredictor.from_export(tmp_path / "onnx")
    assert len({id(m.session) for m in predictor.members}) == 1  # one session, run once per batch
    assert_same_predictions(predictor, fused.path, images[:8])


@pytest.mark.slow
def test_int8_keeps_the_fp32_exports_opset_unless_one_is_given(run_copy) -> None:
    from fashionstyle.cli import main

    run, fp32 = run_copy.run, run_copy.run / "onnx" / "members.json"
    calibration = ["--calibration", str(run_copy.images[0].parent)]
    assert main(["export", str(run), "--opset", "16"]) == 0
    with int8_bar_off():
        assert main(["export", str(run), "--quantize", "int8", *calibration]) == 0
        assert json.loads(fp32.read_text())["opset"] == 16  # the user's own export is kept
        assert main(["export", str(run), "--quantize", "int8", "--opset", "17", *calibration]) == 0
    assert json.loads(fp32.read_text())["opset"] == 17  # re-exported at the opset asked for


def test_opset_below_7_is_refused(shared_run, capsys) -> None:
    from fashionstyle.cli import main

    assert main(["export", str(shared_run.run), "--opset", "0"]) == 2  # 0 read as "not given" before
    assert "--opset: must be at least 7, got 0" in capsys.readouterr().err


def plain_run(path: Path, seed: int, outputs: tuple[str, ...] = LABELS) -> Path:
    """A complete single-model run of a tiny random model (no training)."""
    run = RunDir.create(path)
    run.write_label_names(list(outputs))
    make_member(run / "model.pt", list(outputs), 32, seed)
    rng = np.random.default_rng(seed)
    run.write_thresholds(ThresholdTuner().fit(rng.random((40, len(outputs))), rng.random((40, len(outputs))) < 0.4))
    run.write_manifest("model", complete=True)
    return run.path


@pytest.mark.slow
def test_another_runs_export_copied_in_is_refused_and_redone_saying_so(tmp_path, shared_run, capsys) -> None:
    import shutil

    from fashionstyle.cli import main

    mine, other = plain_run(tmp_path / "mine", 1), plain_run(tmp_path / "other", 2)
    load_predictor(other, "onnx")
    shutil.copytree(other / "onnx", mine / "onnx")  # same labels, another model
    with pytest.raises(FashionStyleError, match="made from another model.pt"):
        OnnxPredictor.from_run(mine)
    capsys.readouterr()
    out = tmp_path / "tags.csv"
    assert main(["predict", str(mine), "--images", str(shared_run.images[0].parent), "--runtime", "onnx",
                 "--out", str(out), "--quiet"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "exporting" in line]
    assert len(said) == 1 and "made from another model.pt" in said[0] and "again" in said[0]
    assert_same_predictions(OnnxPredictor.from_run(mine), mine, shared_run.images[:6])


@pytest.mark.slow
def test_a_swapped_onnx_file_is_refused_even_with_the_same_size(tmp_path) -> None:
    import shutil

    mine, other = plain_run(tmp_path / "mine", 1), plain_run(tmp_path / "other", 2)
    export_onnx(mine, mine / "onnx")
    export_onnx(other, other / "onnx")
    assert (mine / "onnx" / "model.onnx").stat().st_size == (other / "onnx" / "model.onnx").stat().st_size
    shutil.copy2(other / "onnx" / "model.onnx", mine / "onnx" / "model.onnx")
    with pytest.raises(FashionStyleError, match="model.onnx is not the file exported"):
        OnnxPredictor.from_run(mine)
    with pytest.raises(FashionStyleError, match="not the file this export wrote"):
        OnnxPredictor.from_export(mine / "onnx")


@pytest.mark.slow
def test_an_onnx_file_of_another_label_count_is_refused_by_its_output_width(tmp_path) -> None:
    import shutil

    mine, other = plain_run(tmp_path / "mine", 1), plain_run(tmp_path / "other", 2, outputs=("Red", "Striped"))
    export_onnx(mine, mine / "onnx")
    export_onnx(other, other / "onnx")
    meta = json.loads((mine / "onnx" / "members.json").read_text())
    assert meta["members"][0]["output_width"] == 3 and meta["sources"]["labels.json"]["sha256"]
    for record in meta["members"]:
        del record["file_fingerprint"]  # as an export without fingerprints: the width still tells
    (mine / "onnx" / "members.json").write_text(json.dumps(meta))
    shutil.copy2(other / "onnx" / "model.onnx", mine / "onnx" / "model.onnx")
    with pytest.raises(FashionStyleError, match="gives 2 outputs, members.json names 3"):
        OnnxPredictor.from_export(mine / "onnx")
    with pytest.raises(FashionStyleError, match="no current fp32 ONNX export"):
        OnnxPredictor.from_run(mine)
