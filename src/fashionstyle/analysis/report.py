"""An HTML report of a run directory: headline scores, label statistics, F-beta per label, epoch and threshold.

    write_report("runs/densenet201", "reports/densenet201")            # -> .../index.html
    write_report("runs/a", "reports/a_vs_b", compare=["runs/b"])       # adds comparison figures

The page is self-contained (one index.html, simple CSS, no JavaScript) with PNG
figures beside it, under a headline of the macro F-beta (validation and test, tuned and at 0.5):

    label_stats.png         positives per label (log scale) with the pos:neg ratio
    cooccurrence.png        how often each pair of labels occurs together
    fbeta_per_label.png     per-label F-beta at 0.5 and at the tuned thresholds (val, test)
    pr_curves.png           precision against recall for every label, the tuned operating point marked
    fbeta_per_epoch.png     per-label validation F-beta of every epoch, macro in bold
    fbeta_vs_threshold.png  F-beta against the threshold for every label, chosen one marked
    loss_lr.png             training and validation loss, learning rate (log, right axis)
    compare_fbeta.png       compare mode: tuned per-label F-beta of every run
    compare_epochs.png      compare mode: validation macro F-beta per epoch of every run

A run without history.csv (a fused run) skips the two per-epoch figures; the
test split appears wherever the run holds eval_test.npz (`fashionstyle evaluate`).
With the label file (to find the images; its training split also feeds the label
statistics), the page adds image grids (gallery.py) with thumbnails in thumbs/: test
images (else validation) with their true and predicted label sets, the most wrong
first; training images beside the crops the run's training transform draws from
them; and per label the most confident true positives, false positives and false
negatives. With an audit file (`fashionstyle audit`, or RUN/issues.csv) it shows
the most suspect labels.
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np

from fashionstyle.analysis import gallery
from fashionstyle.analysis.audit import read_issues
from fashionstyle.analysis.report_data import (
    RunData,
    check_same_labels,
    image_mismatches,
    load_run,
    run_names,
    split_scores,
    stats_targets,
    training_split,
    tuned_scores,
)
from fashionstyle.analysis.report_plots import (
    STYLE,
    plot_compare_epochs,
    plot_compare_fbeta,
    plot_cooccurrence,
    plot_fbeta_per_epoch,
    plot_fbeta_per_label,
    plot_fbeta_vs_threshold,
    plot_label_stats,
    plot_loss_lr,
    plot_pr_curves,
)
from fashionstyle.core import atomic
from fashionstyle.core.history import MONITOR
from fashionstyle.core.run import RunDir
from fashionstyle.data.images import Preprocessing
from fashionstyle.data.label_stats import label_counts, loss_weights, ratio_text
from fashionstyle.data.labels import LabelTable

__all__ = ["write_report"]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .3em; overflow-wrap: anywhere; }
h2 { margin-top: 2em; color: #1f4e79; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: .95em; overflow-wrap: anywhere; }
.note { background: #fff8e1; border-left: 4px solid #f0ad4e; padding: .5em 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
.wide { overflow-x: auto; max-width: 100%; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(10em, 1fr)); gap: .6em; margin: 1em 0; }
.headline div { border: 1px solid #cfd9e3; border-radius: 6px; padding: .4em .8em; background: #f5f9fc; }
.headline .value { display: block; font-size: 2em; font-weight: bold; color: #1f4e79; }
.headline .tuned .value { color: #0b3d6b; } .headline .half .value { color: #5b7fa3; font-size: 1.6em; }
nav ol { columns: 2 16em; margin: .5em 0; }
@media (max-width: 600px) { body { margin: 1em auto; } h1 { font-size: 1.5em; } }
th, td { border: 1px solid #ccc; padding: .25em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef3f8; }
tr.macro td { font-weight: bold; border-top: 2px solid #888; }
code { background: #f3f3f3; padding: 0 .3em; }
"""


