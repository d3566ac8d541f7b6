"""Grad-CAM heat maps: target layers of CNN backbones, `fashionstyle explain` on a tiny run, member choice."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("captum")

from conftest import LABELS, TINY_TRAIN, make_image_set  # noqa: E402
from fashionstyle import FashionStyleError  # noqa: E402
from fashionstyle.cli import main  # noqa: E402
from fashionstyle.analysis.explain import DISPLAY, Explainer, jet, target_layer  # noqa: E402
from fashionstyle.analysis.explain_page import map_file  # noqa: E402
from fashionstyle.data.images.files import open_rgb  # noqa: E402
from fashionstyle.model.network import StyleNet, create_model, load_model  # noqa: E402
from fashionstyle.inference.torch_predictor import Predictor  # noqa: E402
from fashionstyle.core.run import Member, RunDir  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A tiny run at 64 px, so that its maps have some resolution."""
    root = tmp_path_factory.mktemp("explain")
    labels = make_image_set(root / "data", n=32)
    run = root / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1",
                 "--image-size", "64"]) == 0
    return run, sorted((labels.parent / "img").glob("*.jpg"))


def unit(cam: np.ndarray) -> np.ndarray:
    return cam / cam.max() if cam.max() > 0 else cam


def tiny_densenet() -> StyleNet:
    from timm.models.densenet import DenseNet

    return StyleNet(DenseNet(growth_rate=8, block_config=(1, 1), num_classes=0), num_labels=3, hidden=16)


@pytest.mark.parametrize("name, size, layer", [("resnet10t", 224, "layer4"), ("densenet", 224, "features"),
                                               ("tf_efficientnet_lite0", 224, "bn2"),
                                               ("resnet10t", 64, "layer3")])  # layer4 is 2 x 2 at 64 px
def test_target_layer_is_the_last_feature_map_before_pooling(name, size, layer) -> None:
    from captum.attr import LayerGradCam

    model = tiny_densenet() if name == "densenet" else create_model(name, 3, pretrained=False, hidden=16)
    found = target_layer(model.backbone, size)
    assert dict(model.backbone.named_modules())[layer] is found
    cam = LayerGradCam(model.eval(), found).attribute(torch.randn(2, 3, size, size), target=[0, 2])
    assert cam.shape[:2] == (2, 1) and min(cam.shape[-2:]) >= 4


def test_jet_runs_from_blue_to_red() -> None:
    colours = jet(np.array([[0.0, 1.0]]))
    assert colours[0, 0, 2] > 100 and colours[0, 0, 0] == 0  # blue
    assert colours[0, 1, 0] > 100 and colours[0, 1, 2] == 0  # red


def test_overlay_is_translucent_by_the_maps_intensity() -> None:
    from PIL import Image

    from fashionstyle.analysis.explain import overlay

    colour = np.array([10, 200, 30])
    photo = Image.new("RGB", (8, 8), tuple(colour))
    cam = np.zeros((8, 8), np.float32)
    cam[:, 4:] = 1.0
    cam[:, 6:] = 0.5
    out = np.asarray(overlay(photo, cam), np.float64)
    np.testing.assert_array_equal(out[:, :3], np.broadcast_to(colour, (8, 3, 3)))  # no evidence: the photo
    red = jet(np.ones((1, 1)))[0, 0].astype(np.float64)
    alpha = (out[:, 4] - colour) / (red - colour)  # the peak's opacity, per channel
    assert np.all((alpha > 0.4) & (alpha < 0.7)), alpha  # coloured, and the photo shows through
    weak, strong = (np.abs(out[:, k] - colour).sum() for k in (7, 4))
    assert 0 < weak < strong  # half the evidence: fainter


def test_overlay_file_names_never_collide_with_each_other_or_the_photo() -> None:
    names = ["photo", "a/b", "a_b", "Dotted"]
    files = [map_file(names, n) for n in names]
    assert len(set(files)) == len(names) and "photo.png" not in files


@pytest.mark.slow
def test_explain_writes_overlays_and_a_page(run, tmp_path) -> None:
    run_dir, images = run
    out = tmp_path / "maps"
    assert main(["explain", str(run_dir), "--images", *map(str, images[:2]), "--out", str(out),
                 "--labels-to-show", "2", "--label", "Dotted"]) == 0
    page = (out / "index.html").read_text()
    for k, image in enumerate(images[:2]):
        folder = out / f"{k:03d}_{image.stem}"
        pngs = sorted(p.name for p in folder.glob("*.png"))
        dotted = map_file(LABELS, "Dotted")
        assert "photo.png" in pngs and dotted in pngs and len(pngs) == 3  # photo + 2 labels
        assert all(f'{folder.name}/{name}' in page for name in pngs)
        assert open_rgb(folder / dotted).size == (DISPLAY, DISPLAY)
    assert all(name in page for name in LABELS)  # the probability table lists every label
    from fashionstyle.analysis.explain_page import colour_bar_css

    assert 'id="colour-bar"' in page and colour_bar_css() in page and ">low<" in page and ">high<" in page

    explainer = Explainer.from_run(run_dir)
    shown = explainer.explain(open_rgb(images[0]), ["Dotted"], labels_to_show=2)
    assert shown.labels[0] == "Dotted" and len(shown.labels) == 2
    for cam in shown.maps.values():
        assert cam.shape == (DISPLAY, DISPLAY) and cam.min() >= 0 and cam.max() in (0.0, 1.0)


