"""ONNX export of a run: one file per member model, with its labels and thresholds.

    paths = export_onnx("runs/densenet201", "runs/densenet201/onnx")
    paths = export_run(RunDir("runs/densenet201"), "runs/densenet201/onnx-int8", precision="int8")
    predictor = OnnxPredictor.from_export("runs/densenet201/onnx")   # onnx_predictor.py

The folder's layout (model.onnx or member_<k>.onnx, members.json, labels.json,
thresholds.json) is described, and read, in onnx_predictor.py; members.json is
written last, so a folder with it is a complete export.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import torch

from fashionstyle.core import atomic
from fashionstyle.core.choices import EXPORT_FORMATS, ExportRequest
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.overwrite import refuse_overwriting_inputs, refuse_run_folder
from fashionstyle.core.run import RunDir, write_exported_points
from fashionstyle.data.images.files import Preprocessing
from fashionstyle.inference.onnx_predictor import (
    EXPORT_DIRS,
    EXPORT_FOLDER,
    EXPORT_FORMAT,
    INPUT_NAME,
    OUTPUT_NAME,
    check_precision,
    export_is_current,
    run_sources,
    source_fingerprint,
)
from fashionstyle.inference.predictor import check_coverage
from fashionstyle.model.network import StyleNet, load_model

OPSET = 17


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
    fd, tmp = atomic.open_temp(path)  # the umask applies (mkstemp would make it 0600)
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


def export_onnx(run_dir: str | Path | RunDir, out_dir: str | Path, opset: int = OPSET,
                operating_point: str | None = None) -> list[Path]:
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
            written.append(export_model(model, out / files[member.model], Preprocessing.of(record).image_size,
                                        opset))
        records.append({
            "file": files[member.model], "source": os.path.relpath(member.model, run.path),
            "source_fingerprint": source_fingerprint(Path(member.model)),
            "file_fingerprint": source_fingerprint(out / files[member.model]),
            "backbone": record["backbone"], "outputs": list(outputs), "output_width": model.num_labels,
            "columns": [outputs.index(n) for n in member.labels],
            "targets": [names.index(n) for n in member.labels],
            "labels": list(member.labels), "weight": float(member.weight),
            **Preprocessing.of(record).to_record(),
        })
    check_coverage(names, [r["targets"] for r in records])
    atomic.write_json(out / "labels.json", {"label_names": names})
    atomic.write_json(out / "thresholds.json", tuner.to_dict())
    write_exported_points(run.contents(), out, operating_point)
    atomic.write_json(out / "members.json", {"format": EXPORT_FORMAT, "opset": opset,
                                              "run": run.path.resolve().name, "sources": run_sources(run),
                                              "input": INPUT_NAME,
                                              "output": OUTPUT_NAME, "members": records})
    return written


def export_run(run: RunDir, out_dir: str | Path, precision: str = "fp32", opset: int | None = None,
               calibration_images: Sequence[str | Path] | None = None, force: bool = False,
               operating_point: str | None = None) -> list[Path]:
    """Export a run at `precision`: fp32 as export_onnx (at `opset`, default OPSET); int8 quantises the
    run's fp32 export (RUN/onnx/: kept at whatever opset it has unless `opset` is given, refreshed if
    stale), calibrated on `calibration_images` (default: its validation images), and is refused below
    quantize.MIN_LABEL_AGREEMENT unless `force`.
    """
    out, fresh_opset = Path(out_dir), OPSET if opset is None else opset
    run.contents().point(operating_point)  # an unknown name: one line, before anything is written
    if check_precision(precision) == "fp32":
        return export_onnx(run, out, fresh_opset, operating_point)
    from fashionstyle.data.labels.read import val_images
    from fashionstyle.inference.quantize import quantize_export

    fp32 = run / EXPORT_DIRS["fp32"]
    if not export_is_current(run, fp32, opset=opset):
        export_onnx(run, fp32, fresh_opset)
    if calibration_images is None:
        if not (run / "config.yaml").is_file():  # fused and selected runs keep no label file
            raise FashionStyleError(f"{run.path}: no config.yaml to find validation images to calibrate "
                                    f"int8 on; run `fashionstyle export {run.path} --quantize int8 "
                                    "--calibration FOLDER` first")
        calibration_images = val_images(run, run.val_probs()[0], None)
    quantize_export(fp32, out, calibration_images, force=force)
    write_exported_points(run.contents(), out, operating_point)
    records = atomic.read_json(out / "members.json", EXPORT_FOLDER)["members"]
    return [out / file for file in dict.fromkeys(r["file"] for r in records)]


@EXPORT_FORMATS.implements("onnx")
def export_format_onnx(run_path: str | Path, request: ExportRequest) -> list[str]:
    """`fashionstyle export RUN`: fp32 ONNX, or with --quantize int8 its int8 quantisation; the lines to print."""
    precision = "int8" if request.quantize == "int8" else "fp32"
    if precision == "fp32":
        request.refuse_options(("--calibration", "--force"), "--quantize int8")
    run = RunDir.open(run_path)
    out = request.out or run / EXPORT_DIRS[precision]
    fp32_export = run / EXPORT_DIRS["fp32"] if precision == "int8" else None  # int8 quantises it
    refuse_overwriting_inputs({"--out": out}, {"run": run.path, "fp32 export": fp32_export})
    refuse_run_folder(out)
    from fashionstyle.data.images.files import list_images

    calibration = list_images(request.calibration) if request.calibration else None
    print(f"exporting {run.path} to {precision} ONNX ...", flush=True)
    files = export_run(run, out, precision, opset=request.opset, calibration_images=calibration,
                       force=request.force, operating_point=request.operating_point)
    point = f"; on its own it decides at operating point {request.operating_point}" if request.operating_point else ""
    lines = [f"{len(files)} {precision} ONNX model(s) written to {out}: {', '.join(f.name for f in files)}{point}"]
    return lines + (_fidelity_lines(out) if precision == "int8" else [])


def _fidelity_lines(out: Path) -> list[str]:
    """The int8 export's fidelity, and a warning when only --force wrote it."""
    from fashionstyle.inference.quantize import fidelity_problem, format_fidelity, read_fidelity

    fidelity = read_fidelity(out)
    problem = fidelity_problem(fidelity)
    return [format_fidelity(fidelity)] + ([f"warning: written only because of --force: {problem}"] if problem else [])
