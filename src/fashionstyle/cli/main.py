"""`fashionstyle <command>`: the command line. Each command is a module of this package with its parser
and its handler side by side; this one builds the parser and says errors in one line.

Commands: stats, cache, train, cv, distill, tune, evaluate, predict, fuse, select, report, audit, serve, export,
download, demo, explain, suggest, round. Run `fashionstyle <command> --help` for each one's options.
"""
from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import sys
import warnings
from functools import partial
from typing import Callable, NamedTuple, Sequence

from fashionstyle.cli import (audit, cache, demo, download, evaluate, explain, export, fuse, predict, report, serve,
                              stats, suggest, train, tune)
from fashionstyle.cli import round as labelling_round
from fashionstyle.cli.parser import Parser, UsageError
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.version import __version__

# Only light modules above: `fashionstyle --help` must not pay for torch, Lightning, timm or matplotlib.
# Each command's `run` imports what it needs.


class Command(NamedTuple):
    add_parser: Callable[[argparse._SubParsersAction], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace], int]
    example: str


COMMANDS: dict[str, Command] = {
    "stats": Command(stats.add_parser, stats.run, stats.EXAMPLE),
    "cache": Command(cache.add_parser, cache.run, cache.EXAMPLE),
    **{name: Command(partial(train.add_parser, name=name), train.run_cv if name == "cv" else train.run,
                     train.EXAMPLE[name]) for name in ("train", "cv", "distill")},
    "tune": Command(tune.add_parser, tune.run, tune.EXAMPLE),
    "evaluate": Command(evaluate.add_parser, evaluate.run, evaluate.EXAMPLE),
    "predict": Command(predict.add_parser, predict.run, predict.EXAMPLE),
    "fuse": Command(partial(fuse.add_parser, name="fuse"), fuse.run, fuse.EXAMPLE["fuse"]),
    "select": Command(partial(fuse.add_parser, name="select"), fuse.run_select, fuse.EXAMPLE["select"]),
    "report": Command(report.add_parser, report.run, report.EXAMPLE),
    "audit": Command(audit.add_parser, audit.run, audit.EXAMPLE),
    "serve": Command(serve.add_parser, serve.run, serve.EXAMPLE),
    "export": Command(export.add_parser, export.run, export.EXAMPLE),
    "download": Command(download.add_parser, download.run, download.EXAMPLE),
    "demo": Command(demo.add_parser, demo.run, demo.EXAMPLE),
    "explain": Command(explain.add_parser, explain.run, explain.EXAMPLE),
    "suggest": Command(suggest.add_parser, suggest.run, suggest.EXAMPLE),
    "round": Command(labelling_round.add_parser, labelling_round.run, labelling_round.EXAMPLE),
}
EXTRAS = {**dict.fromkeys(("torch", "torchvision", "timm", "lightning", "matplotlib", "tensorboard"), "train"),
          **dict.fromkeys(("fastapi", "fastapi_offline", "uvicorn", "multipart", "onnxruntime"), "serve"),
          **dict.fromkeys(("onnx", "onnxscript"), "onnx"),
          "captum": "explain"}  # a missing module -> the extra that installs it
# Errors of the file system a user can cause, and how they are said.
OS_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
             errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
             errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "a file stands where a folder is needed",
             errno.EEXIST: "exists and is not a folder",
             **({errno.EDQUOT: "disk quota exceeded"} if hasattr(errno, "EDQUOT") else {})}
DESCRIPTION = "Recognise fashion styles in clothing photos: train, tune, evaluate, predict, serve, export, explain."
RESUMABLE = ("train", "cv", "distill", "predict", "suggest")  # commands whose --resume continues a killed run


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fashionstyle", description=DESCRIPTION,
                    epilog="example:\n  fashionstyle demo\n  fashionstyle train --labels labels.csv --out runs/mine\n"
                           "  fashionstyle train --help",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fashionstyle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        p = command.add_parser(sub)
        p.epilog = "example:\n" + "\n".join(f"  {line}" for line in command.example.splitlines())
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run(args, argv)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    say = partial(print, f"fashionstyle {args.command}:", file=sys.stderr)
    try:
        return COMMANDS[args.command].run(args)
    except FashionStyleError as err:
        say(f"error: {err}")
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        say(f"error: needs {err.name}, which is not installed; pip install 'fashionstyle[{extra}]'")
    except KeyboardInterrupt as err:  # Ctrl-C, or a training run stopped by SIGTERM (run.RunInterrupted)
        say(_interrupted(args, err))
        return 128 + getattr(err, "signum", signal.SIGINT)
    except BrokenPipeError:  # `fashionstyle stats ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        if err.errno not in OS_ERRORS:
            raise
        where = err.filename or getattr(args, "out", None)  # a full disk's write error names no file
        say(f"error: {f'{where}: ' if where else ''}{OS_ERRORS[err.errno]}")
    except RuntimeError as err:
        if not _worker_killed(err):
            raise
        say(f"error: a data-loading worker was killed (out of memory?): {_first_line(err)}"
            f"{_resume_hint(args, argv)}")
    return 2


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file=None, line: str | None = None) -> None:
    """A library's warning as one line, without its source line."""
    print(f"warning: {str(message).splitlines()[0] if str(message) else category.__name__}", file=sys.stderr)


def _worker_killed(err: RuntimeError) -> bool:
    text = str(err)
    return "DataLoader worker" in text and ("killed" in text or "exited unexpectedly" in text)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _resume_hint(args: argparse.Namespace, argv: list[str]) -> str:
    if args.command not in RESUMABLE:
        return ""
    again = ["fashionstyle", *argv, *([] if "--resume" in argv else ["--resume"])]
    return f"; continue with: {shlex.join(again)}"


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