def test_explain_takes_a_folder_by_the_listing_rule(run, tmp_path, capsys) -> None:
    run_dir, images = run
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(images[0], folder / "a.jpg")
    shutil.copy(images[1], folder / "sub" / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "maps"
    assert main(["explain", str(run_dir), "--images", str(folder), "--out", str(out)]) == 0
    assert "left out 2 folder entries" in capsys.readouterr().out
    assert [p.name for p in sorted(out.glob("0*"))] == ["000_a"]
    assert {line.split(",")[0] for line in (out / "skipped.txt").read_text().splitlines()} == {
        str(folder / "notes.txt"), str(folder / "sub")}
    assert main(["explain", str(run_dir), "--images", str(folder), "--recursive", "--out", str(tmp_path / "r")]) == 0
    assert [p.name for p in sorted((tmp_path / "r").glob("0*"))] == ["000_a", "001_b"]


@pytest.mark.slow
def test_a_label_map_is_the_weighted_mean_of_its_members_maps(run) -> None:
    run_dir, images = run
    model_a, record = load_model(run_dir / "model.pt")
    model_b, _ = load_model(run_dir / "model.pt")
    with torch.no_grad():
        for p in model_b.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tuner = RunDir(run_dir).thresholds()
    a, b = Member(run_dir / "model.pt", ["Red"], 3.0), Member(run_dir / "model.pt", list(LABELS), 1.0)
    both = Explainer(Predictor([(model_a, record, a), (model_b, record, b)], list(LABELS), tuner, "cpu"))
    only_a = Explainer(Predictor([(model_a, record, Member(a.model, list(LABELS)))], list(LABELS), tuner, "cpu"))
    only_b = Explainer(Predictor([(model_b, record, b)], list(LABELS), tuner, "cpu"))
    image = open_rgb(images[0])
    got = both.maps(image, ["Red", "Striped"])
    map_a, map_b = only_a.maps(image, ["Red"])["Red"], only_b.maps(image, ["Red", "Striped"])
    mixed = 3 * map_a / max(map_a.sum(), 1e-12) + map_b["Red"] / max(map_b["Red"].sum(), 1e-12)
    np.testing.assert_allclose(got["Red"], unit(mixed), atol=1e-5)
    np.testing.assert_allclose(got["Striped"], map_b["Striped"], atol=1e-5)  # B alone predicts it


@pytest.mark.slow
def test_fused_run_of_one_run_twice_gives_its_maps(run, tmp_path) -> None:
    from fashionstyle.training.fusion import fuse_runs

    run_dir, images = run
    fused = fuse_runs([run_dir, run_dir], tmp_path / "fused")
    image = open_rgb(images[1])
    got = Explainer.from_run(fused, "cpu").maps(image, list(LABELS))
    expected = Explainer.from_run(run_dir, "cpu").maps(image, list(LABELS))
    for name in LABELS:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


@pytest.mark.slow
def test_user_errors_are_one_line(run, tmp_path, capsys) -> None:
    run_dir, images = run
    base = ["explain", str(run_dir), "--out", str(tmp_path / "o")]
    assert main([*base, "--images", str(images[0]), "--label", "Stripy"]) == 2
    err = capsys.readouterr().err
    assert "unknown label 'Stripy'" in err and "valid: Red, Striped, Dotted" in err
    assert main([*base, "--images", str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg: image not found" in capsys.readouterr().err
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(b"onnx")
    assert main(["explain", str(export), "--images", str(images[0]), "--out", str(tmp_path / "o")]) == 2
    assert "ONNX export has no PyTorch weights" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare)
    (bare / "model.pt").unlink()
    assert main(["explain", str(bare), "--images", str(images[0]), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no PyTorch weights" in err and err.count("\n") == 1
    with pytest.raises(FashionStyleError, match="no PyTorch weights"):
        Explainer.from_run(bare)



EXPLAIN_PEAK = """
import resource, sys
from fashionstyle.analysis.explain_page import explain_run
explain_run(sys.argv[1], [sys.argv[2]], sys.argv[4], device="cpu")  # a small photo first: the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
explain_run(sys.argv[1], [sys.argv[3]], sys.argv[4], device="cpu")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)  # MB over the baseline's peak
"""


@pytest.mark.slow
def test_explain_decodes_a_huge_jpeg_reduced(run, tmp_path: Path) -> None:
    """A 9000 x 9000 JPEG (324 MB decoded as RGB) costs explain a few MB: decoded at 1/8 scale, as predict
    decodes it (whole, it cost 1.96 GB)."""
    import subprocess
    import sys

    from PIL import Image

    huge = tmp_path / "huge.jpg"
    Image.new("L", (9000, 9000), 120).save(huge, quality=80)  # grey: 81 MB to make here
    done = subprocess.run([sys.executable, "-c", EXPLAIN_PEAK, str(run[0]), str(run[1][0]), str(huge),
                           str(tmp_path / "maps")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 60, done.stdout
    assert (tmp_path / "maps" / "index.html").is_file()


def test_explain_never_writes_over_a_folder_it_did_not_make(run, tmp_path, capsys) -> None:
    run_dir, images = run
    report = tmp_path / "report"
    report.mkdir()
    (report / "index.html").write_text("a report")
    assert main(["explain", str(run_dir), "--images", str(images[0]), "--out", str(report)]) == 2
    assert "holds files fashionstyle did not write" in capsys.readouterr().err
    assert [p.name for p in report.iterdir()] == ["index.html"] and (report / "index.html").read_text() == "a report"
    out = tmp_path / "maps"
    for _ in range(2):  # its own folder: written again
        assert main(["explain", str(run_dir), "--images", str(images[0]), "--out", str(out)]) == 0
