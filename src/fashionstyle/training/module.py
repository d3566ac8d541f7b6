"""The Lightning module of one multi-label model: loss, optimiser, schedule, EMA and per-epoch validation.

    module = StyleModule(create_model("test_resnet", 3), create_loss("weighted_bce", targets), config)
    trainer.fit(module, train_loader, val_loader)   # loop.train_multi sets up the run around it
    module.val_probs, module.val_fbeta              # (N, L) of the last validation, (L,) F-beta there

Each epoch validates on the whole validation split (every rank's outputs gathered in row order),
tunes per-label thresholds on it and logs macro F-beta at 0.5 and at those thresholds.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import MONITOR
from fashionstyle.core.metrics import macro_fbeta, per_label_scores
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.batches import Batch
from fashionstyle.data.images.device_decode import DeviceCrops
from fashionstyle.data.transforms import DeviceInput
from fashionstyle.model.network import StyleNet, default_normalisation
from fashionstyle.training.mixing import mix_batch
from fashionstyle.training.online_teacher import OnlineTeacher, unnormalise, with_known_mass
from fashionstyle.training.resume_checks import rename_monitor_states

__all__ = ["StyleModule", "diverged", "epoch_scheduler", "gather_in_order", "make_ema"]


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
        frozen = self.current_epoch < self.config.freeze_epochs  # LP-FT: the head alone first
        self.model.backbone.requires_grad_(not frozen)
        if frozen:
            self.model.backbone.eval()  # batch norm keeps ImageNet's statistics while the head learns

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
        if not np.isfinite(probs).all():  # the weights went NaN: nothing later can be tuned or kept
            raise FashionStyleError(diverged(self.current_epoch + 1, self.trainer.callback_metrics, self.config.lr))
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
        rename_monitor_states(checkpoint)  # before Lightning restores the callbacks' states

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


def diverged(epoch: int, metrics: dict[str, Any], lr: float) -> str:
    """The one-line stop of a training whose model outputs went non-finite in `epoch`."""
    loss = metrics.get("train_loss")
    seen = f" (training loss {float(loss):.3g})" if loss is not None else ""
    return (f"the training diverged in epoch {epoch}: the model's validation outputs are not finite{seen}; "
            f"train again into a new --out with a lower --lr (it was {lr:g})")
