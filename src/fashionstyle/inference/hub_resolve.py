"""A hub folder or a Hugging Face model id where a run is expected: checked, then opened as a run.

    path = resolve_run("user/mine")       # snapshot_download (offline from its cache with HF_HUB_OFFLINE=1)
    path = resolve_run("hub/mine")        # an exported folder
    path = resolve_run("runs/mine")       # a run directory: itself

RunDir.open calls resolve_run, so every command that takes a run, the service and
fashionstyle.load accept all three. A hub folder is rebuilt once as a run directory under
FASHIONSTYLE_HUB_CACHE (default ~/.cache/fashionstyle/hub-runs), keyed by the folder and its
files, so an ONNX export or an evaluation made from it is kept. Torch is imported only to rebuild.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from fashionstyle.core import atomic
from fashionstyle.core.choices import RUN_SOURCES
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run_checks import checked_names
from fashionstyle.core.thresholds import ThresholdTuner

HUB_LIBRARY = "fashionstyle"  # config.json's library_name
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/repo
# run files a hub folder may carry, copied back as they are
EXTRA_FILES = ("config.yaml", "val_probs.npz", "operating_points.json")


def is_hub_folder(path: str | Path) -> bool:
    """A folder written by export_hub: config.json of library fashionstyle, and no manifest.json."""
    folder = Path(path)
    if not (folder / "config.json").is_file() or (folder / "manifest.json").is_file():
        return False
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("library_name") == HUB_LIBRARY
    except (ValueError, AttributeError, OSError):
        return False


@RUN_SOURCES.implements("hub")
def resolve_run(source: str | Path) -> Path:
    """The run directory `source` names: a run folder itself; a hub folder or a hub id `user/repo`
    rebuilt as a run (once, in the cache); anything else unchanged, for RunDir.open's own refusal."""
    path = Path(source)
    if (path / "manifest.json").is_file():
        return path
    if is_hub_folder(path):
        return cached_run(path)
    if not path.exists() and not path.parent.exists() and HUB_ID.match(str(source)):  # runs/typo stays local
        return cached_run(download(str(source)))
    return path


def download(repo_id: str) -> Path:
    """The local snapshot of the Hub model `repo_id` (from huggingface_hub's cache when offline)."""
    try:
        from huggingface_hub import snapshot_download
    except ModuleNotFoundError:
        raise FashionStyleError(f"{repo_id}: no run directory there, and loading a Hugging Face model id "
                                "needs huggingface_hub (pip install huggingface_hub)") from None
    try:
        folder = Path(snapshot_download(repo_id))
    except Exception as err:  # noqa: BLE001 - offline, unknown repo, no access: one line either way
        raise FashionStyleError(download_error(repo_id, err)) from None
    if not is_hub_folder(folder):
        raise FashionStyleError(f"{repo_id}: the Hugging Face model is not a fashionstyle hub folder "
                                f"(config.json with library_name {HUB_LIBRARY!r})")
    return folder


def download_error(repo_id: str, err: Exception) -> str:
    """Why `repo_id` could not be had from the Hub or its local cache, whole, in one line."""
    from huggingface_hub import constants, errors

    where = f"{repo_id}: run directory not found, nor a hub folder"
    if isinstance(err, errors.LocalEntryNotFoundError):
        cached = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
        fix = (f"HF_HUB_OFFLINE=1 downloads nothing: run `hf download {repo_id}` once online, or unset HF_HUB_OFFLINE"
               if constants.HF_HUB_OFFLINE else "the Hub could not be reached (no network?)")
        return f"{where}, nor in the Hugging Face cache (no snapshot under {cached}); {fix}"
    if isinstance(err, errors.GatedRepoError):
        return f"{where}; the Hugging Face model is gated: accept its terms on its Hub page, then `hf auth login`"
    if isinstance(err, errors.RepositoryNotFoundError):
        return f"{where}, nor a Hugging Face model you can read (a private one needs `hf auth login`)"
    return f"{where} (as a Hugging Face model id: {type(err).__name__}: {' '.join(str(err).split())})"


