"""The flags several commands share, and what they turn into: one wording and one default each."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from typing import Any, Callable, Sequence

from fashionstyle.core.choices import BAD_IMAGE_POLICIES, TTA_MODES
from fashionstyle.core.ranks import ACCELERATORS, STRATEGIES

IMAGE_DIR_HELP = "the folder a label file's relative image paths are read from (default: the label file's folder)"
RUN_IMAGE_DIR_HELP = ("the folder a label file's relative image paths are read from (default: for the file the run "
                      "trained on, the run's own --image-dir; else the label file's folder)")


def config_help(name: str) -> str:
    """The help text of TrainConfig field `name`: one wording for one concept in every command."""
    from fashionstyle.core.config import TrainConfig

    return TrainConfig.__dataclass_fields__[name].metadata["help"]


def config_default(name: str) -> Any:
    """TrainConfig's default of field `name`: every command that shows it uses the one value."""
    from fashionstyle.core.config import TrainConfig

    return TrainConfig.__dataclass_fields__[name].default


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


class OldImagesFlag(argparse.Action):
    """`--images DIR` where it used to name the folder of a label file's images: kept, with a note."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"note: {option_string} DIR is now --image-dir DIR (the folder relative image paths are read "
              "from); --images names the photos to read", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_image_dir(p: argparse.ArgumentParser | argparse._ArgumentGroup, dest: str = "images",
                  help: str = IMAGE_DIR_HELP) -> None:
    """--image-dir DIR, and the old spelling --images DIR as an alias with a one-line note."""
    p.add_argument("--image-dir", dest=dest, default=None, metavar="DIR", help=help)
    p.add_argument("--images", dest=dest, action=OldImagesFlag, default=None, help=argparse.SUPPRESS)


def add_run_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory (from train, cv, fuse or select), exported hub folder, or hub id "
                               "user/name")


def add_label_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--labels, --image-dir and --label-names of a command that reads a label file for a run."""
    p.add_argument("--labels", required=required, help=config_help("labels"))
    add_image_dir(p, help=RUN_IMAGE_DIR_HELP)
    p.add_argument("--label-names", nargs="+", default=None, help=config_help("label_names"))


def allow_several_label_files(p: argparse.ArgumentParser) -> None:
    """Turn the --labels that add_config_args made into `--labels FILE [FILE ...]` (train: merged by
    data/labels/merge.py; the value is then a list)."""
    labels = next(a for a in p._actions if a.dest == "labels")
    labels.nargs, labels.metavar = "+", "FILE"
    labels.help = ("label file(s): JD txt, label CSV, tags CSV, Label Studio export; several are merged into one "
                   "row per photo (matched by resolved path), the later file's labels kept where they differ, "
                   "a split kept where a file gives one")


def add_recursive_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recursive", action="store_true", help="read the sub-folders of a folder of images too")


def add_tta_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="test-time augmentation; must be the one the thresholds were tuned with "
                        "(default: that one; change it with `fashionstyle tune RUN --tta ...`)")


def add_operating_point_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--operating-point", default=None, metavar="NAME",
                   help="decide labels at this operating point of the run (default: its own, the tuned F-beta "
                        "thresholds; make others with `fashionstyle tune RUN --operating-point NAME ...`)")


def add_decode_arg(p: argparse.ArgumentParser) -> None:
    from fashionstyle.core.config import DECODERS

    p.add_argument("--decode", choices=DECODERS, default="auto",
                   help="where JPEGs are decoded: cpu (loader workers, libjpeg-turbo), gpu (nvJPEG, batched; "
                        "CUDA and --runtime torch only), auto (cpu until measured otherwise) (default: auto)")


def add_loader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-bad-image", choices=BAD_IMAGE_POLICIES, default="skip",
                   help="unreadable images: leave out with a warning (default) or stop")
    p.add_argument("--batch-size", type=int_in(1), default=64, help="images per batch (default: 64)")
    p.add_argument("--num-workers", type=int_in(0), default=0,
                   help="data-loading processes (default: 0, decode in the main process)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_placement_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many devices or nodes (as train; torchrun and SLURM launches work too)")
    g.add_argument("--accelerator", default="auto", choices=ACCELERATORS, help="default: auto")
    g.add_argument("--devices", type=int_in(1), default=1, help="processes per node, one device each (default: 1)")
    g.add_argument("--num-nodes", type=int_in(1), default=1, help="nodes (default: 1)")
    g.add_argument("--strategy", default="ddp", choices=STRATEGIES,
                   help="how the ranks are started (default: ddp)")


def add_config_args(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One --option per TrainConfig field, in one argument group per section of the config.

    Their argparse default is None: only options given on the command line override the recipe and YAML.
    """
    from fashionstyle.core.config import GROUPS, RECIPES, TrainConfig

    p.add_argument("--recipe", choices=(*RECIPES, "auto"), default="auto",
                   help="starting values: finetune (ImageNet EfficientNet-Lite0, the whole network, one-cycle "
                        "1e-3), probe (the head alone on the ImageNet backbone's cached features: seconds of "
                        "fitting, best under ~1,000 labelled photos), lp-ft (the head first on frozen features, "
                        "then everything at a lower backbone rate), report (the 2nd-place report: densenet201, "
                        "Adam 1e-5, plateau, batch 46), or auto (the default: probe under 1,000 train photos "
                        "with ImageNet weights, else finetune; it says which, and the run's config records it)")
    groups = {name: p.add_argument_group(f"{name} options", about) for name, about in GROUPS.items()}
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["flag"] or f.name in skip:
            continue  # YAML only (per-label mappings), or a positional argument of the command
        group = groups[f.metadata["group"]]
        if f.name == "images":  # the folder a label file's paths are read from
            add_image_dir(group)
            continue
        _add_config_flag(group, f, hints[f.name], f.metadata["help"] + _defaults_text(f, RECIPES))


def _add_config_flag(group: argparse._ArgumentGroup, f: dataclasses.Field, hint: Any, help_text: str) -> None:
    flag, kind = "--" + f.name.replace("_", "-"), _without_none(hint)
    if kind is bool:
        group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
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
