"""The README.md of a hub folder: the run's model card (core/model_card.py) with what the Hub reads.

    text = hub_card(run, "hub/lite0", record)     # record: the model file's (backbone, label names)

The YAML metadata is the Hub's own (license, library_name, base_model as the timm id,
pipeline_tag, tags, model-index with the validation and test macro and per-label F-beta);
the usage examples are written for this folder and a Hub id, and run as written; every file
of the folder is explained; publishing is `hf upload`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fashionstyle.core.run import RunDir
from fashionstyle.inference.hub_resolve import EXTRA_FILES

FILE_NOTES = {
    "config.json": "labels (`id2label`, `label2id`, `num_labels`), the decision threshold of each label "
                   "(`thresholds`: edit them here), how they were tuned, the backbone, head and preprocessing",
    "model.safetensors": "the whole network's weights, stored once: the head's (`head.*`) and the fine-tuned "
                         "backbone's (`backbone.*`, in timm's own names: the state dict of "
                         "`timm.create_model(BACKBONE, num_classes=0)`, for other heads)",
    "preprocessor_config.json": "the preprocessing again, for transformers' image processor",
    "configuration_fashionstyle.py": "the configuration class transformers loads with `trust_remote_code=True`",
    "modeling_fashionstyle.py": "the network for transformers (`trust_remote_code=True`): the timm backbone "
                                "(`model.backbone`) and the head",
    "image_processing_fashionstyle.py": "the image processor for transformers (`trust_remote_code=True`): "
                                        "fashionstyle's resize, centre crop and normalisation",
    "config.yaml": "the run's whole resolved training setting (fashionstyle's TrainConfig)",
    "val_probs.npz": "validation image ids, probabilities and targets: `fashionstyle tune` and "
                     "`fashionstyle report` work on this folder",
    "operating_points.json": "the run's named operating points (`fashionstyle.load(FOLDER, operating_point=NAME)`; "
                             "`default`: the one decided at when none is named)",
    "README.md": "this card",
}


def hub_card(run: RunDir, out: str | Path, record: dict[str, Any], license: str | None = None,
             repo_id: str | None = None) -> str:
    """The card of `run`'s hub folder `out`: metadata, the run's card body, usage, files, publishing."""
    from fashionstyle.core.model_card import model_card

    name = Path(out).name
    repo_id = repo_id or f"USER/{name}"
    body = _without_front_matter(model_card(run))
    files = [n for n in FILE_NOTES if n not in EXTRA_FILES or (run / n).is_file()]
    if "config.yaml" not in files:
        body = body.replace("The whole resolved setting is config.yaml.", "")
    sections = _split_sections(body)
    usage = _usage(name, repo_id, len(record["label_names"]))
    sections = [usage if s.startswith("## How to use") else s for s in sections]
    if not any(s.startswith("## How to use") for s in sections):
        sections.append(usage)
    return "\n".join([hub_metadata(run, record, license, name), *sections, _files(files), _publish(name, repo_id)])


def hub_metadata(run: RunDir, record: dict[str, Any], license: str | None = None, name: str | None = None) -> str:
    """The YAML block the Hub reads: license, library, base model, task, tags and the scores."""
    backbone = str(record["backbone"])
    base, base_license = _timm_source(run, backbone)
    meta: dict[str, Any] = {"library_name": "fashionstyle", "license": license or base_license or "other"}
    if base:
        meta["base_model"] = base
    meta.update({"pipeline_tag": "image-classification",
                 "tags": ["image-classification", "multi-label-classification", "fashion", "timm", backbone,
                          "fashionstyle"]})
    index = _model_index(run, name or run.path.resolve().name)
    if index:
        meta["model-index"] = index
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _timm_source(run: RunDir, backbone: str) -> tuple[str | None, str | None]:
    """(the timm Hub id of the pretrained weights the run started from, their license); (None, None)
    for a run trained from scratch or from a local weights file."""
    from fashionstyle.core.config import read_yaml

    config = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    if not config.get("pretrained", False) or config.get("weights"):
        return None, None
    try:
        import timm

        cfg = timm.models.get_pretrained_cfg(backbone)
    except Exception:  # noqa: BLE001 - an unknown name or an old timm: no base model named
        return None, None
    return (getattr(cfg, "hf_hub_id", None) or None, getattr(cfg, "license", None) or None) if cfg else (None, None)


def _model_index(run: RunDir, name: str) -> list[dict[str, Any]]:
    """model-index: one result per scored split (validation; test where evaluated), macro and per label,
    on the run's label file (its name)."""
    from fashionstyle.core.config import read_yaml
    from fashionstyle.core.summary import run_summary

    summary = run_summary(run)
    config = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    dataset = Path(str(config.get("labels") or "")).name or f"{name} labels"
    if summary is None:
        return []
    f = f"f{summary.beta:g}"
    results = []
    for split, scores in (("validation", summary.val), ("test", summary.test)):
        if scores is None:
            continue
        metrics = [{"type": f, "value": round(scores.macro_fbeta, 4), "name": f"{split} macro F{summary.beta:g}"}]
        metrics += [{"type": f, "value": round(float(v), 4), "name": f"{split} F{summary.beta:g} {label}"}
                    for label, v in zip(summary.label_names, scores.fbeta)]
        results.append({"task": {"type": "image-classification", "name": "Multi-label style recognition"},
                        "dataset": {"name": dataset, "type": "images", "split": split},
                        "metrics": metrics})
    return [{"name": name, "results": results}] if results else []


