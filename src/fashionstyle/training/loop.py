"""The run set-up of one multi-label model trained through Lightning, written into a run directory.

    run = train_multi(config, "runs/lite0")   # -> RunDir, ready for tune/evaluate/predict
                                              # (training.train.train dispatches on config.mode)

Here: the tables, loaders and Trainer (also borrowed by cv, single_label and distill), the
per-epoch recording and the end of the run. The Lightning module itself is module.py; running the
Trainer (signals, checkpoint files) trainer_run.py; progress lines progress.py.

Each epoch validates on the whole validation split, tunes per-label thresholds
on it, logs macro F-beta at 0.5 and at the tuned thresholds, and stores the
epoch's validation probabilities. At the end the best epoch (by tuned val
macro F-beta) becomes `model.pt`, `thresholds.json` and `val_probs.npz`.
"""
from __future__ import annotations

import csv
import io
import sys
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from fashionstyle.core import atomic
from fashionstyle.core.config import LOSSES, TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import MONITOR, PER_LABEL, append_history, history_labels, read_history
from fashionstyle.core.label_rules import LabelRules, read_label_rules
from fashionstyle.core.model_card import write_data_counts, write_model_card
from fashionstyle.core.summary import RunSummary, summarize, write_summary
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunDir
from fashionstyle.core.run_warnings import note_warnings
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.cache import image_opener
from fashionstyle.data.labels.stats import label_warnings
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.data.labels.read import label_files, read_labels
from fashionstyle.data.batches import collate_skipping, collate_unstacked
from fashionstyle.data.dataset import EpochShuffle, ImageDataset, eval_dataset
from fashionstyle.data.images.decode import decode_image, read_for_device
from fashionstyle.data.images.device_decode import decodes_on_gpu
from fashionstyle.data.splits import drop_bad_images, train_val_split
from fashionstyle.data.transforms import TrainCrop
from fashionstyle.model.losses import create_loss
from fashionstyle.model.network import StyleNet, check_backbone, create_model, model_record, save_model, start_from
from fashionstyle.training import labelwise
from fashionstyle.training.head_fit import finish_head_only, fit_head_first
from fashionstyle.training.module import StyleModule
from fashionstyle.training.online_teacher import OnlineTeacher
from fashionstyle.training.progress import TrainingProgress
from fashionstyle.training.resume_checks import check_same_run, data_fingerprint, write_config
from fashionstyle.training.trackers.base import log_results, make_loggers
from fashionstyle.training.trainer_run import AtomicCheckpointIO, fit_module, quiet_lightning

__all__ = ["RunRecorder", "finish_run", "labelled_rows", "make_loaders",
           "make_trainer", "prepare_tables", "read_label_file", "train_multi", "training_decodes_on_gpu"]


