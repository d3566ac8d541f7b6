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
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure  # figures made without pyplot: no global backend, Agg on savefig
from matplotlib.lines import Line2D

from fashionstyle.analysis import gallery
from fashionstyle.analysis.audit import read_issues
from fashionstyle.core import atomic
from fashionstyle.core.config import read_yaml
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import MONITOR, read_history
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner, fbeta_curve
from fashionstyle.data.images import Preprocessing
from fashionstyle.data.label_stats import label_counts, loss_weights, ratio_text
from fashionstyle.data.labels import LabelTable

__all__ = ["write_report"]

DPI = 110
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 12}
SPLIT_COLOURS = {"val": ("#9ecae1", "#1f77b4"), "test": ("#fdd0a2", "#e6550d")}  # (at 0.5, tuned)
LINE_STYLES = ("-", "--", "-.", ":")
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


# -- data --------------------------------------------------------------------------
@dataclass
class Split:
    """Probabilities and 0/1 targets (N, L) of one labelled split, and its image ids."""

    probs: np.ndarray
    targets: np.ndarray
    ids: list[str] = field(default_factory=list)


@dataclass
class RunData:
    """Everything the report reads from one run directory."""

    name: str
    run: RunDir
    label_names: list[str]
    tuner: ThresholdTuner
    val: Split
    test: Split | None
    history: dict[str, np.ndarray] | None  # column -> values per epoch (nan where empty)
    weight_power: float
    manifest: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml; empty for a fused run

    @property
    def beta_name(self) -> str:
        return f"F{self.tuner.beta:g}"

    def splits(self) -> dict[str, Split]:
        return {"val": self.val} | ({"test": self.test} if self.test is not None else {})


def load_run(path: str | Path, name: str | None = None) -> RunData:
    """Read a complete run directory (RunDir.open refuses a missing or incomplete one)."""
    run = RunDir.open(path)
    ids, probs, targets = run.val_probs()
    test_path = run / "eval_test.npz"
    test = None
    if test_path.is_file():
        with np.load(test_path) as data:
            test = Split(data["probs"], data["targets"], [str(i) for i in data["ids"]])
    config = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    return RunData(name or run.path.resolve().name, run, run.label_names(), run.thresholds(),
                   Split(probs, targets, ids), test, history_columns(run), float(config.get("weight_power", 1.0)),
                   run.manifest(), config)


def history_columns(run: RunDir) -> dict[str, np.ndarray] | None:
    """history.csv as float columns, or None for a run without one."""
    rows = read_history(run)
    if not rows:
        return None
    return {key: np.array([_float(r.get(key)) for r in rows]) for key in rows[0]}


def _float(text: str | None) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def run_names(paths: Sequence[Path]) -> list[str]:
    """Folder names; duplicates get their parent folder in front (`a/run`, `b/run`)."""
    names = [p.resolve().name for p in paths]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def check_same_labels(main: RunData, other: RunData) -> None:
    if main.label_names != other.label_names:
        raise FashionStyleError(
            f"cannot compare runs with different labels: {main.run.path} has {main.label_names}, "
            f"{other.run.path} has {other.label_names}")


def image_mismatches(runs: Sequence[RunData]) -> list[str]:
    """One sentence per run scored on other images than the first (validation, or test where both have it)."""
    main, lines = runs[0], []
    for other in runs[1:]:
        pairs = [("validation", main.val, other.val)]
        if main.test is not None and other.test is not None:
            pairs.append(("test", main.test, other.test))
        splits = [name for name, a, b in pairs if a.ids != b.ids or not np.array_equal(a.targets, b.targets)]
        if splits:
            lines.append(f"{other.name} was scored on other {' and '.join(splits)} images than {main.name}: "
                         "its scores are not comparable side by side")
    return lines


def training_split(data: RunData, labels: LabelTable | None) -> tuple[LabelTable, str] | None:
    """The label file's rows the run trained on (split as training splits them) and a phrase naming them."""
    if labels is None or labels.targets is None:
        return None
    source = f"<code>{html.escape(labels.source)}</code>"
    if "val_fraction" not in data.config:
        return labels, (f"all {len(labels)} images of {source} (the run has no config.yaml to split them "
                        "as its training did)")
    from fashionstyle.data.pipeline import train_val_split  # torch

    train, _ = train_val_split(labels, float(data.config["val_fraction"]), int(data.config.get("seed", 0)))
    return train, f"the {len(train)} training images of {source} (the run's own train/validation split)"


