"""An HTML report of a run directory: headline scores, label statistics, F-beta per label, epoch and threshold.

    write_report("runs/densenet201", "reports/densenet201")            # -> .../index.html
    write_report("runs/a", "reports/a_vs_b", compare=["runs/b"])       # adds comparison figures

The page is self-contained (one index.html, simple CSS, no JavaScript) with PNG
figures beside it, under a headline of the run summary's macro F-beta (validation and test: at the
run's thresholds, at 0.5, and the all-positive baseline) and any warning about the run:

    label_stats.png         positives per label (log scale) with the pos:neg ratio
    cooccurrence.png        how often each pair of labels occurs together
    fbeta_per_label.png     per-label F-beta at 0.5 and at the tuned thresholds (val, test)
    pr_curves.png           precision against recall for every label, the tuned operating point marked
                            (and each named operating point, `tune --operating-point`, with its own marker)
    labels_per_photo.png    labels per photo at each operating point (runs with named points), beside a
                            table of each point's thresholds, val precision [90% low] and split P / R
    fbeta_per_epoch.png     validation macro F-beta of every epoch in bold, the labels that moved most named
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

A run of more than SHOWN (50) labels is summarised: the per-label figures, tables and error gallery
show the SHOWN labels with the most positives, and the page says so; the headline covers every label.
"""
from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Callable, Sequence

import matplotlib
import numpy as np

from fashionstyle.analysis import gallery
from fashionstyle.analysis.audit import read_issues
from fashionstyle.analysis.report_data import (
    SHOWN,
    RunData,
    check_runs_comparable,
    image_mismatches,
    load_run,
    most_supported,
    only_labels,
    point_split_scores,
    run_names,
    stats_targets,
    training_split,
)
from fashionstyle.analysis.report_plots import (
    MOVED_LABELS,
    STYLE,
    plot_compare_epochs,
    plot_compare_fbeta,
    plot_cooccurrence,
    plot_fbeta_per_epoch,
    plot_fbeta_per_label,
    plot_fbeta_vs_threshold,
    plot_label_stats,
    plot_labels_per_photo,
    plot_loss_lr,
    plot_pr_curves,
)
from fashionstyle.analysis.report_page import (
    check_report_folder,
    figure_html,
    headline_html,
    note,
    page,
    scores_table_html,
    stats_table_html,
    summary_html,
    table_html,
    unscored_note,
    warnings_html,
)
from fashionstyle.core import atomic
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.history import MONITOR
from fashionstyle.core.run import RunDir
from fashionstyle.core.run_warnings import read_warnings
from fashionstyle.data.images.files import Preprocessing
from fashionstyle.data.labels.table import LabelTable

__all__ = ["headline_html", "scores_table_html", "write_report"]


