"""`fashionstyle export RUN`: ONNX models (fp32 or int8) for fast serving, or a Hugging Face style folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_run_arg, int_in
from fashionstyle.core.choices import EXPORT_FORMATS, QUANTIZATIONS, ExportRequest

ABOUT = "export a run's models to ONNX (+ labels, thresholds, members), or a hub folder"
EXAMPLE = ("fashionstyle export runs/lite0 --quantize int8\n"
           "fashionstyle export runs/lite0 --format hub --out hub/lite0")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--out", default=None, help="folder (default: RUN/onnx, or RUN/onnx-int8 with --quantize int8)")
    p.add_argument("--opset", type=int_in(7), default=None,
                   help="ONNX opset of --format onnx (default: 17; --quantize int8 keeps RUN/onnx's own)")
    p.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                   help=f"{QUANTIZATIONS.help()}; refused (nothing written) when it keeps under 99%% of the "
                        "label decisions (quantises RUN/onnx, exporting it first when missing or stale) "
                        "(default: none)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx", help=f"{EXPORT_FORMATS.help()} (default: onnx)")
    p.add_argument("--calibration", default=None,
                   help="int8: a folder of images to calibrate and check on (default: the run's validation images)")
    p.add_argument("--operating-point", default=None, metavar="NAME",
                   help="the run's operating point (`tune --operating-point`) the exported folder decides at "
                        "when loaded on its own (fashionstyle.load(HUB_FOLDER), OnnxPredictor.from_export); the "
                        "run's other points travel with it (default: the run's own thresholds)")
    p.add_argument("--force", action="store_true",
                   help="int8: write the model even when it keeps under 99%% of the label decisions on the "
                        "check images, or when no image was left to check it on (a warning is printed)")
    return p


def run(args: argparse.Namespace) -> int:
    request = ExportRequest(Path(args.out) if args.out else None, args.operating_point, args.opset, args.quantize,
                            args.calibration, args.force)
    for line in EXPORT_FORMATS.implementation(args.format)(args.run, request):
        print(line)
    return 0
