"""`fashionstyle <command>`: the command line. It only parses and orchestrates.

Commands: stats, cache, train, cv, tune, evaluate, predict, fuse, select, report, audit, serve, export, download, demo, explain. Run
`fashionstyle <command> --help` for each one's options.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import errno
import os
import shlex
import signal
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from fashionstyle.core.choices import (
    BAD_IMAGE_POLICIES,
    DEFAULT_RULE,
    EXPORT_FORMATS,
    LABEL_FIXES,
    OUTPUT_FORMATS,
    QUANTIZATIONS,
    RUNTIMES,
    THRESHOLD_RULES,
    TTA_MODES,
)
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.ranks import ACCELERATORS, STRATEGIES

# Only light modules above: `fashionstyle --help` must not pay for torch, Lightning, timm or matplotlib.
# Each command imports what it needs.

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    COMMANDS[func.__name__.removeprefix("cmd_")] = func
    return func


# -- commands ------------------------------------------------------------------
@command
def cmd_stats(args: argparse.Namespace) -> int:
    from fashionstyle.data.label_stats import label_stats
    from fashionstyle.data.labels import label_warnings, read_labels

    table = read_labels(args.labels, args.images, args.label_names)
    for line in label_warnings(table):
        print(f"warning: {line}", file=sys.stderr)
    if table.splits is not None and "train" in table.splits:
        table, scope = table.split("train"), "train split"
    else:
        scope = "all rows"
    print(f"{table.source}: {len(table)} images ({scope}), {len(table.label_names)} labels")
    print(label_stats(table, args.weight_power))
    return 0


@command
def cmd_cache(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.data.cache import INDEX, build_cache
    from fashionstyle.data.images import gather_images
    from fashionstyle.data.labels import read_labels

    source = Path(args.source)
    refuse_overwriting_inputs({"--out": [args.out, Path(args.out) / INDEX]},
                              {"source": source if source.is_file() else None})
    images, left_out = gather_images([source], args.recursive) if source.is_dir() else \
        (read_labels(source, args.images, args.label_names).images, [])
    cache = build_cache(images, args.out, args.image_size, args.num_workers, progress=not args.quiet)
    if left_out:
        print(f"left out {len(left_out)} folder entries that are not images, e.g. {left_out[0][0]} ({left_out[0][1]})")
    size_gb = cache.pixels_file.stat().st_size / 1e9
    print(f"{len(cache.images)} images cached at {cache.size}x{cache.size} in {cache.folder} ({size_gb:.2f} GB); "
          f"{len(cache.bad)} unreadable. Train with --cache {cache.folder} --image-size {args.image_size}")
    return 0


@command
def cmd_train(args: argparse.Namespace) -> int:
    from fashionstyle.core.ranks import is_secondary_process
    from fashionstyle.training.fit import train

    run = train(_train_config(args), args.out, resume=args.resume)
    if is_secondary_process():
        return 0  # rank 0 reports
    print(f"run written to {run.path}")
    return _print_validation(run)


def _train_config(args: argparse.Namespace):
    from fashionstyle.core import config as config_lib

    overrides = {f: getattr(args, f) for f in config_lib.field_names() if hasattr(args, f)}
    saved = _saved_config(args) if args.resume else None
    if saved is not None:  # the run's own config: a setting given that differs from it is refused
        return config_lib.resume_config(saved, config_lib.requested(args.config, overrides, args.recipe))
    return config_lib.load(args.config, overrides, recipe=args.recipe)


def _saved_config(args: argparse.Namespace) -> Path | None:
    """The config.yaml a --resume continues with: the run's, or for distill a round's (OUT.roundK); None
    for a run without one, or a distill stopped in its teacher pass; refuses when nothing was started."""
    from fashionstyle.core.run import RunDir

    out = Path(args.out)
    rounds = sorted(out.parent.glob(f"{out.name}.round*")) if args.command == "distill" else []
    found = [run / "config.yaml" for run in (out, *rounds) if (run / "config.yaml").is_file()]
    if found:
        return found[0]
    if args.command != "distill" or not any(out.parent.glob(f"{out.name}*.teacher")):
        RunDir(out).require_resumable()
    return None


@command
def cmd_distill(args: argparse.Namespace) -> int:
    return cmd_train(args)


@command
def cmd_cv(args: argparse.Namespace) -> int:
    from fashionstyle.training.cv import train_cv

    run = train_cv(_train_config(args), args.out, folds=args.folds, resume=args.resume)
    print(f"cross-validated run ({args.folds} folds) written to {run.path}; out-of-fold scores:")
    return _print_validation(run)


def _print_validation(run) -> int:
    from fashionstyle.analysis.evaluate import format_scores, score_table

    _, probs, targets = run.val_probs()
    scores = score_table(targets, probs, run.thresholds())
    print(format_scores(run.label_names(), scores, title=f"validation ({len(targets)} images)"))
    return 0


@command
def cmd_tune(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.evaluate import tune_run
    from fashionstyle.core.model_card import write_model_card
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels import read_labels

    run = RunDir.open(args.run)
    if args.labels and args.tta in (None, run.tta()):
        raise FashionStyleError(f"--labels {args.labels} is read only to find the validation images that --tta "
                                f"predicts again (the run's TTA is {run.tta()}); without it tune re-tunes on "
                                f"the stored validation probabilities: drop --labels")
    table = read_labels(args.labels, args.images, args.label_names or run.label_names()) if args.labels else None
    tuner = tune_run(run, args.beta, args.tta, table, args.rule)
    write_model_card(run)  # the card shows the new thresholds
    print(f"thresholds re-tuned (beta={args.beta:g}, TTA {run.tta()}, rule {tuner.rule}) and written to "
          f"{run / 'thresholds.json'}")
    return _print_validation(run)


@command
def cmd_evaluate(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.evaluate import evaluate_run, evaluation_split, format_scores
    from fashionstyle.core.model_card import write_model_card
    from fashionstyle.core.ranks import needs_launch
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels import read_labels
    from fashionstyle.inference.jobs import evaluate_probs
    from fashionstyle.inference.runtimes import predictor_for

    run = RunDir.open(args.run)
    loader = _loader(args)  # --decode gpu checked before anything is read
    table = read_labels(args.labels, args.images, args.label_names or run.label_names())
    split = evaluation_split(run, table, args.split)
    part = table.split(split)
    suffix = "" if args.runtime == "torch" else f"_{args.runtime}"  # keep each runtime's scores
    probs = None
    if needs_launch(args.devices, args.num_nodes):
        probs = evaluate_probs(run, part, split, _predict_settings(args), loader, _placement(args))
        if probs is None:
            return 0  # rank 0 scores
    scores = evaluate_run(run, part, split, progress=not args.quiet, batch_size=args.batch_size,
                          num_workers=args.num_workers, on_bad=args.on_bad_image, suffix=suffix,
                          predictor=predictor_for(run.path, _predict_settings(args), decode=args.decode),
                          probs=probs)
    print(format_scores(scores["label_names"], scores, title=f"{split} ({scores['n_images']} images)"))
    if scores["skipped_images"]:
        print(f"skipped {scores['skipped_images']} unreadable images (--on-bad-image fail to stop instead)")
    print(f"all-positive baseline macro F{scores['beta']:g}: {scores['all_positive_macro_fbeta']:.3f}")
    print(f"written to {run / f'eval_{split}{suffix}.json'}")
    write_model_card(run)  # with the test scores
    return 0


@command
def cmd_predict(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, run_inputs
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.image_source import ImageSource
    from fashionstyle.inference.jobs import predict_job
    from fashionstyle.inference.outputs import output_format

    run = RunDir.open(args.run)
    fmt = output_format(args.out, args.format)
    refuse_overwriting_inputs({"--out": [args.out, f"{args.out}.skipped.txt"]},
                              {"--images": args.images, "--image-dir": args.image_dir, "run": run_inputs(run)})
    source = ImageSource.open(args.images, args.image_dir, args.recursive)
    done = predict_job(run, source, args.out, fmt, _predict_settings(args), _loader(args), args.resume,
                       _placement(args))
    if done is None:
        return 0  # rank 0 merges and reports
    print(f"{done.kept} predictions ({fmt}) written to {done.path}")
    left = [f"{n} {what}" for n, what in ((done.unreadable, "unreadable images"),
                                          (done.left_out, "folder entries that are not images")) if n]
    if left:
        print(f"left out {' and '.join(left)}, listed with the reason in {done.path}.skipped.txt")
    return 0


def _predict_settings(args: argparse.Namespace):
    """What predict and evaluate predict with, as given on the command line."""
    from fashionstyle.inference.predictor import PredictSettings

    return PredictSettings(args.runtime, args.tta)


def _loader(args: argparse.Namespace):
    from fashionstyle.inference.streaming import LoaderSettings

    decode = getattr(args, "decode", LoaderSettings.decode)
    if decode == "gpu":  # before any output is started
        _check_gpu_decode(args.runtime, getattr(args, "accelerator", "auto"))
    return LoaderSettings(args.batch_size, args.num_workers, args.on_bad_image,
                          getattr(args, "chunk_size", LoaderSettings.chunk_size), not args.quiet, decode)


def _check_gpu_decode(runtime: str, accelerator: str) -> None:
    if runtime != "torch":
        raise FashionStyleError(f"--decode gpu needs --runtime torch (runtime {runtime!r} predicts on the CPU)")
    import torch

    from fashionstyle.data.pipeline import decodes_on_gpu

    decodes_on_gpu("gpu", accelerator != "cpu" and torch.cuda.is_available())


def _placement(args: argparse.Namespace):
    from fashionstyle.inference.jobs import Placement

    return Placement(args.accelerator, args.devices, args.num_nodes, args.strategy)


@command
def cmd_fuse(args: argparse.Namespace) -> int:
    from fashionstyle.training.fusion import fuse_runs

    fused = fuse_runs(args.runs, args.out, args.weights, args.beta)
    print(f"fused run of {len(args.runs)} runs written to {fused.path}")
    return _print_validation(fused)


@command
def cmd_select(args: argparse.Namespace) -> int:
    from fashionstyle.training.selection import select_runs, selection_table

    selected = select_runs(args.runs, args.out, beta=args.beta, max_rounds=args.max_rounds)
    print(f"per-label selection of {len(args.runs)} runs written to {selected.path}")
    print(selection_table(selected))
    return 0


@command
def cmd_report(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.report import write_report
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels import read_labels

    refuse_overwriting_inputs({"--out": [args.out, Path(args.out) / "index.html"]},
                              {"--labels": args.labels, "--audit": args.audit})
    table = None
    if args.labels:  # the image grids and the training split of the label statistics
        table = read_labels(args.labels, args.images, args.label_names or RunDir.open(args.run).label_names())
    page = write_report(args.run, args.out, compare=args.compare, labels=table, audit=args.audit)
    print(f"report written to {page}")
    return 0


@command
def cmd_audit(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.audit import audit_run, write_issues
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, run_inputs
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels import read_labels
    from fashionstyle.data.relabel import write_cleaned

    if (args.fix is None) != (args.cleaned is None):
        raise FashionStyleError("--fix and --cleaned go together: --fix flip|drop --cleaned OUT")
    run = RunDir.open(args.run)
    refuse_overwriting_inputs({"--out": args.out, "--cleaned": args.cleaned},
                              {"--labels": args.labels, "run": run_inputs(run)})
    if args.cleaned and Path(args.cleaned).resolve() == Path(args.out).resolve():
        raise FashionStyleError(f"{args.cleaned}: is also --out; write the cleaned copy elsewhere")
    table = read_labels(args.labels, args.images, args.label_names or run.label_names())
    issues, notes = audit_run(run, table, args.top)
    for note in notes:
        print(f"note: {note}")
    path = write_issues(args.out, issues)
    flagged = sum(i.flagged for i in issues)
    print(f"{len(issues)} suspect (image, label) pairs ({flagged} flagged by cleanlab) written to {path}")
    if args.fix:
        cleaned = write_cleaned(table, [(i.row, i.label) for i in issues], args.fix, args.cleaned)
        what = "flipped" if args.fix == "flip" else f"dropped ({len({i.row for i in issues})} images)"
        print(f"cleaned copy of {table.source} with those pairs {what} written to {cleaned}")
    return 0


@command
def cmd_serve(args: argparse.Namespace) -> int:
    from fashionstyle.serving.app import serve

    serve(args.run, host=args.host, port=args.port, header_timeout=args.header_timeout, max_bytes=args.max_bytes,
          max_images=args.max_images, runtime=args.runtime, max_pixels=args.max_pixels,
          max_request_pixels=args.max_request_pixels, decoders=args.decoders, label_info=args.label_info)
    return 0


@command
def cmd_export(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, refuse_run_folder
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.images import list_images
    from fashionstyle.inference.onnx_export import EXPORT_DIRS, export_run
    from fashionstyle.inference.quantize import fidelity_problem, format_fidelity, read_fidelity

    if args.format == "hub":
        return _export_hub(args)
    precision = "int8" if args.quantize == "int8" else "fp32"
    for flag, given in (("--calibration", args.calibration), ("--force", args.force)):
        if given and precision != "int8":
            raise FashionStyleError(f"{flag} applies to --quantize int8 only")
    run = RunDir.open(args.run)
    out = Path(args.out) if args.out else run / EXPORT_DIRS[precision]
    fp32_export = run / EXPORT_DIRS["fp32"] if precision == "int8" else None  # int8 quantises it
    refuse_overwriting_inputs({"--out": out}, {"run": run.path, "fp32 export": fp32_export})
    refuse_run_folder(out)
    calibration = list_images(args.calibration) if args.calibration else None
    files = export_run(run, out, precision, opset=args.opset, calibration_images=calibration,
                       force=args.force)
    print(f"{len(files)} {precision} ONNX model(s) written to {out}: {', '.join(f.name for f in files)}")
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
    run = RunDir.open(args.run)
    out = Path(args.out) if args.out else run / "hub"
    refuse_overwriting_inputs({"--out": out}, {"run": run.path})
    refuse_run_folder(out)
    export_hub(run, out)
    print(f"hub folder written to {out}; load it with fashionstyle.load({str(out)!r}) or publish it with "
          f"`huggingface-cli upload USER/NAME {out}`")
    return 0


@command
def cmd_download(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.data.download import FAILURES_CSV, download_images, format_summary, read_url_list

    refuse_overwriting_inputs({"--out": [args.out, Path(args.out) / FAILURES_CSV]}, {"list": args.list})
    summary = download_images(read_url_list(args.list), args.out, workers=args.num_workers,
                              retries=args.retries, timeout=args.timeout, progress=not args.quiet)
    print(format_summary(summary))
    return 1 if summary.failed else 0


@command
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), n_images=args.n_images, epochs=args.epochs, seed=args.seed)


@command
def cmd_explain(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.explain_page import explain_run
    from fashionstyle.core import atomic
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.data.images import gather_images
    from fashionstyle.inference.outputs import csv_text

    images, left_out = gather_images(args.images, args.recursive)
    refuse_overwriting_inputs({"--out": args.out}, {"--images": images})  # it writes only new names inside --out
    page = explain_run(args.run, images, args.out, args.labels_to_show, args.label or ())
    print(f"heat maps of {len(images)} image(s) written; open {page}")
    if left_out:
        skipped = atomic.write_text(Path(args.out) / "skipped.txt", csv_text(left_out))
        print(f"left out {len(left_out)} folder entries that are not images, listed with the reason in {skipped}")
    return 0


# -- argument parsing ----------------------------------------------------------
EXTRAS = {**dict.fromkeys(("torch", "torchvision", "timm", "lightning", "matplotlib", "tensorboard"), "train"),
          **dict.fromkeys(("fastapi", "fastapi_offline", "uvicorn", "multipart", "onnxruntime"), "serve"),
          **dict.fromkeys(("onnx", "onnxscript"), "onnx"),
          "captum": "explain"}  # a missing module -> the extra that installs it


def _config_help(name: str) -> str:
    """The help text of TrainConfig field `name`: one wording for one concept in every command."""
    from fashionstyle.core.config import TrainConfig

    return TrainConfig.__dataclass_fields__[name].metadata["help"]


def _config_default(name: str) -> Any:
    """TrainConfig's default of field `name`: every command that shows it uses the one value."""
    from fashionstyle.core.config import TrainConfig

    return TrainConfig.__dataclass_fields__[name].default


