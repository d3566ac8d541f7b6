"""The HTML report on fake run directories built with numpy (no training)."""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fashionstyle.core import atomic
from fashionstyle.analysis import gallery
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.analysis.evaluate import score_table
from fashionstyle.analysis.report import headline_html, scores_table_html, write_report
from fashionstyle.analysis.report_data import image_mismatches, load_run, tuned_scores
from fashionstyle.analysis.report_plots import pr_curve
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner

LABELS4 = ["Sport", "Relax", "OL", "Street"]
CORE_FIGURES = {"label_stats.png", "cooccurrence.png", "fbeta_per_label.png", "pr_curves.png", "fbeta_per_epoch.png",
                "fbeta_vs_threshold.png", "loss_lr.png"}
COMPARE_FIGURES = {"compare_fbeta.png", "compare_epochs.png"}


def fake_split(rng: np.random.Generator, n: int, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probs, targets) of n images: imbalanced labels, probabilities that lean towards the truth."""
    targets = (rng.random((n, len(rates))) < rates).astype(np.uint8)
    targets[0] = 1  # every label has a positive
    signal = np.linspace(2.5, 0.8, len(rates))
    logits = rng.normal(-1.5, 1.0, targets.shape) + signal * targets
    return (1 / (1 + np.exp(-logits))).astype(np.float32), targets


def make_fake_run(path: Path, labels: list[str], n: int = 60, epochs: int = 3, seed: int = 0,
                  with_test: bool = True, with_history: bool = True) -> Path:
    """A complete run directory as train + evaluate would leave it."""
    rng = np.random.default_rng(seed)
    rates = np.linspace(0.45, 0.06, len(labels))
    run = RunDir.create(path)
    run.write_label_names(labels)
    atomic.write_text(run / "config.yaml", yaml.safe_dump({
        "labels": "labels.csv", "images": "", "label_names": labels, "loss": "weighted_bce",
        "weight_power": 1.0, "val_fraction": 0.15, "seed": seed}))
    probs, targets = fake_split(rng, n, rates)
    tuner = ThresholdTuner(beta=2.0).fit(probs, targets)
    run.write_val_probs([f"v{i:03d}" for i in range(n)], probs, targets)
    run.write_thresholds(tuner)
    if with_history:
        rows = []
        for epoch in range(1, epochs + 1):
            run.write_epoch_probs(epoch, probs)
            row = {"epoch": epoch, "lr": 1e-5 / 10 ** (epoch // 3), "train_loss": 1.2 / epoch,
                   "val_loss": 1.0 / epoch + 0.1, "val_fbeta_05": 0.3 + 0.05 * epoch}
            fbeta = np.clip(0.35 + 0.1 * epoch + rng.normal(0, 0.05, len(labels)), 0, 1)
            row["val_fbeta_tuned"] = float(fbeta.mean())
            row.update({f"fbeta_{name}": float(f) for name, f in zip(labels, fbeta)})
            rows.append(row)
        with (run / "history.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if with_test:
        test_probs, test_targets = fake_split(rng, n, rates)
        atomic.write_json(run / "eval_test.json", score_table(test_targets, test_probs, tuner))
        atomic.write_npz(run / "eval_test.npz", ids=np.array([f"t{i:03d}" for i in range(n)]),
                          probs=test_probs, targets=test_targets)
    run.write_manifest("model", complete=True, best_epoch=epochs if with_history else None, epochs=epochs)
    return run.path


def png_names(page: str) -> set[str]:
    return set(re.findall(r'<img src="([^"]+\.png)"', page))


def check_pngs(out: Path, page: str) -> set[str]:
    names = png_names(page)
    for name in names:
        path = out / name
        assert path.is_file(), name
        assert path.stat().st_size > 5_000, name
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.verify()
        with Image.open(path) as image:
            assert 400 <= image.width <= 4000 and 250 <= image.height <= 4000, (name, image.size)
    return names


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return (make_fake_run(tmp_path / "run_a", LABELS4, seed=1),
            make_fake_run(tmp_path / "run_b", LABELS4, seed=2))


def test_report_has_every_figure_and_label(runs, tmp_path: Path) -> None:
    out = tmp_path / "report"
    html_path = write_report(runs[0], out)
    assert html_path == out / "index.html"
    page = html_path.read_text(encoding="utf-8")
    assert check_pngs(out, page) == CORE_FIGURES
    assert {p.name for p in out.glob("*.png")} == CORE_FIGURES
    assert "<title>Fashion style report: run_a</title>" in page
    for label in LABELS4:
        assert label in page
    assert "validation split (no training labels were given)" in page
    assert page.count("<figcaption>") == len(CORE_FIGURES)
    assert "6. Images</h2>" in page and "Image grids left out: pass the label file (<code>--labels FILE</code>)" in page
    assert not (out / "thumbs").exists()


@pytest.mark.slow
def test_train_targets_feed_the_label_table(runs, tmp_path: Path) -> None:
    train = np.zeros((200, 4), dtype=np.uint8)
    train[:50, 0] = train[:20, 1] = train[:10, 2] = train[:4, 3] = 1
    page = write_report(runs[0], tmp_path / "report", train_targets=train).read_text()
    assert "the training labels" in page and "no training labels" not in page
    assert "<td>Street</td><td>4</td><td>196</td><td>1:49</td><td>1.9600</td><td>0.0400</td>" in page
    with pytest.raises(FashionStyleError, match=r"shape \(N, 4\)"):
        write_report(runs[0], tmp_path / "bad", train_targets=train[:, :3])


@pytest.mark.slow
def test_compare_adds_comparison_figures(runs, tmp_path: Path) -> None:
    out = tmp_path / "compare"
    page = write_report(runs[0], out, compare=[runs[1]]).read_text()
    assert check_pngs(out, page) == CORE_FIGURES | COMPARE_FIGURES
    assert "run_a" in page and "run_b" in page


def test_compare_refuses_other_labels(runs, tmp_path: Path) -> None:
    other = make_fake_run(tmp_path / "other", ["Sport", "Relax", "OL", "Lady"], seed=3)
    with pytest.raises(FashionStyleError, match="different labels") as err:
        write_report(runs[0], tmp_path / "out", compare=[other])
    assert "run_a" in str(err.value) and "other" in str(err.value) and "Lady" in str(err.value)


def test_runs_scored_on_other_images_are_named(runs, tmp_path: Path) -> None:
    twin = make_fake_run(tmp_path / "twin", LABELS4, seed=1)  # run_a's validation and test images
    fewer = make_fake_run(tmp_path / "fewer", LABELS4, n=50, seed=1, with_test=False)
    loaded = [load_run(p) for p in (runs[0], twin, fewer, runs[1])]
    assert image_mismatches(loaded) == [
        "fewer was scored on other validation images than run_a: its scores are not comparable side by side",
        "run_b was scored on other validation and test images than run_a: its scores are not comparable side by side"]


@pytest.mark.slow
def test_compare_warns_about_runs_scored_on_other_images(runs, tmp_path: Path, capsys) -> None:
    page = write_report(runs[0], tmp_path / "out", compare=[runs[1]]).read_text()
    assert capsys.readouterr().err.splitlines() == [
        "warning: run_b was scored on other validation and test images than run_a: its scores are not "
        "comparable side by side"]
    assert "Warning: run_b was scored on other validation and test images" in page


def test_run_without_history_renders_the_rest(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "fused", LABELS4, with_history=False, with_test=False)
    out = tmp_path / "report"
    page = write_report(run, out).read_text()
    assert check_pngs(out, page) == CORE_FIGURES - {"fbeta_per_epoch.png", "loss_lr.png"}
    assert page.count('class="note"') >= 2 and "No history.csv" in page
    for label in LABELS4:
        assert label in page


@pytest.mark.slow
def test_compare_with_a_run_without_history(runs, tmp_path: Path) -> None:
    fused = make_fake_run(tmp_path / "fused", LABELS4, with_history=False)
    out = tmp_path / "out"
    page = write_report(runs[0], out, compare=[fused]).read_text()
    assert check_pngs(out, page) == CORE_FIGURES | COMPARE_FIGURES
    assert "Without per-epoch history" in page and "fused" in page


def test_missing_or_incomplete_run_is_refused(runs, tmp_path: Path) -> None:
    with pytest.raises(FashionStyleError, match="not found"):
        write_report(tmp_path / "nowhere", tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(runs[0], broken)
    RunDir(broken).write_manifest("model", complete=False)
    with pytest.raises(FashionStyleError, match="incomplete run"):
        write_report(broken, tmp_path / "out")


def gallery_run(tmp_path: Path, with_test: bool = True) -> tuple[Path, Path]:
    """A run whose test split (or val, without one) is 10 images t000..t009 with made-up probabilities
    for Sport at threshold 0.5: TP t000 t001 t002, FP t005 t006 t009, FN t004 t003 (lowest first)."""
    run = RunDir(make_fake_run(tmp_path / "run", LABELS4, with_test=False))
    probs, targets = np.full((10, 4), 0.1, np.float32), np.zeros((10, 4), np.uint8)
    probs[:, 0] = [0.95, 0.9, 0.8, 0.3, 0.2, 0.85, 0.7, 0.1, 0.05, 0.6]
    targets[:5, 0] = 1
    ids = [f"t{i:03d}" for i in range(10)]
    tuner = run.thresholds()
    tuner.thresholds_ = np.full(4, 0.5)
    run.write_thresholds(tuner)
    if with_test:
        atomic.write_npz(run / "eval_test.npz", ids=np.array(ids), probs=probs, targets=targets)
    else:
        run.write_val_probs(ids, probs, targets)
    data = tmp_path / "data"
    data.mkdir()
    for i in ids:
        Image.new("RGB", (300, 200), (200, 30 * int(i[1:]), 40)).save(data / f"{i}.jpg")
    lines = ["image," + ",".join(LABELS4)] + [f"{i}.jpg," + ",".join(map(str, t)) for i, t in zip(ids, targets)]
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    return run.path, data / "labels.csv"


def gallery_ids(page: str, label: str) -> dict[str, list[str]]:
    """Image ids shown per kind in one label's gallery block."""
    block = re.search(rf"<details><summary>{label}:.*?</details>", page, re.S).group(0)
    kinds = re.findall(r'<p class="kind">([a-z ]+)</p><div class="thumbs">(.*?)</div>', block, re.S)
    return {kind: re.findall(r">(t\d{3})</b>p = ", body) for kind, body in kinds}


