"""`fashionstyle train`, `cv` and `distill`: one parser shape (the TrainConfig flags), three trainers."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_config_args, allow_several_label_files, config_help, int_in
from fashionstyle.cli.settings import print_validation

ABOUT = {"train": "train a model (or one per label) into a run directory",
         "cv": "K-fold cross-validation: K models, thresholds tuned out of fold",
         "distill": "train a student on a teacher run's probabilities, with unlabelled images too "
                    "(self-training with --rounds)"}
EXAMPLE = {"train": "fashionstyle train --labels labels.csv --out runs/lite0\n"
                    "fashionstyle train --labels labels.csv --out runs/d201 --recipe report --logger mlflow",
           "cv": "fashionstyle cv --labels labels.csv --folds 5 --out runs/cv5",
           "distill": "fashionstyle distill runs/fused --labels labels.csv --out runs/student\n"
                      "fashionstyle distill runs/lite0 --labels labels.csv --unlabelled catalogue/ --rounds 2 "
                      "--out runs/noisy"}
RESUME_HELP = ("continue the run in --out from its last checkpoint, with its own settings: an option that differs "
               "from them is refused (except --num-workers, --progress, and more --epochs on a constant or "
               "plateau schedule)")


def add_parser(sub: argparse._SubParsersAction, name: str = "train") -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=ABOUT[name], description=ABOUT[name])
    if name == "distill":
        p.add_argument("teacher", help=config_help("teacher"))
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--config", default=None, help="YAML file of config keys (the options below, with _)")
    if name == "cv":
        p.add_argument("--folds", type=int_in(2), default=5, help="folds, one model each (default: 5)")
        p.add_argument("--resume", action="store_true", help="continue the folds not yet finished")
    else:
        p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    add_config_args(p, skip=("teacher",) if name == "distill" else ())
    if name == "train":
        allow_several_label_files(p)
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.api import train
    from fashionstyle.core.ranks import is_secondary_process
    from fashionstyle.data.labels.read import merge_labels
    from fashionstyle.data.labels.read import label_files
    from fashionstyle.training.trackers.mlflow_tracker import check_register
    from fashionstyle.training.trackers.mlflow_tracker import mlflow_line

    config = train_config(args)
    check_register(config.logger, config.register, config.alias)  # before any work
    if len(files := label_files(config.labels)) > 1 and not is_secondary_process():
        merge_labels(files, config.images or None, config.label_names, say=print)  # checked and summed up first
    run_dir = train(config, args.out, resume=args.resume)
    if is_secondary_process():
        return 0  # rank 0 reports
    print(f"run written to {run_dir.path}")
    if line := mlflow_line(run_dir):  # run id, model URI, registered version, how to open the UI
        print(line)
    return print_validation(run_dir)


def run_cv(args: argparse.Namespace) -> int:
    from fashionstyle.api import train
    from fashionstyle.training.trackers.mlflow_tracker import check_register

    config = train_config(args)
    check_register(config.logger, config.register, config.alias)  # before any work
    run_dir = train(config, args.out, resume=args.resume, folds=args.folds)
    print(f"cross-validated run ({args.folds} folds) written to {run_dir.path}; out-of-fold scores:")
    return print_validation(run_dir)


def train_config(args: argparse.Namespace):
    """The TrainConfig the flags, --config and --recipe give; on --resume, the run's own (checked)."""
    from fashionstyle.core import config as config_lib
    from fashionstyle.data.labels.read import join_label_files

    overrides = {f: getattr(args, f) for f in config_lib.field_names() if hasattr(args, f) and f != "recipe"}
    if isinstance(overrides.get("labels"), list):  # train --labels A B: one config value naming both
        overrides["labels"] = join_label_files(overrides["labels"])
    saved = saved_config(args) if args.resume else None
    recipe = args.recipe
    if saved is not None:  # the run's own config: a setting given that differs from it is refused
        recipe = config_lib.read_saved(saved).recipe if recipe == "auto" else recipe
        return config_lib.resume_config(saved, config_lib.requested(args.config, overrides, recipe))
    if recipe == "auto":
        recipe = auto_choice(config_lib.load(args.config, overrides))
    return config_lib.load(args.config, overrides, recipe=recipe)


def auto_choice(config) -> str:
    """The recipe `auto` picks for `config`'s label files, said in one line; finetune, unsaid, when they cannot
    be read (training then refuses them in its own line, after every other setting is checked)."""
    from fashionstyle.core import config as config_lib
    from fashionstyle.core.errors import FashionStyleError

    try:
        photos = train_photos(config)
    except FashionStyleError:
        return "finetune"
    recipe, why = config_lib.auto_recipe(photos, config)
    print(f"recipe auto: {recipe} ({why})", flush=True)
    return recipe


def train_photos(config) -> int:
    """How many photos the train split of `config`'s label files holds (a file without splits: all but the
    validation fraction)."""
    from fashionstyle.data.labels.read import read_labels

    table = read_labels(config.labels, config.images or None, config.label_names)
    if table.splits is None:
        return int(round(len(table) * (1 - config.val_fraction)))
    return sum(1 for split in table.splits if split == "train")


def saved_config(args: argparse.Namespace) -> Path | None:
    """The config.yaml a --resume continues with: the run's (for distill, training.distill knows its
    folders); refuses when nothing was started."""
    from fashionstyle.core.run import RunDir

    if args.command == "distill":
        from fashionstyle.training.distill import saved_student_config

        return saved_student_config(args.out)
    out = Path(args.out)
    if (out / "config.yaml").is_file():
        return out / "config.yaml"
    RunDir(out).require_resumable()
    return None
