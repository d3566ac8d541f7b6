"""A run as a Hugging Face style model folder, and back.

    export_hub(RunDir("runs/lite0"), "hub/lite0")    # fashionstyle export runs/lite0 --format hub --out hub/lite0
    RunDir.open("hub/lite0"); RunDir.open("user/lite0")   # hub_resolve.py: a hub folder or id opens as a run

    hub/lite0/
      config.json              backbone, head, id2label / label2id, thresholds (the one source), preprocessing, TTA;
                               and transformers' keys (model_type, auto_map, problem_type: hub_transformers.py)
      model.safetensors        the whole network (backbone.* and head.* weights), the weights' one copy
      preprocessor_config.json the preprocessing again, for transformers' image processor
      configuration_fashionstyle.py, modeling_fashionstyle.py, image_processing_fashionstyle.py
                               the code transformers runs with trust_remote_code=True (hub_remote/, copied)
      config.yaml              the run's resolved training setting (where the run has one)
      val_probs.npz            validation ids, probabilities and targets: `tune` and `report` work on the folder
      README.md                the model card, with the Hub's metadata (hub_card.py)

Three readers, one folder: fashionstyle.load("hub/lite0") (rebuilt once as a run, hub_resolve.py);
transformers.pipeline("image-classification", model="hub/lite0", trust_remote_code=True) (the same scores,
without fashionstyle); timm: the `backbone.*` tensors of model.safetensors are timm's own state dict of
timm.create_model(backbone, num_classes=0). `hf upload USER/NAME hub/lite0` publishes it; nothing here
needs a network.
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from fashionstyle.core import atomic
from fashionstyle.core.choices import EXPORT_FORMATS, ExportRequest
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.overwrite import refuse_overwriting_inputs, refuse_run_folder
from fashionstyle.core.run import RunContents, RunDir, write_exported_points
from fashionstyle.core.version import __version__
from fashionstyle.data.images.files import Preprocessing
from fashionstyle.inference.hub_card import hub_card
from fashionstyle.inference.hub_resolve import EXTRA_FILES, HUB_LIBRARY, hub_to_run, is_hub_folder, resolve_run
from fashionstyle.inference.hub_transformers import TRANSFORMERS_FILES, transformers_keys, write_transformers_files

__all__ = ["HUB_LIBRARY", "export_hub", "hub_config", "hub_to_run", "is_hub_folder", "resolve_run"]

HUB_FILES = ("config.json", "model.safetensors", "README.md", *TRANSFORMERS_FILES, *EXTRA_FILES)


def export_hub(run: RunDir, out: str | Path, license: str | None = None, operating_point: str | None = None) -> Path:
    """Write the hub folder of a single-model run into `out`: a new or empty folder, or a hub folder
    written before (never a folder of other files: a user's README.md or config.json stay theirs).
    The folder is written whole beside `out` (.OUT.partial-XXXX) and only then swapped in, so a failed
    export (a full disk) leaves the previous one as it was. `license` (an SPDX id) goes into the card's
    metadata (default: the pretrained weights' own, from timm). `operating_point` names the run's point the
    folder decides at when none is named (default: the run's own thresholds)."""
    members = run.members()
    if len(members) != 1 or members[0].model != run / "model.pt":
        raise FashionStyleError(f"{run.path}: a hub folder holds one model, and this run has {len(members)} "
                                "member files; export each member run on its own")
    contents = run.contents()
    contents.point(operating_point)  # an unknown name: one line, before anything is written
    out = Path(out)
    refuse_foreign_folder(out)
    target = Path(os.path.realpath(out))  # a symbolic link to a folder is written through
    _remove_leftovers(target)
    partial = _new_sibling(target)
    try:
        _write_hub(run, contents, partial, (out.name, license, operating_point))
        _swap_in(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


@EXPORT_FORMATS.implements("hub")
def export_format_hub(run_path: str | Path, request: ExportRequest) -> list[str]:
    """`fashionstyle export RUN --format hub`: the hub folder (default RUN/hub); the lines to print."""
    request.refuse_options(("--quantize", "--calibration", "--force", "--opset"), "--format onnx")
    run = RunDir.open(run_path)
    out = request.out or run / "hub"
    refuse_overwriting_inputs({"--out": out}, {"run": run.path})
    refuse_run_folder(out)
    print(f"writing the hub folder of {run.path} ...", flush=True)
    export_hub(run, out, operating_point=request.operating_point)
    return [f"hub folder written to {out}; load it with fashionstyle.load({str(out)!r}) or publish it with "
            f"`hf upload USER/NAME {out}`"]


def _write_hub(run: RunDir, contents: RunContents, folder: Path,
               named: tuple[str, str | None, str | None]) -> None:
    """Every file of the hub folder into the new `folder`; `named`: the folder's name (for the card), its
    license and the operating point it decides at on its own."""
    name, license, operating_point = named
    from fashionstyle.model.network import load_model

    model, record = load_model(run / "model.pt")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic.write_atomic(folder / "model.safetensors", lambda f: f.write(_safetensors_bytes(state)))
    write_transformers_files(folder, Preprocessing.of(record), run.tta())
    for extra in EXTRA_FILES:
        if (run / extra).is_file():
            shutil.copyfile(run / extra, folder / extra)
    atomic.write_text(folder / "README.md", hub_card(run, name, record, license))
    write_exported_points(contents, folder, operating_point)
    atomic.write_json(folder / "config.json", hub_config(run, record, operating_point, contents))


def _sibling(target: Path, kind: str) -> Path:
    """.NAME.KIND-XXXX beside `target` (the same file system: a rename moves it, never copies)."""
    return target.with_name(f".{target.name}.{kind}-{secrets.token_hex(4)}")


def _new_sibling(target: Path) -> Path:
    """A new, empty folder .NAME.partial-XXXX beside `target`, to write the export into."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        folder = _sibling(target, "partial")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def _swap_in(new: Path, target: Path) -> None:
    """Put the whole folder `new` at `target`: the old one renamed aside, the new renamed in, the old removed
    (a failed rename puts the old one back)."""
    if not target.exists():
        os.rename(new, target)
        return
    old = _sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(target: Path) -> None:
    """Clear what an export to `target` killed half-way left beside it: a half-written .NAME.partial-*
    is removed; the earlier export set aside (.NAME.old-*) is put back where `target` is missing."""
    for kind in ("old", "partial"):
        for folder in target.parent.glob(f".{glob.escape(target.name)}.{kind}-*"):
            if not folder.is_dir() or folder.is_symlink():
                continue
            if kind == "old" and not target.exists() and is_hub_folder(folder):
                os.rename(folder, target)
            else:
                shutil.rmtree(folder, ignore_errors=True)


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


def hub_config(run: RunDir, record: dict[str, Any], operating_point: str | None = None,
               contents: RunContents | None = None) -> dict[str, Any]:
    """config.json: the thresholds once, as a label -> threshold map (`threshold_tuner` says how they
    were tuned, without a second copy of them); the run's operating points listed (`contents`: the run's,
    when read already)."""
    names, tuner = list(record["label_names"]), run.thresholds()
    tuning = {k: v for k, v in tuner.to_dict().items() if k != "thresholds"}
    return {
        "library_name": HUB_LIBRARY, "fashionstyle_version": __version__, **transformers_keys(),
        "backbone": record["backbone"],
        "hidden": record["hidden"], "dropout": record["dropout"], "num_labels": len(names),
        "id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)},
        "thresholds": {n: float(t) for n, t in zip(names, tuner.thresholds_)},
        "threshold_tuner": tuning, "tta": run.tta(), **_points_config(contents or run.contents(), operating_point),
        "preprocessing": {**Preprocessing.of(record).to_record(),
                          "resize": "shorter side to image_size / 0.875, then the centre crop of image_size",
                          "channels": "RGB"},
    }


def _points_config(contents: RunContents, default: str | None) -> dict[str, Any]:
    """config.json's listing of the run's operating points (name: what it is; operating_points.json holds
    them) and the one decided at when none is named, when the run has named ones."""
    if not contents.points:
        return {}
    return {"operating_points": {name: contents.point(name).describe(contents.label_names)
                                 for name in contents.point_names()},
            "default_operating_point": contents.point(default).name}