def stats_targets(data: RunData, stats_table: LabelTable | None, train_targets: np.ndarray | None,
                  train: tuple[LabelTable, str] | None = None) -> tuple[np.ndarray, str]:
    """Targets for the label statistics and a phrase naming where they come from."""
    if train_targets is not None:
        targets, source = np.asarray(train_targets), "the training labels"
    elif stats_table is not None:
        if list(stats_table.label_names) != data.label_names:
            raise FashionStyleError(f"{stats_table.source}: labels {stats_table.label_names} differ "
                                    f"from the run's {data.label_names}")
        targets, source = stats_table.require_targets(), f"<code>{html.escape(stats_table.source)}</code>"
    elif train is not None:
        targets, source = train[0].require_targets(), train[1]
    else:
        return data.val.targets, "the validation split (no training labels were given)"
    if targets.ndim != 2 or targets.shape[1] != len(data.label_names):
        raise FashionStyleError(f"training targets must have shape (N, {len(data.label_names)}), "
                                f"got {targets.shape}")
    return targets, source


def tuned_scores(data: RunData, split: Split) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F-beta and support at the tuned thresholds."""
    return per_label_scores(split.targets, data.tuner.predict(split.probs), data.tuner.beta)


def split_scores(data: RunData, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Per-label F-beta at 0.5 and at the tuned thresholds."""
    beta = data.tuner.beta
    at_half = per_label_scores(split.targets, (split.probs >= 0.5).astype(np.uint8), beta)["fbeta"]
    tuned = per_label_scores(split.targets, data.tuner.predict(split.probs), beta)["fbeta"]
    return at_half, tuned


# -- figure helpers ----------------------------------------------------------------
def label_colours(n: int) -> list:
    """n distinct colours: tab20's dark shades first, then its light ones; a hue wheel past 20."""
    if n > 20:
        return [matplotlib.colormaps["hsv"](i / n) for i in range(n)]
    tab20 = matplotlib.colormaps["tab20"].colors
    return [tab20[i] for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]


def new_figure(width: float, height: float, **kwargs: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**kwargs)


def save(fig: Figure, path: Path) -> Path:
    atomic.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))
    path.chmod(0o644)  # a page to share, not a private temporary file
    return path


