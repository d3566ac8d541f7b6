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
      operating_points.json  the run's named points, and the one the folder alone decides at
                          (`export --operating-point NAME`; core/run.py read_points_file)

Each label's probability is the weighted mean of the members that give it,
averaged over the test-time views, exactly as in Predictor; preprocessing is
images.tta_views, numpy's equal of Predictor's uint8 views (pipeline.EvalViews, within
one grey level of rounding: probabilities within 1e-4 on the tests' run). No torch
anywhere: `pip install 'fashionstyle[serve]'` serves an exported run.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.run import RunContents, RunDir, read_points_file, run_contents
from fashionstyle.core.run_checks import checked_label_names
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.files import Preprocessing, resize_size, tta_views
from fashionstyle.inference.predictor import BasePredictor, check_coverage, check_tta, combine_probs

EXPORT_FORMAT = 1
EXPORT_FOLDER = "the ONNX export folder (run `fashionstyle export` first)"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
EXPORT_DIRS = {"fp32": "onnx", "int8": "onnx-int8"}  # precision -> default folder in the run
NO_EXPORT = "no complete export"  # export_problem's answer for a folder without members.json


def check_precision(precision: str) -> str:
    if precision not in EXPORT_DIRS:
        raise FashionStyleError(f"unknown export precision {precision!r}; valid: {', '.join(EXPORT_DIRS)}")
    return precision


_HASHES: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, ctime_ns) -> sha256: hashed once


def source_fingerprint(path: Path) -> dict[str, Any]:
    """What an export records of a file it came from (or wrote), to tell a stale or foreign one:
    its size and the SHA-256 of its bytes (a copy with a new mtime is still current)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)  # ctime: a copy2 too
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return {"size": stat.st_size, "sha256": _HASHES[key]}


def run_sources(run: RunDir) -> dict[str, Any]:
    """Fingerprints of the run's files an export depends on besides its models (None: absent)."""
    return {name: source_fingerprint(run / name) if (run / name).is_file() else None
            for name in ("labels.json", "members.json", "thresholds.json")}


def with_file_fingerprints(meta: dict[str, Any], folder: Path) -> dict[str, Any]:
    """members.json's content with each record's `file_fingerprint` of its ONNX file in `folder`."""
    records = [{**r, "file_fingerprint": source_fingerprint(folder / r["file"])} for r in meta["members"]]
    return {**meta, "members": records}


def export_is_current(run: RunDir, out_dir: str | Path, precision: str = "fp32", opset: int | None = None) -> bool:
    """Whether `out_dir` holds a complete `precision` export of the run's current files (at ONNX `opset`,
    when given): see export_problem."""
    return export_problem(run, out_dir, precision, opset) is None


def export_problem(run: RunDir, out_dir: str | Path, precision: str = "fp32", opset: int | None = None) -> str | None:
    """Why `out_dir` is not a current `precision` export of the run (None when it is): missing, of
    another format, precision or opset, made from other model, label or member files (another run's
    copied in, or the run changed since), or an ONNX file that is not the one exported. The run's own
    thresholds apply at prediction, so re-tuning them does not make an export stale."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "members.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return NO_EXPORT
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        return "an export of another format"
    if meta.get("precision", "fp32") != precision:
        return f"a {meta.get('precision', 'fp32')} export, not {precision}"
    if opset is not None and meta.get("opset") != opset:
        return f"exported at opset {meta.get('opset')}, not {opset}"
    if not isinstance(meta.get("sources"), dict):
        return "exported by an earlier version, without the fingerprints of its run's files"
    sources, now = meta["sources"], run_sources(run)
    for name in ("labels.json", "members.json"):
        if sources.get(name) != now[name]:
            return f"made from another {name} than {run.path}'s (another run's export, or the run changed)"
    members, records = run.members(), meta.get("members", [])
    if len(records) != len(members):
        return f"{len(records)} member models exported, the run has {len(members)}"
    for member, record in zip(members, records):
        problem = _member_problem(run, out, member.model, member.labels, member.weight, record)
        if problem:
            return problem
    return None


def _member_problem(run: RunDir, out: Path, model: Path, labels: list[str], weight: float,
                    record: dict[str, Any]) -> str | None:
    """Why one member's record does not match the run's member (None when it does)."""
    source = Path(model)
    if os.path.relpath(source, run.path) != record.get("source") or not source.is_file():
        return f"made from {record.get('source')}, not {source}"
    if source_fingerprint(source) != record.get("source_fingerprint"):
        return f"made from another {source.name} (another run's export, or the model changed since)"
    if list(labels) != record.get("labels") or float(weight) != record.get("weight"):
        return f"{record.get('file')}: exported for other labels or weights than {run.path}'s members"
    file = out / str(record.get("file"))
    if not file.is_file():
        return f"{file.name} missing"
    if source_fingerprint(file) != record.get("file_fingerprint"):
        return f"{file.name} is not the file exported (replaced since, e.g. by another run's)"
    if record.get("output_width") != len(record.get("outputs", [])):
        return f"{file.name}: no output width recorded for its {len(record.get('outputs', []))} outputs"
    return None


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function, in the logits' float type."""
    logits = np.asarray(logits, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)


