"""`fashionstyle.load`: a run in one line, called on paths, folders, PIL images and arrays."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import LABELS, TinyRun  # noqa: E402

import fashionstyle  # noqa: E402
from fashionstyle.core.errors import FashionStyleError  # noqa: E402

pytestmark = pytest.mark.slow  # trains a tiny run (the session's shared_run)


@pytest.fixture(scope="module")
def tagger(shared_run: TinyRun):
    return fashionstyle.load(shared_run.run)


def test_one_path_gives_one_prediction_record_with_names_and_every_score(tagger, shared_run):
    from fashionstyle.core.prediction import Prediction
    from fashionstyle.inference.torch_predictor import Predictor

    path = shared_run.images[0]
    result = tagger(str(path))
    expected = Predictor.from_run(shared_run.run).predict_proba([path])[0]
    assert isinstance(result, Prediction) and result.error is None
    assert list(result.as_dict()) == ["image", "labels", "scores", "error"]
    assert result.image == str(path)
    assert list(result.scores) == list(LABELS)
    np.testing.assert_allclose([result.scores[n] for n in LABELS], expected, atol=1e-6)
    chosen = [n for n, p in zip(LABELS, expected) if p >= tagger.thresholds[n]]
    assert sorted(result.labels) == sorted(chosen)
    assert [result.scores[s] for s in result.labels] == sorted((result.scores[s] for s in result.labels),
                                                                 reverse=True)


def test_pil_image_and_array_give_the_files_scores(tagger, shared_run):
    path = shared_run.images[1]
    from_file = tagger(path).scores
    with Image.open(path) as image:
        image = image.convert("RGB")
        from_pil = tagger(image).scores
        from_array = tagger(np.asarray(image)).scores
    for scores in (from_pil, from_array):
        np.testing.assert_allclose(list(scores.values()), list(from_file.values()), atol=1e-5)


def test_a_folder_and_a_mixed_list_keep_input_order(tagger, shared_run):
    folder = shared_run.images[0].parent
    results = tagger(folder)
    assert [r.image for r in results] == [str(p) for p in sorted(folder.glob("*.jpg"))]
    with Image.open(shared_run.images[2]) as image:
        mixed = tagger([shared_run.images[3], image.convert("RGB"), str(shared_run.images[4])])
    assert [r.image for r in mixed] == [str(shared_run.images[3]), "<image 1>", str(shared_run.images[4])]
    assert mixed[1].scores == pytest.approx(tagger(shared_run.images[2]).scores, abs=1e-5)


def test_table_is_a_dataframe_of_the_records(tagger, shared_run, tmp_path):
    import pandas

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    table = tagger.table([*shared_run.images[:3], bad])
    assert isinstance(table, pandas.DataFrame)
    assert list(table.columns) == ["image", "labels", *LABELS, "error"] and len(table) == 4
    first = tagger(shared_run.images[0])
    assert table[LABELS[0]][0] == pytest.approx(first.scores[LABELS[0]])
    assert table["labels"][0] == first.labels and pandas.isna(table["error"][0])
    assert np.isnan(table[LABELS[0]][3]) and table["error"][3] == "not a readable image (unknown or unsupported format)"


def test_a_bad_file_in_a_folder_is_a_record_with_its_error_or_one_line_with_on_bad_fail(tagger, shared_run,
                                                                                       tmp_path):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(shared_run.images[0], folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"not an image")
    good, skipped = tagger(folder)
    assert good.error is None and good.scores
    assert skipped.image == str(folder / "b.jpg") and skipped.labels == [] and skipped.scores == {}
    assert skipped.error == "not a readable image (unknown or unsupported format)"  # the image field names it
    failing = fashionstyle.StyleTagger(tagger.predictor, on_bad="fail")
    with pytest.raises(FashionStyleError, match="b.jpg") as raised:
        failing(folder)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no loader traceback behind it
    assert "\n" not in str(raised.value)


def test_a_device_this_machine_lacks_is_one_line(shared_run):
    import torch

    missing = f"cuda:{torch.cuda.device_count() + 7}"
    with pytest.raises(FashionStyleError, match=f"device '{missing}': this machine has"):
        fashionstyle.load(shared_run.run, device=missing)
    with pytest.raises(FashionStyleError, match="not a PyTorch device"):
        fashionstyle.load(shared_run.run, device="gpu0")


@pytest.mark.parametrize("empty", [np.zeros((0, 0, 3), np.uint8), np.zeros((0, 5), np.uint8),
                                   Image.new("RGB", (0, 0))])
def test_an_empty_image_is_one_line_not_a_division_by_zero(tagger, empty):
    with pytest.raises(FashionStyleError, match="image 0: an empty"):
        tagger(empty)


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.uint8), 3.5])
def test_inputs_that_are_not_images_get_one_clear_error(tagger, bad):
    with pytest.raises(FashionStyleError, match="uint8|cannot read"):
        tagger(bad)


def test_hub_folder_loads_back_in_fashionstyle_and_its_backbone_in_timm(shared_run, tagger, tmp_path):
    import timm
    import torch
    from safetensors.torch import load_file

    from fashionstyle.cli import main
    from fashionstyle.model.network import load_model

    hub = tmp_path / "hub"
    assert main(["export", str(shared_run.run), "--format", "hub", "--out", str(hub)]) == 0
    assert {"README.md", "config.json", "model.safetensors"} <= {p.name for p in hub.iterdir()}
    config = __import__("json").loads((hub / "config.json").read_text())
    assert config["id2label"] == {str(i): n for i, n in enumerate(LABELS)}
    assert config["thresholds"] == pytest.approx(tagger.thresholds)
    assert (hub / "README.md").read_text().startswith("---\nlibrary_name: fashionstyle")
    again = fashionstyle.load(hub)
    assert again(shared_run.images[0]).scores == pytest.approx(tagger(shared_run.images[0]).scores, abs=1e-6)
    net, record = load_model(shared_run.run / "model.pt")
    backbone = timm.create_model(record["backbone"], num_classes=0).eval()  # model.safetensors' backbone.*: timm's
    backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in load_file(hub / "model.safetensors").items()
                              if k.startswith("backbone.")})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), net.backbone(x))


def test_hub_export_refuses_int8_options(shared_run, tmp_path, capsys):
    from fashionstyle.cli import main

    assert main(["export", str(shared_run.run), "--format", "hub", "--quantize", "int8", "--out", str(tmp_path)]) == 2
    assert "applies to --format onnx only" in capsys.readouterr().err


def test_hub_export_refuses_a_run_of_several_models(tmp_path):
    from fashionstyle.inference.hub import export_hub
    from fashionstyle.core.run import Member, RunDir

    fused = RunDir(tmp_path / "fused")
    fused.path.mkdir()
    fused.write_label_names(list(LABELS))
    fused.write_members([Member(fused.path / "a" / "model.pt", list(LABELS)),
                         Member(fused.path / "b" / "model.pt", list(LABELS))])
    with pytest.raises(FashionStyleError, match="one model"):
        export_hub(fused, tmp_path / "hub")


def test_a_hub_folder_with_a_broken_config_or_int8_is_one_clear_error(shared_run, tmp_path):
    from fashionstyle.cli import main

    hub = tmp_path / "hub"
    assert main(["export", str(shared_run.run), "--format", "hub", "--out", str(hub)]) == 0
    with pytest.raises(FashionStyleError, match="runtime 'torch' or 'onnx'"):
        fashionstyle.load(hub, runtime="onnx-int8")
    config = __import__("json").loads((hub / "config.json").read_text())
    del config["preprocessing"]
    (hub / "config.json").write_text(__import__("json").dumps(config))
    with pytest.raises(FashionStyleError, match="not a fashionstyle hub config .*preprocessing"):
        fashionstyle.load(hub)