def test_error_gallery_shows_the_most_confident_mistakes(tmp_path: Path) -> None:
    from fashionstyle.data.labels.read import read_labels

    run, labels = gallery_run(tmp_path)
    (labels.parent / "t001.jpg").unlink()  # a missing image is skipped, the next one shown
    out = tmp_path / "report"
    page = write_report(run, out, labels=read_labels(labels)).read_text()
    assert gallery_ids(page, "Sport") == {"true positives": ["t000", "t002"],
                                          "false positives": ["t005", "t006", "t009"],
                                          "false negatives": ["t004", "t003"]}
    assert gallery_ids(page, "Relax") == {"true positives": [], "false positives": [], "false negatives": []}
    assert "threshold 0.500; 3 TP, 3 FP, 2 FN" in page and "the test split (eval_test.npz)" in page
    assert "1 images of the test split were skipped" in page
    thumbs = sorted((out / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 9 and set(re.findall(r'src="(thumbs/[^"]+)"', page)) == {f"thumbs/{p.name}" for p in thumbs}
    with Image.open(thumbs[0]) as image:
        assert image.format == "JPEG" and max(image.size) == gallery.THUMB_PX
    # predictions: one wrong label each, by loss (t003 and t006 tie), then the right ones by loss; t001 missing
    assert prediction_ids(page) == ["t005", "t004", "t003", "t006", "t009", "t002", "t007", "t000", "t008"]
    assert ('<b class="id" title="t005">t005</b>1 wrong · loss 0.55<br>true: none<br>'
            'predicted: <span class="fp">Sport (0.85)</span>' in page)
    assert 'true: <span class="fn">Sport (0.20)</span><br>predicted: none' in page  # t004, also in the gallery
    assert "5 of 10 images have every label right" in page


def prediction_ids(page: str) -> list[str]:
    grid = page[page.index("Predictions, most wrong first</h2>"):page.index("Augmented training images</h2>")]
    return re.findall(r'class="id" title="(t\d{3})"', grid)


def test_most_wrong_comes_first() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.6], [0.2, 0.9], [0.99, 0.01], [0.4, 0.3]])
    targets = np.array([[1, 0], [0, 0], [1, 1], [0, 1], [1, 0]])
    predicted = (probs >= 0.5).astype(np.uint8)
    # wrong labels 0, 2, 1, 2, 1; mean cross-entropy .08, .92, .86, 4.6, .64: the higher first among equals
    assert gallery.most_wrong_order(probs, targets, predicted).tolist() == [3, 1, 2, 4, 0]


