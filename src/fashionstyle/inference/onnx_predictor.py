"""OnnxPredictor: the predictor interface on ONNX Runtime, reading a run's ONNX export folder.

    predictor = OnnxPredictor.from_export("runs/x/onnx")        # a folder written by onnx_export.export_onnx
    predictor = OnnxPredictor.from_run("runs/x", precision="int8")   # RUN/onnx-int8, with the run's thresholds
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])           # (N, L), as Predictor's

`from_run` needs a current export; runtimes.load_predictor makes one first
when it is missing or stale. An export folder holds everything needed to
predict without PyTorch models:

    OUT/
      model.onnx          one member: input `images` (B, 3, H, W) float32, output `logits` (B, outputs)
      member_<k>.onnx     ... or one file per member of a single-label / fused run
      members.json        per member: file, columns, targets, labels, weight, image_size, mean, std
      labels.json         the run's label names, in output order
      thresholds.json     the run's tuned thresholds (ThresholdTuner.to_dict)

Each label's probability is the weighted mean of the members that give it,
averaged over the test-time views, exactly as in Predictor; preprocessing is
images.tta_views, numpy's equal of Predictor's uint8 views (pipeline.EvalViews, within
one grey level of rounding: probabilities within 1e-4 on the tests' run). No torch
anywhere: `pip install 'fashionstyle[serve]'` serves an exported run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images import Preprocessing, resize_size, tta_views
from fashionstyle.inference.predictor import BasePredictor, check_coverage, check_tta, combine_probs

EXPORT_FORMAT = 1
EXPORT_FOLDER = "the ONNX export folder (run `fashionstyle export` first)"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
EXPORT_DIRS = {"fp32": "onnx", "int8": "onnx-int8"}  # precision -> default folder in the run


def check_precision(precision: str) -> str:
    if precision not in EXPORT_DIRS:
        raise FashionStyleError(f"unknown export precision {precision!r}; valid: {', '.join(EXPORT_DIRS)}")
    return precision


def source_fingerprint(path: Path) -> dict[str, int]:
    """What members.json records of a member's model file, to tell a stale export."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def export_is_current(run: RunDir, out_dir: str | Path, precision: str = "fp32", opset: int | None = None) -> bool:
    """Whether `out_dir` holds a complete `precision` export of the run's current member models
    (at ONNX `opset`, when given)."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "members.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if meta.get("format") != EXPORT_FORMAT or meta.get("precision", "fp32") != precision:
        return False
    if opset is not None and meta.get("opset") != opset:
        return False
    members = run.members()
    records = meta.get("members", [])
    if len(records) != len(members):
        return False
    for member, record in zip(members, records):
        source = Path(member.model)
        if (os.path.relpath(source, run.path) != record.get("source") or not source.is_file()
                or source_fingerprint(source) != record.get("source_fingerprint")
                or list(member.labels) != record.get("labels")
                or float(member.weight) != record.get("weight")
                or not (out / record["file"]).is_file()):
            return False
    return True


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function, in the logits' float type."""
    logits = np.asarray(logits, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)