def _export_default_point(export_dir: Path, label_names: list[str]) -> OperatingPoint | None:
    """The operating point an export folder names as its default (None: its thresholds.json)."""
    path = export_dir / "operating_points.json"
    if not path.is_file():
        return None
    points, default = read_points_file(path, label_names)
    return points[default] if default is not None else None


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
        labels = self.export_dir / "labels.json"
        exported = checked_label_names(atomic.read_json(labels, EXPORT_FOLDER), labels)
        self.label_names = list(label_names) if label_names is not None else exported
        if self.label_names != exported:
            raise FashionStyleError(f"{self.export_dir}: exported labels {exported} differ from "
                                    f"the run's {self.label_names}; export the run again")
        thresholds = atomic.read_json(self.export_dir / "thresholds.json", EXPORT_FOLDER)
        self.tuner = tuner or ThresholdTuner.from_dict(thresholds, str(self.export_dir / "thresholds.json"))
        if len(self.tuner.thresholds_) != len(self.label_names):
            raise FashionStyleError(f"{self.export_dir}: {len(self.tuner.thresholds_)} thresholds "
                                    f"for {len(self.label_names)} labels")
        if tuner is None:  # the folder alone: it decides at the point `export --operating-point` named
            self.point = _export_default_point(self.export_dir, self.label_names)
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
                _check_exported(file, sessions[file], record)
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
    def from_run(cls, run: str | Path | RunDir | RunContents, export_dir: str | Path | None = None,
                 precision: str = "fp32", tta: str | None = None, **kwargs: Any) -> "OnnxPredictor":
        """A predictor on the run's current export in RUN/onnx/ (or RUN/onnx-int8/, or `export_dir`).

        Labels and thresholds come from the run itself, so re-tuned thresholds
        apply; `tta` must be the one they were tuned with (the default).
        """
        contents = run_contents(run)
        tta = check_tta(contents, tta)
        out = Path(export_dir) if export_dir is not None else contents.path / EXPORT_DIRS[check_precision(precision)]
        problem = export_problem(RunDir(contents.path), out, precision)
        if problem:
            option = "" if precision == "fp32" else f" --quantize {precision}"
            raise FashionStyleError(f"{out}: no current {precision} ONNX export of {contents.path} ({problem}); "
                                    f"run `fashionstyle export {contents.path}{option}`")
        return cls(out, label_names=contents.label_names, tuner=contents.tuner, tta=tta, **kwargs)

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


def _check_exported(file: Path, session: Any, record: dict[str, Any]) -> None:
    """Refuse an ONNX file that is not the one exported (its recorded fingerprint), or whose output
    width is not the number of outputs members.json names (another model's file copied in)."""
    outputs = record.get("outputs") or []
    recorded = record.get("file_fingerprint")
    if recorded and source_fingerprint(file) != recorded:
        raise FashionStyleError(f"{file}: not the file this export wrote (replaced since, e.g. by another "
                                "run's); export the run again")
    width = session.get_outputs()[0].shape[-1]
    expected = record.get("output_width", len(outputs))
    if isinstance(width, int) and (width != expected or (outputs and width != len(outputs))):
        raise FashionStyleError(f"{file}: gives {width} outputs, members.json names {expected} "
                                f"({', '.join(map(str, outputs))}); another model's file? export the run again")
    limit = width if isinstance(width, int) else len(outputs)
    if limit and any(not 0 <= c < limit for c in record["columns"]):
        raise FashionStyleError(f"{file}: members.json columns {record['columns']} out of its {width} outputs")


def _load_session(file: Path, options: Any, providers: Sequence[str]) -> Any:
    import onnxruntime as ort

    if not file.is_file():
        raise FashionStyleError(f"{file}: ONNX model file not found")
    try:
        return ort.InferenceSession(str(file), options, providers=list(providers))
    except Exception as err:  # noqa: BLE001 - a broken file is the user's error
        raise FashionStyleError(f"{file}: not a loadable ONNX model "
                                f"({type(err).__name__}: {str(err)[:200]})") from None