# -- html --------------------------------------------------------------------------
def figure_html(name: str, caption: str) -> str:
    """A figure that opens full size when clicked (on a phone it is shown shrunk to the screen)."""
    alt = html.escape(re.sub(r"<[^>]+>", "", caption), quote=True)
    return (f'<figure><a href="{name}"><img src="{name}" alt="{alt}"></a>'
            f"<figcaption>{caption}</figcaption></figure>")


def table_html(header: list[str], rows: list[list[str]], macro: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if macro:
        body += '<tr class="macro">' + "".join(f"<td>{c}</td>" for c in macro) + "</tr>"
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def stats_table_html(names: list[str], targets: np.ndarray, weight_power: float) -> str:
    positives, negatives = label_counts(targets)
    pos_w, neg_w = loss_weights(targets, weight_power)
    rows = [[html.escape(n), str(p), str(q), ratio_text(int(p), int(q)), f"{a:.4f}", f"{b:.4f}"]
            for n, p, q, a, b in zip(names, positives, negatives, pos_w, neg_w)]
    return table_html(["label", "positives", "negatives", "pos:neg", "A", "B"], rows)


def scores_table_html(data: RunData) -> str:
    """Per label: the threshold, then per split support, precision, recall and F-beta (tuned), F-beta at 0.5."""
    header, columns, macro = ["label", "threshold"], [[f"{t:.3f}" for t in data.tuner.thresholds_]], ["macro", ""]
    for split_name, split in data.splits().items():
        tuned, at_half = tuned_scores(data, split), split_scores(data, split)[0]
        header += [f"{split_name} {w}" for w in ("support", "precision", "recall", data.beta_name,
                                                  f"{data.beta_name} @0.5")]
        columns.append([str(n) for n in tuned["support"]])
        macro.append("")
        for values in (tuned["precision"], tuned["recall"], tuned["fbeta"], at_half):
            columns.append([f"{v:.3f}" for v in values])
            macro.append(f"{np.mean(values):.3f}")
    rows = [[html.escape(n)] + [c[j] for c in columns] for j, n in enumerate(data.label_names)]
    return table_html(header, rows, macro)


def headline_html(data: RunData) -> str:
    """The macro F-beta of each split, tuned and at 0.5, in large type."""
    cells = []
    for split_name, split in data.splits().items():
        at_half, tuned = split_scores(data, split)
        word = "validation" if split_name == "val" else "test"
        for kind, value, how in (("tuned", tuned, "tuned thresholds"), ("half", at_half, "threshold 0.5")):
            cells.append(f'<div class="{kind}" data-score="{split_name} {kind}"><span class="value">'
                         f"{np.mean(value):.3f}</span>{word} macro {data.beta_name}, {how}<br>"
                         f"<small>{len(split.targets)} images</small></div>")
    missing = "" if data.test is not None else note(
        "No test scores yet: <code>fashionstyle evaluate RUN --labels FILE --split test</code> adds them.")
    return f'<div class="headline">{"".join(cells)}</div>{missing}'


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def page(title: str, top: list[str], sections: list[str]) -> str:
    """The html page: `top` under the title, then a list of contents and the `sections`, numbered."""
    text, titles = numbered_sections("\n".join(sections))
    contents = "<nav><ol>" + "".join(f'<li><a href="#s{i}">{t}</a></li>' for i, t in enumerate(titles, 1))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}{gallery.CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(top) + f"\n{contents}</ol></nav>\n{text}"
            "\n</body>\n</html>\n")


def numbered_sections(text: str) -> tuple[str, list[str]]:
    """Every <h2> numbered in page order, with an anchor (#s1, #s2, ...); and the titles."""
    titles: list[str] = []

    def number(match: re.Match) -> str:
        titles.append(match.group(1))
        return f'<h2 id="s{len(titles)}">{len(titles)}. {match.group(1)}</h2>'

    return re.sub(r"<h2>(.*?)</h2>", number, text), titles


