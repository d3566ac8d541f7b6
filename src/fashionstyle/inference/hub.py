"""A run as a Hugging Face style model folder, and back.

    export_hub(RunDir("runs/lite0"), "hub/lite0")    # fashionstyle export runs/lite0 --format hub --out hub/lite0
    run = hub_to_run("hub/lite0", "tmp/run")         # what fashionstyle.load("hub/lite0") does first

    hub/lite0/
      config.json              backbone, head, id2label / label2id, thresholds, preprocessing, TTA
      model.safetensors        the whole network (backbone.* and head.* weights)
      backbone.safetensors     the backbone alone, in timm's own key names:
                               timm.create_model(backbone, pretrained=True, num_classes=0,
                                   pretrained_cfg_overlay=dict(file="hub/lite0/backbone.safetensors"))
      README.md                the model card (MODEL_CARD.md), with Hugging Face metadata

`huggingface-cli upload USER/NAME hub/lite0` publishes it; nothing here needs a network.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fashionstyle.core.version import __version__
from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.model_card import model_card
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images import Preprocessing

HUB_LIBRARY = "fashionstyle"  # config.json's library_name

# Torch-free at import (fashionstyle.load checks a folder with is_hub_folder); the model code is
# imported by the functions that need it.


def is_hub_folder(path: str | Path) -> bool:
    """A folder written by export_hub: config.json of library fashionstyle, and no manifest.json."""
    folder = Path(path)
    if not (folder / "config.json").is_file() or (folder / "manifest.json").is_file():
        return False
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("library_name") == HUB_LIBRARY
    except (ValueError, AttributeError):
        return False


def export_hub(run: RunDir, out: str | Path) -> Path:
    """Write the hub folder of a single-model run; config.json last, so a folder with it is complete."""
    members = run.members()
    if len(members) != 1 or members[0].model != run / "model.pt":
        raise FashionStyleError(f"{run.path}: a hub folder holds one model, and this run has {len(members)} "
                                "member files; export each member run on its own")
    from fashionstyle.model.network import load_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").unlink(missing_ok=True)
    model, record = load_model(run / "model.pt")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic.write_atomic(out / "model.safetensors", lambda f: f.write(_safetensors_bytes(state)))
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    atomic.write_atomic(out / "backbone.safetensors", lambda f: f.write(_safetensors_bytes(backbone)))
    atomic.write_text(out / "README.md", model_card(run))
    atomic.write_json(out / "config.json", hub_config(run, record))
    return out


def _safetensors_bytes(state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    return save(state, metadata={"format": "pt"})


def hub_config(run: RunDir, record: dict[str, Any]) -> dict[str, Any]:
    names, tuner = list(record["label_names"]), run.thresholds()
    return {
        "library_name": HUB_LIBRARY, "fashionstyle_version": __version__,
        "architectures": ["StyleNet"], "backbone": record["backbone"],
        "hidden": record["hidden"], "dropout": record["dropout"], "num_labels": len(names),
        "id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)},
        "thresholds": {n: float(t) for n, t in zip(names, tuner.thresholds_)},
        "threshold_tuner": tuner.to_dict(), "tta": run.tta(),
        "preprocessing": {**Preprocessing.of(record).to_record(),
                          "resize": "shorter side to image_size, then centre crop", "channels": "RGB"},
    }


def hub_to_run(folder: str | Path, out: str | Path) -> RunDir:
    """A run directory at `out` rebuilt from a hub folder (model.pt, labels, thresholds, TTA)."""
    from safetensors.torch import load_file

    from fashionstyle.model.network import MODEL_FORMAT, save_model

    folder = Path(folder)
    config = atomic.read_json(folder / "config.json", "the hub folder")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FashionStyleError(f"{weights}: missing from the hub folder")
    try:
        names = [config["id2label"][str(i)] for i in range(int(config["num_labels"]))]
        record = {"format": MODEL_FORMAT, "backbone": config["backbone"], "label_names": names,
                  "hidden": config["hidden"], "dropout": config["dropout"],
                  **Preprocessing.of(config["preprocessing"]).to_record()}
        tuner = ThresholdTuner.from_dict(config["threshold_tuner"])
    except (KeyError, TypeError, ValueError) as err:
        raise FashionStyleError(f"{folder / 'config.json'}: not a fashionstyle hub config "
                                f"({type(err).__name__}: {err})") from None
    record["state_dict"] = load_file(str(weights))
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    save_model(run / "model.pt", record)
    run.write_label_names(names)
    run.write_thresholds(tuner)
    run.write_tta(config.get("tta", "none"))
    run.write_manifest("model", complete=True, source=str(folder))
    return run