def test_headline_and_table_equal_the_runs_metrics(runs) -> None:
    data = load_run(runs[0])
    val = score_table(data.val.targets, data.val.probs, data.tuner)
    test = atomic.read_json(runs[0] / "eval_test.json")  # what `fashionstyle evaluate` wrote
    headline = dict(re.findall(r'data-score="([a-z]+ [a-z]+)"><span class="value">([0-9.]+)</span>',
                               headline_html(data)))
    test_split = data.test
    baseline = {split: per_label_scores(t, np.ones_like(t), 2.0)["fbeta"].mean()  # every label for every image
                for split, t in (("val", data.val.targets), ("test", test_split.targets))}
    assert headline == {"val tuned": f"{val['macro_fbeta']:.3f}", "val half": f"{val['macro_fbeta_at_0.5']:.3f}",
                        "test tuned": f"{test['macro_fbeta']:.3f}", "test half": f"{test['macro_fbeta_at_0.5']:.3f}",
                        "val baseline": f"{baseline['val']:.3f}", "test baseline": f"{baseline['test']:.3f}"}
    assert headline_html(data).count("all-positive baseline") == 2
    table = scores_table_html(data)
    header = re.findall(r"<th>(.*?)</th>", table)
    assert header == ["label", "threshold"] + [f"{s} {w}" for s in ("val", "test")
                                               for w in ("support", "precision", "recall", "F2", "F2 @0.5")]
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    for j, row in enumerate(rows):
        expected = [LABELS4[j], f"{data.tuner.thresholds_[j]:.3f}"]
        for scores in (val, test):
            expected += [str(scores["support"][j])] + [f"{scores[k][j]:.3f}" for k in ("precision", "recall", "fbeta")]
            expected.append(f"{scores['fbeta_at_0.5'][j]:.3f}")
        assert row == expected