def _without_front_matter(card: str) -> str:
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end >= 0:
            return card[end + 5:].lstrip("\n")
    return card


def _split_sections(body: str) -> list[str]:
    """The card's text cut before each `## ` heading (the title and intro first)."""
    first, *rest = body.split("\n## ")
    return [first.rstrip("\n") + "\n", *("## " + part.rstrip("\n") + "\n" for part in rest)]


def _usage(name: str, repo_id: str, num_labels: int) -> str:
    return ("## How to use\n\n`pip install fashionstyle`, then, from the folder that holds this one "
            f"(`{name}/`), or with the Hub id once it is published:\n\n"
            f"```python\nimport fashionstyle\n\ntagger = fashionstyle.load(\"{name}\")   # or \"{repo_id}\"\n"
            "print(tagger(\"photo.jpg\"))   # Prediction(image='photo.jpg', labels=[...], scores={...})\n"
            "```\n\n"
            f"```bash\nfashionstyle predict {name} --images photos/ --out tags.csv\n"
            f"fashionstyle predict {repo_id} --images photos/ --out tags.csv   # downloaded once by huggingface_hub\n"
            "```\n\nEvery command that takes a run (`predict`, `evaluate`, `serve`, `explain`, `report`, `export`) "
            "takes this folder or its Hub id; with `HF_HUB_OFFLINE=1` the id is read from the local cache.\n\n"
            + _transformers_usage(name, repo_id, num_labels))


def _transformers_usage(name: str, repo_id: str, num_labels: int) -> str:
    """The pipeline example: every label's sigmoid score, and the labels at the run's thresholds."""
    return ("### With transformers\n\nWithout fashionstyle (`pip install transformers timm torchvision`), the "
            "folder's own code (`trust_remote_code=True`) gives the sigmoid score of every label (`top_k`: all "
            f"{num_labels}); a label is decided when its score is at or above the run's threshold "
            "(`config.json`'s `thresholds`):\n\n"
            f"```python\nfrom transformers import pipeline\n\n"
            f"tagger = pipeline(\"image-classification\", model=\"{name}\", trust_remote_code=True, "
            f"top_k={num_labels})   # or \"{repo_id}\"\n"
            "scores = {s[\"label\"]: s[\"score\"] for s in tagger(\"photo.jpg\")}   # most probable first\n"
            "thresholds = tagger.model.config.thresholds\n"
            "print(scores, [label for label, score in scores.items() if score >= thresholds[label]])\n"
            "```\n\nThe scores are fashionstyle's for the same pixels (within 1e-5); fashionstyle decodes a large "
            "JPEG at reduced scale (libjpeg's DCT scaling), the pipeline whole, so on large photos they differ "
            "slightly.\n")


def _files(files: list[str]) -> str:
    return "## Files\n\n" + "".join(f"- `{n}`: {FILE_NOTES[n]}\n" for n in files)


def _publish(name: str, repo_id: str) -> str:
    return ("## Publish\n\nWith huggingface_hub's `hf` command (`pip install huggingface_hub`):\n\n"
            f"```bash\nhf auth login\nhf upload {repo_id} {name}\n```\n")
