"""Which engine predicts: PyTorch, ONNX Runtime, or ONNX Runtime on the int8 export.

    predictor = load_predictor("runs/x", "onnx-int8")   # same interface as Predictor
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import FashionStyleError

RUNTIMES = {"torch": None, "onnx": "fp32", "onnx-int8": "int8"}  # runtime -> ONNX export precision


def load_predictor(run_dir: str | Path, runtime: str = "torch", tta: str | None = None) -> Any:
    """A Predictor or OnnxPredictor on the run (ONNX exports are made on first use)."""
    if runtime not in RUNTIMES:
        raise FashionStyleError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    if runtime == "torch":
        from .predict import Predictor

        return Predictor.from_run(run_dir, tta=tta)
    if tta not in (None, "none"):
        raise FashionStyleError("the ONNX runtimes do not apply TTA; use --runtime torch")
    from .export import OnnxPredictor

    return OnnxPredictor.from_run(run_dir, precision=RUNTIMES[runtime])