def test_pr_curves_pass_through_the_operating_points(runs) -> None:
    data = load_run(runs[0])
    for split in data.splits().values():
        at_t = tuned_scores(data, split)
        for j in range(len(LABELS4)):
            recall, precision = pr_curve(split.probs[:, j], split.targets[:, j])
            assert np.all(np.diff(recall) >= 0) and recall[-1] == 1 and precision[-1] == split.targets[:, j].mean()
            on_curve = np.isclose(recall, at_t["recall"][j]) & np.isclose(precision, at_t["precision"][j])
            assert on_curve.any(), (j, at_t["recall"][j], at_t["precision"][j])


def test_display_pixels_of_either_transform_output() -> None:
    import torch

    from fashionstyle.data.transforms import Augmented

    rgb = np.random.default_rng(0).integers(0, 256, (3, 8, 12), dtype=np.uint8)  # (3, H, W)
    hwc = rgb.transpose(1, 2, 0)
    assert np.array_equal(gallery.display_pixels(torch.from_numpy(rgb)), hwc)
    flipped = gallery.display_pixels(Augmented(torch.from_numpy(rgb), torch.tensor(True)))
    assert np.array_equal(flipped, hwc[:, ::-1])  # the device's flip, applied for display
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.25, 0.3])
    normalised = torch.from_numpy((rgb / 255 - mean[:, None, None]) / std[:, None, None]).float()
    shown = gallery.display_pixels(normalised, mean, std)
    assert shown.dtype == np.uint8 and np.abs(shown.astype(int) - hwc).max() <= 1


