"""A run as a Hugging Face style model folder, and back.

    export_hub(RunDir("runs/lite0"), "hub/lite0")    # fashionstyle export runs/lite0 --format hub --out hub/lite0
    RunDir.open("hub/lite0"); RunDir.open("user/lite0")   # hub_resolve.py: a hub folder or id opens as a run

    hub/lite0/
      config.json              backbone, head, id2label / label2id, thresholds (the one source), preprocessing, TTA
      model.safetensors        the whole network (backbone.* and head.* weights)
      backbone.safetensors     the backbone alone, in timm's own key names:
                               timm.create_model(backbone, pretrained=True, num_classes=0,
                                   pretrained_cfg_overlay=dict(file="hub/lite0/backbone.safetensors"))
      config.yaml              the run's resolved training setting (where the run has one)
      val_probs.npz            validation ids, probabilities and targets: `tune` and `report` work on the folder
      README.md                the model card, with the Hub's metadata (hub_card.py)

`hf upload USER/NAME hub/lite0` publishes it; nothing here needs a network.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.version import __version__
from fashionstyle.data.images import Preprocessing
from fashionstyle.inference.hub_card import hub_card
from fashionstyle.inference.hub_resolve import EXTRA_FILES, HUB_LIBRARY, hub_to_run, is_hub_folder, resolve_run

__all__ = ["HUB_LIBRARY", "export_hub", "hub_config", "hub_to_run", "is_hub_folder", "resolve_run"]

HUB_FILES = ("config.json", "model.safetensors", "backbone.safetensors", "README.md", *EXTRA_FILES)


def export_hub(run: RunDir, out: str | Path, license: str | None = None) -> Path:
    """Write the hub folder of a single-model run into `out`: a new or empty folder, or a hub folder
    written before (never a folder of other files: a user's README.md or config.json stay theirs).
    config.json is written last, so a folder with it is complete. `license` (an SPDX id) goes into the
    card's metadata (default: the pretrained weights' own, from timm)."""
    members = run.members()
    if len(members) != 1 or members[0].model != run / "model.pt":
        raise FashionStyleError(f"{run.path}: a hub folder holds one model, and this run has {len(members)} "
                                "member files; export each member run on its own")
    out = Path(out)
    refuse_foreign_folder(out)
    from fashionstyle.model.network import load_model

    model, record = load_model(run / "model.pt")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").unlink(missing_ok=True)
    atomic.write_atomic(out / "model.safetensors", lambda f: f.write(_safetensors_bytes(state)))
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    atomic.write_atomic(out / "backbone.safetensors", lambda f: f.write(_safetensors_bytes(backbone)))
    for name in EXTRA_FILES:
        (out / name).unlink(missing_ok=True)
        if (run / name).is_file():
            shutil.copyfile(run / name, out / name)
    atomic.write_text(out / "README.md", hub_card(run, out, record, license))
    atomic.write_json(out / "config.json", hub_config(run, record))
    return out


def refuse_foreign_folder(out: Path) -> None:
    """Refuse an `out` that is a file, or a folder holding anything but an earlier hub folder."""
    if out.exists() and not out.is_dir():
        raise FashionStyleError(f"{out}: is a file; --out names the hub folder to write")
    if out.is_dir() and any(out.iterdir()) and not is_hub_folder(out):
        raise FashionStyleError(f"{out}: not empty and not a hub folder written by fashionstyle (its files would "
                                "be replaced); choose a new or empty --out")


def _safetensors_bytes(state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    return save(state, metadata={"format": "pt"})


def hub_config(run: RunDir, record: dict[str, Any]) -> dict[str, Any]:
    """config.json: the thresholds once, as a label -> threshold map (`threshold_tuner` says how they
    were tuned, without a second copy of them)."""
    names, tuner = list(record["label_names"]), run.thresholds()
    tuning = {k: v for k, v in tuner.to_dict().items() if k != "thresholds"}
    return {
        "library_name": HUB_LIBRARY, "fashionstyle_version": __version__,
        "architectures": ["StyleNet"], "backbone": record["backbone"],
        "hidden": record["hidden"], "dropout": record["dropout"], "num_labels": len(names),
        "id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)},
        "thresholds": {n: float(t) for n, t in zip(names, tuner.thresholds_)},
        "threshold_tuner": tuning, "tta": run.tta(),
        "preprocessing": {**Preprocessing.of(record).to_record(),
                          "resize": "shorter side to image_size, then centre crop", "channels": "RGB"},
    }
