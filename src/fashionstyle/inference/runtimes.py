"""Which engine predicts: PyTorch, ONNX Runtime, or ONNX Runtime on the int8 export.

    predictor = load_predictor("runs/x", "onnx-int8")   # a predictor.BasePredictor, whatever the runtime

Torch-free at import time; an ONNX runtime imports torch only to make a
missing or stale export (onnx_export.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

from fashionstyle.core.choices import RUNTIMES
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunContents, RunDir, run_contents
from fashionstyle.inference.predictor import BasePredictor, PredictSettings, check_tta


def load_predictor(run_dir: str | Path | RunDir | RunContents, runtime: str = "torch", tta: str | None = None,
                   device: str = "auto", decode: str = "auto", operating_point: str | None = None) -> BasePredictor:
    """The run's predictor on `runtime`, deciding at `operating_point` (None: the run's own); an ONNX export
    is made (or redone) first when missing or stale.

    `tta` must be the one the run's thresholds were tuned with (the default); `device` is
    PyTorch's (ONNX Runtime predicts on the CPU).
    """
    precision = RUNTIMES.check(runtime).value  # the ONNX export's; None: PyTorch
    contents = run_contents(run_dir)
    point = contents.point(operating_point)  # an unknown name is refused before a model loads
    if precision is None:
        require_torch("runtime 'torch' needs PyTorch; use --runtime onnx on an exported run")
        from fashionstyle.inference.torch_predictor import Predictor

        predictor: BasePredictor = Predictor.from_run(contents, device=device, tta=tta, decode=decode)
    else:
        if decode == "gpu":
            raise FashionStyleError(f"--decode gpu needs --runtime torch (runtime {runtime!r} predicts on the CPU)")
        from fashionstyle.inference.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor.from_run(contents, ensure_export(contents, runtime, tta), precision, tta=tta)
    predictor.point = point  # the run's own unless named (or an export's default)
    return predictor


def predictor_for(run_dir: str | Path | RunDir | RunContents, settings: PredictSettings, device: str = "auto",
                  decode: str = "auto") -> BasePredictor:
    """load_predictor as `settings` ask (runtime, TTA, operating point), the settings kept on the predictor."""
    predictor = load_predictor(run_dir, settings.runtime, settings.tta, device, decode, settings.operating_point)
    predictor.settings = settings
    return predictor


def ensure_export(contents: RunContents, runtime: str, tta: str | None = None) -> Path | None:
    """The ONNX export folder `runtime` predicts from, made (or redone) first when missing or stale;
    None for PyTorch. Callers that write outputs call it before creating them."""
    precision = RUNTIMES.check(runtime).value
    if precision is None:
        return None
    from fashionstyle.inference.onnx_predictor import EXPORT_DIRS, NO_EXPORT, export_problem

    check_tta(contents, tta)  # before a possibly long export
    run_dir = RunDir(contents.path)
    folder = run_dir / EXPORT_DIRS[precision]
    problem = export_problem(run_dir, folder, precision)
    if problem:
        require_torch(f"{folder}: no current {precision} ONNX export of {contents.path} ({problem}) to serve "
                      f"without PyTorch; run `fashionstyle export {contents.path}` where it is installed")
        from fashionstyle.inference.onnx_export import export_run

        again = "" if problem == NO_EXPORT else " again"
        print(f"{folder}: {problem}; exporting {contents.path} to {precision} ONNX{again}", file=sys.stderr,
              flush=True)
        export_run(run_dir, folder, precision)
    return folder


def require_torch(why: str) -> None:
    """FashionStyleError saying `why` and which extra to install, when PyTorch is not installed."""
    try:
        import torch  # noqa: F401 - what the caller imports next anyway
    except ModuleNotFoundError:
        raise FashionStyleError(f"{why} (or pip install 'fashionstyle[train]')") from None
