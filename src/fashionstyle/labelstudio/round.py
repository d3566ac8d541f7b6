"""One labelling round: the previous run's labels and a Label Studio export merged, a run trained from the
previous run's weights, and the two runs compared on the same validation photos.

    plan = plan_round("runs/round1", "runs/round2", export="project-1.json", image_dir="/srv", say=print)
    scores = train_round(plan)     # trains runs/round2 (init_from runs/round1, its settings otherwise)
    print(scores.table())          # per-label F2 before and after, macro F2, the gain per 100 new labels

The round's inputs live beside its run, in OUT.round/ (as a student's teacher files in OUT.teacher/): the
export pulled from Label Studio (export.json) and the merged labels the run trains on (labels.csv: one row per
photo, absolute paths, a split column). The merge is data/labels/merge.py's: the newest label wins, the
conflicts are counted in one line, splits are kept and new photos go to train. A previous run that made its
own validation split keeps it: its validation photos are `val`, its other photos `train`, so both runs are
scored on the same photos. Photos of the export that no longer exist are counted and left out.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.config import TrainConfig, read_saved
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import format_table
from fashionstyle.core.output_folder import claim_folder
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import split_scores
from fashionstyle.data.labels.merge import merge_tables
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.data.labels.read import read_labels
from fashionstyle.labelstudio.client import Project

Say = Callable[[str], None]


@dataclass
class RoundPlan:
    """What a round trains: the previous run, the round's config (the previous settings, the merged labels,
    init_from the previous run) and run folder, the merged table, and what the export added."""

    previous: RunDir
    config: TrainConfig
    out: Path
    table: LabelTable
    previous_photos: dict[str, str]  # the previous table's id -> resolved photo path
    new_photos: int  # labelled photos the previous files did not have


def inputs_folder(out: str | Path) -> Path:
    """OUT.round: the round's export and merged labels, beside its run."""
    return Path(f"{os.fspath(out).rstrip('/')}.round")


def plan_round(previous: str | Path, out: str | Path, export: str | Path | None = None,
               image_dir: str | Path | None = None, label_studio: tuple[str, int] | None = None,
               epochs: int | None = None, say: Say = print) -> RoundPlan:
    """Check and merge a round's labels before any training: the export given, or pulled from the Label
    Studio project `label_studio` (url, id; token from $LABEL_STUDIO_API_KEY) into OUT.round/export.json."""
    run = RunDir.open(previous)
    RunDir(out).refuse_taken(resumable=False)
    config, before = previous_labels(run)
    folder = claim_folder(inputs_folder(out), "round")
    if label_studio is not None:
        project = Project(*label_studio)
        project.check_labels(run.label_names())
        export = project.download_export(folder / "export.json")
        say(f"exported project {label_studio[1]} of {label_studio[0]} to {export}")
    if export is None:
        raise FashionStyleError("a round needs the project's labels: --export FILE or --label-studio URL --project ID")
    photos = {i: os.path.realpath(p) for i, p in zip(before.ids, before.images)}
    added = existing_photos(read_labels(export, image_dir), say)
    new = len({os.path.realpath(p) for p in added.images} - set(photos.values()))
    table = merge_tables([before.source, str(export)], [before, added], say=say)
    labels = write_label_csv(table, folder / "labels.csv")
    changes = {"labels": str(labels), "images": "", "init_from": str(run.path.resolve())}
    config = dataclasses.replace(config, **changes, **({"epochs": epochs} if epochs else {})).validate()
    return RoundPlan(run, config, Path(out), table, photos, new)


def previous_labels(run: RunDir) -> tuple[TrainConfig, LabelTable]:
    """The previous run's config and labels, with a split column: where its files have none, the run's own
    validation photos are `val` and the others `train`."""
    saved = run / "config.yaml"
    if not saved.is_file() or not (config := read_saved(saved)).labels:
        raise FashionStyleError(f"{run.path}: no label file in its config.yaml (a fused or exported run); a round "
                                "continues a run made by `fashionstyle train`")
    if config.teacher or config.mode != "multi":
        raise FashionStyleError(f"{run.path}: a round continues a multi-label run of `fashionstyle train` "
                                f"(this one: {'distill' if config.teacher else f'mode {config.mode}'})")
    table = read_labels(config.labels, config.images or None, run.label_names())
    if table.splits is None:
        val = set(run.val_probs()[0])
        table.splits = ["val" if i in val else "train" for i in table.ids]
    return config, table


