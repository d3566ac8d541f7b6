"""One suite for every runtime: PyTorch, ONNX Runtime and its int8 export behave as one predictor.

Each test runs once per runtime on the same tiny trained run: the same labels
and thresholds, probabilities as PyTorch's (int8: close), empty input, bad
images, decoded images and test-time augmentation.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import torch

from conftest import LABELS, TinyRun, TinyRuns, int8_bar_off
from fashionstyle import FashionStyleError, Predictor, RunDir
from fashionstyle.cli import main
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.core.choices import RUNTIMES
from fashionstyle.inference.runtimes import load_predictor

pytestmark = pytest.mark.slow  # every test uses a trained run and most its ONNX exports

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx and onnxruntime not installed")
RUNTIME_PARAMS = [pytest.param(r, marks=() if r == "torch" else needs_onnx) for r in RUNTIMES]
TOLERANCE = {"torch": 1e-6, "onnx": 1e-4, "onnx-int8": 0.1}  # largest |p - p_torch|


@pytest.fixture(scope="module", autouse=True)
def _no_int8_bar():
    """Every test and module fixture here: the int8 fidelity bar off (conftest.int8_bar_off)."""
    with int8_bar_off():
        yield


@pytest.fixture(scope="module")
def trained(tiny_runs: TinyRuns, tmp_path_factory) -> TinyRun:
    """A copy of the session's tiny run: each runtime writes its export into it."""
    return tiny_runs.copy(tmp_path_factory.mktemp("predictors"))


@pytest.fixture(scope="module")
def flip_run(tiny_runs: TinyRuns, tmp_path_factory) -> Path:
    """A copy of the run whose thresholds were tuned on flip-TTA validation probabilities."""
    run = tiny_runs.copy(tmp_path_factory.mktemp("flip")).run  # no export yet: exported afresh, with TTA
    assert main(["tune", str(run), "--tta", "flip"]) == 0
    return run


@pytest.fixture(scope="module")
def reference(trained) -> np.ndarray:
    run, _, images = trained
    return Predictor.from_run(run).predict_proba(images)


@pytest.fixture(scope="module", params=RUNTIME_PARAMS)
def predictor(request, trained) -> BasePredictor:
    return load_predictor(trained[0], request.param)


def runtime_of(predictor: BasePredictor) -> str:
    if isinstance(predictor, Predictor):
        return "torch"
    return {"fp32": "onnx", "int8": "onnx-int8"}[predictor.precision]


def test_labels_and_thresholds_are_the_runs(predictor, trained) -> None:
    run = RunDir.open(trained[0])
    assert isinstance(predictor, BasePredictor)
    assert predictor.label_names == run.label_names() == list(LABELS)
    np.testing.assert_array_equal(predictor.thresholds, run.thresholds().thresholds_)
    assert predictor.tta == "none"


def test_probabilities_match_pytorch_and_labels_follow_thresholds(predictor, trained, reference) -> None:
    _, _, images = trained
    probs = predictor.predict_proba(images, batch_size=5)  # another batch size than the reference's
    assert probs.shape == (len(images), len(LABELS)) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    assert np.abs(probs - reference).max() <= TOLERANCE[runtime_of(predictor)]
    np.testing.assert_allclose(predictor.predict_proba(images, batch_size=32), probs, atol=1e-5)
    labels = predictor.predict(images, batch_size=7)
    np.testing.assert_array_equal(labels, (probs >= predictor.thresholds).astype(labels.dtype))


def test_the_pytorch_predictor_runs_channels_last_on_the_cpu_with_the_stored_probabilities(trained) -> None:
    """Channels-last is 1.3-1.4x NCHW on 2 CPU cores (docs/benchmarks.md); the run's validation
    probabilities, stored by training, are what the predictor gives again."""
    run, _, _ = trained
    predictor = Predictor.from_run(run, device="cpu")
    convolutions = [m for member in predictor.members for m in member.model.modules()
                    if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1]
    assert convolutions and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convolutions)
    from fashionstyle.data.labels.read import val_images

    ids, stored, _ = RunDir.open(run).val_probs()
    again = predictor.predict_proba(val_images(RunDir.open(run), ids, None))
    np.testing.assert_allclose(again, stored, atol=1e-5)


