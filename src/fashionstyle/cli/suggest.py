"""`fashionstyle suggest RUN --images CATALOGUE --n 200 --out to_label.csv`: the photos worth labelling next."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import add_decode_arg, add_loader_args, add_recursive_arg, add_run_arg, add_operating_point_arg, add_tta_arg, int_in
from fashionstyle.cli.settings import loader_settings, predict_settings
from fashionstyle.core.choices import RUNTIMES
from fashionstyle.core.ranks import ACCELERATORS

ABOUT = "choose the unlabelled photos a label would teach the model most (a label file to fill in)"
EXAMPLE = ("fashionstyle suggest runs/lite0 --images catalogue.csv --n 200 --out to_label.csv\n"
           "fashionstyle suggest runs/lite0 --images photos/ --n 200 --out to_label.csv --tasks to_label.json "
           "--label-studio-root photos/")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from fashionstyle.core.choices import ACQUISITION_STRATEGIES, DEFAULT_STRATEGY

    p = sub.add_parser("suggest", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--images", required=True, help="the catalogue: a folder of images, one image, or a list "
                                                   "(JD id,url / CSV); photos already labelled are left out")
    p.add_argument("--image-dir", default=None, help="where a list's images are (default: its folder)")
    add_recursive_arg(p)
    p.add_argument("--labelled", nargs="+", default=[], metavar="LABELS",
                   help="label files whose photos are labelled already (the run's own count too: its --labels read "
                        "with its --image-dir, or a fused run's sources')")
    p.add_argument("--n", type=int_in(1), default=200, help="photos to choose (default: 200)")
    p.add_argument("--out", required=True, help="the label file to fill in (.csv): image, the run's labels left "
                                                "empty, the model's guess as a hint, the score")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (and --tasks, and its labelling config): it may be a label "
                        "file someone filled in (never an input: the run's label file, --images, --labelled)")
    p.add_argument("--strategy", choices=ACQUISITION_STRATEGIES, default=DEFAULT_STRATEGY,
                   help=f"{ACQUISITION_STRATEGIES.help()} (default: {DEFAULT_STRATEGY})")
    p.add_argument("--pool-factor", type=int_in(1), default=4,
                   help="uncertainty: the best n x this are kept for the diversity step (default: 4)")
    p.add_argument("--rare-power", type=float, default=0.5,
                   help="uncertainty: a label's weight is (1 / its share of positives) ** this (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of --strategy random (default: 0)")
    p.add_argument("--tasks", default=None, metavar="TASKS.json",
                   help="also Label Studio tasks with the model's guesses as predictions, and the labelling "
                        "config beside them (TASKS.label_config.xml)")
    p.add_argument("--label-studio-root", default=None, metavar="DIR",
                   help="Label Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, that the tasks' image URLs are "
                        "relative to (default: the catalogue's folder)")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch", help=f"{RUNTIMES.help()} (default: torch)")
    add_decode_arg(p)
    add_tta_arg(p)
    add_operating_point_arg(p)
    add_loader_args(p)
    p.add_argument("--chunk-size", type=int_in(1), default=10_000, help="images per part file (default: 10000)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed suggest after its last complete chunk (an existing --out is replaced "
                        "only if it is suggest's own skeleton with no label filled in)")
    g = p.add_argument_group("many devices or nodes (as predict; the ranks start as DDP's)")
    g.add_argument("--accelerator", default="auto", choices=ACCELERATORS, help="default: auto")
    g.add_argument("--devices", type=int_in(1), default=1, help="processes per node, one device each (default: 1)")
    g.add_argument("--num-nodes", type=int_in(1), default=1, help="nodes (default: 1)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fashionstyle.core.run import RunDir
    from fashionstyle.data.images.source import ImageSource
    from fashionstyle.inference.jobs import Placement
    from fashionstyle.analysis.suggest import SuggestSettings, check_out, check_outputs, suggest, write_skeleton
    from fashionstyle.labelstudio.tasks import check_config_out, check_tasks_out, config_path, write_tasks

    run_dir = RunDir.open(args.run)
    check_out(args.out)
    if args.tasks:
        check_tasks_out(args.tasks)
    check_outputs(run_dir, args.out, args.tasks, {"--images": args.images, "--image-dir": args.image_dir,
                                                  "--labelled": args.labelled}, args.overwrite, args.resume,
                  config_path(args.tasks) if args.tasks else None)
    if args.tasks:
        check_config_out(args.tasks, args.overwrite)
    settings = SuggestSettings(args.n, args.strategy, args.pool_factor, args.rare_power, args.seed).check()
    source = ImageSource.open(args.images, args.image_dir, args.recursive)
    result = suggest(run_dir, source, settings, args.out, predict_settings(args), loader_settings(args),
                     args.labelled, args.resume,
                     Placement(args.accelerator, args.devices, args.num_nodes))
    if result is None:
        return 0  # another rank: rank 0 writes
    root = args.label_studio_root or (source.path if source.path.is_dir() else source.image_dir)
    if args.tasks:  # the tasks first: a photo outside the document root is refused before any file is written
        write_tasks(result, args.tasks, root, f"fashionstyle:{Path(run_dir.path).resolve().name}", args.overwrite)
    write_skeleton(result, args.out)
    counts = result.counts
    print(f"{len(result.ids)} of {counts['scored']} unlabelled photos chosen ({args.strategy}; "
          f"{counts['labelled']} already labelled, {counts['unreadable']} unreadable) -> {args.out}"
          + (f", {args.tasks}" if args.tasks else ""))
    return 0
