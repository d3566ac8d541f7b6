"""Training through Lightning: one multi-label model, written into a run directory.

    run = train_multi(config, "runs/lite0")   # -> RunDir, ready for tune/evaluate/predict
                                              # (fit.train dispatches on config.mode)

Each epoch validates on the whole validation split, tunes per-label thresholds
on it, logs macro F-beta at 0.5 and at the tuned thresholds, and stores the
epoch's validation probabilities. At the end the best epoch (by tuned val
macro F-beta) becomes `model.pt`, `thresholds.json` and `val_probs.npz`.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import logging
import signal
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerStatus
from torch.utils.data import DataLoader

from fashionstyle.core import atomic
from fashionstyle.core import config as config_lib
from fashionstyle.core.config import LOSSES, TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import MONITOR, append_history, read_history
from fashionstyle.core.metrics import macro_fbeta, per_label_scores
from fashionstyle.core.model_card import write_data_counts, write_model_card
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunDir, RunInterrupted
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.cache import image_opener
from fashionstyle.data.labels import LabelTable, label_warnings, read_labels
from fashionstyle.data.pipeline import (
    Batch,
    DeviceCrops,
    DeviceInput,
    EpochShuffle,
    EvalViews,
    ImageDataset,
    TrainCrop,
    collate_skipping,
    collate_unstacked,
    decode_image,
    decodes_on_gpu,
    drop_bad_images,
    read_for_device,
    resize_size,
    train_val_split,
)
from fashionstyle.model.losses import create_loss
from fashionstyle.model.network import (
    StyleNet,
    check_backbone,
    create_model,
    default_normalisation,
    model_record,
    save_model,
    start_from,
)
from fashionstyle.training import labelwise
from fashionstyle.training.mixing import mix_batch
from fashionstyle.training.online_teacher import OnlineTeacher, unnormalise, with_known_mass
from fashionstyle.training.trackers import log_results, make_loggers


class StyleModule(L.LightningModule):
    """Loss, optimiser, schedule and per-epoch validation metrics around a StyleNet."""

    def __init__(self, model: StyleNet, loss: torch.nn.Module, config: TrainConfig,
                 teacher: OnlineTeacher | None = None):
        super().__init__()
        self.model, self.loss, self.config = model, loss, config
        self.to_input = DeviceInput(*default_normalisation(model), config.channels_last)  # uint8 -> model input
        self.teacher = teacher  # online teaching: not a submodule, so never checkpointed
        self.input_stats: tuple[torch.Tensor, ...] = ()  # the input's (mean, std) on the device, for the teacher
        self.ema = make_ema(model, config.ema_decay)  # a submodule: checkpointed and resumed with the rest
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.val_probs: np.ndarray | None = None  # (N, L) of the last validation, in row order
        self.val_fbeta: np.ndarray | None = None  # (L,) per-label F-beta at tuned thresholds
        self.bad_train: dict[int, str] = {}  # dataset row -> why its image was skipped
        # plateau / cosine: stepped here at the end of each epoch, before the checkpoint is written,
        # so that every last.ckpt holds the scheduler as the next epoch needs it (exact resume)
        self.epoch_scheduler: Any = None
        self._scheduler_state: dict | None = None  # from a checkpoint, applied once the scheduler exists

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    @property
    def net(self) -> StyleNet:
        """The weights that validate and are kept: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def on_fit_start(self) -> None:
        if self.config.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.teacher is not None:  # it sees the student's input as 0..1 pixels, normalised its own way
            self.teacher.to(self.device)
            self.input_stats = tuple(torch.tensor(v, device=self.device).view(1, 3, 1, 1)
                                     for v in default_normalisation(self.model))

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.ema is not None and batch.images is not None:
            self.ema.update_parameters(self.model)

    def on_train_epoch_start(self) -> None:
        # Each epoch's shuffling, augmentation and dropout depend on (seed, epoch) alone,
        # so a run resumed from a checkpoint repeats exactly what the lost epochs did.
        L.seed_everything(self.config.seed + 1000 * self.current_epoch, workers=True, verbose=False)

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """decode="gpu": the training batch's JPEG bytes decoded, cropped and resized on the device."""
        if isinstance(batch.images, list):
            return DeviceCrops(self.config.image_size, self.device, self.config.on_bad_image)(batch)
        return batch

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """The uint8 batch, now on the device, as the model's input (float, normalised, flipped)."""
        if batch.images is not None:
            batch.images = self.to_input(batch.images, batch.flip)  # (B, C, H, W)
        return batch

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        self.bad_train.update(batch.bad)
        if batch.images is None:
            return None  # every image of this batch was unreadable: no step
        targets = batch.targets if self.teacher is None else with_known_mass(batch.targets)
        images, targets = mix_batch(batch.images, targets, self.config.mixup, self.config.cutmix)
        if self.teacher is not None:
            targets = self.teacher.targets(unnormalise(images, *self.input_stats), targets)
        loss = self.loss(self.model(images), targets)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        images, targets, index = batch.images, batch.targets, batch.index
        logits = self.net(images)
        self.log("val_loss", self.loss(logits, targets), on_epoch=True, batch_size=len(images), sync_dist=True)
        self._outputs.append((torch.sigmoid(logits.float()), targets, index))

    def on_validation_epoch_end(self) -> None:
        if not self._outputs:
            return
        probs, targets, index = (torch.cat(parts) for parts in zip(*self._outputs))
        self._outputs.clear()
        probs, targets = gather_in_order(self, probs, targets, index)
        at_half = macro_fbeta(targets, (probs >= 0.5).astype(np.uint8), self.config.beta)
        tuner = ThresholdTuner(beta=self.config.beta, rule="exact").fit(probs, targets)  # the epochs' yardstick
        self.val_fbeta = per_label_scores(targets, tuner.predict(probs), self.config.beta)["fbeta"]
        self.val_probs = probs
        # Every rank holds the same gathered outputs, so these agree across ranks.
        self.log("val_fbeta_05", at_half, prog_bar=True)
        self.log(MONITOR, float(self.val_fbeta.mean()), prog_bar=True)

    def on_train_epoch_end(self) -> None:
        # Lightning calls this after the epoch's validation and before ModelCheckpoint saves.
        if isinstance(self.epoch_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if self.val_fbeta is not None:
                self.epoch_scheduler.step(float(self.val_fbeta.mean()))
        elif self.epoch_scheduler is not None:
            self.epoch_scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.epoch_scheduler is not None:
            checkpoint["epoch_scheduler"] = self.epoch_scheduler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._scheduler_state = checkpoint.get("epoch_scheduler")

    def configure_optimizers(self) -> Any:
        cfg = self.config
        groups = [{"params": self.model.backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_scale},
                  {"params": self.model.head.parameters(), "lr": cfg.lr}]
        adam = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.lr_schedule in ("constant", "plateau", "cosine"):
            self.epoch_scheduler = epoch_scheduler(optimizer, cfg)
            if self.epoch_scheduler is not None and self._scheduler_state is not None:
                self.epoch_scheduler.load_state_dict(self._scheduler_state)
            return optimizer
        steps = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups], total_steps=max(steps, 2))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def epoch_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """The once-per-epoch learning-rate schedule of `cfg.lr_schedule` (None for constant)."""
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.lr_factor, patience=cfg.lr_patience)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return None