def grouped_bars(ax: Axes, series: list[tuple[str, np.ndarray, str]], names: list[str]) -> None:
    """Bars per label for every (legend, values, colour) series, plus a macro group at the end."""
    width = 0.8 / len(series)
    x = np.append(np.arange(len(names)), len(names) + 0.5)
    for i, (legend, values, colour) in enumerate(series):
        macro = float(np.nanmean(values))
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.append(values, macro), width,
               color=colour, label=f"{legend} (macro {macro:.3f})", edgecolor="white", linewidth=0.4)
    ax.axvline(len(names) - 0.25, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(x, [*names, "macro"], rotation=40 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center")
    ax.get_xticklabels()[-1].set_fontweight("bold")
    ax.set_xlim(-0.6, x[-1] + 0.6)
    ax.set_ylim(0, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def panel_grid(n: int, panel_height: float) -> tuple[Figure, np.ndarray]:
    """A figure of n panels (one per label) with shared axes, 4 or 5 to a row; (figure, axes (rows, cols))."""
    ncols = 4 if n <= 16 else 5
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(3.1 * ncols, panel_height * nrows + 0.6, nrows=nrows, ncols=ncols,
                           sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def label_panels(axes: np.ndarray, n: int, xlabel: str, ylabel: str) -> None:
    """y labels on the first column, x labels and ticks under the lowest panel of each column."""
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for j, ax in enumerate(axes.flat[:n]):
        if j + axes.shape[1] >= n:
            ax.set_xlabel(xlabel)
            ax.xaxis.set_tick_params(labelbottom=True)


def top_legend(ax: Axes, ncol: int) -> None:
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol, frameon=False)


# -- figures -----------------------------------------------------------------------
def plot_label_stats(data: RunData, targets: np.ndarray, path: Path) -> Path:
    """Figure 1: positives per label on a log axis, annotated with pos:neg."""
    names = data.label_names
    positives, negatives = label_counts(targets)
    n = len(targets)
    fig, ax = new_figure(8, 1.2 + 0.38 * len(names))
    y = np.arange(len(names))
    ax.barh(y, np.where(positives > 0, positives, np.nan), color=label_colours(len(names)), height=0.7)
    for yi, p, q in zip(y, positives, negatives):
        ax.text(max(p, 1) * 1.12, yi, f"{p}  ({ratio_text(int(p), int(q))})", va="center", fontsize=9,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})
    ax.axvline(n / 2, color="grey", linestyle="--", linewidth=1, label=f"balanced (1:1, {n / 2:g})")
    ax.axvline(n, color="black", linestyle=":", linewidth=1, label=f"all images ({n})")
    ax.set_xscale("log")
    ax.set_xlim(0.8, n * 3)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("positive images (log scale); in brackets positives : negatives")
    fig.suptitle(f"Label frequency ({n} images)")
    top_legend(ax, 2)
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_axisbelow(True)
    return save(fig, path)


def plot_fbeta_per_label(data: RunData, path: Path) -> Path:
    """Figure 2: per-label F-beta at 0.5 and tuned, validation and test."""
    series = []
    for split_name, split in data.splits().items():
        at_half, tuned = split_scores(data, split)
        light, dark = SPLIT_COLOURS[split_name]
        series += [(f"{split_name} @0.5", at_half, light), (f"{split_name} tuned", tuned, dark)]
    fig, ax = new_figure(max(8.0, 0.19 * len(data.label_names) * len(series) + 3), 4.8)
    grouped_bars(ax, series, data.label_names)
    ax.set_ylabel(data.beta_name)
    ax.set_xlabel("label")
    fig.suptitle(f"Per-label {data.beta_name}: threshold 0.5 against tuned thresholds")
    top_legend(ax, len(series) if len(data.label_names) >= 8 else 2)
    return save(fig, path)


def plot_fbeta_per_epoch(data: RunData, path: Path) -> Path | None:
    """Figure 3 (the report's Figure 8): per-label validation F-beta of every epoch, macro in bold."""
    history = data.history or {}
    epochs = history.get("epoch")
    columns = [f"fbeta_{n}" for n in data.label_names]
    if epochs is None or not all(c in history for c in columns):
        return None
    fig, ax = new_figure(9.5, 5.2)
    for i, (name, colour) in enumerate(zip(data.label_names, label_colours(len(columns)))):
        ax.plot(epochs, history[f"fbeta_{name}"], color=colour, linestyle=LINE_STYLES[i // 10 % 4],
                marker="o", markersize=3, linewidth=1.3, label=name)
    macro = history.get(MONITOR, np.nanmean([history[c] for c in columns], axis=0))
    ax.plot(epochs, macro, color="black", linewidth=3, marker="o", label="macro (tuned)")
    if "val_fbeta_05" in history:
        ax.plot(epochs, history["val_fbeta_05"], color="black", linewidth=1.5, linestyle="--",
                marker="s", markersize=4, label="macro @0.5")
    best = data.manifest.get("best_epoch")
    if best is not None:
        ax.axvline(best, color="grey", linestyle=":", linewidth=1.2, label=f"best epoch ({best})")
    ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {data.beta_name} (tuned thresholds)")
    ax.set_title(f"Validation {data.beta_name} per label and epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return save(fig, path)


def plot_fbeta_vs_threshold(data: RunData, path: Path) -> Path:
    """Figure 4 (the report's Figures 5-7): F-beta against threshold for every label."""
    names, splits = data.label_names, data.splits()
    fig, axes = panel_grid(len(names), 2.5)
    for j, ax in enumerate(axes.flat[:len(names)]):
        threshold_panel(ax, data, splits, j)
    label_panels(axes, len(names), "threshold", data.beta_name)
    handles = [Line2D([], [], color=SPLIT_COLOURS[s][1], label=s) for s in splits]
    handles.append(Line2D([], [], color="black", linestyle="--", label="tuned threshold t"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"{data.beta_name} against the decision threshold")
    return save(fig, path)


def threshold_panel(ax: Axes, data: RunData, splits: dict[str, Split], j: int) -> None:
    t = float(data.tuner.thresholds_[j])
    notes, curves = [f"t={t:.2f}"], []
    for split_name, split in splits.items():
        grid, curve = fbeta_curve(split.probs[:, j], split.targets[:, j], data.tuner.beta)
        colour = SPLIT_COLOURS[split_name][1]
        ax.plot(grid, curve, color=colour, linewidth=1.4)
        at_t = _fbeta_at(split, j, t, data.tuner.beta)
        ax.plot([t], [at_t], "o", color=colour, markersize=4)
        notes.append(f"{split_name} {at_t:.2f}")
        curves.append(curve)
    ax.axvline(t, color="black", linestyle="--", linewidth=1)
    x, y = free_corner(grid, np.array(curves), t)
    ax.text(x, y, "\n".join(notes), transform=ax.transAxes, fontsize=8, ha="right" if x > 0.5 else "left",
            va="top" if y > 0.5 else "bottom",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "alpha": 0.85, "edgecolor": "#bbb"})
    ax.set_title(data.label_names[j], fontsize=10, fontweight="bold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)


def _fbeta_at(split: Split, j: int, t: float, beta: float) -> float:
    """F-beta of label j predicted at `scores >= t` (the tuner's own rule)."""
    return float(fbeta_curve(split.probs[:, j], split.targets[:, j], beta, np.array([t]))[1][0])


def free_corner(grid: np.ndarray, curves: np.ndarray, t: float) -> tuple[float, float]:
    """The axes corner for a note box that covers the fewest curve points and not the threshold."""
    right, left = grid >= 0.7, grid <= 0.3  # the box spans about 30% of the width, 30% of the height
    corners = {(0.98, 0.97): (right, curves > 0.7), (0.02, 0.97): (left, curves > 0.7),
               (0.98, 0.03): (right, curves < 0.32), (0.02, 0.03): (left, curves < 0.32)}

    def cost(corner: tuple[float, float]) -> float:
        columns, covered = corners[corner]
        blocks_line = t >= 0.7 if corner[0] > 0.5 else t <= 0.3
        return covered[:, columns].sum() + 1000 * blocks_line

    return min(corners, key=cost)  # the first, top right, on ties


def plot_cooccurrence(names: list[str], targets: np.ndarray, path: Path) -> Path:
    """Figure 1b: for each pair of labels, the images with both; coloured by P(column | row)."""
    both = targets.astype(np.int64).T @ targets.astype(np.int64)  # (L, L); the diagonal: positives
    share = both / np.maximum(np.diag(both)[:, None], 1)
    shown = np.where(np.eye(len(names), dtype=bool), np.nan, share)
    side = 2.5 + 0.42 * len(names)
    fig, ax = new_figure(side + 1.2, side)
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#e6e6e6")
    image = ax.imshow(shown, cmap=cmap, norm=Normalize(0, 1))
    font = 8 if len(names) <= 14 else 7
    for (i, j), count in np.ndenumerate(both):
        if count or i == j:
            dark = i != j and share[i, j] > 0.55
            ax.text(j, i, str(count), ha="center", va="center", fontsize=font, color="white" if dark else "black",
                    fontweight="bold" if i == j else "normal")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("... also has this label")
    ax.set_ylabel("images with this label ...")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the row label's images with the column label")
    several = int((targets.sum(axis=1) > 1).sum())
    fig.suptitle(f"Labels that occur together ({several} of {len(targets)} images have two or more)")
    return save(fig, path)


def pr_curve(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) predicting `scores >= t` for every distinct t, from the highest down."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(targets[order] == 1)
    last_of_ties = np.append(np.diff(scores[order]) != 0, True)
    predicted = np.flatnonzero(last_of_ties) + 1
    return hits[last_of_ties] / max(int(targets.sum()), 1), hits[last_of_ties] / predicted


def iso_fbeta(ax: Axes, beta: float) -> None:
    """Light curves of equal F-beta (0.2 ... 0.8) in a precision-recall panel."""
    recall, b2 = np.linspace(0.01, 1, 200), beta ** 2
    for f in (0.2, 0.4, 0.6, 0.8):
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = f * b2 * recall / ((1 + b2) * recall - f)
        ok = (precision > 0) & (precision <= 1.02) & ((1 + b2) * recall > f)
        ax.plot(recall[ok], precision[ok], color="#bbbbbb", linewidth=0.7, linestyle=":")
        ax.text(1.0, precision[ok][-1], f"{f:.1f}", fontsize=6.5, color="#999999", ha="right", va="bottom")


def plot_pr_curves(data: RunData, path: Path) -> Path:
    """Figure 2b: precision against recall for every label; the tuned threshold's point marked."""
    names, splits = data.label_names, data.splits()
    fig, axes = panel_grid(len(names), 2.7)
    scores = {name: tuned_scores(data, split) for name, split in splits.items()}
    for j, ax in enumerate(axes.flat[:len(names)]):
        iso_fbeta(ax, data.tuner.beta)
        for name, split in splits.items():
            colour = SPLIT_COLOURS[name][1]
            recall, precision = pr_curve(split.probs[:, j], split.targets[:, j])
            ax.plot(np.r_[0, recall], np.r_[precision[:1], precision], color=colour, linewidth=1.3,
                    drawstyle="steps-pre")
            ax.plot(scores[name]["recall"][j], scores[name]["precision"][j], "o", color=colour, markersize=6,
                    markeredgecolor="black", markeredgewidth=0.8)
        ax.set_title(f"{names[j]} (t={data.tuner.thresholds_[j]:.2f})", fontsize=10, fontweight="bold")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.04)
        ax.grid(alpha=0.3)
    label_panels(axes, len(names), "recall", "precision")
    handles = [Line2D([], [], color=SPLIT_COLOURS[s][1], label=s) for s in splits]
    handles += [Line2D([], [], color="grey", marker="o", markeredgecolor="black", linestyle="none",
                       label="at the tuned threshold t"),
                Line2D([], [], color="#bbbbbb", linestyle=":", label=f"equal {data.beta_name}")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle("Precision against recall per label")
    return save(fig, path)


def plot_loss_lr(data: RunData, path: Path) -> Path | None:
    """Figure 5: training and validation loss, learning rate on a log right axis."""
    history = data.history or {}
    if "epoch" not in history or not {"train_loss", "val_loss"} & set(history):
        return None
    epochs = history["epoch"]
    fig, ax = new_figure(8.5, 4.5)
    lines = []
    for key, colour, legend in (("train_loss", "#1f77b4", "training loss"),
                                ("val_loss", "#d62728", "validation loss")):
        if key in history:
            lines += ax.plot(epochs, history[key], color=colour, marker="o", linewidth=1.8, label=legend)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if "lr" in history and np.all(history["lr"] > 0):
        lr_ax = ax.twinx()
        lines += lr_ax.plot(epochs, history["lr"], color="grey", linestyle="--", marker="s", markersize=4,
                            label="learning rate")
        lr_ax.set_yscale("log")
        lr_ax.set_ylabel("learning rate (log scale)")
    ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
    fig.suptitle("Loss and learning rate per epoch")
    ax.legend(handles=lines, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(lines), frameon=False)
    return save(fig, path)


def plot_compare_fbeta(runs: list[RunData], path: Path) -> Path:
    """Figure 6a: tuned per-label F-beta of every run, validation (and test if all have it)."""
    splits = ["val"] + (["test"] if all(r.test is not None for r in runs) else [])
    names = runs[0].label_names
    colours = matplotlib.colormaps["tab10"].colors
    fig, axes = new_figure(max(8.0, 0.3 * len(names) * len(runs) + 3), 4.2 * len(splits),
                           nrows=len(splits), squeeze=False)
    for ax, split_name in zip(axes[:, 0], splits):
        series = [(r.name, split_scores(r, r.splits()[split_name])[1], colours[i % 10])
                  for i, r in enumerate(runs)]
        grouped_bars(ax, series, names)
        ax.set_ylabel(f"{split_name} {runs[0].beta_name} (tuned)")
        ax.set_title(f"{'Validation' if split_name == 'val' else 'Test'} split", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[-1, 0].set_xlabel("label")
    fig.suptitle(f"Per-label {runs[0].beta_name} at tuned thresholds, run by run")
    return save(fig, path)


def plot_compare_epochs(runs: list[RunData], path: Path) -> Path | None:
    """Figure 6b: validation macro F-beta (tuned) per epoch of every run with a history."""
    with_history = [r for r in runs if r.history and "epoch" in r.history and MONITOR in r.history]
    if not with_history:
        return None
    colours = matplotlib.colormaps["tab10"].colors
    fig, ax = new_figure(8.5, 4.5)
    for i, r in enumerate(runs):
        if r in with_history:
            ax.plot(r.history["epoch"], r.history[MONITOR], marker="o", linewidth=2, color=colours[i % 10],
                    label=r.name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation macro {runs[0].beta_name} (tuned)")
    ax.set_title(f"Validation macro {runs[0].beta_name} per epoch, run by run")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return save(fig, path)


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