# -- the report --------------------------------------------------------------------
def write_report(run_dir: str | Path, out_dir: str | Path, compare: Sequence[str | Path] = (),
                 stats_table: LabelTable | None = None, train_targets: np.ndarray | None = None,
                 labels: LabelTable | None = None, audit: str | Path | None = None,
                 progress: bool = False, shown: int = SHOWN) -> Path:
    """Write `out_dir/index.html` and its PNG figures for a run; returns the html path.

    `out_dir` must be new, empty or hold an earlier report (anything else is refused before a file
    is written).
    `compare`: other run directories with the same labels, shown side by side.
    `stats_table` (a LabelTable) or `train_targets` ((N, L) 0/1): the training labels
    for the label statistics; without them the training split of `labels`, else the
    validation targets.
    `labels`: a label file's table, to find the images of the image grids.
    `audit`: an issues.csv from `fashionstyle audit` (default: RUN/issues.csv if there).
    `progress`: say on stdout what it is doing, one line per stage, counted in images.
    `shown`: past this many labels, the per-label sections show the `shown` with the most positives.
    """
    out = Path(out_dir)
    check_report_folder(out)
    say = (lambda line: print(f"report: {line}", flush=True)) if progress else (lambda line: None)
    paths = [Path(run_dir), *map(Path, compare)]
    runs = [load_run(p, n) for p, n in zip(paths, run_names(paths))]
    data = runs[0]
    for other in runs[1:]:
        check_runs_comparable(data, other)
    mismatches = image_mismatches(runs)
    for line in mismatches:  # a report is only a view: shown, with a warning, not refused as fuse does
        print(f"warning: {line}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    train = training_split(data, labels)
    targets, source = stats_targets(data, stats_table, train_targets, train)
    scored = ", ".join(f"{len(s.targets)} {'validation' if name == 'val' else name} images"
                       for name, s in data.splits().items())
    say(f"scores and figures of {', '.join(r.name for r in runs)} ({scored})")
    columns = most_supported(targets, shown)  # None: every label is shown
    view = only_labels(data, columns)
    if columns is not None:
        targets = targets[:, columns]
        say(f"{len(data.label_names):,} labels: per-label sections show the {len(columns)} most frequent")
    with matplotlib.rc_context(STYLE):
        body = [] if columns is None else [summarised_note(data, len(columns), source)]
        body += label_section(view, targets, source, out)
        body += per_label_section(view, out, data)
        body += points_section(data, view, out)
        body += epoch_section(view, out)
        body += threshold_section(view, out)
        body += loss_section(view, out)
        if len(runs) > 1:
            body += compare_section([only_labels(r, columns) for r in runs], out, mismatches)
    thumbs = gallery.Thumbnails(out)
    body += image_sections(data, labels, train, thumbs, say, view)
    in_run = data.run / "issues.csv"
    audit = audit if audit is not None else (in_run if in_run.is_file() else None)
    if audit is not None:
        body += audit_section(audit, thumbs)
        say(f"suspect labels of {audit}: {len(thumbs.made)} images in all")
    top = [warnings_html(read_warnings(data.run)), headline_html(data), summary_html(data)]
    html_path = atomic.write_text(out / "index.html", page(f"Fashion style report: {data.name}", top, body))
    html_path.chmod(0o644)
    return html_path


def summarised_note(data: RunData, shown: int, source: str) -> str:
    """What a report of a run of many labels leaves out, and where the rest is."""
    return note(f"This run has {len(data.label_names):,} labels: the per-label figures, tables and error gallery "
                f"show the {shown} with the most positive images in {source}; the headline's macro scores "
                f"cover all {len(data.label_names):,}. Every label's scores are in <code>summary.json</code> and "
                "<code>fashionstyle evaluate</code>; every label's counts in <code>fashionstyle stats --all</code>.")


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


def per_label_section(data: RunData, out: Path, whole: RunData | None = None) -> list[str]:
    """Figures and the table of `data`'s labels; the note on unscored labels counts all of `whole`'s."""
    plot_fbeta_per_label(data, out / "fbeta_per_label.png")
    splits = "validation and test splits" if data.test is not None else "validation split"
    caption = (f"{data.beta_name} of every label on the {splits}, predicting at probability 0.5 (light) "
               "and at the per-label thresholds tuned on validation (dark); the last group is the macro "
               "mean.")
    plot_pr_curves(data, out / "pr_curves.png")
    pr_caption = (f"Precision against recall of every label on the {splits} as the threshold falls; the dot is "
                  "the operating point at the threshold t tuned on validation (other markers: the run's named "
                  "operating points, their per-photo rules applied), the dotted grey curves join "
                  f"points of equal {data.beta_name}.")
    return ["<h2>Per-label scores</h2>", figure_html("fbeta_per_label.png", caption),
            f"<p>Per label: the tuned threshold; per split the positive images (support), and precision, recall "
            f"and {data.beta_name} at that threshold, then {data.beta_name} at 0.5.</p>", scores_table_html(data),
            unscored_note(whole or data), figure_html("pr_curves.png", pr_caption)]


def points_section(data: RunData, view: RunData, out: Path) -> list[str]:
    """The run's named operating points beside its own: what each is, per label (of `view`) its threshold,
    the validation precision [90% lower bound] it was chosen at and the last split's precision and recall,
    and the labels per photo each gives (over all of `data`'s labels)."""
    if not plot_labels_per_photo(data, out / "labels_per_photo.png"):
        return []
    split = "test" if data.test is not None else "val"
    header, rows = ["label"], [[html.escape(n)] for n in view.label_names]
    for name, point in view.points.items():
        scores = point_split_scores(view, name, split)
        header += [f"{name} threshold", f"{name} val P [low]", f"{name} {split} P", f"{name} {split} R"]
        for j, row in enumerate(rows):
            row += point_cells(point, j, scores)
    lines = "".join(f"<li>{html.escape(p.describe(data.label_names))}</li>" for p in data.points.values())
    caption = (f"Labels per photo on the {'test' if split == 'test' else 'validation'} split at each operating "
               "point, beside the photos' true number of labels.")
    own = html.escape(next(iter(data.points)))
    return ["<h2>Operating points</h2>", f"<p>Labels are decided at the run's own thresholds ({own}) unless a "
            f"point is named (<code>--operating-point NAME</code>):</p><ul>{lines}</ul>",
            table_html(header, rows), figure_html("labels_per_photo.png", caption)]


def point_cells(point: OperatingPoint, j: int, scores: dict[str, np.ndarray]) -> list[str]:
    """One label's cells at one point: threshold, val precision [low], the split's precision and recall;
    a label the point never predicts reads `never`."""
    if not np.isfinite(point.thresholds[j]):
        return ["never", "", "", ""]
    val = [point.val.get(k, [None] * (j + 1))[j] for k in ("precision", "precision_low")]
    chosen = "" if val[0] is None else f"{val[0]:.2f} [{val[1]:.2f}]"
    return [f"{point.thresholds[j]:.3f}", chosen, f"{scores['precision'][j]:.2f}", f"{scores['recall'][j]:.2f}"]


def epoch_section(data: RunData, out: Path) -> list[str]:
    body = ["<h2>Validation score per epoch</h2>"]
    if plot_fbeta_per_epoch(data, out / "fbeta_per_epoch.png"):
        named = min(len(data.label_names), MOVED_LABELS)
        others = "" if named == len(data.label_names) else ", the other labels in grey"
        body.append(figure_html("fbeta_per_epoch.png", (
            f"Validation {data.beta_name} after each epoch at that epoch's own tuned thresholds (not the run's "
            f"final ones, so not the headline's number): the macro mean in bold, the {named} labels whose "
            f"{data.beta_name} moved most in colour{others}; the dotted line marks the epoch kept as the model.")))
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
                   thumbs: gallery.Thumbnails, say: Callable[[str], None] = lambda line: None,
                   view: RunData | None = None) -> list[str]:
    """Predictions (most wrong first), augmented training images and the error gallery (of the labels of
    `view`, `data` restricted to those shown; default all); or why not. `say` hears one line per
    section, counted in images."""
    view = data if view is None else view
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

    shown = view.test if view.test is not None else view.val  # a caption lists 50, not 50,000 labels
    grid, skipped, all_right = gallery.prediction_grid(view.label_names, shown.ids, shown.probs, shown.targets,
                                                       view.tuner, images, thumbs)
    among = "" if view is data else f" among the {len(view.label_names)} labels shown"
    body = ["<h2>Predictions, most wrong first</h2>", (
        f"<p>Images of {where} with their true and predicted labels{among} at the tuned thresholds, those with "
        "the most wrong labels first (then the highest loss, the mean binary cross-entropy over the labels, as "
        f"fastai's <code>plot_top_losses</code>); {all_right} of {len(split.targets)} images have every label right. "
        '<span class="fn">Struck through</span>: a true label the model missed; <span class="fp">red</span>: '
        "a label predicted but not true; in brackets its probability.</p>"), *missing(skipped), grid]
    say(f"predictions of the {name} split: {len(thumbs.made)} of {len(split.targets)} images shown")
    before = len(thumbs.made)
    body += augmentation_section(data, train, thumbs)
    say(f"augmented training images: {len(thumbs.made) - before} images")
    before = len(thumbs.made)
    blocks, skipped = gallery.error_gallery(view.label_names, shown.ids, shown.probs, shown.targets,
                                            view.tuner, images, thumbs)
    body += ["<h2>Error gallery per label</h2>", (
        f"<p>Per label, the {gallery.PER_KIND} most confident true positives and false positives (highest "
        f"probability) and false negatives (lowest) of {where} at the label's tuned threshold, each with its "
        "true and predicted labels; click a label to open it.</p>"), *missing(skipped)]
    say(f"error gallery per label: {len(thumbs.made) - before} more images")
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
    epochs = int(config.get("epochs", gallery.AUGMENTED_DRAWS))
    draws = gallery.AUGMENTED_DRAWS
    shown = (f"its {epochs} epoch{'s' if epochs > 1 else ''}" if epochs <= draws
             else f"the first {draws} of its {epochs} epochs")
    body.append(f"<p>Training images of {train[1]}, each beside the crops the run's training transform drew from "
                f"it in {shown}: a random {config['image_size']} px square of "
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