class RunRecorder(L.Callback):
    """Writes each epoch's validation probabilities and a history.csv row.

    Past PER_LABEL labels (core/history.py) the row and the trackers get the per-label F-beta of the
    PER_LABEL labels with most validation positives (`support`), and only the probabilities of the best
    epoch so far and the latest are kept: a run's folder grows by kilobytes an epoch, not by N x L floats.
    With `select: per-label` it keeps every label's scores and every epoch's probabilities, and the
    weights of every epoch that is still the best for some label (epochs/eNNN.pt), deleting the rest.
    """

    def __init__(self, run: RunDir, label_names: list[str], config: TrainConfig, support: np.ndarray | None = None):
        self.run, self.label_names, self.config = run, label_names, config
        every = config.select == "per-label"
        kept = set(history_labels(label_names, support, None if every else PER_LABEL))
        self.columns = [i for i, n in enumerate(label_names) if n in kept]  # (K,) the recorded labels
        self.every_epoch = every or len(label_names) <= PER_LABEL  # keep each epoch's probabilities

    def on_train_epoch_end(self, trainer: L.Trainer, module: StyleModule) -> None:
        if not trainer.is_global_zero or module.val_probs is None:
            return
        epoch = trainer.current_epoch + 1
        self.run.write_epoch_probs(epoch, module.val_probs)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {"epoch": epoch, "lr": trainer.optimizers[0].param_groups[-1]["lr"],  # the head's
               "train_loss": metrics.get("train_loss", float("nan")),
               "val_loss": metrics.get("val_loss", float("nan")),
               "val_fbeta_05": metrics.get("val_fbeta_05"), MONITOR: metrics.get(MONITOR)}
        scores = {self.label_names[i]: float(module.val_fbeta[i]) for i in self.columns}
        row.update({f"fbeta_{n}": f for n, f in scores.items()})
        append_history(self.run, row)
        if not self.every_epoch:
            self.prune_epoch_probs(epoch)
        for logger in trainer.loggers:  # per-label F-beta to the trackers too, under the epoch metric's name
            logger.log_metrics({f"{MONITOR}/{n}": f for n, f in scores.items()}, step=trainer.global_step)
        if self.config.select == "per-label":
            cfg = self.config
            record = model_record(module.net, cfg.backbone, self.label_names, cfg.image_size,
                                  cfg.hidden, cfg.dropout)
            labelwise.save_epoch_model(self.run, epoch, record)
            labelwise.prune_epoch_models(self.run, set(labelwise.best_epochs(
                read_history(self.run), self.label_names).values()))

    def prune_epoch_probs(self, epoch: int) -> None:
        """Delete the epochs' probabilities but the best epoch's so far (finish_run's) and `epoch`'s."""
        keep = {best_epoch_of(self.run), epoch}
        for path in (self.run / "epochs").glob("e*.npy"):
            if int(path.stem[1:]) not in keep:
                path.unlink()


def show_progress_bar(config: TrainConfig) -> bool:
    """A live progress line only for a person at a terminal; logs get one line per epoch instead."""
    return config.progress and sys.stdout.isatty()


def training_decodes_on_gpu(config: TrainConfig) -> bool:
    """Whether training JPEGs are decoded on the GPU: only asked for (decode "gpu"; "auto" is the host
    until bench/train_speed.py shows nvJPEG ahead), and refused without CUDA or with a cache."""
    from fashionstyle.data.images.device_decode import uses_cuda

    if not decodes_on_gpu(config.decode, uses_cuda(config.accelerator)):
        return False
    if config.cache:
        raise FashionStyleError("--decode gpu decodes JPEG files and --cache gives decoded images; drop one")
    if config.augment != "none":
        raise FashionStyleError(f"--augment {config.augment} works on host crops; use --decode cpu with it")
    return True


def make_loaders(config: TrainConfig, train_table: LabelTable, val_table: LabelTable,
                 decode_on_device: bool = False) -> tuple[DataLoader, DataLoader]:
    """uint8 crops and views; StyleModule.on_after_batch_transfer normalises and flips them on the device.
    With decode_on_device the training workers read plain JPEGs' bytes and draw their crops, and
    StyleModule.on_before_batch_transfer decodes and crops them there (DeviceCrops); validation
    decodes on the host either way. Memory is pinned when the run trains on CUDA (Batch.pin_memory)."""
    from fashionstyle.data.images.device_decode import uses_cuda

    augment = TrainCrop(config.image_size, config.crop_scale, config.hflip, config.augment)
    cache = image_opener(config.cache, config.image_size) if config.cache else None  # built by prepare_tables
    read = read_for_device if decode_on_device else decode_image
    train_ds = ImageDataset(train_table.images, train_table.targets, augment, config.on_bad_image, config.seed,
                            cache or partial(read, min_side=augment.min_side()))
    val_ds = eval_dataset(val_table, config.image_size, config.cache)  # decoded up front: a failure is news
    workers = config.num_workers
    common = {"num_workers": workers, "persistent_workers": workers > 0, "prefetch_factor": 4 if workers else None,
              "pin_memory": uses_cuda(config.accelerator), "collate_fn": collate_skipping,
              "generator": torch.Generator().manual_seed(config.seed)}  # leaves the global RNG alone
    drop_last = keeps_most(len(train_ds), config.batch_size)
    shuffle = EpochShuffle(len(train_ds), config.seed)
    train_only = {"collate_fn": collate_unstacked} if decode_on_device else {}  # its host crops pinned
    return (DataLoader(train_ds, batch_size=config.batch_size, sampler=shuffle, drop_last=drop_last,
                       **{**common, **train_only}),
            DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, **common))