def summary_html(data: RunData) -> str:
    m = data.manifest
    facts = [f"run directory <code>{html.escape(str(data.run.path.resolve()))}</code>",
             f"{len(data.label_names)} labels", f"{len(data.val.targets)} validation images"]
    if data.test is not None:
        facts.append(f"{len(data.test.targets)} test images")
    facts += [f"{k.replace('_', ' ')} {html.escape(str(m[k]))}"
              for k in ("kind", "best_epoch", "epochs", "written") if m.get(k) is not None]
    return "<p>" + "; ".join(facts) + ".</p>"


# -- the report --------------------------------------------------------------------
def write_report(run_dir: str | Path, out_dir: str | Path, compare: Sequence[str | Path] = (),
                 stats_table: LabelTable | None = None, train_targets: np.ndarray | None = None,
                 labels: LabelTable | None = None, audit: str | Path | None = None) -> Path:
    """Write `out_dir/index.html` and its PNG figures for a run; returns the html path.

    `compare`: other run directories with the same labels, shown side by side.
    `stats_table` (a LabelTable) or `train_targets` ((N, L) 0/1): the training labels
    for the label statistics; without them the training split of `labels`, else the
    validation targets.
    `labels`: a label file's table, to find the images of the image grids.
    `audit`: an issues.csv from `fashionstyle audit` (default: RUN/issues.csv if there).
    """
    paths = [Path(run_dir), *map(Path, compare)]
    names = run_names(paths)
    runs = [load_run(p, n) for p, n in zip(paths, names)]
    data = runs[0]
    for other in runs[1:]:
        check_same_labels(data, other)
    mismatches = image_mismatches(runs)
    for line in mismatches:  # a report is only a view: shown, with a warning, not refused as fuse does
        print(f"warning: {line}", file=sys.stderr)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = training_split(data, labels)
    targets, source = stats_targets(data, stats_table, train_targets, train)
    with matplotlib.rc_context(STYLE):
        body = label_section(data, targets, source, out)
        body += per_label_section(data, out)
        body += epoch_section(data, out)
        body += threshold_section(data, out)
        body += loss_section(data, out)
        if len(runs) > 1:
            body += compare_section(runs, out, mismatches)
    thumbs = gallery.Thumbnails(out)
    body += image_sections(data, labels, train, thumbs)
    in_run = data.run / "issues.csv"
    audit = audit if audit is not None else (in_run if in_run.is_file() else None)
    if audit is not None:
        body += audit_section(audit, thumbs)
    top = [headline_html(data), summary_html(data)]
    html_path = atomic.write_text(out / "index.html", page(f"Fashion style report: {data.name}", top, body))
    html_path.chmod(0o644)
    return html_path


def label_section(data: RunData, targets: np.ndarray, source: str, out: Path) -> list[str]:
    plot_label_stats(data, targets, out / "label_stats.png")
    plot_cooccurrence(data.label_names, targets, out / "cooccurrence.png")
    caption = (f"Positive images per label in {source}, on a log scale, with the positives : negatives "
               "ratio; the rarer a label, the larger its positive weight A in the weighted loss.")
    together = (f"Images with both labels in {source}: row i, column j counts the images with labels i and j "
                "(the diagonal: all of label i's images); the colour is the share of row i's images that also "
                "have label j.")
    return ["<h2>Label statistics</h2>", figure_html("label_stats.png", caption),
            f"<p>Loss weights A (positives) and B (negatives) with weight_power = {data.weight_power:g}.</p>",
            stats_table_html(data.label_names, targets, data.weight_power),
            figure_html("cooccurrence.png", together)]


