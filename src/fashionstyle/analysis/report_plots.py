"""The report's figures (matplotlib, no pyplot: nothing global, PNG files through Agg).

    plot_fbeta_per_label(data, out / "fbeta_per_label.png")   # every plot_* takes RunData and a path
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure  # figures made without pyplot: no global backend, Agg on savefig
from matplotlib.lines import Line2D

from fashionstyle.analysis.report_data import RunData, Split, point_split_scores, split_scores
from fashionstyle.core import atomic
from fashionstyle.core.history import MONITOR
from fashionstyle.core.thresholds import fbeta_curve
from fashionstyle.data.labels.stats import label_counts, ratio_text

DPI = 110
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 12}
SPLIT_COLOURS = {"val": ("#9ecae1", "#1f77b4"), "test": ("#fdd0a2", "#e6550d")}  # (at 0.5, tuned)
POINT_MARKERS = ("s", "^", "D", "v", "P", "X")  # the PR curves mark this many named operating points
MOVED_LABELS = 5  # the per-epoch figure names this many labels (those that moved most); the rest are grey


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


def most_moved(history: dict[str, np.ndarray], names: list[str], k: int = MOVED_LABELS) -> list[str]:
    """The `k` labels whose validation F-beta moved most over the epochs (max - min), most first."""
    spread = [(float(np.nanmax(v) - np.nanmin(v)) if np.isfinite(v).any() else 0.0, i)
              for i, v in enumerate(history[f"fbeta_{n}"] for n in names)]
    return [names[i] for _, i in sorted(spread, key=lambda e: (-e[0], e[1]))[:k]]


def plot_fbeta_per_epoch(data: RunData, path: Path) -> Path | None:
    """Figure 3 (the report's Figure 8): validation macro F-beta of every epoch in bold, the labels that
    moved most in colour (named), the others as thin grey lines."""
    history = data.history or {}
    epochs = history.get("epoch")
    names = [n for n in data.label_names if f"fbeta_{n}" in history]  # a run of many labels records some
    columns = [f"fbeta_{n}" for n in names]
    if epochs is None or not names and MONITOR not in history:
        return None
    fig, ax = new_figure(9.5, 5.2)
    moved = most_moved(history, names)
    for name in names:
        if name not in moved:
            ax.plot(epochs, history[f"fbeta_{name}"], color="#c8c8c8", linewidth=0.8, zorder=1)
    if len(moved) < len(names):
        ax.plot([], [], color="#c8c8c8", linewidth=0.8, label=f"the other {len(names) - len(moved)} labels")
    for name, colour in zip(moved, matplotlib.colormaps["tab10"].colors):
        ax.plot(epochs, history[f"fbeta_{name}"], color=colour, marker="o", markersize=3.5, linewidth=1.6,
                label=name, zorder=2)
    macro = history[MONITOR] if MONITOR in history else np.nanmean([history[c] for c in columns], axis=0)
    ax.plot(epochs, macro, color="black", linewidth=3, marker="o", label="macro (tuned)", zorder=3)
    if "val_fbeta_05" in history:
        ax.plot(epochs, history["val_fbeta_05"], color="black", linewidth=1.5, linestyle="--",
                marker="s", markersize=4, label="macro @0.5", zorder=3)
    best = data.manifest.get("best_epoch")
    if best is not None:
        ax.axvline(best, color="grey", linestyle=":", linewidth=1.2, label=f"best epoch ({best})")
    ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {data.beta_name} (each epoch's own thresholds)")
    moved_title = f", the {len(moved)} labels that moved most" if len(moved) < len(names) else ""
    ax.set_title(f"Validation {data.beta_name} per epoch: macro mean{moved_title}")
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
    """Figure 2b: precision against recall for every label; the tuned threshold's point marked, and each named
    operating point's (a label a point never predicts has no marker)."""
    names, splits = data.label_names, data.splits()
    fig, axes = panel_grid(len(names), 2.7)
    markers = dict(zip(data.points, ("o", *POINT_MARKERS)))  # the run's own point first
    at = {(p, s): point_split_scores(data, p, s) for p in markers for s in splits}
    for j, ax in enumerate(axes.flat[:len(names)]):
        iso_fbeta(ax, data.tuner.beta)
        for name, split in splits.items():
            colour = SPLIT_COLOURS[name][1]
            recall, precision = pr_curve(split.probs[:, j], split.targets[:, j])
            ax.plot(np.r_[0, recall], np.r_[precision[:1], precision], color=colour, linewidth=1.3,
                    drawstyle="steps-pre")
            for point, marker in markers.items():
                if np.isfinite(data.points[point].thresholds[j]):
                    ax.plot(at[point, name]["recall"][j], at[point, name]["precision"][j], marker, color=colour,
                            markersize=6, markeredgecolor="black", markeredgewidth=0.8)
        ax.set_title(f"{names[j]} (t={data.tuner.thresholds_[j]:.2f})", fontsize=10, fontweight="bold")
        ax.set(xlim=(0, 1.02), ylim=(0, 1.04))
        ax.grid(alpha=0.3)
    label_panels(axes, len(names), "recall", "precision")
    handles = [Line2D([], [], color=SPLIT_COLOURS[s][1], label=s) for s in splits]
    handles += [Line2D([], [], color="grey", marker=marker, markeredgecolor="black", linestyle="none",
                       label="at the tuned threshold t" if k == 0 else f"at operating point {point}")
                for k, (point, marker) in enumerate(markers.items())]
    handles.append(Line2D([], [], color="#bbbbbb", linestyle=":", label=f"equal {data.beta_name}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    fig.suptitle("Precision against recall per label")
    return save(fig, path)


def plot_labels_per_photo(data: RunData, path: Path) -> Path | None:
    """Figure 2c: labels per photo at each operating point on the test split (else validation), beside the
    true count; None for a run without named points."""
    if len(data.points) < 2:
        return None
    split = "test" if data.test is not None else "val"
    counts = {name: by_split[split].sum(axis=1).astype(np.int64) for name, by_split in data.decided.items()}
    counts["true labels"] = np.asarray(data.splits()[split].targets.sum(axis=1), np.int64)
    top = int(max(c.max(initial=0) for c in counts.values()))
    fig, ax = new_figure(max(6.0, 0.55 * (top + 1) * len(counts) / 2), 3.6)
    width, colours = 0.8 / len(counts), [*label_colours(len(counts) - 1), "#bbbbbb"]
    for i, (name, c) in enumerate(counts.items()):
        ax.bar(np.arange(top + 1) + (i - (len(counts) - 1) / 2) * width, np.bincount(c, minlength=top + 1), width,
               color=colours[i], label=f"{name} (mean {c.mean():.2f})")
    ax.set(xticks=np.arange(top + 1), xlabel="labels per photo", ylabel="photos")
    ax.grid(axis="y", alpha=0.3)
    top_legend(ax, min(len(counts), 4))
    fig.suptitle(f"Labels per photo at each operating point ({'test' if split == 'test' else 'validation'} split)")
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