def test_gallery_falls_back_to_val_and_shows_the_audit(tmp_path: Path) -> None:
    from fashionstyle.analysis.audit import Issue, write_issues
    from fashionstyle.data.labels.read import read_labels

    run, labels = gallery_run(tmp_path, with_test=False)
    write_issues(Path(run) / "issues.csv", [
        Issue(str(labels.parent / "t005.jpg"), "Sport", 0, 0.85, 0.1, True, "t005"),
        Issue(str(labels.parent / "gone.jpg"), "Sport", 1, 0.05, 0.2, True, "gone")])
    page = write_report(run, tmp_path / "report", labels=read_labels(labels)).read_text()
    assert "the validation split (the run has no eval_test.npz)" in page
    assert gallery_ids(page, "Sport")["false negatives"] == ["t004", "t003"]
    audit = page[page.index("Suspect labels"):]
    assert ">t005</b><b>Sport</b> given 0" in audit and "1 listed images were skipped" in audit
    with pytest.raises(FashionStyleError, match="issues file not found"):
        write_report(run, tmp_path / "other", audit=tmp_path / "none.csv")


@pytest.fixture(scope="module")
def tiny_report(tiny_runs, tmp_path_factory) -> tuple[Path, Path]:
    """`fashionstyle report RUN --labels FILE` of a tiny trained and evaluated run: (labels, out folder)."""
    from fashionstyle.cli import main

    run, labels, _ = tiny_runs.copy(tmp_path_factory.mktemp("report"))  # evaluate writes into the run
    assert main(["evaluate", str(run), "--labels", str(labels), "--split", "test"]) == 0
    out = run.parent / "report"
    assert main(["report", str(run), "--labels", str(labels), "--out", str(out)]) == 0
    return labels, out


@pytest.mark.slow
def test_report_command_with_labels_shows_training_labels_and_images(tiny_report) -> None:
    from conftest import LABELS

    from fashionstyle.data.splits import train_val_split
    from fashionstyle.data.labels.read import read_labels

    labels, out = tiny_report
    page = (out / "index.html").read_text()
    assert check_pngs(out, page) == CORE_FIGURES
    train = read_labels(labels).split("train")  # the file's split column: what training used
    assert train_val_split(read_labels(labels), 0.15, 0)[0].ids == train.ids
    assert "no training labels" not in page
    assert f"Positive images per label in the {len(train)} training images of <code>{labels}</code>" in page
    positives = train.targets.sum(axis=0)
    assert f"<td>{LABELS[0]}</td><td>{positives[0]}</td><td>{len(train) - positives[0]}</td>" in page
    assert len(prediction_ids_any(page)) == 8  # the test split: every 4th of 32 images
    augmented = sorted((out / "thumbs").glob("aug_*.jpg"))
    assert len(augmented) == gallery.AUGMENTED_IMAGES  # a one-epoch run: one crop each
    for path in augmented:
        with Image.open(path) as image:
            assert image.size == (32, 32)  # the run's --image-size
    assert page.count("<figcaption>epoch 1/1</figcaption>") == gallery.AUGMENTED_IMAGES
    assert "epoch 2" not in page
    assert "a random 32 px square of 35% to 100% of the photo's area, mirrored half the time" in page