def per_label_section(data: RunData, out: Path) -> list[str]:
    plot_fbeta_per_label(data, out / "fbeta_per_label.png")
    splits = "validation and test splits" if data.test is not None else "validation split"
    caption = (f"{data.beta_name} of every label on the {splits}, predicting at probability 0.5 (light) "
               "and at the per-label thresholds tuned on validation (dark); the last group is the macro "
               "mean.")
    plot_pr_curves(data, out / "pr_curves.png")
    pr_caption = (f"Precision against recall of every label on the {splits} as the threshold falls; the dot is "
                  "the operating point at the threshold t tuned on validation, the dotted grey curves join "
                  f"points of equal {data.beta_name}.")
    return ["<h2>Per-label scores</h2>", figure_html("fbeta_per_label.png", caption),
            f"<p>Per label: the tuned threshold; per split the positive images (support), and precision, recall "
            f"and {data.beta_name} at that threshold, then {data.beta_name} at 0.5.</p>", scores_table_html(data),
            figure_html("pr_curves.png", pr_caption)]


def epoch_section(data: RunData, out: Path) -> list[str]:
    body = ["<h2>Validation score per epoch</h2>"]
    if plot_fbeta_per_epoch(data, out / "fbeta_per_epoch.png"):
        body.append(figure_html("fbeta_per_epoch.png", (
            f"Validation {data.beta_name} of every label after each epoch at that epoch's tuned thresholds, "
            "with the macro mean in bold; the dotted line marks the epoch kept as the model.")))
    else:
        body.append(note("No per-epoch history (history.csv with per-label columns) in this run, "
                         "e.g. a fused run: figure skipped."))
    return body


def loss_section(data: RunData, out: Path) -> list[str]:
    body = ["<h2>Loss and learning rate</h2>"]
    if plot_loss_lr(data, out / "loss_lr.png"):
        body.append(figure_html("loss_lr.png", (
            "Training and validation loss per epoch (left axis) and the learning rate (right axis, log "
            "scale): a drop in the rate shows where the schedule cut it.")))
    else:
        body.append(note("No history.csv in this run, e.g. a fused run: loss figure skipped."))
    return body


def threshold_section(data: RunData, out: Path) -> list[str]:
    plot_fbeta_vs_threshold(data, out / "fbeta_vs_threshold.png")
    splits = "validation (blue) and test (orange)" if data.test is not None else "validation"
    caption = (f"{data.beta_name} against the decision threshold for every label on {splits}; the dashed "
               f"line is the threshold tuned on validation and the box gives t and the {data.beta_name} "
               "there.")
    return ["<h2>Threshold curves</h2>", figure_html("fbeta_vs_threshold.png", caption)]


def compare_section(runs: list[RunData], out: Path, mismatches: Sequence[str] = ()) -> list[str]:
    plot_compare_fbeta(runs, out / "compare_fbeta.png")
    test = " and test" if all(r.test is not None for r in runs) else ""
    warnings = [note(f"Warning: {html.escape(m)}.") for m in mismatches]
    body = ["<h2>Run comparison</h2>", *warnings, figure_html("compare_fbeta.png", (
        f"Per-label {runs[0].beta_name} at each run's tuned thresholds on validation{test}, one colour per "
        "run "
        f"({', '.join(html.escape(r.name) for r in runs)}); the last group is the macro mean."))]
    if plot_compare_epochs(runs, out / "compare_epochs.png"):
        body.append(figure_html("compare_epochs.png", (
            f"Validation macro {runs[0].beta_name} (tuned thresholds) after each epoch, one line per run.")))
    missing = [r.name for r in runs if not (r.history and MONITOR in r.history)]
    if missing:
        body.append(note(f"Without per-epoch history (not in the epoch plot): "
                         f"{', '.join(html.escape(n) for n in missing)}."))
    return body