def existing_photos(table: LabelTable, say: Say) -> LabelTable:
    """`table` without the photos that no longer exist (counted in one line; refused when none is left)."""
    kept = [i for i, image in enumerate(table.images) if os.path.isfile(image)]
    if len(kept) < len(table):
        gone = next(image for image in table.images if not os.path.isfile(image))
        say(f"{table.source}: {len(table) - len(kept)} of its {len(table)} photos no longer exist: left out "
            f"(e.g. {gone}); is --image-dir Label Studio's document root?")
    if not kept:
        raise FashionStyleError(f"{table.source}: none of its {len(table)} photos exist (e.g. {table.images[0]}); "
                                "give Label Studio's document root as --image-dir")
    return table.subset(kept)


def write_label_csv(table: LabelTable, path: Path) -> Path:
    """`table` as a label CSV: id, image (absolute), split, one 0/1 column per label."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "image", "split", *table.label_names])
    targets = table.require_targets()
    for k, (image_id, image) in enumerate(zip(table.ids, table.images)):
        split = table.splits[k] if table.splits is not None else "train"
        writer.writerow([image_id, os.path.abspath(image), split, *targets[k].tolist()])
    return atomic.write_text(path, text.getvalue())


def train_round(plan: RoundPlan) -> "RoundScores":
    """Train the round's run from the previous run's weights; its scores beside the previous run's."""
    from fashionstyle.analysis.tracking import update_trackers
    from fashionstyle.training.train import train

    run = train(plan.config, plan.out)
    update_trackers(run)
    return compare_runs(plan.previous, run, plan.table, plan.previous_photos, plan.new_photos)


@dataclass(frozen=True)
class RoundScores:
    """Per-label F-beta of two runs on the same validation photos, each at its own thresholds."""

    label_names: list[str]
    support: np.ndarray  # (L,) positives among the photos
    before: np.ndarray   # (L,) the previous run's F-beta
    after: np.ndarray    # (L,) the round's
    beta: float
    photos: int
    new_labels: int      # photos labelled in this round that the previous run had no labels for

    @property
    def gain(self) -> float:
        return float(self.after.mean() - self.before.mean())

    def gain_per_100(self) -> float | None:
        return None if not self.new_labels else 100 * self.gain / self.new_labels

    def table(self) -> str:
        f = f"F{self.beta:g}"
        columns = {"support": self.support, f"{f} before": self.before, f"{f} round": self.after,
                   "gain": self.after - self.before}
        title = f"val ({self.photos} photos, the same for both runs, each at its own thresholds)"
        per_100 = self.gain_per_100()
        rate = f"{per_100:+.3f} per 100 new labels" if per_100 is not None else "no new labels"
        return (f"{format_table(self.label_names, columns, title=title)}\nmacro {f} {self.before.mean():.3f} -> "
                f"{self.after.mean():.3f} ({self.gain:+.3f}) with {self.new_labels} newly labelled photos: {rate}")


def compare_runs(previous: RunDir, current: RunDir, table: LabelTable, previous_photos: dict[str, str],
                 new_labels: int) -> RoundScores:
    """Both runs' validation probabilities on the photos both validated on, scored against `table`'s labels
    (the newest), each at its own thresholds."""
    photo_of = {i: os.path.realpath(p) for i, p in zip(table.ids, table.images)}
    row_of = {photo: k for k, photo in enumerate(photo_of.values())}
    before_ids, before_probs, _ = previous.val_probs()
    after_ids, after_probs, _ = current.val_probs()
    after_at = {photo_of[i]: k for k, i in enumerate(after_ids) if i in photo_of}
    pairs = [(k, after_at[p], row_of[p]) for k, p in enumerate(previous_photos.get(i) for i in before_ids)
             if p in after_at]  # (previous run's row, round's row, table row) of each photo both validated on
    if not pairs:
        raise FashionStyleError(f"{current.path}: validated on none of {previous.path}'s validation photos")
    targets = table.require_targets()[[r for _, _, r in pairs]]
    before = split_scores(before_probs[[k for k, _, _ in pairs]], targets, previous.thresholds())
    after = split_scores(after_probs[[j for _, j, _ in pairs]], targets, current.thresholds())
    return RoundScores(list(table.label_names), before.support, before.fbeta, after.fbeta,
                       previous.thresholds().beta, len(pairs), new_labels)