def _add_label_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--labels", required=required, help=_config_help("labels"))
    p.add_argument("--images", default=None, help=_config_help("images"))
    p.add_argument("--label-names", nargs="+", default=None, help=_config_help("label_names"))


def _add_config_args(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One --option per TrainConfig field, in one argument group per section of the config.

    Their argparse default is None: only options given on the command line override the recipe and YAML.
    """
    from fashionstyle.core.config import GROUPS, RECIPES, TrainConfig

    p.add_argument("--recipe", choices=tuple(RECIPES), default="finetune",
                   help="starting values: finetune (the defaults: ImageNet EfficientNet-Lite0, one-cycle 1e-3) "
                        "or report (the 2nd-place report: densenet201, Adam 1e-5, plateau, batch 46)")
    groups = {name: p.add_argument_group(f"{name} options", about) for name, about in GROUPS.items()}
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["flag"] or f.name in skip:
            continue  # YAML only (per-label mappings), or a positional argument of the command
        group, flag = groups[f.metadata["group"]], "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"] + _defaults_text(f, RECIPES)
        kind = _without_none(hints[f.name])
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        elif typing.get_origin(kind) is list:  # repeatable, each time one or more values
            group.add_argument(flag, dest=f.name, nargs="+", action="extend", default=None, metavar="NAME",
                               choices=f.metadata["choices"], help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=kind, choices=f.metadata["choices"], default=None,
                               help=help_text)


def _defaults_text(f: dataclasses.Field, recipes: dict[str, dict[str, Any]]) -> str:
    """' (default: 0.001; --recipe report: 1e-05)'; '' for an unset default a help text explains."""
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    shown = " ".join(default) if isinstance(default, list) else default
    parts = [] if default in (None, "") else [f"default: {shown}"]
    parts += [f"--recipe {name}: {values[f.name]}" for name, values in recipes.items()
              if values.get(f.name, default) != default]
    return f" ({'; '.join(parts)})" if parts else ""


def _without_none(hint: Any) -> Any:
    """`float` for `float | None`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def _add_tta_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="test-time augmentation; must be the one the thresholds were tuned with "
                        "(default: that one; change it with `fashionstyle tune RUN --tta ...`)")