def keeps_most(rows: int, batch_size: int, at_most: float = 0.02) -> bool:
    """Whether to drop the last partial batch each epoch: only when it is a single photo (batch norm cannot
    train on one) or at most `at_most` of the train split; otherwise every photo is seen every epoch."""
    left = rows % batch_size
    return rows > batch_size and (left == 1 or left <= at_most * rows)


def make_trainer(config: TrainConfig, run: RunDir, callbacks: list[L.Callback]) -> L.Trainer:
    from fashionstyle.data.images.device_decode import uses_cuda
    from fashionstyle.training.decode_report import DecodeReport

    precision = config.precision
    if precision == "auto":  # from the accelerator asked for: --accelerator cpu on a GPU machine is 32-true
        precision = "bf16-mixed" if uses_cuda(config.accelerator) else "32-true"
    # Both save at the true end of each epoch: after RunRecorder and after the epoch scheduler has
    # stepped. "last" has no monitor, so it is rewritten every epoch (Lightning writes save_last
    # only in epochs that improve the monitor): a clean resume point after any epoch.
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=run / "checkpoints", filename="best", monitor=MONITOR, mode="max",
        save_on_train_epoch_end=True, enable_version_counter=False)
    last = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=run / "checkpoints", filename="last", monitor=None, save_top_k=1,
        save_on_train_epoch_end=True, enable_version_counter=False)
    loggers = trackers_for(config, run)
    bar = show_progress_bar(config)
    return L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=config.strategy,
        precision=precision, logger=loggers, callbacks=[best, last, *callbacks, TrainingProgress(bar, config.beta),
                                                   *([DecodeReport()] if config.decode == "gpu" else [])],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=False, num_sanity_val_steps=0, deterministic=False,
        log_every_n_steps=10, enable_model_summary=False)


def prepare_tables(config: TrainConfig, table: LabelTable | None = None
                   ) -> tuple[LabelTable, LabelTable, list[tuple[str, str]]]:
    """Train and val tables without unreadable images, and the (path, reason) of those left out.

    Missing train images are dropped here, unreadable ones while training;
    validation images are all decoded once now, so every epoch scores the same rows.
    """
    table = read_label_file(config, keep_splits=("train", "val")) if table is None else table
    train_table, val_table = train_val_split(table, config.val_fraction, config.seed)
    for line in label_warnings(train_table):
        print(f"warning: {line}", file=sys.stderr)
    opener = image_opener(config.cache, config.image_size, [*train_table.images, *val_table.images],
                          config.num_workers, config.progress, secondary=is_secondary_process())
    train_table, bad_train = drop_bad_images(train_table, config.on_bad_image, decode=False)
    val_table, bad_val = drop_bad_images(val_table, config.on_bad_image, decode=True, opener=opener,
                                         progress=config.progress and len(val_table) > 2000)
    check_enough_images(config, train_table, val_table, dropped=len(bad_train) + len(bad_val))
    return train_table, val_table, bad_train + bad_val


def check_enough_images(config: TrainConfig, train_table: LabelTable, val_table: LabelTable, dropped: int) -> None:
    """Two readable training images at least (a batch of one breaks BatchNorm) and one for validation;
    where images were `dropped` as unreadable, a hint at the folder relative paths are read from."""
    for part, name, least in ((train_table, "train", 2), (val_table, "validation", 1)):
        if len(part) >= least:
            continue
        hint = "" if config.images or not dropped else ("; are the label file's paths relative to another "
                                                        "folder? pass --image-dir DIR")
        raise FashionStyleError(f"{config.labels}: {len(part)} readable {name} image{'s' * (len(part) != 1)}, "
                                f"{least} needed (--val-fraction {config.val_fraction:g}){hint}")


