"""An HTML report of a run directory: label statistics, F-beta per label, epoch and threshold.

    write_report("runs/densenet201", "reports/densenet201")            # -> .../index.html
    write_report("runs/a", "reports/a_vs_b", compare=["runs/b"])       # adds comparison figures

The page is self-contained (one index.html, simple CSS, no JavaScript) with PNG
figures beside it:

    label_stats.png         positives per label (log scale) with the pos:neg ratio
    fbeta_per_label.png     per-label F-beta at 0.5 and at the tuned thresholds (val, test)
    fbeta_per_epoch.png     per-label validation F-beta of every epoch, macro in bold
    fbeta_vs_threshold.png  F-beta against the threshold for every label, chosen one marked
    loss_lr.png             training and validation loss, learning rate (log, right axis)
    compare_fbeta.png       compare mode: tuned per-label F-beta of every run
    compare_epochs.png      compare mode: validation macro F-beta per epoch of every run

A run without history.csv (a fused run) skips the two per-epoch figures; the
test split appears wherever the run holds eval_test.npz (`fashionstyle evaluate`).
With the label file (to find the images), the page adds an error gallery (gallery.py):
per label, the most confident true positives, false positives and false negatives
of the test split (else validation) as thumbnails in thumbs/; and, with an audit
file (`fashionstyle audit`, or RUN/issues.csv), the most suspect labels.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # figures made without pyplot: no global backend, Agg on savefig
from matplotlib.lines import Line2D

from . import _atomic, gallery
from .audit import read_issues
from .config import read_yaml
from .errors import FashionStyleError
from .evaluate import ratio_text
from .history import MONITOR, read_history
from .labels import LabelTable
from .losses import label_counts, loss_weights
from .metrics import per_label_scores
from .run import RunDir
from .thresholds import ThresholdTuner, fbeta_curve

__all__ = ["write_report"]

DPI = 110
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 12}
SPLIT_COLOURS = {"val": ("#9ecae1", "#1f77b4"), "test": ("#fdd0a2", "#e6550d")}  # (at 0.5, tuned)
LINE_STYLES = ("-", "--", "-.", ":")
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .3em; }
h2 { margin-top: 2em; color: #1f4e79; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: .95em; }
.note { background: #fff8e1; border-left: 4px solid #f0ad4e; padding: .5em 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
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
                   run.manifest())


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


def stats_targets(data: RunData, stats_table: LabelTable | None,
                  train_targets: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Targets for the label statistics and a phrase naming where they come from."""
    if train_targets is not None:
        targets, source = np.asarray(train_targets), "the training labels"
    elif stats_table is not None:
        if list(stats_table.label_names) != data.label_names:
            raise FashionStyleError(f"{stats_table.source}: labels {stats_table.label_names} differ "
                                    f"from the run's {data.label_names}")
        targets, source = stats_table.require_targets(), f"<code>{html.escape(stats_table.source)}</code>"
    else:
        return data.val.targets, "the validation split (no training labels were given)"
    if targets.ndim != 2 or targets.shape[1] != len(data.label_names):
        raise FashionStyleError(f"training targets must have shape (N, {len(data.label_names)}), "
                                f"got {targets.shape}")
    return targets, source


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
    _atomic.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))
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
    names = data.label_names
    ncols = 4 if len(names) <= 16 else 5
    nrows = math.ceil(len(names) / ncols)
    fig, axes = new_figure(3.1 * ncols, 2.5 * nrows + 0.6, nrows=nrows, ncols=ncols,
                           sharex=True, sharey=True, squeeze=False)
    splits = data.splits()
    for j, ax in enumerate(axes.flat):
        if j < len(names):
            threshold_panel(ax, data, splits, j)
        else:
            ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(data.beta_name)
    for j, ax in enumerate(axes.flat):  # x label under the lowest panel of each column
        if j < len(names) and j + ncols >= len(names):
            ax.set_xlabel("threshold")
            ax.xaxis.set_tick_params(labelbottom=True)
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
    return (f'<figure><img src="{name}" alt="{html.escape(caption, quote=True)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def table_html(header: list[str], rows: list[list[str]], macro: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if macro:
        body += '<tr class="macro">' + "".join(f"<td>{c}</td>" for c in macro) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def stats_table_html(names: list[str], targets: np.ndarray, weight_power: float) -> str:
    positives, negatives = label_counts(targets)
    pos_w, neg_w = loss_weights(targets, weight_power)
    rows = [[html.escape(n), str(p), str(q), ratio_text(int(p), int(q)), f"{a:.4f}", f"{b:.4f}"]
            for n, p, q, a, b in zip(names, positives, negatives, pos_w, neg_w)]
    return table_html(["label", "positives", "negatives", "pos:neg", "A", "B"], rows)


def scores_table_html(data: RunData) -> str:
    header, columns = ["label", "threshold"], [data.tuner.thresholds_]
    for split_name, split in data.splits().items():
        header += [f"{split_name} {data.beta_name} @0.5", f"{split_name} {data.beta_name} tuned"]
        columns += list(split_scores(data, split))
    rows = [[html.escape(n)] + [f"{c[j]:.3f}" for c in columns] for j, n in enumerate(data.label_names)]
    macro = ["macro", ""] + [f"{np.nanmean(c):.3f}" for c in columns[1:]]
    return table_html(header, rows, macro)


def note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}{gallery.CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body>\n</html>\n")


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
    for the label statistics; without them the validation targets are used.
    `labels`: a label file's table, to find the images of the error gallery.
    `audit`: an issues.csv from `fashionstyle audit` (default: RUN/issues.csv if there).
    """
    paths = [Path(run_dir), *map(Path, compare)]
    names = run_names(paths)
    runs = [load_run(p, n) for p, n in zip(paths, names)]
    data = runs[0]
    for other in runs[1:]:
        check_same_labels(data, other)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets, source = stats_targets(data, stats_table, train_targets)
    with matplotlib.rc_context(STYLE):
        body = [summary_html(data)]
        body += label_section(data, targets, source, out)
        body += per_label_section(data, out)
        body += epoch_section(data, out)
        body += threshold_section(data, out)
        body += loss_section(data, out)
        if len(runs) > 1:
            body += compare_section(runs, out)
    thumbs, number = gallery.Thumbnails(out), 6 + (len(runs) > 1)
    body += gallery_section(data, labels, thumbs, number)
    in_run = data.run / "issues.csv"
    audit = audit if audit is not None else (in_run if in_run.is_file() else None)
    if audit is not None:
        body += audit_section(audit, thumbs, number + 1)
    html_path = _atomic.write_text(out / "index.html", page(f"Fashion style report: {data.name}", body))
    html_path.chmod(0o644)
    return html_path


def label_section(data: RunData, targets: np.ndarray, source: str, out: Path) -> list[str]:
    plot_label_stats(data, targets, out / "label_stats.png")
    caption = (f"Positive images per label in {source}, on a log scale, with the positives : negatives "
               "ratio; the rarer a label, the larger its positive weight A in the weighted loss.")
    return ["<h2>1. Label statistics</h2>", figure_html("label_stats.png", caption),
            f"<p>Loss weights A (positives) and B (negatives) with weight_power = {data.weight_power:g}.</p>",
            stats_table_html(data.label_names, targets, data.weight_power)]


def per_label_section(data: RunData, out: Path) -> list[str]:
    plot_fbeta_per_label(data, out / "fbeta_per_label.png")
    splits = "validation and test splits" if data.test is not None else "validation split"
    caption = (f"{data.beta_name} of every label on the {splits}, predicting at probability 0.5 (light) "
               "and at the per-label thresholds tuned on validation (dark); the last group is the macro "
               "mean.")
    body = ["<h2>2. Per-label scores</h2>", figure_html("fbeta_per_label.png", caption),
            scores_table_html(data)]
    if data.test is None:
        body.append(note("No eval_test.npz in the run: run <code>fashionstyle evaluate</code> on the test "
                         "split to add test scores."))
    return body


def epoch_section(data: RunData, out: Path) -> list[str]:
    body = ["<h2>3. Validation score per epoch</h2>"]
    if plot_fbeta_per_epoch(data, out / "fbeta_per_epoch.png"):
        body.append(figure_html("fbeta_per_epoch.png", (
            f"Validation {data.beta_name} of every label after each epoch at that epoch's tuned thresholds, "
            "with the macro mean in bold; the dotted line marks the epoch kept as the model.")))
    else:
        body.append(note("No per-epoch history (history.csv with per-label columns) in this run, "
                         "e.g. a fused run: figure skipped."))
    return body


def loss_section(data: RunData, out: Path) -> list[str]:
    body = ["<h2>5. Loss and learning rate</h2>"]
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
    return ["<h2>4. Threshold curves</h2>", figure_html("fbeta_vs_threshold.png", caption)]


def compare_section(runs: list[RunData], out: Path) -> list[str]:
    plot_compare_fbeta(runs, out / "compare_fbeta.png")
    test = " and test" if all(r.test is not None for r in runs) else ""
    body = ["<h2>6. Run comparison</h2>", figure_html("compare_fbeta.png", (
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


def gallery_section(data: RunData, labels: LabelTable | None, thumbs: gallery.Thumbnails, number: int) -> list[str]:
    body = [f"<h2>{number}. Error gallery</h2>"]
    if labels is None:
        return body + [note("Pass the label file (<code>--labels FILE</code>) to see each label's most confident "
                            "true positives, false positives and false negatives as thumbnails.")]
    name, split = ("test", data.test) if data.test is not None else ("validation", data.val)
    blocks, skipped = gallery.error_gallery(data.label_names, split.ids, split.probs, split.targets,
                                            data.tuner, dict(zip(labels.ids, labels.images)), thumbs)
    where = ("the test split (eval_test.npz)" if data.test is not None
             else "the validation split (the run has no eval_test.npz)")
    body.append(f"<p>Per label, the {gallery.PER_KIND} most confident true positives and false positives "
                f"(highest probability) and false negatives (lowest) of {where} at the label's tuned threshold; "
                "click a label to open it.</p>")
    if skipped:
        body.append(note(f"{skipped} images of the {name} split were skipped: not in "
                         f"<code>{html.escape(labels.source)}</code>, missing or unreadable."))
    return body + blocks


def audit_section(path: str | Path, thumbs: gallery.Thumbnails, number: int) -> list[str]:
    issues = read_issues(path)
    figures, skipped = gallery.audit_gallery(issues, thumbs)
    body = [f"<h2>{number}. Suspect labels (audit)</h2>",
            f"<p>The most suspect (image, label) pairs of <code>{html.escape(str(path))}</code> "
            f"({len(issues)} listed, most suspect first): the given label, the held-out probability and "
            "cleanlab's label-quality score (lower is more suspect). Red: given 0 but likely present; "
            "orange: given 1 but likely absent.</p>", figures]
    if skipped:
        body.append(note(f"{skipped} listed images were skipped: missing or unreadable."))
    return body