def image_sections(data: RunData, labels: LabelTable | None, train: tuple[LabelTable, str] | None,
                   thumbs: gallery.Thumbnails) -> list[str]:
    """Predictions (most wrong first), augmented training images and the error gallery; or why not."""
    if labels is None:
        return ["<h2>Images</h2>", note(
            "Image grids left out: pass the label file (<code>--labels FILE</code>), which says where the images "
            "are, to see test images with their true and predicted labels (most wrong first), augmented training "
            "images and each label's most confident true positives, false positives and false negatives.")]
    name, split = ("test", data.test) if data.test is not None else ("validation", data.val)
    where = ("the test split (eval_test.npz)" if data.test is not None
             else "the validation split (the run has no eval_test.npz)")
    images = dict(zip(labels.ids, labels.images))

    def missing(skipped: int) -> list[str]:
        return [note(f"{skipped} images of the {name} split were skipped: not in "
                     f"<code>{html.escape(labels.source)}</code>, missing or unreadable.")] if skipped else []

    grid, skipped, all_right = gallery.prediction_grid(data.label_names, split.ids, split.probs, split.targets,
                                                       data.tuner, images, thumbs)
    body = ["<h2>Predictions, most wrong first</h2>", (
        f"<p>Images of {where} with their true and predicted labels at the tuned thresholds, those with the most "
        "wrong labels first (then the highest loss, the mean binary cross-entropy over the labels, as fastai's "
        f"<code>plot_top_losses</code>); {all_right} of {len(split.targets)} images have every label right. "
        '<span class="fn">Struck through</span>: a true label the model missed; <span class="fp">red</span>: '
        "a label predicted but not true; in brackets its probability.</p>"), *missing(skipped), grid]
    body += augmentation_section(data, train, thumbs)
    blocks, skipped = gallery.error_gallery(data.label_names, split.ids, split.probs, split.targets,
                                            data.tuner, images, thumbs)
    body += ["<h2>Error gallery per label</h2>", (
        f"<p>Per label, the {gallery.PER_KIND} most confident true positives and false positives (highest "
        f"probability) and false negatives (lowest) of {where} at the label's tuned threshold, each with its "
        "true and predicted labels; click a label to open it.</p>"), *missing(skipped)]
    return body + blocks


def augmentation_section(data: RunData, train: tuple[LabelTable, str] | None,
                         thumbs: gallery.Thumbnails) -> list[str]:
    body = ["<h2>Augmented training images</h2>"]
    config = data.config
    if "image_size" not in config:
        return body + [note("Augmented images left out: the run has no config.yaml with its training transform "
                            "(image_size), e.g. a fused run.")]
    if train is None:
        return body + [note("The label file has no labels to find the training images: augmented images "
                            "left out.")]
    blocks, skipped = gallery.augmentation_blocks(train[0], config, thumbs, *run_normalisation(data.run))
    flips = ", mirrored half the time" if config.get("hflip", True) else ""
    body.append(f"<p>Training images of {train[1]}, each beside the crops the run's training transform drew from "
                f"it in its first epochs: a random {config['image_size']} px square of "
                f"{float(config.get('crop_scale', 0.35)):.0%} to 100% of the photo's area{flips}, seeded by "
                "image and epoch as in training (the model sees them normalised).</p>")
    if skipped:
        body.append(note(f"{skipped} training images were skipped: missing or unreadable."))
    return body + blocks


def run_normalisation(run: RunDir) -> tuple[list[float], list[float]]:
    """The mean and std saved with the run's model (ImageNet's for a run without model.pt)."""
    path = run / "model.pt"
    if not path.is_file():
        return list(gallery.IMAGENET_MEAN), list(gallery.IMAGENET_STD)
    import torch

    record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    preprocessing = Preprocessing.of(record)
    return list(preprocessing.mean), list(preprocessing.std)


def audit_section(path: str | Path, thumbs: gallery.Thumbnails) -> list[str]:
    issues = read_issues(path)
    figures, skipped = gallery.audit_gallery(issues, thumbs)
    body = ["<h2>Suspect labels (audit)</h2>",
            f"<p>The most suspect (image, label) pairs of <code>{html.escape(str(path))}</code> "
            f"({len(issues)} listed, most suspect first): the given label, the held-out probability and "
            "cleanlab's label-quality score (lower is more suspect). Red: given 0 but likely present; "
            "orange: given 1 but likely absent.</p>", figures]
    if skipped:
        body.append(note(f"{skipped} listed images were skipped: missing or unreadable."))
    return body
