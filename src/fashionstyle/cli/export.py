"""`fashionstyle export RUN`: ONNX models (fp32 or int8) for fast serving, or a Hugging Face style folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_run_arg, int_in
from fashionstyle.core.choices import EXPORT_FORMATS, QUANTIZATIONS
from fashionstyle.core.errors import FashionStyleError

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
    if args.format == "hub":
        return _export_hub(args)
    precision = "int8" if args.quantize == "int8" else "fp32"
    for flag, given in (("--calibration", args.calibration), ("--force", args.force)):
        if given and precision != "int8":
            raise FashionStyleError(f"{flag} applies to --quantize int8 only")
    return _export_onnx(args, precision)


def _export_onnx(args: argparse.Namespace, precision: str) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, refuse_run_folder
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.images import list_images
    from fashionstyle.inference.onnx_export import EXPORT_DIRS, export_run
    from fashionstyle.inference.quantize import fidelity_problem, format_fidelity, read_fidelity

    run_dir = RunDir.open(args.run)
    out = Path(args.out) if args.out else run_dir / EXPORT_DIRS[precision]
    fp32_export = run_dir / EXPORT_DIRS["fp32"] if precision == "int8" else None  # int8 quantises it
    refuse_overwriting_inputs({"--out": out}, {"run": run_dir.path, "fp32 export": fp32_export})
    refuse_run_folder(out)
    calibration = list_images(args.calibration) if args.calibration else None
    print(f"exporting {run_dir.path} to {precision} ONNX ...", flush=True)
    files = export_run(run_dir, out, precision, opset=args.opset, calibration_images=calibration, force=args.force,
                       operating_point=args.operating_point)
    print(f"{len(files)} {precision} ONNX model(s) written to {out}: {', '.join(f.name for f in files)}"
          + (f"; on its own it decides at operating point {args.operating_point}" if args.operating_point else ""))
    if precision == "int8":
        fidelity = read_fidelity(out)
        print(format_fidelity(fidelity))
        problem = fidelity_problem(fidelity)
        if problem:
            print(f"warning: written only because of --force: {problem}")
    return 0


def _export_hub(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, refuse_run_folder
    from fashionstyle.core.run import RunDir
    from fashionstyle.inference.hub import export_hub

    if args.quantize != "none" or args.calibration or args.force or args.opset is not None:
        raise FashionStyleError("--quantize, --calibration, --force and --opset apply to --format onnx only")
    run_dir = RunDir.open(args.run)
    out = Path(args.out) if args.out else run_dir / "hub"
    refuse_overwriting_inputs({"--out": out}, {"run": run_dir.path})
    refuse_run_folder(out)
    print(f"writing the hub folder of {run_dir.path} ...", flush=True)
    export_hub(run_dir, out, operating_point=args.operating_point)
    print(f"hub folder written to {out}; load it with fashionstyle.load({str(out)!r}) or publish it with "
          f"`hf upload USER/NAME {out}`")
    return 0