def cache_root() -> Path:
    env = os.environ.get("FASHIONSTYLE_HUB_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fashionstyle" / "hub-runs"


def is_hub_cache_entry(path: str | Path) -> bool:
    """Whether `path` is (in) a run rebuilt from a hub folder or id, under cache_root(): a copy that must
    keep what its config.json says, since the same folder or id opens it again."""
    return Path(path).resolve().is_relative_to(cache_root().resolve())


def cached_run(folder: Path) -> Path:
    """The run rebuilt from hub `folder`, made once per version of its files (checked first)."""
    key = hashlib.sha256(str(folder.resolve()).encode())
    for name in ("config.json", "model.safetensors", *EXTRA_FILES):
        file = folder / name
        if file.is_file():
            key.update(f"{name}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode())
            if name == "config.json":
                key.update(file.read_bytes())
    target = cache_root() / f"{folder.resolve().name}-{key.hexdigest()[:16]}"
    if (target / "manifest.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FashionStyleError(f"{target.parent}: cannot write the run rebuilt from {folder} there "
                                f"({err.strerror}); set FASHIONSTYLE_HUB_CACHE to a writable folder") from None
    staging = target.with_name(f"{target.name}.part-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        hub_to_run(folder, staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process made it first
            if not (target / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_hub_config(folder: Path) -> tuple[dict[str, Any], list[str], ThresholdTuner]:
    """config.json, its label names and thresholds, checked: num_labels, id2label and label2id agree,
    one threshold per label in [0, 1] from the `thresholds` map (the one a person edits)."""
    path = folder / "config.json"
    config = atomic.read_json(path, "the hub folder")
    if not isinstance(config, dict):
        raise FashionStyleError(f"{path}: expected a mapping (a fashionstyle hub config)")
    for key in ("num_labels", "id2label", "label2id", "thresholds", "backbone", "hidden", "dropout", "preprocessing"):
        if key not in config:
            raise FashionStyleError(f"{path}: not a fashionstyle hub config ({key} missing); export the run again")
    count, id2label, label2id = config["num_labels"], config["id2label"], config["label2id"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FashionStyleError(f"{path}: num_labels must be a whole number >= 1, got {count!r}")
    ids = [str(i) for i in range(count)]
    if not isinstance(id2label, dict) or sorted(id2label, key=str) != sorted(ids):
        got = sorted(id2label) if isinstance(id2label, dict) else id2label
        raise FashionStyleError(f"{path}: id2label must have the keys {', '.join(ids)} (num_labels {count}), "
                                f"got {got!r}")
    names = checked_names([id2label[i] for i in ids], f"{path}: id2label")
    if label2id != {n: i for i, n in enumerate(names)}:
        raise FashionStyleError(f"{path}: label2id {label2id!r} disagrees with id2label {id2label!r}")
    return config, names, hub_thresholds(config, names, path)


def hub_thresholds(config: dict[str, Any], names: list[str], path: Path) -> ThresholdTuner:
    """The tuner of config.json: values from its `thresholds` map (label -> threshold), how they were
    tuned (beta, rule, ...) from `threshold_tuner`, whose own list, where an older export wrote one, is
    ignored: the map is the one source."""
    given = config["thresholds"]
    if not isinstance(given, dict) or set(given) != set(names):
        keys = sorted(given) if isinstance(given, dict) else given
        raise FashionStyleError(f"{path}: thresholds must map each label ({', '.join(names)}) to a threshold, "
                                f"got {keys!r}")
    tuning = config.get("threshold_tuner") or {}
    if not isinstance(tuning, dict):
        raise FashionStyleError(f"{path}: threshold_tuner must be a mapping, got {tuning!r}")
    record = {"beta": 2.0, "default": 0.5, "rule": "exact", "best_fbeta": [None] * len(names),
              "tuned": [True] * len(names), **{k: v for k, v in tuning.items() if k != "thresholds"},
              "thresholds": [given[n] for n in names]}
    return ThresholdTuner.from_dict(record, f"{path}: thresholds")


def hub_to_run(folder: str | Path, out: str | Path) -> Any:
    """A run directory at `out` rebuilt from a hub folder (model.pt, labels, thresholds, TTA), after
    checking config.json against itself and the weights (their shapes: backbone, hidden size, labels)."""
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.images.files import Preprocessing
    from fashionstyle.model.network import MODEL_FORMAT, save_model

    folder = Path(folder)
    config, names, tuner = read_hub_config(folder)
    try:
        record = {"format": MODEL_FORMAT, "backbone": str(config["backbone"]), "label_names": names,
                  "hidden": int(config["hidden"]), "dropout": float(config["dropout"]),
                  **Preprocessing.of(config["preprocessing"]).to_record()}
    except (KeyError, TypeError, ValueError) as err:
        raise FashionStyleError(f"{folder / 'config.json'}: not a fashionstyle hub config "
                                f"({type(err).__name__}: {err})") from None
    record["state_dict"] = checked_weights(folder, record)
    run = RunDir(out)
    run.path.mkdir(parents=True, exist_ok=True)
    save_model(run / "model.pt", record)
    for name in EXTRA_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, run / name)
    run.write_label_names(names)
    run.write_thresholds(tuner)
    run.write_tta(str(config.get("tta", "none")))
    run.write_manifest("model", complete=True, source=str(folder), hub=True)
    return run


def checked_weights(folder: Path, record: dict[str, Any]) -> dict[str, Any]:
    """model.safetensors' tensors, refused in one line unless their names and shapes are those of
    the network config.json describes (backbone, hidden size, one output per label)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from fashionstyle.model.network import create_model

    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FashionStyleError(f"{weights}: missing from the hub folder")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise FashionStyleError(f"{weights}: not readable safetensors ({err})") from None
    model = create_model(record["backbone"], len(record["label_names"]), hidden=record["hidden"],
                         dropout=record["dropout"])
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in state.items()}
    width = saved.get("head.3.weight", (None,))[0]
    if width is not None and width != len(record["label_names"]):
        raise FashionStyleError(f"{weights}: the weights give {width} outputs, config.json names "
                                f"{len(record['label_names'])} labels ({', '.join(record['label_names'])})")
    if wanted != saved:
        differ = sorted(k for k in wanted.keys() | saved.keys() if wanted.get(k) != saved.get(k))
        raise FashionStyleError(f"{weights}: not the weights of a {record['backbone']} with hidden size "
                                f"{record['hidden']} (config.json): {len(differ)} tensors differ, e.g. "
                                f"{', '.join(differ[:2])}; another backbone or hidden size?")
    return state
