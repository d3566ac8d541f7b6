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


def test_one_path_gives_one_result_with_names_and_every_score(tagger, shared_run):
    from fashionstyle.inference.torch_predictor import Predictor

    path = shared_run.images[0]
    result = tagger(str(path))
    expected = Predictor.from_run(shared_run.run).predict_proba([path])[0]
    assert result["image"] == str(path)
    assert list(result["scores"]) == list(LABELS)
    np.testing.assert_allclose([result["scores"][n] for n in LABELS], expected, atol=1e-6)
    chosen = [n for n, p in zip(LABELS, expected) if p >= tagger.thresholds[n]]
    assert sorted(result["styles"]) == sorted(chosen)
    assert [result["scores"][s] for s in result["styles"]] == sorted((result["scores"][s] for s in result["styles"]),
                                                                     reverse=True)


def test_pil_image_and_array_give_the_files_scores(tagger, shared_run):
    path = shared_run.images[1]
    from_file = tagger(path)["scores"]
    with Image.open(path) as image:
        image = image.convert("RGB")
        from_pil = tagger(image)["scores"]
        from_array = tagger(np.asarray(image))["scores"]
    for scores in (from_pil, from_array):
        np.testing.assert_allclose(list(scores.values()), list(from_file.values()), atol=1e-5)


def test_a_folder_and_a_mixed_list_keep_input_order(tagger, shared_run):
    folder = shared_run.images[0].parent
    results = tagger(folder)
    assert [r["image"] for r in results] == [str(p) for p in sorted(folder.glob("*.jpg"))]
    with Image.open(shared_run.images[2]) as image:
        mixed = tagger([shared_run.images[3], image.convert("RGB"), str(shared_run.images[4])])
    assert [r["image"] for r in mixed] == [str(shared_run.images[3]), "<image 1>", str(shared_run.images[4])]
    assert mixed[1]["scores"] == pytest.approx(tagger(shared_run.images[2])["scores"], abs=1e-5)


def test_table_is_dataframe_ready(tagger, shared_run):
    table = tagger.table(shared_run.images[:3])
    assert list(table) == ["image", "styles", *LABELS]
    assert all(len(column) == 3 for column in table.values())
    assert table[LABELS[0]][0] == pytest.approx(tagger(shared_run.images[0])["scores"][LABELS[0]])


def test_unreadable_file_fails_by_default_and_is_marked_when_skipped(tagger, shared_run, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(FashionStyleError, match="bad.jpg"):
        tagger([shared_run.images[0], bad])
    skipping = fashionstyle.StyleTagger(tagger.predictor, on_bad="skip")
    good, skipped = skipping([shared_run.images[0], bad])
    assert good["styles"] is not None
    assert skipped == {"image": str(bad), "styles": None, "scores": None, "error": "unreadable image"}


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 2), np.uint8), 3.5])
def test_inputs_that_are_not_images_get_one_clear_error(tagger, bad):
    with pytest.raises(FashionStyleError, match="uint8|cannot read"):
        tagger(bad)


def test_hub_folder_loads_back_in_fashionstyle_and_its_backbone_in_timm(shared_run, tagger, tmp_path):
    import timm
    import torch

    from fashionstyle.cli import main
    from fashionstyle.model.network import load_model

    hub = tmp_path / "hub"
    assert main(["export", str(shared_run.run), "--format", "hub", "--out", str(hub)]) == 0
    assert sorted(p.name for p in hub.iterdir()) == ["README.md", "backbone.safetensors", "config.json",
                                                     "model.safetensors"]
    config = __import__("json").loads((hub / "config.json").read_text())
    assert config["id2label"] == {str(i): n for i, n in enumerate(LABELS)}
    assert config["thresholds"] == pytest.approx(tagger.thresholds)
    assert (hub / "README.md").read_text().startswith("---\nlibrary_name: fashionstyle")
    again = fashionstyle.load(hub)
    assert again(shared_run.images[0])["scores"] == pytest.approx(tagger(shared_run.images[0])["scores"], abs=1e-6)
    net, record = load_model(shared_run.run / "model.pt")
    backbone = timm.create_model(record["backbone"], pretrained=True, num_classes=0,
                                 pretrained_cfg_overlay={"file": str(hub / "backbone.safetensors")}).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), net.backbone(x))


def test_hub_export_refuses_int8_options(shared_run, tmp_path, capsys):
    from fashionstyle.cli import main

    assert main(["export", str(shared_run.run), "--format", "hub", "--quantize", "int8", "--out", str(tmp_path)]) == 2
    assert "apply to --format onnx only" in capsys.readouterr().err


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