def _add_decode_arg(p: argparse.ArgumentParser) -> None:
    from fashionstyle.core.config import DECODERS

    p.add_argument("--decode", choices=DECODERS, default="auto",
                   help="where JPEGs are decoded: cpu (loader workers, libjpeg-turbo), gpu (nvJPEG, batched; "
                        "CUDA and --runtime torch only), auto (cpu until measured otherwise) (default: auto)")


def _add_loader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-bad-image", choices=BAD_IMAGE_POLICIES, default="skip",
                   help="unreadable images: leave out with a warning (default) or stop")
    p.add_argument("--batch-size", type=int_in(1), default=64, help="images per batch (default: 64)")
    p.add_argument("--num-workers", type=int_in(0), default=0,
                   help="data-loading processes (default: 0, decode in the main process)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_placement_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many devices or nodes (as train; torchrun and SLURM launches work too)")
    g.add_argument("--accelerator", default="auto", choices=ACCELERATORS, help="default: auto")
    g.add_argument("--devices", type=int_in(1), default=1, help="processes per node, one device each (default: 1)")
    g.add_argument("--num-nodes", type=int_in(1), default=1, help="nodes (default: 1)")
    g.add_argument("--strategy", default="ddp", choices=STRATEGIES,
                   help="how the ranks are started (default: ddp)")