def prediction_ids_any(page: str) -> list[str]:
    grid = page[page.index("Predictions, most wrong first</h2>"):page.index("Augmented training images</h2>")]
    return re.findall(r'class="id" title="([^"]+)"', grid)


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
def test_report_reads_in_chromium_at_desktop_and_phone_width(tiny_report, width: int) -> None:
    """Every image loads from the folder alone, the headline is on the first screen, nothing is wider than it."""
    from test_browser import ARTIFACTS, CHROMIUM_ARGS, requirements
    from playwright.sync_api import sync_playwright

    chromium = requirements()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto((tiny_report[1] / "index.html").as_uri())
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        images = page.locator("img")
        shown = images.count()
        for i in range(shown):
            images.nth(i).scroll_into_view_if_needed()  # lazy thumbnails load when near the screen
        page.wait_for_load_state("networkidle")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.src)")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        headline = page.locator(".headline").bounding_box()
        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / f"report_{width}.png"), full_page=True)
        browser.close()
    assert shown > 40 and not broken, broken  # figures, grids, one crop per photo of a one-epoch run, gallery
    assert all(url.startswith("file://") for url in requests), requests
    assert overflow <= 0, f"the page is {overflow} px wider than a {width} px screen"
    assert headline is not None and headline["y"] < 250 and headline["height"] < 400


# -- issue 34/33: baseline, n/a, crop captions, a readable epoch chart, progress, --out folders ------------
def test_a_label_without_validation_positives_shows_na_and_the_note_says_how_the_mean_counts_it(tmp_path) -> None:
    run = RunDir(make_fake_run(tmp_path / "run", LABELS4, with_test=False))
    ids, probs, targets = run.val_probs()
    targets[:, 3] = 0  # Street: no positive validation image
    run.write_val_probs(ids, probs, targets)
    data = load_run(run.path)
    rows = {r[0]: r for r in (re.findall(r"<td>(.*?)</td>", row) for row in
                              re.findall(r"<tr>(.*?)</tr>", scores_table_html(data))[1:])}
    assert rows["Street"][2] == "0"  # support
    assert rows["Street"][4:] == ["n/a", "n/a", "n/a"]  # recall, F2, F2 @0.5
    assert "n/a" not in rows["Sport"]
    page = write_report(run.path, tmp_path / "report").read_text()
    assert "no positive image of Street in val" in page and "count each such label as 0" in page
    assert "no positive image" not in write_report(make_fake_run(tmp_path / "ok", LABELS4),
                                                    tmp_path / "report_ok").read_text()


def test_augmented_crops_are_captioned_with_the_epochs_the_run_trained(tmp_path) -> None:
    from fashionstyle.data.labels.read import read_labels

    _, labels = gallery_run(tmp_path)
    train = read_labels(labels)
    config = {"image_size": 32, "epochs": 2, "seed": 0}
    blocks, _ = gallery.augmentation_blocks(train, config, gallery.Thumbnails(tmp_path / "out"), count=2)
    captions = re.findall(r"<figcaption>(epoch [^<]+)</figcaption>", "".join(blocks))
    assert captions == ["epoch 1/2", "epoch 2/2"] * 2  # never "epoch 3/4" on a 2-epoch run
    blocks, _ = gallery.augmentation_blocks(train, dict(config, epochs=9), gallery.Thumbnails(tmp_path / "o2"),
                                            count=1)
    assert re.findall(r"<figcaption>(epoch [^<]+)</figcaption>", "".join(blocks)) == [
        f"epoch {e}/9" for e in range(1, gallery.AUGMENTED_DRAWS + 1)]