def test_large_photos_decode_reduced_alike_in_every_runtime(predictor, trained, tmp_path) -> None:
    """A JPEG at least twice the resize size is decoded reduced (DCT scaling) by every runtime, so the
    run's thresholds, tuned on the PyTorch path, see the same probabilities under ONNX."""
    run, _, images = trained
    rng = np.random.default_rng(0)
    large = []
    for k, path in enumerate(images[:3]):  # 32 px run: resize to 36, so 300 px photos decode at 1/4
        with Image.open(path) as image:
            photo = image.convert("RGB").resize((300, 400), Image.BICUBIC)
        noisy = np.clip(np.asarray(photo, np.int16) + rng.integers(-20, 20, (400, 300, 3)), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(tmp_path / f"large{k}.jpg", quality=90)
        large.append(tmp_path / f"large{k}.jpg")
    expected = Predictor.from_run(run).predict_proba(large)
    assert np.abs(predictor.predict_proba(large) - expected).max() <= TOLERANCE[runtime_of(predictor)]


def test_decoded_images_give_the_files_probabilities(predictor, trained) -> None:
    _, _, images = trained
    decoded = [Image.open(p) for p in images[:3]]
    np.testing.assert_allclose(predictor.predict_proba_images(decoded), predictor.predict_proba(images[:3]),
                               atol=1e-5)


def test_empty_input_gives_empty_arrays(predictor) -> None:
    empty = (0, len(LABELS))
    assert predictor.predict_proba([]).shape == empty and predictor.predict_proba([]).dtype == np.float32
    assert predictor.predict_proba_images([]).shape == empty
    assert predictor.predict_proba_images([]).dtype == np.float32
    assert predictor.predict([]).shape == empty


def test_bad_images_fail_or_give_nan_rows(predictor, trained, tmp_path) -> None:
    _, _, images = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FashionStyleError, match="bad.jpg"):
        predictor.predict_proba([images[0], bad])
    with pytest.raises(FashionStyleError, match="missing.jpg"):
        predictor.predict([missing])
    with pytest.raises(FashionStyleError, match="valid: skip, fail"):
        predictor.predict_proba(images[:1], on_bad="ignore")
    probs = predictor.predict_proba([images[0], bad, images[1], missing], batch_size=2, on_bad="skip")
    assert np.isnan(probs[[1, 3]]).all() and not np.isnan(probs[[0, 2]]).any()  # one batch all bad
    np.testing.assert_array_equal(probs[[0, 2]], predictor.predict_proba(images[:2]))


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_tta_predicts_as_the_thresholds_were_tuned(runtime, flip_run, trained) -> None:
    _, labels, _ = trained
    run = RunDir.open(flip_run)
    predictor = load_predictor(flip_run, runtime)
    assert predictor.tta == "flip"
    np.testing.assert_array_equal(predictor.thresholds, run.thresholds().thresholds_)
    ids, tuned_on, _ = run.val_probs()  # PyTorch's flip-TTA probabilities of the validation images
    probs = predictor.predict_proba([labels.parent / "img" / f"{i}.jpg" for i in ids])
    assert np.abs(probs - tuned_on).max() <= max(TOLERANCE[runtime], 1e-5)
    with pytest.raises(FashionStyleError, match="tuned with TTA 'flip'"):
        load_predictor(flip_run, runtime, tta="none")
    with pytest.raises(FashionStyleError, match="tuned with TTA 'none'"):
        load_predictor(trained[0], runtime, tta="flip")


NO_TORCH = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision", "timm", "lightning"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from fashionstyle import FashionStyleError
from fashionstyle.inference.runtimes import load_predictor
run, runtime, images = sys.argv[1], sys.argv[2], sys.argv[3:]
probs = load_predictor(run, runtime).predict_proba(images, batch_size=3, num_workers=2).tolist()
try:
    load_predictor(run, "torch")
    torch_error = ""
except FashionStyleError as err:
    torch_error = str(err)