def read_label_file(config: TrainConfig, keep_splits: tuple[str, ...] | None = None) -> LabelTable:
    """The config's label file: every split, or only the rows of `keep_splits` (the others never held)."""
    if not config.labels:
        raise FashionStyleError("no label file: pass --labels FILE (or `labels:` in the config)")
    return read_labels(config.labels, config.images or None, config.label_names, keep_splits)


def write_bad_images(run: RunDir, bad: list[tuple[str, str]]) -> None:
    """RUN/bad_images.csv (path, reason) and a one-line summary, when any image was left out."""
    if not bad:
        return
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "reason"])
    writer.writerows(sorted(set(bad)))
    atomic.write_text(run / "bad_images.csv", out.getvalue())
    n = len(set(bad))
    print(f"left out {n} unreadable image{'s' * (n != 1)}; see {run / 'bad_images.csv'}")


def train_multi(config: TrainConfig, out: str | Path, resume: bool = False,
                tables: tuple[LabelTable, LabelTable, list] | None = None,
                teacher: OnlineTeacher | None = None) -> RunDir:
    """Train one model over all labels of `tables` (default: read from the config), with an online
    `teacher` making the targets of each step when given (rows of unknown labels: NaN)."""
    check_backbone(config.backbone)  # before any label file is read: a typo fails first, alone
    decode_on_device = training_decodes_on_gpu(config)
    run = RunDir(out)
    last = run / "checkpoints" / "last.ckpt"
    checks = resume and not is_secondary_process()  # DDP ranks started by Lightning or torchrun share rank 0's folder
    if checks:  # before anything is read: a run that cannot resume fails first
        run.require_resumable()
    train_table, val_table, bad = tables or prepare_tables(config)
    rules = read_label_rules(label_files(config.labels), train_table.label_names) if config.labels else None
    data = data_fingerprint(train_table, val_table)
    if checks:
        check_same_run(run, config, data)
    L.seed_everything(config.seed, workers=True, verbose=False)  # reproducible initialisation
    model = create_model(config.backbone, len(train_table.label_names), config.pretrained and not config.init_from,
                         config.weights, config.hidden, config.dropout)
    if config.init_from and not (resume and last.is_file()):  # a checkpoint holds the weights of a resume
        start_from(model, config.init_from, config.backbone, train_table.label_names)
    if not is_secondary_process():
        run = RunDir.create(out, resume=resume)
        run.write_manifest("model", complete=False, data=data)
        write_config(run, config)
        run.write_label_names(train_table.label_names)
    loaders = make_loaders(config, train_table, val_table, decode_on_device)
    statistics = labelled_rows(train_table.targets) if teacher is not None else train_table.targets
    loss = create_loss(config.loss, statistics,
                       **{field: getattr(config, field) for field in LOSSES[config.loss].params})
    module = StyleModule(model, loss, config, teacher)
    fitted = None
    if config.head_fit_epochs and teacher is None and not (resume and last.is_file()):
        fitted = fit_head_first(module, config, train_table, loaders[1])
    if fitted is not None and config.epochs == 0:  # --recipe probe: the fitted head is the model
        if not is_secondary_process():
            summary = finish_head_only(run, config, model, val_table, fitted)
            report_run(run, config, summary, (train_table, val_table, bad), rules, trackers_for(config, run))
        return run
    with quiet_lightning():
        support = val_table.require_targets().sum(axis=0)  # (L,) the recorded labels' yardstick
        trainer = make_trainer(config, run, [RunRecorder(run, train_table.label_names, config, support)])
        loaders[0].sampler.epoch_fn = lambda: trainer.current_epoch
        # stopped before its first checkpoint, a run starts again: each epoch depends on (seed, epoch) alone
        fit_module(trainer, module, loaders, str(last) if resume and last.is_file() else None, run)
    if trainer.is_global_zero:
        bad += [(str(train_table.images[i]), reason) for i, reason in module.bad_train.items()]
        summary = finish_run(run, config, model, val_table, trainer)
        report_run(run, config, summary, (train_table, val_table, bad), rules, trainer.loggers)
    return run