def make_ema(model: StyleNet, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of `model`'s weights and buffers, or None for decay 0."""
    if decay == 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def gather_in_order(module: L.LightningModule, probs: torch.Tensor, targets: torch.Tensor,
                    index: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Validation outputs of every rank, in dataset row order, padding duplicates dropped."""
    if module.trainer.world_size > 1:
        probs, targets, index = (module.all_gather(t).flatten(0, 1) for t in (probs, targets, index))
    order = index.cpu().numpy()
    _, first = np.unique(order, return_index=True)  # sorted unique rows, first occurrence
    return probs.cpu().numpy()[first], targets.cpu().numpy()[first].astype(np.uint8)


class AtomicCheckpointIO(L.pytorch.plugins.TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a kill never leaves half of one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic.write_atomic(path, lambda f: torch.save(checkpoint, f))


class RunRecorder(L.Callback):
    """Writes each epoch's validation probabilities and a history.csv row.

    With `select: per-label` it also keeps the weights of every epoch that is
    still the best for some label (epochs/eNNN.pt), and deletes the rest.
    """

    def __init__(self, run: RunDir, label_names: list[str], config: TrainConfig):
        self.run, self.label_names, self.config = run, label_names, config

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
        row.update({f"fbeta_{n}": float(f) for n, f in zip(self.label_names, module.val_fbeta)})
        append_history(self.run, row)
        for logger in trainer.loggers:  # per-label F-beta to the trackers too
            logger.log_metrics({f"val_fbeta/{n}": float(f) for n, f in zip(self.label_names, module.val_fbeta)},
                               step=trainer.global_step)
        if self.config.select == "per-label":
            cfg = self.config
            record = model_record(module.net, cfg.backbone, self.label_names, cfg.image_size,
                                  cfg.hidden, cfg.dropout)
            labelwise.save_epoch_model(self.run, epoch, record)
            labelwise.prune_epoch_models(self.run, set(labelwise.best_epochs(
                read_history(self.run), self.label_names).values()))


class EpochLine(L.Callback):
    """One line per epoch on rank 0 (epoch, seconds, train loss, val F-beta at 0.5 and tuned, lr),
    for logs and terminals without a progress bar."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: StyleModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: StyleModule) -> None:
        if not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  "
              f"{time.perf_counter() - self._start:.0f} s  train_loss {m.get('train_loss', float('nan')):.4f}  "
              f"val F{module.config.beta:g} {m.get('val_fbeta_05', float('nan')):.4f} at 0.5, "
              f"{m.get(MONITOR, float('nan')):.4f} tuned  "
              f"lr {trainer.optimizers[0].param_groups[-1]['lr']:.3g}", flush=True)


def show_progress_bar(config: TrainConfig) -> bool:
    """A progress bar only for a person at a terminal; logs get EpochLine's lines instead."""
    return config.progress and sys.stdout.isatty()


def training_decodes_on_gpu(config: TrainConfig) -> bool:
    """Whether training JPEGs are decoded on the GPU: only asked for (decode "gpu"; "auto" is the host
    until bench/train_speed.py shows nvJPEG ahead), and refused without CUDA or with a cache."""
    if not decodes_on_gpu(config.decode, config.accelerator != "cpu" and torch.cuda.is_available()):
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
    decodes on the host either way."""
    augment = TrainCrop(config.image_size, config.crop_scale, config.hflip, config.augment)
    cache = image_opener(config.cache, config.image_size) if config.cache else None  # built by prepare_tables
    read = read_for_device if decode_on_device else decode_image
    train_ds = ImageDataset(train_table.images, train_table.targets, augment, config.on_bad_image, config.seed,
                            cache or partial(read, min_side=augment.min_side()))
    # validation images were all decoded once up front, so a failure now is real news
    val_ds = ImageDataset(val_table.images, val_table.targets, EvalViews(config.image_size).centre,
                          opener=cache or partial(decode_image, min_side=resize_size(config.image_size)))
    workers = config.num_workers
    common = {"num_workers": workers, "persistent_workers": workers > 0, "prefetch_factor": 4 if workers else None,
              "pin_memory": torch.cuda.is_available(), "collate_fn": collate_skipping,
              "generator": torch.Generator().manual_seed(config.seed)}  # leaves the global RNG alone
    drop_last = len(train_ds) > config.batch_size
    shuffle = EpochShuffle(len(train_ds), config.seed)
    train_only = {"collate_fn": collate_unstacked, "pin_memory": False} if decode_on_device else {}
    return (DataLoader(train_ds, batch_size=config.batch_size, sampler=shuffle, drop_last=drop_last,
                       **{**common, **train_only}),
            DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, **common))


def make_trainer(config: TrainConfig, run: RunDir, callbacks: list[L.Callback]) -> L.Trainer:
    precision = config.precision
    if precision == "auto":
        precision = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    # Both save at the true end of each epoch: after RunRecorder and after the epoch scheduler has
    # stepped. "last" has no monitor, so it is rewritten every epoch (Lightning writes save_last
    # only in epochs that improve the monitor): a clean resume point after any epoch.
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=run / "checkpoints", filename="best", monitor=MONITOR, mode="max",
        save_on_train_epoch_end=True, enable_version_counter=False)
    last = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=run / "checkpoints", filename="last", monitor=None, save_top_k=1,
        save_on_train_epoch_end=True, enable_version_counter=False)
    loggers = make_loggers(config.logger, run, config.mlflow_uri)
    for logger in loggers:
        logger.log_hyperparams(config.to_dict())
    bar = show_progress_bar(config)
    return L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=config.devices,
        num_nodes=config.num_nodes, strategy=config.strategy,
        precision=precision, logger=loggers, callbacks=[best, last, *callbacks, *([] if bar else [EpochLine()])],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=bar, num_sanity_val_steps=0, deterministic=False,
        log_every_n_steps=10, enable_model_summary=False)


def prepare_tables(config: TrainConfig, table: LabelTable | None = None
                   ) -> tuple[LabelTable, LabelTable, list[tuple[str, str]]]:
    """Train and val tables without unreadable images, and the (path, reason) of those left out.

    Missing train images are dropped here, unreadable ones while training;
    validation images are all decoded once now, so every epoch scores the same rows.
    """
    table = read_label_file(config) if table is None else table
    train_table, val_table = train_val_split(table, config.val_fraction, config.seed)
    for line in label_warnings(train_table):
        print(f"warning: {line}", file=sys.stderr)
    opener = image_opener(config.cache, config.image_size, [*train_table.images, *val_table.images],
                          config.num_workers, config.progress, secondary=is_secondary_process())
    train_table, bad_train = drop_bad_images(train_table, config.on_bad_image, decode=False)
    val_table, bad_val = drop_bad_images(val_table, config.on_bad_image, decode=True, opener=opener,
                                         progress=config.progress and len(val_table) > 2000)
    for part, name in ((train_table, "train"), (val_table, "validation")):
        if len(part) == 0:
            raise FashionStyleError(f"{config.labels}: no readable {name} images")
    return train_table, val_table, bad_train + bad_val


def read_label_file(config: TrainConfig) -> LabelTable:
    """The config's label file, every split."""
    if not config.labels:
        raise FashionStyleError("no label file: pass --labels FILE (or `labels:` in the config)")
    return read_labels(config.labels, config.images or None, config.label_names)


def write_bad_images(run: RunDir, bad: list[tuple[str, str]]) -> None:
    """RUN/bad_images.csv (path, reason) and a one-line summary, when any image was left out."""
    if not bad:
        return
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "reason"])
    writer.writerows(sorted(set(bad)))
    atomic.write_text(run / "bad_images.csv", out.getvalue())
    print(f"left out {len(set(bad))} unreadable images; see {run / 'bad_images.csv'}")


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
    with quiet_lightning():
        trainer = make_trainer(config, run, [RunRecorder(run, train_table.label_names, config)])
        loaders[0].sampler.epoch_fn = lambda: trainer.current_epoch
        # stopped before its first checkpoint, a run starts again: each epoch depends on (seed, epoch) alone
        fit(trainer, module, loaders, str(last) if resume and last.is_file() else None, run)
    if trainer.is_global_zero:
        bad += [(str(train_table.images[i]), reason) for i, reason in module.bad_train.items()]
        write_bad_images(run, bad)
        finish_run(run, config, model, val_table, trainer)
        write_data_counts(run, {"train": train_table.targets, "val": val_table.require_targets()})
        write_model_card(run)
        log_results(trainer.loggers, run)
    return run