def test_the_epoch_chart_names_the_macro_mean_and_the_labels_that_moved_most(tmp_path, monkeypatch) -> None:
    from fashionstyle.analysis import report_plots

    names = [f"style{i:02d}" for i in range(19)]
    run = make_fake_run(tmp_path / "run", names, epochs=4)
    data = load_run(run)
    moved = report_plots.most_moved(data.history, names)
    spread = {n: np.ptp(data.history[f"fbeta_{n}"]) for n in names}
    assert moved == sorted(names, key=lambda n: -spread[n])[:report_plots.MOVED_LABELS]
    figures = []
    monkeypatch.setattr(report_plots, "save", lambda fig, path: figures.append(fig) or path)
    assert report_plots.plot_fbeta_per_epoch(data, tmp_path / "e.png")
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["the other 14 labels", *moved, "macro (tuned)", "macro @0.5", "best epoch (4)"]


def test_report_says_what_it_is_doing_counted_in_images(tmp_path, capsys) -> None:
    from fashionstyle.data.labels.read import read_labels

    run, labels = gallery_run(tmp_path)
    write_report(run, tmp_path / "report", labels=read_labels(labels), progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "report: scores and figures of run (60 validation images, 10 test images)"
    assert any(re.match(r"report: predictions of the test split: \d+ of 10 images shown", line) for line in lines)
    assert any(line.startswith("report: error gallery per label:") and line.endswith("images") for line in lines)
    write_report(run, tmp_path / "quiet")
    assert capsys.readouterr().out == ""  # a Python caller's default


def test_report_out_refuses_a_folder_of_a_users_files_and_replaces_only_its_own_report(runs, tmp_path) -> None:
    own = tmp_path / "site"
    own.mkdir()
    (own / "index.html").write_text("<html><title>my shop</title></html>")
    with pytest.raises(FashionStyleError, match=r"site: holds an index.html that is not a fashionstyle report"):
        write_report(runs[0], own)
    assert (own / "index.html").read_text() == "<html><title>my shop</title></html>"
    assert sorted(p.name for p in own.iterdir()) == ["index.html"]  # nothing written
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FashionStyleError, match=r"other: holds other files \(notes.txt\); a report writes only"):
        write_report(runs[0], other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_report(runs[0], empty)  # an empty folder, then its own report again
    write_report(runs[1], empty)
    assert "run_b" in (empty / "index.html").read_text()
    (empty / "index.html").write_text((empty / "index.html").read_text().replace(
        '<meta name="generator" content="fashionstyle report">\n', ""))  # a report written before the mark
    write_report(runs[0], empty)


def test_named_operating_points_get_a_section_markers_and_a_labels_per_photo_chart(runs, tmp_path: Path) -> None:
    from fashionstyle.core.operating_points import fit_point

    run = RunDir.open(runs[0])
    _, probs, targets = run.val_probs()
    run.write_operating_point(fit_point("store", probs, targets, LABELS4, "min-precision", 0.99, max_labels=1))
    page = write_report(runs[0], tmp_path / "report").read_text(encoding="utf-8")
    assert check_pngs(tmp_path / "report", page) == CORE_FIGURES | {"labels_per_photo.png"}
    section = page.split("Operating points</h2>")[1].split("<h2")[0]
    assert "store: min-precision 0.99; at most 1 label" in section and "store test P" in section
    point = run.contents().point("store")
    never = [n for n, t in zip(LABELS4, point.thresholds) if not np.isfinite(t)]
    assert never and section.count("<td>never</td>") == len(never)  # 0.99 on 60 photos is out of reach somewhere
    data = load_run(runs[0])
    assert list(data.points) == ["f2", "store"]
    assert (data.decided["store"]["test"].sum(axis=1) <= 1).all()
    plain = write_report(runs[1], tmp_path / "plain").read_text(encoding="utf-8")
    assert "Operating points</h2>" not in plain and not (tmp_path / "plain" / "labels_per_photo.png").exists()