print(json.dumps({"probs": probs, "torch_error": torch_error,
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision"})}))
"""


@needs_onnx
@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_onnx_runtimes_predict_without_torch_installed(runtime, trained) -> None:
    """With torch, torchvision, timm and Lightning unimportable, an exported run predicts as with them."""
    import json
    import subprocess
    import sys

    run, _, images = trained
    expected = load_predictor(run, runtime).predict_proba(images)  # makes the export, with torch
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(run), runtime, *map(str, images)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["heavy"] == []
    np.testing.assert_allclose(np.array(out["probs"], np.float32), expected, atol=1e-6)
    assert "needs PyTorch" in out["torch_error"] and "fashionstyle[train]" in out["torch_error"]


def test_decoding_on_the_device_gives_the_host_pipelines_probabilities(trained, tmp_path) -> None:
    """decode="gpu"'s path (workers read JPEG bytes, one batched decode per batch, views made where the
    images are) run on the CPU with torchvision's batched CPU decoder: the same probabilities and the
    same bad-image handling as decoding in the workers."""
    run, _, images = trained
    truncated = tmp_path / "truncated.jpg"  # Pillow reads its header; the decoders refuse its data
    truncated.write_bytes(images[2].read_bytes()[:300])
    png = tmp_path / "photo.png"  # not a JPEG: decoded in the worker
    Image.open(images[3]).save(png)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    files = [images[0], truncated, png, images[1], junk, *images[4:8]]
    host = Predictor.from_run(run)
    on_device = Predictor.from_run(run)
    on_device.decode_on_device = True
    expected = host.predict_proba(files, batch_size=3, on_bad="skip")
    got = on_device.predict_proba(files, batch_size=3, on_bad="skip")
    assert np.isnan(got[[1, 4]]).all() and not np.isnan(np.delete(got, [1, 4], axis=0)).any()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(FashionStyleError, match="truncated.jpg"):
        on_device.predict_proba([images[0], truncated])


def test_bf16_autocast_predicts_close_to_fp32_and_device_choices_are_checked(trained) -> None:
    from fashionstyle.data.images.device_decode import decodes_on_gpu
    from fashionstyle.inference.torch_predictor import uses_bf16

    run, _, images = trained
    fp32 = Predictor.from_run(run)
    assert not fp32.bf16 and fp32.channels_last and not fp32.decode_on_device  # the CPU defaults: fp32, channels-last
    bf16 = Predictor.from_run(run, precision="bf16")  # autocast on the CPU: the CUDA default's code path
    assert np.abs(bf16.predict_proba(images[:6]) - fp32.predict_proba(images[:6])).max() < 0.05
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_bf16("auto", cuda) and not uses_bf16("auto", cpu) and not uses_bf16("fp32", cuda)
    assert decodes_on_gpu("gpu", cuda=True) and not decodes_on_gpu("auto", cuda=True)
    with pytest.raises(FashionStyleError, match="needs a CUDA device"):
        decodes_on_gpu("gpu", cuda=False)
    with pytest.raises(FashionStyleError, match="valid: auto, cpu, gpu"):
        decodes_on_gpu("nvjpeg", cuda=False)
    with pytest.raises(FashionStyleError, match="needs a CUDA device"):
        Predictor.from_run(run, device="cpu", decode="gpu")
    with pytest.raises(FashionStyleError, match="valid: auto, bf16, fp32"):
        Predictor.from_run(run, precision="fp16")


def test_predict_decode_flag_is_checked_in_one_line(trained, tmp_path, capsys) -> None:
    run, _, images = trained
    argv = ["predict", str(run), "--images", str(images[0].parent), "--out", str(tmp_path / "p.csv"), "--quiet"]
    assert main([*argv, "--decode", "cpu"]) == 0
    assert main([*argv, "--decode", "gpu"]) == 2  # no CUDA device in the tests
    assert "--decode gpu needs a CUDA device" in capsys.readouterr().err
    if HAS_ONNX:
        assert main([*argv, "--decode", "gpu", "--runtime", "onnx"]) == 2
        assert "--decode gpu needs --runtime torch" in capsys.readouterr().err


def test_evaluate_takes_predicts_decode_flag(run_copy, capsys) -> None:
    run, labels, _ = run_copy  # evaluate writes its scores into the run
    argv = ["evaluate", str(run), "--labels", str(labels), "--quiet"]
    assert main([*argv, "--decode", "gpu"]) == 2  # no CUDA device in the tests
    err = capsys.readouterr().err.strip()
    assert "--decode gpu needs a CUDA device" in err and len(err.splitlines()) == 1
    assert not list(run.glob("eval_*"))
    assert main([*argv, "--decode", "cpu"]) == 0 and list(run.glob("eval_*.json"))