def _add_recursive_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recursive", action="store_true", help="read the sub-folders of a folder of images too")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (no upper bound without `high`)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _add_run_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory (from train, cv, fuse or select)")


class UsageError(Exception):
    """A command line argparse refuses, as one line (argparse would print the whole usage first)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}; see {self.prog} --help")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self._command_parser(getattr(parsed, "command", None))
            hints = [_did_you_mean(u, command) for u in unknown]
            command.error(f"unrecognized arguments: {' '.join(unknown)}" + "".join(h for h in hints if h))
        return parsed

    def _command_parser(self, command: str | None) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                return action.choices[command]
        return self


def _did_you_mean(token: str, parser: argparse.ArgumentParser) -> str:
    """' (did you mean --image-size?)' for a flag close to one of `parser`'s, else ''."""
    if not token.startswith("-"):
        return ""
    flags = [o for a in parser._actions for o in a.option_strings if a.help != argparse.SUPPRESS]
    close = difflib.get_close_matches(token.split("=")[0], flags, n=2, cutoff=0.7)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fashionstyle", description=__doc__.splitlines()[0],
                    epilog="example:\n  fashionstyle demo\n  fashionstyle train --labels labels.csv --out runs/mine\n"
                           "  fashionstyle train --help",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("stats", help="label counts, ratios and loss weights")
    p.add_argument("labels", help=_config_help("labels"))
    p.add_argument("--images", default=None, help=_config_help("images"))
    p.add_argument("--label-names", nargs="+", default=None, help=_config_help("label_names"))
    power = _config_default("weight_power")
    p.add_argument("--weight-power", type=float, default=power,
                   help=f"{_config_help('weight_power')} (default: {power}, as train's)")

    p = sub.add_parser("cache", help="decode and resize images once into a memory-mapped cache for training")
    p.add_argument("source", help="a label file (JD txt, label CSV or tags CSV) or a folder of images")
    _add_recursive_arg(p)
    p.add_argument("--images", default=None, help=_config_help("images"))
    p.add_argument("--label-names", nargs="+", default=None, help=_config_help("label_names"))
    p.add_argument("--image-size", type=int_in(1), required=True, help="the training image size it serves")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--num-workers", type=int_in(0), default=2, help="decoding processes (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    for name, about in (("train", "train a model (or one per label) into a run directory"),
                        ("cv", "K-fold cross-validation: K models, thresholds tuned out of fold"),
                        ("distill", "train a student on a teacher run's probabilities, with unlabelled images "
                                    "too (self-training with --rounds)")):
        p = sub.add_parser(name, help=about, description=about)
        if name == "distill":
            p.add_argument("teacher", help=_config_help("teacher"))
        p.add_argument("--out", required=True, help="run directory to create")
        p.add_argument("--config", default=None, help="YAML file of config keys (the options below, with _)")
        if name == "cv":
            p.add_argument("--folds", type=int, default=5, help="folds, one model each (default: 5)")
            p.add_argument("--resume", action="store_true", help="continue the folds not yet finished")
        else:
            p.add_argument("--resume", action="store_true",
                           help="continue the run in --out from its last checkpoint, with its own settings: "
                                "an option that differs from them is refused (except --num-workers, --progress, "
                                "and more --epochs on a constant or plateau schedule)")
        _add_config_args(p, skip=("teacher",) if name == "distill" else ())

    p = sub.add_parser("tune", help="re-tune per-label thresholds from validation probabilities")
    _add_run_arg(p)
    p.add_argument("--beta", type=float, default=2.0, help="F-beta to tune the thresholds for (default: 2)")
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="predict validation again with this TTA and tune on that (default: keep the run's)")
    p.add_argument("--rule", choices=THRESHOLD_RULES, default=None,
                   help=f"{THRESHOLD_RULES.help()} (default: the run's own, as its thresholds.json says; "
                        f"{DEFAULT_RULE} for a run without)")
    _add_label_args(p, required=False)

    p = sub.add_parser("evaluate", help="per-label precision/recall/F2 at 0.5 and tuned thresholds")
    _add_run_arg(p)
    _add_label_args(p)
    p.add_argument("--split", default=None,
                   help="train, val, test or all (default: test; all rows of a file without a split column)")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="score another runtime's predictions (eval_<split>_<runtime>.json)")
    _add_decode_arg(p)
    _add_tta_arg(p)
    _add_loader_args(p)
    _add_placement_args(p)

    p = sub.add_parser("predict", help="predict styles for a folder or a list of images")
    _add_run_arg(p)
    p.add_argument("--images", required=True, help="a folder of images, one image, or a list (JD id,url / CSV)")
    p.add_argument("--image-dir", default=None, help="where a list's images are (default: its folder)")
    _add_recursive_arg(p)
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                   help=f"{OUTPUT_FORMATS.help()} (default: from --out's extension, "
                        f"{', '.join(c.value for c in OUTPUT_FORMATS.values())}; else jd)")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help=f"{RUNTIMES.help()} (default: torch)")
    _add_decode_arg(p)
    _add_tta_arg(p)
    _add_loader_args(p)
    p.add_argument("--chunk-size", type=int_in(1), default=10_000,
                   help="images per part file: the output is written chunk by chunk into OUT.parts/, then "
                        "merged (default: 10000)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed prediction after its last complete chunk (same settings)")
    _add_placement_args(p)

    p = sub.add_parser("fuse", help="average the probabilities of several runs into a new run")
    p.add_argument("runs", nargs="+", help="run directories with the same labels")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one weight per run (default: equal)")
    p.add_argument("--beta", type=float, default=None, help="F-beta for the re-tuned thresholds (default: the runs')")

    p = sub.add_parser("select", help="choose runs per label greedily (repeats allowed) into a new run")
    p.add_argument("runs", nargs="+", help="candidate run directories with the same labels")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--beta", type=float, default=2.0, help="F-beta to maximise and tune thresholds for (default: 2)")
    p.add_argument("--max-rounds", type=int_in(0), default=10,
                   help="most additions per label after its best single run (default: 10)")

    p = sub.add_parser("report", help="an HTML page: headline scores, figures and, with --labels, image grids")
    _add_run_arg(p)
    p.add_argument("--out", required=True, help="folder for index.html and its PNG figures")
    p.add_argument("--compare", nargs="+", default=(), help="other runs to show side by side")
    _add_label_args(p, required=False)  # --labels: the grids' images, and the label statistics' training split
    p.add_argument("--audit", default=None,
                   help="issues.csv of `fashionstyle audit`: show its most suspect labels (default: RUN/issues.csv)")

    p = sub.add_parser("audit", help="rank likely wrong labels with cleanlab on held-out probabilities")
    p.add_argument("run", help="run directory, best from cv (its out-of-fold probabilities cover every labelled "
                               "image; a train run's cover its validation split only)")
    _add_label_args(p)
    p.add_argument("--out", required=True, help="CSV of suspect (image, label) pairs, most suspect first")
    p.add_argument("--top", type=int_in(1), default=None,
                   help="list the K most suspect pairs, flagged or not (default: the pairs cleanlab flags)")
    p.add_argument("--fix", choices=LABEL_FIXES, default=None,
                   help="with --cleaned: flip the listed pairs' labels, or drop the images they name")
    p.add_argument("--cleaned", default=None, help="the cleaned copy of the label file to write (same format)")

    p = sub.add_parser("serve", help="HTTP API and web page for a run (POST /predict, GET /docs)")
    _add_run_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    p.add_argument("--port", type=int_in(0, 65535), default=8000, help="port (default: 8000)")
    p.add_argument("--max-bytes", type=int, default=10_000_000, help="largest request body (default: 10 MB)")
    p.add_argument("--max-images", type=int, default=16, help="most images per request (default: 16)")
    p.add_argument("--max-pixels", type=int, default=50_000_000,
                   help="largest image, in pixels, read from its header (default: 50M; at most Pillow's ~89M)")
    p.add_argument("--max-request-pixels", type=int, default=200_000_000,
                   help="most pixels of all of one request's images (default: 200M)")
    p.add_argument("--decoders", type=int, default=2,
                   help="most requests decoding images at once; each adds about one --max-pixels image "
                        "(4 bytes a pixel) to peak memory (default: 2)")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help=f"{RUNTIMES.help()} (default: torch)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection may take to send a request's line and headers, from its opening "
                        "or its previous response; then it is closed (default: 10)")
    p.add_argument("--label-info", default=None, metavar="FILE.csv",
                   help="CSV with the header label,description: each style's description, shown on hover in "
                        "the page and returned by GET /labels (default: built-in descriptions of the 13 JD styles "
                        "when the run's labels are those)")

    p = sub.add_parser("export", help="export a run's models to ONNX (+ labels, thresholds, members)")
    _add_run_arg(p)
    p.add_argument("--out", default=None, help="folder (default: RUN/onnx, or RUN/onnx-int8 with --quantize int8)")
    p.add_argument("--opset", type=int_in(7), default=None,
                   help="ONNX opset of --format onnx (default: 17; --quantize int8 keeps RUN/onnx's own)")
    p.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                   help=f"{QUANTIZATIONS.help()}; refused (nothing written) when it keeps under 99%% of the "
                        "label decisions (quantises RUN/onnx, exporting it first when missing or stale) "
                        "(default: none)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx",
                   help=f"{EXPORT_FORMATS.help()} (default: onnx)")
    p.add_argument("--calibration", default=None,
                   help="int8: a folder of images to calibrate and check on (default: the run's validation images)")
    p.add_argument("--force", action="store_true",
                   help="int8: write the model even when it keeps under 99%% of the label decisions on the "
                        "check images, or when no image was left to check it on (a warning is printed)")

    p = sub.add_parser("download", help="fetch the images of a JD id,url list")
    p.add_argument("list", help="JD id,url list (train or test file)")
    p.add_argument("--out", required=True, help="image folder (<id>.jpg); images already there are skipped, so a "
                   "second run resumes; failures go to download_failures.csv")
    p.add_argument("--num-workers", type=int_in(1), default=16, help="parallel downloads (default: 16)")
    p.add_argument("--retries", type=int_in(0), default=4,
                   help="retries of a transient failure, with backoff (default: 4)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds for one attempt at one file, connecting and reading the whole body, so a stalled "
                        "or trickling server is cut off; a file takes at most (retries + 1) x timeout plus backoff "
                        "(default: 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("demo", help="synthetic outfits: train, tune, evaluate on the CPU")
    p.add_argument("--out", default="demo_run", help="folder for the data and the run (default: demo_run)")
    p.add_argument("--n-images", type=int_in(50), default=1500, help="synthetic images (default: 1500)")
    p.add_argument("--epochs", type=int_in(1), default=8, help="training epochs (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default: 0)")

    p = sub.add_parser("explain", help="Grad-CAM heat maps: where each style's evidence lies in images")
    _add_run_arg(p)
    p.add_argument("--images", nargs="+", required=True, help="image files or folders of images to explain")
    _add_recursive_arg(p)
    p.add_argument("--out", required=True, help="folder for index.html and the overlay PNGs")
    p.add_argument("--labels-to-show", type=int_in(1), default=3,
                   help="most labels per image: the --label ones, then the predicted ones (default: 3)")
    p.add_argument("--label", action="append", help="a label to show whether predicted or not (repeatable)")
    _add_examples(sub)
    return parser


EXAMPLES = {  # command -> what `fashionstyle COMMAND --help` ends with
    "stats": "fashionstyle stats labels.csv",
    "cache": "fashionstyle cache labels.csv --image-size 224 --out cache/224",
    "train": "fashionstyle train --labels labels.csv --out runs/lite0\n"
             "fashionstyle train --labels labels.csv --out runs/d201 --recipe report --logger mlflow",
    "cv": "fashionstyle cv --labels labels.csv --folds 5 --out runs/cv5",
    "distill": "fashionstyle distill runs/fused --labels labels.csv --out runs/student\n"
               "fashionstyle distill runs/lite0 --labels labels.csv --unlabelled catalogue/ --rounds 2 --out runs/noisy",
    "tune": "fashionstyle tune runs/lite0 --tta flip",
    "evaluate": "fashionstyle evaluate runs/lite0 --labels labels.csv --split test",
    "predict": "fashionstyle predict runs/lite0 --images photos/ --out tags.csv\n"
               "fashionstyle predict runs/lite0 --images catalogue.csv --out tags.parquet --resume",
    "fuse": "fashionstyle fuse runs/lite0 runs/lite1 runs/lite2 --out runs/fused",
    "select": "fashionstyle select runs/lite0 runs/lite1 runs/lite2 --out runs/selected",
    "report": "fashionstyle report runs/lite0 --labels labels.csv --out report/",
    "audit": "fashionstyle audit runs/cv5 --labels labels.csv --out issues.csv",
    "serve": "fashionstyle serve runs/lite0 --port 8000",
    "export": "fashionstyle export runs/lite0 --quantize int8\n"
              "fashionstyle export runs/lite0 --format hub --out hub/lite0",
    "download": "fashionstyle download test.txt --out images/",
    "demo": "fashionstyle demo",
    "explain": "fashionstyle explain runs/lite0 --images a.jpg photos/ --out maps/",
}


def _add_examples(sub: argparse._SubParsersAction) -> None:
    for name, p in sub.choices.items():
        p.epilog = "example:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name].splitlines())
        p.formatter_class = argparse.RawDescriptionHelpFormatter


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return COMMANDS[args.command](args)
    except FashionStyleError as err:
        print(f"fashionstyle {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"fashionstyle {args.command}: error: needs {err.name}, which is not installed; "
              f"pip install 'fashionstyle[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C, or a training run stopped by SIGTERM (run.RunInterrupted)
        print(f"fashionstyle {args.command}: {_interrupted(args, err)}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    except BrokenPipeError:  # `fashionstyle stats ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        if err.errno not in OS_ERRORS:
            raise
        where = err.filename or getattr(args, "out", None)  # a full disk's write error names no file
        print(f"fashionstyle {args.command}: error: {f'{where}: ' if where else ''}{OS_ERRORS[err.errno]}",
              file=sys.stderr)
        return 2


# Errors of the file system a user can cause, and how they are said.
OS_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
             errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
             errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "a file stands where a folder is needed",
             errno.EEXIST: "exists and is not a folder",
             **({errno.EDQUOT: "disk quota exceeded"} if hasattr(errno, "EDQUOT") else {})}


def _interrupted(args: argparse.Namespace, err: KeyboardInterrupt) -> str:
    """'interrupted', and for a training run left resumable, the command that resumes it."""
    if not hasattr(err, "signum"):
        return "interrupted"
    again = ["fashionstyle", args.command, *([args.teacher] if args.command == "distill" else []), "--out",
             args.out, "--resume"]
    if args.command == "cv":
        again += ["--folds", str(args.folds)]
    return (f"stopped by {signal.Signals(err.signum).name} before the run finished; "
            f"resume it with: {shlex.join(again)}")


if __name__ == "__main__":
    sys.exit(main())