def labelled_rows(targets: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """The rows of `targets` with known labels (no NaN: an online-taught unlabelled image has none),
    for the loss's label statistics; a memory map is scanned in chunks, and only those rows read."""
    if not np.issubdtype(targets.dtype, np.floating):
        return targets
    known = [~np.isnan(targets[start:start + chunk]).any(axis=1) for start in range(0, len(targets), chunk)]
    return targets[np.concatenate(known)] if known else targets


def data_fingerprint(train: LabelTable, val: LabelTable) -> dict[str, Any]:
    """What a resume must find unchanged: the label names, each split's ids and labels."""
    digest = hashlib.sha256(json.dumps(train.label_names).encode("utf-8"))
    for part in (train, val):
        digest.update(json.dumps(part.ids).encode("utf-8"))
        targets = part.require_targets()  # 0/1, or a distilled run's soft targets (a memory map)
        kind = np.uint8 if np.issubdtype(targets.dtype, np.integer) else np.float32
        for start in range(0, len(targets), 65536):
            digest.update(np.ascontiguousarray(targets[start:start + 65536], dtype=kind).tobytes())
    return {"train_images": len(train), "val_images": len(val), "sha256": digest.hexdigest()[:16]}


def check_same_run(run: RunDir, config: TrainConfig, data: dict[str, Any], parts: str | None = None) -> None:
    """Refuse to resume `run` with another config or other data than it was trained with; a run of
    finished `parts` (cv's folds, single mode's labels) keeps its epochs too, as those parts did."""
    saved = run / "config.yaml"
    if saved.is_file():
        then = config_lib.read_saved(saved)
        if parts and config.epochs != then.epochs:
            raise FashionStyleError(f"{run.path}: --resume keeps the {then.epochs} epochs its finished {parts} "
                                    f"trained, not {config.epochs}; drop --epochs, or train a new run into "
                                    "another --out")
        config_lib.check_resume(then, config, where=str(run.path))
    then = run.manifest().get("data")  # absent in runs of older versions
    if then is not None and then != data:
        raise FashionStyleError(
            f"{run.path}: --resume needs the data the run was trained on, and it changed (train/val images: "
            f"{then['train_images']}/{then['val_images']} then, {data['train_images']}/{data['val_images']} "
            "now; or their ids or labels); train a new run into another --out")


def write_config(run: RunDir, config: TrainConfig) -> None:
    """RUN/config.yaml; a resumed run keeps its own byte for byte, unless it grew its epochs."""
    path = run / "config.yaml"
    if path.is_file():
        saved = config_lib.read_saved(path)
        config = dataclasses.replace(config, **{k: getattr(saved, k) for k in config_lib.RESUME_FREE})
        if config == saved:
            return
    atomic.write_text(path, config_lib.dump(config))


def fit(trainer: L.Trainer, module: StyleModule, loaders: tuple[DataLoader, DataLoader], ckpt_path: str | None,
        run: RunDir) -> None:
    """trainer.fit, with a stop by SIGTERM or Ctrl-C raised as RunInterrupted.

    Lightning turns both into SystemExit (SIGTERM: exit 0, as if done) after the current batch;
    checkpoints/last.ckpt then holds the last finished epoch, so the run resumes exactly.
    """
    try:
        trainer.fit(module, *loaders, ckpt_path=ckpt_path, weights_only=True)
    except BaseException as error:
        signum = stop_signal(trainer, error)
        if signum is None:
            raise
        stop_workers(loaders)
        raise RunInterrupted(signum, run.path) from None


def stop_workers(loaders: tuple[DataLoader, DataLoader]) -> None:
    """Shut down the loaders' persistent worker processes, killed with the process group or not, so
    that their exit is not reported (a traceback at exit) as a failure."""
    for loader in loaders:
        iterator, loader._iterator = getattr(loader, "_iterator", None), None
        with contextlib.suppress(RuntimeError):  # "DataLoader worker ... is killed by signal"
            getattr(iterator, "_shutdown_workers", lambda: None)()


def stop_signal(trainer: L.Trainer, error: BaseException) -> int | None:
    """The signal that stopped `trainer.fit` with `error`, if one did."""
    if trainer.received_sigterm:  # also when data-loading workers got it first (a process group's
        return signal.SIGTERM     # SIGTERM) and their death is the error
    if isinstance(error, SystemExit) and trainer.state.status == TrainerStatus.INTERRUPTED:
        return signal.SIGINT  # Lightning's sys.exit(1) after a KeyboardInterrupt
    return None


def finish_run(run: RunDir, config: TrainConfig, model: StyleNet, val_table: LabelTable,
               trainer: L.Trainer) -> None:
    """Best epoch -> model.pt, val_probs.npz, thresholds.json; then mark the run complete."""
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
    run.write_val_probs(val_table.ids, probs, val_table.require_targets())
    run.write_thresholds(ThresholdTuner(beta=config.beta, rule=config.threshold_rule).fit(probs, val_table.targets))
    run.write_manifest("model", complete=True, best_epoch=best_epoch, epochs=config.epochs,
                       select=config.select, data=run.manifest().get("data"))


def best_epoch_of(run: RunDir) -> int:
    """The epoch with the highest tuned validation macro F-beta (the first on ties)."""
    history = read_history(run)
    if not history:
        raise FashionStyleError(f"{run.path}: no finished epoch recorded")
    scores = [float(r[MONITOR]) for r in history]
    return int(history[int(np.argmax(scores))]["epoch"])


class quiet_lightning:
    """Silence Lightning's banner lines and hints; keep its progress bar."""

    def __enter__(self) -> None:
        names = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero")
        self._levels = {n: logging.getLogger(n).level for n in names}
        for name in self._levels:
            logging.getLogger(name).setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|LitLogger|"
                                "litlogger|tensorboardX|Checkpoint directory|treespec|"
                                "Experiment logs directory|logging interval).*")

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