def report_run(run: RunDir, config: TrainConfig, summary: RunSummary, tables: tuple[LabelTable, LabelTable, list],
               rules: LabelRules | None, loggers: list) -> None:
    """A finished run's reports: its unreadable photos, warnings, labels.yaml's points, data counts, card,
    and the trackers' final scores and files."""
    train_table, val_table, bad = tables
    write_bad_images(run, bad)
    summary = note_warnings(run, summary, config.lr)
    write_label_points(run, rules)
    counts = write_data_counts(run, {"train": train_table.targets, "val": val_table.require_targets()})
    write_model_card(run, summary, config.to_dict(), counts)
    log_results(loggers, run, summary)


def trackers_for(config: TrainConfig, run: RunDir) -> list:
    """The run's trackers with its settings logged, for a run that trains without Lightning's Trainer."""
    loggers = make_loggers(config.logger, run, config.mlflow_uri)
    for logger in loggers:
        logger.log_hyperparams(config.to_dict())
    return loggers


def labelled_rows(targets: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """The rows of `targets` with known labels (no NaN: an online-taught unlabelled image has none),
    for the loss's label statistics; a memory map is scanned in chunks, and only those rows read."""
    if not np.issubdtype(targets.dtype, np.floating):
        return targets
    known = [~np.isnan(targets[start:start + chunk]).any(axis=1) for start in range(0, len(targets), chunk)]
    return targets[np.concatenate(known)] if known else targets


def finish_run(run: RunDir, config: TrainConfig, model: StyleNet, val_table: LabelTable,
               trainer: L.Trainer) -> RunSummary:
    """Best epoch -> model.pt, val_probs.npz, thresholds.json, summary.json; then mark the run complete.
    Returns the run's summary, scored from the probabilities in memory."""
    best_path = trainer.checkpoint_callback.best_model_path or str(run / "checkpoints" / "last.ckpt")
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    prefix = "ema.module." if config.ema_decay > 0 else "model."
    model.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
    best_epoch = best_epoch_of(run)
    probs = run.epoch_probs()[best_epoch]
    save_model(run / "model.pt", model_record(model, config.backbone, run.label_names(),
                                               config.image_size, config.hidden, config.dropout))
    if config.select == "per-label":
        labelwise.write_best_epoch_run(run, config, val_table, probs)
        members, probs = labelwise.compose(run, run.label_names(), read_history(run))
        run.write_members(members)
    targets = val_table.require_targets()
    run.write_val_probs(val_table.ids, probs, targets)
    tuner = ThresholdTuner(beta=config.beta, rule=config.threshold_rule).fit(probs, targets)
    run.write_thresholds(tuner)
    summary = summarize(run.label_names(), tuner, probs, targets)
    write_summary(run, summary)
    run.write_manifest("model", complete=True, best_epoch=best_epoch, epochs=config.epochs,
                       select=config.select, data=run.manifest().get("data"))
    return summary


def write_label_points(run: RunDir, rules: LabelRules | None) -> None:
    """The operating points the label file's labels.yaml asks for, tuned on the run's validation split."""
    if rules is None:
        return
    _, probs, targets = run.val_probs()
    for point in rules.fit(probs, targets):
        run.write_operating_point(point, overwrite=True)
        print(f"operating point {point.describe(run.label_names())} (from {rules.source}); use it with "
              f"--operating-point {point.name}", flush=True)


def best_epoch_of(run: RunDir) -> int:
    """The epoch with the highest tuned validation macro F-beta (the first on ties)."""
    history = read_history(run)
    if not history:
        raise FashionStyleError(f"{run.path}: no finished epoch recorded")
    scores = [float(r[MONITOR]) for r in history]
    return int(history[int(np.argmax(scores))]["epoch"])
