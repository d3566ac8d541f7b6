"""What the prediction flags (predict, evaluate, suggest) turn into: settings objects of the library."""
from __future__ import annotations

import argparse

from fashionstyle.core.errors import FashionStyleError


def predict_settings(args: argparse.Namespace):
    """What predict and evaluate predict with, as given on the command line."""
    from fashionstyle.inference.predictor import PredictSettings

    return PredictSettings(args.runtime, args.tta, getattr(args, "operating_point", None))


def loader_settings(args: argparse.Namespace):
    from fashionstyle.inference.streaming import LoaderSettings

    decode = getattr(args, "decode", LoaderSettings.decode)
    if decode == "gpu":  # before any output is started
        check_gpu_decode(args.runtime, getattr(args, "accelerator", "auto"))
    return LoaderSettings(args.batch_size, args.num_workers, args.on_bad_image,
                          getattr(args, "chunk_size", LoaderSettings.chunk_size), not args.quiet, decode)


def check_gpu_decode(runtime: str, accelerator: str) -> None:
    if runtime != "torch":
        raise FashionStyleError(f"--decode gpu needs --runtime torch (runtime {runtime!r} predicts on the CPU)")
    from fashionstyle.data.images.device_decode import decodes_on_gpu, uses_cuda

    decodes_on_gpu("gpu", uses_cuda(accelerator))


def placement(args: argparse.Namespace):
    from fashionstyle.inference.jobs import Placement

    return Placement(args.accelerator, args.devices, args.num_nodes, args.strategy)


def print_validation(run) -> int:
    """The run's validation table, as train, cv, tune and fuse end with."""
    from fashionstyle.analysis.evaluate import format_scores, score_table
    from fashionstyle.core.run_warnings import read_warnings

    _, probs, targets = run.val_probs()
    scores = score_table(targets, probs, run.thresholds())
    print(format_scores(run.label_names(), scores, title=f"validation ({len(targets)} images)"))
    for line in read_warnings(run):  # e.g. a diverged training, whose table looks like any other
        print(f"warning: {line}")
    return 0