def session_options(threads: int | None = None) -> Any:
    """ORT options: all graph optimisations, `threads` intra-op threads (default: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


@dataclass
class OnnxMember:
    session: Any          # onnxruntime.InferenceSession
    columns: list[int]    # which of the model's outputs are used
    targets: list[int]    # ... and which of the run's labels they give
    weight: float
    view: int             # index of this member's preprocessing in OnnxPredictor.transforms
    file: Path


class OnnxPredictor(BasePredictor):
    """The predictor interface on ONNX Runtime (CPUExecutionProvider by default)."""

    def __init__(self, export_dir: str | Path, label_names: list[str] | None = None,
                 tuner: ThresholdTuner | None = None, tta: str = "none", threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)):
        self.export_dir = Path(export_dir)
        self.tta = tta
        meta = atomic.read_json(self.export_dir / "members.json", EXPORT_FOLDER)
        self.precision = meta.get("precision", "fp32")
        if meta.get("format") != EXPORT_FORMAT:
            raise FashionStyleError(f"{self.export_dir}: ONNX export format {meta.get('format')!r} "
                                    f"is not supported (this version reads {EXPORT_FORMAT})")
        exported = atomic.read_json(self.export_dir / "labels.json", EXPORT_FOLDER)["label_names"]
        self.label_names = list(label_names) if label_names is not None else exported
        if self.label_names != exported:
            raise FashionStyleError(f"{self.export_dir}: exported labels {exported} differ from "
                                    f"the run's {self.label_names}; export the run again")
        thresholds = atomic.read_json(self.export_dir / "thresholds.json", EXPORT_FOLDER)
        self.tuner = tuner or ThresholdTuner.from_dict(thresholds)
        if len(self.tuner.thresholds_) != len(self.label_names):
            raise FashionStyleError(f"{self.export_dir}: {len(self.tuner.thresholds_)} thresholds "
                                    f"for {len(self.label_names)} labels")
        options = session_options(threads)
        keys: list[Preprocessing] = []
        sessions: dict[Path, Any] = {}  # one session per file, shared by the members that use it
        self.members: list[OnnxMember] = []
        for record in meta["members"]:
            file = self.export_dir / record["file"]
            key = Preprocessing.of(record)
            if key not in keys:
                keys.append(key)
            if file not in sessions:
                sessions[file] = _load_session(file, options, providers)
            self.members.append(OnnxMember(sessions[file], list(record["columns"]), list(record["targets"]),
                                           float(record["weight"]), keys.index(key), file))
        check_coverage(self.label_names, [m.targets for m in self.members])
        self.transforms = [tta_views(*p, tta) for p in keys]
        self.min_side = max(resize_size(p.image_size) for p in keys)  # as the torch Predictor decodes files

    @classmethod
    def from_export(cls, export_dir: str | Path, **kwargs: Any) -> "OnnxPredictor":
        """A predictor on a folder written by export_onnx (its own labels and thresholds)."""
        return cls(export_dir, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path | RunDir, export_dir: str | Path | None = None,
                 precision: str = "fp32", tta: str | None = None, **kwargs: Any) -> "OnnxPredictor":
        """A predictor on the run's current export in RUN/onnx/ (or RUN/onnx-int8/, or `export_dir`).

        Labels and thresholds come from the run itself, so re-tuned thresholds
        apply; `tta` must be the one they were tuned with (the default).
        """
        run = run if isinstance(run, RunDir) else RunDir.open(run)
        tta = check_tta(run, tta)
        out = Path(export_dir) if export_dir is not None else run / EXPORT_DIRS[check_precision(precision)]
        if not export_is_current(run, out, precision):
            option = "" if precision == "fp32" else f" --quantize {precision}"
            raise FashionStyleError(f"{out}: no current {precision} ONNX export of {run.path} (missing, or "
                                    f"older than its models); run `fashionstyle export {run.path}{option}`")
        return cls(out, label_names=run.label_names(), tuner=run.thresholds(), tta=tta, **kwargs)

    def _predict_views(self, views: Sequence[Any]) -> np.ndarray:
        arrays = [np.ascontiguousarray(v, dtype=np.float32) for v in views]  # (B, T, 3, H, W) each
        outputs: dict[Path, np.ndarray] = {}  # each file runs once per batch
        for m in self.members:
            if m.file not in outputs:
                outputs[m.file] = self._forward(m, arrays[m.view])
        parts = [(outputs[m.file], m.columns, m.targets, m.weight) for m in self.members]
        return combine_probs(len(arrays[0]), len(self.label_names), parts)

    @staticmethod
    def _forward(member: OnnxMember, batch: np.ndarray) -> np.ndarray:
        """Probabilities (B, outputs), averaged over the T test-time views of each image."""
        b, t = batch.shape[:2]
        flat = batch.reshape(b * t, *batch.shape[2:])  # (B*T, 3, H, W)
        (logits,) = member.session.run([OUTPUT_NAME], {INPUT_NAME: flat})  # (B*T, outputs)
        return sigmoid(logits).reshape(b, t, -1).mean(axis=1)


def _load_session(file: Path, options: Any, providers: Sequence[str]) -> Any:
    import onnxruntime as ort

    if not file.is_file():
        raise FashionStyleError(f"{file}: ONNX model file not found")
    try:
        return ort.InferenceSession(str(file), options, providers=list(providers))
    except Exception as err:  # noqa: BLE001 - a broken file is the user's error
        raise FashionStyleError(f"{file}: not a loadable ONNX model "
                                f"({type(err).__name__}: {str(err)[:200]})") from None
