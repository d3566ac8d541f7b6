"""ONNX export of a run, and an ONNX Runtime predictor with the Predictor's interface.

    paths = export_onnx("runs/densenet201", "runs/densenet201/onnx")
    predictor = OnnxPredictor.from_run("runs/densenet201")   # exports into RUN/onnx/ if needed
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])      # (N, L), as Predictor's

The export folder holds everything needed to predict without PyTorch models:

    OUT/
      model.onnx          one member: input `images` (B, 3, H, W) float32, output `logits` (B, outputs)
      member_<k>.onnx     ... or one file per member of a single-label / fused run
      members.json        per member: file, columns, targets, labels, weight, image_size, mean, std
      labels.json         the run's label names, in output order
      thresholds.json     the run's tuned thresholds (ThresholdTuner.to_dict)

Each label's probability is the weighted mean of the members that give it,
exactly as in Predictor; preprocessing is the same data.eval_transform.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import _atomic
from .data import eval_transform, open_rgb
from .errors import FashionStyleError
from .predict import combine_probs
from .models import StyleNet, load_model
from .run import RunDir
from .thresholds import ThresholdTuner

EXPORT_FORMAT = 1
EXPORT_FOLDER = "the ONNX export folder (run `fashionstyle export` first)"
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
EXPORT_DIRS = {"fp32": "onnx", "int8": "onnx-int8"}  # precision -> default folder in the run


# -- export ----------------------------------------------------------------------
def export_model(model: StyleNet, path: str | Path, image_size: int, opset: int = OPSET) -> Path:
    """Write one model as ONNX with a dynamic batch axis, checked by onnx.checker.

    Uses the TorchScript-based exporter (robust with timm backbones); falls back
    to the torch.export-based one where the legacy exporter is unavailable or fails.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.zeros(2, 3, image_size, image_size)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
                torch.onnx.export(model, (dummy,), tmp, dynamo=False, opset_version=opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except Exception as legacy_error:  # noqa: BLE001 - try the other exporter before giving up
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(model, (dummy,), tmp, dynamo=True, opset_version=opset,
                                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                      dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                                      external_data=False)
            except Exception as dynamo_error:  # noqa: BLE001
                raise FashionStyleError(
                    f"{path.name}: ONNX export failed (legacy exporter: {type(legacy_error).__name__}: "
                    f"{str(legacy_error)[:200]}; dynamo exporter: {type(dynamo_error).__name__}: "
                    f"{str(dynamo_error)[:200]})") from None
        onnx.checker.check_model(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _fingerprint(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def export_onnx(run_dir: str | Path | RunDir, out_dir: str | Path, opset: int = OPSET) -> list[Path]:
    """Export every member model of a run into `out_dir`; returns the ONNX files written.

    A run with one model file gives `model.onnx`, one with several (single-label,
    label-wise-epoch, fused) `member_<k>.onnx`, k being the first member that
    uses the file: members sharing a model file share its export. `members.json`
    is written last, so a folder with it is a complete export.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir.open(run_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = run.label_names()
    tuner = run.thresholds()
    members = run.members()
    records, written = [], []
    files: dict[Path, str] = {}  # each model file exported once, however many members use it
    distinct = len({m.model for m in members})
    for k, member in enumerate(members):
        model, record = load_model(member.model)
        outputs = record["label_names"]
        unknown = [n for n in member.labels if n not in outputs or n not in names]
        if unknown:
            raise FashionStyleError(f"{member.model}: does not predict {', '.join(unknown)}")
        if member.model not in files:
            files[member.model] = "model.onnx" if distinct == 1 else f"member_{k}.onnx"
            written.append(export_model(model, out / files[member.model], int(record["image_size"]), opset))
        records.append({
            "file": files[member.model], "source": os.path.relpath(member.model, run.path),
            "source_fingerprint": _fingerprint(Path(member.model)),
            "backbone": record["backbone"], "outputs": list(outputs),
            "columns": [outputs.index(n) for n in member.labels],
            "targets": [names.index(n) for n in member.labels],
            "labels": list(member.labels), "weight": float(member.weight),
            "image_size": int(record["image_size"]),
            "mean": [float(v) for v in record["mean"]], "std": [float(v) for v in record["std"]],
        })
    _check_coverage(names, records)
    _atomic.write_json(out / "labels.json", {"label_names": names})
    _atomic.write_json(out / "thresholds.json", tuner.to_dict())
    _atomic.write_json(out / "members.json", {"format": EXPORT_FORMAT, "opset": opset,
                                              "run": run.path.resolve().name, "input": INPUT_NAME,
                                              "output": OUTPUT_NAME, "members": records})
    return written


def _check_precision(precision: str) -> str:
    if precision not in EXPORT_DIRS:
        raise FashionStyleError(f"unknown export precision {precision!r}; valid: {', '.join(EXPORT_DIRS)}")
    return precision


def export_run(run: RunDir, out_dir: str | Path, precision: str = "fp32", opset: int = OPSET,
               calibration_images: Sequence[str | Path] | None = None) -> list[Path]:
    """Export a run at `precision`: fp32 as export_onnx; int8 quantises the run's fp32 export
    (RUN/onnx/, refreshed if stale), calibrated on `calibration_images` (default: its validation images).
    """
    out = Path(out_dir)
    if _check_precision(precision) == "fp32":
        return export_onnx(run, out, opset)
    from .evaluate import val_images
    from .quantize import quantize_export

    fp32 = run / EXPORT_DIRS["fp32"]
    if not export_is_current(run, fp32):
        export_onnx(run, fp32, opset)
    if calibration_images is None:
        if not (run / "config.yaml").is_file():  # fused and selected runs keep no label file
            raise FashionStyleError(f"{run.path}: no config.yaml to find validation images to calibrate "
                                    f"int8 on; run `fashionstyle export {run.path} --precision int8 "
                                    "--calibration FOLDER` first")
        calibration_images = val_images(run, run.val_probs()[0], None)
    quantize_export(fp32, out, calibration_images)
    records = _atomic.read_json(out / "members.json", EXPORT_FOLDER)["members"]
    return [out / file for file in dict.fromkeys(r["file"] for r in records)]


def _check_coverage(names: list[str], records: Sequence[dict[str, Any]]) -> None:
    covered = {t for r in records for t in r["targets"]}
    missing = [n for i, n in enumerate(names) if i not in covered]
    if missing:
        raise FashionStyleError(f"no member model predicts {', '.join(missing)}")


def export_is_current(run: RunDir, out_dir: str | Path, precision: str = "fp32") -> bool:
    """Whether `out_dir` holds a complete `precision` export of the run's current member models."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "members.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if meta.get("format") != EXPORT_FORMAT or meta.get("precision", "fp32") != precision:
        return False
    members = run.members()
    records = meta.get("members", [])
    if len(records) != len(members):
        return False
    for member, record in zip(members, records):
        source = Path(member.model)
        if (os.path.relpath(source, run.path) != record.get("source") or not source.is_file()
                or _fingerprint(source) != record.get("source_fingerprint")
                or list(member.labels) != record.get("labels")
                or float(member.weight) != record.get("weight")
                or not (out / record["file"]).is_file()):
            return False
    return True


# -- prediction --------------------------------------------------------------------
def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function, in the logits' float type."""
    logits = np.asarray(logits, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)


@dataclass
class OnnxMember:
    session: Any          # onnxruntime.InferenceSession
    columns: list[int]    # which of the model's outputs are used
    targets: list[int]    # ... and which of the run's labels they give
    weight: float
    view: int             # index of this member's preprocessing in OnnxPredictor.transforms
    file: Path


def session_options(threads: int | None = None):
    """ORT options: all graph optimisations, `threads` intra-op threads (default: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


class OnnxPredictor:
    """The Predictor interface on ONNX Runtime (CPUExecutionProvider by default)."""

    def __init__(self, export_dir: str | Path, label_names: list[str] | None = None,
                 tuner: ThresholdTuner | None = None, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)):
        self.export_dir = Path(export_dir)
        meta = _atomic.read_json(self.export_dir / "members.json", EXPORT_FOLDER)
        self.precision = meta.get("precision", "fp32")
        if meta.get("format") != EXPORT_FORMAT:
            raise FashionStyleError(f"{self.export_dir}: ONNX export format {meta.get('format')!r} "
                                    f"is not supported (this version reads {EXPORT_FORMAT})")
        exported = _atomic.read_json(self.export_dir / "labels.json", EXPORT_FOLDER)["label_names"]
        self.label_names = list(label_names) if label_names is not None else exported
        if self.label_names != exported:
            raise FashionStyleError(f"{self.export_dir}: exported labels {exported} differ from "
                                    f"the run's {self.label_names}; export the run again")
        thresholds = _atomic.read_json(self.export_dir / "thresholds.json", EXPORT_FOLDER)
        self.tuner = tuner or ThresholdTuner.from_dict(thresholds)
        if len(self.tuner.thresholds_) != len(self.label_names):
            raise FashionStyleError(f"{self.export_dir}: {len(self.tuner.thresholds_)} thresholds "
                                    f"for {len(self.label_names)} labels")
        options = session_options(threads)
        keys: list[tuple] = []
        sessions: dict[Path, Any] = {}  # one session per file, shared by the members that use it
        self.members: list[OnnxMember] = []
        for record in meta["members"]:
            file = self.export_dir / record["file"]
            key = (int(record["image_size"]), tuple(record["mean"]), tuple(record["std"]))
            if key not in keys:
                keys.append(key)
            if file not in sessions:
                sessions[file] = _load_session(file, options, providers)
            self.members.append(OnnxMember(sessions[file], list(record["columns"]), list(record["targets"]),
                                           float(record["weight"]), keys.index(key), file))
        _check_coverage(self.label_names, meta["members"])
        self.transforms = [eval_transform(size, mean, std) for size, mean, std in keys]

    @classmethod
    def from_export(cls, export_dir: str | Path, **kwargs: Any) -> "OnnxPredictor":
        """A predictor on a folder written by export_onnx."""
        return cls(export_dir, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path | RunDir, export_dir: str | Path | None = None,
                 precision: str = "fp32", **kwargs: Any) -> "OnnxPredictor":
        """A predictor on a run; exports it into RUN/onnx/ (or RUN/onnx-int8/) when missing or stale.

        An int8 export is calibrated on the run's validation images. Labels and
        thresholds come from the run itself, so re-tuned thresholds apply.
        """
        run = run if isinstance(run, RunDir) else RunDir.open(run)
        if run.tta() != "none":
            raise FashionStyleError(f"{run.path}: thresholds were tuned with TTA {run.tta()!r}, which the "
                                    "ONNX runtime does not apply; use --runtime torch or re-tune without TTA")
        out = Path(export_dir) if export_dir is not None else run / EXPORT_DIRS[_check_precision(precision)]
        if not export_is_current(run, out, precision):
            export_run(run, out, precision)
        return cls(out, label_names=run.label_names(), tuner=run.thresholds(), **kwargs)

    @property
    def thresholds(self) -> np.ndarray:
        return self.tuner.thresholds_

    def _views(self, image: Image.Image) -> tuple[torch.Tensor, ...]:
        return tuple(t(image) for t in self.transforms)  # one (3, H, W) tensor per preprocessing

    def predict_proba(self, images: Sequence[str | Path], batch_size: int = 64, num_workers: int = 0,
                      progress: bool = False, on_bad: str = "fail") -> np.ndarray:
        """Probabilities (N, L) for image files, in input order.

        With on_bad="skip" an unreadable image gets a row of NaN instead of an error.
        """
        if on_bad not in ("fail", "skip"):
            raise FashionStyleError(f"unknown bad-image policy {on_bad!r}; valid: fail, skip")
        loader = DataLoader(_ViewsDataset(images, self._views, on_bad == "skip"), batch_size=batch_size,
                            num_workers=num_workers, collate_fn=_collate_views)
        out = np.full((len(images), len(self.label_names)), np.nan, np.float32)
        for views, index in tqdm(loader, desc="predict", unit="batch", disable=not progress):
            if len(index):
                out[index] = self._combine(views)
        return out

    def predict_proba_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities (N, L) for decoded PIL images."""
        if not images:
            return np.zeros((0, len(self.label_names)), np.float32)
        views = [self._views(image.convert("RGB")) for image in images]
        return self._combine([torch.stack(v) for v in zip(*views)])

    def predict(self, images: Sequence[str | Path], **kwargs: Any) -> np.ndarray:
        """0/1 labels (N, L) at the run's tuned thresholds."""
        return self.tuner.predict(self.predict_proba(images, **kwargs))

    def _combine(self, views: Sequence[torch.Tensor]) -> np.ndarray:
        arrays = [np.ascontiguousarray(v.numpy(), dtype=np.float32) for v in views]
        outputs: dict[Path, np.ndarray] = {}  # each file run once per batch
        for m in self.members:
            if m.file not in outputs:
                outputs[m.file] = self._forward(m, arrays[m.view])
        parts = [(outputs[m.file], m.columns, m.targets, m.weight) for m in self.members]
        return combine_probs(len(arrays[0]), len(self.label_names), parts)

    @staticmethod
    def _forward(member: OnnxMember, batch: np.ndarray) -> np.ndarray:
        (logits,) = member.session.run([OUTPUT_NAME], {INPUT_NAME: batch})  # (B, outputs)
        return sigmoid(logits)


def _load_session(file: Path, options: Any, providers: Sequence[str]) -> Any:
    import onnxruntime as ort

    if not file.is_file():
        raise FashionStyleError(f"{file}: ONNX model file not found")
    try:
        return ort.InferenceSession(str(file), options, providers=list(providers))
    except Exception as err:  # noqa: BLE001 - a broken file is the user's error
        raise FashionStyleError(f"{file}: not a loadable ONNX model "
                                f"({type(err).__name__}: {str(err)[:200]})") from None


class _ViewsDataset(Dataset):
    """(views of the image (one (3, H, W) tensor per preprocessing) or None if unreadable, row)."""

    def __init__(self, images: Sequence[str | Path], views: Callable, skip_bad: bool):
        self.images = [str(p) for p in images]
        self.views = views
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, ...] | None, int]:
        try:
            return self.views(open_rgb(self.images[index])), index
        except FashionStyleError:
            if not self.skip_bad:
                raise
            return None, index


def _collate_views(items: list) -> tuple[list[torch.Tensor], np.ndarray]:
    good = [(views, i) for views, i in items if views is not None]
    if not good:
        return [], np.zeros(0, np.int64)
    stacked = [torch.stack(v) for v in zip(*(views for views, _ in good))]
    return stacked, np.array([i for _, i in good], np.int64)
