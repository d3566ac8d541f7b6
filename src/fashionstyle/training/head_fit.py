"""LP-FT's probe stage in seconds: the head fitted on the frozen backbone's cached pooled features.

    done = fit_head(module, train_loader, val_loader, epochs=200)   # before the whole network trains
    done.val_probs                                                  # (N, L) the kept head's, as TTA flip predicts

Each photo's pooled features (the centre crop and its mirror, averaged) are computed once with the
ImageNet backbone in eval mode; the head (FC-hidden, ReLU, dropout, FC-n) then trains on them with the
run's own loss, AdamW and mini-batches, for up to `epochs` passes, and the pass whose validation macro
F-beta (at thresholds tuned on it, as training picks its best epoch) is highest is kept. Fine-tuning the
whole network then starts from a head that already fits, so the backbone's features are not torn by
a random head's gradients (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"); with no
fine-tuning epochs (the `probe` recipe) the fitted head on the ImageNet backbone is the model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import macro_fbeta
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import RunSummary, summarize, write_summary
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.batches import collate_skipping
from fashionstyle.data.dataset import eval_dataset
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.model.network import StyleNet, model_record, save_model

HEAD_LR = 1e-3
HEAD_WEIGHT_DECAY = 1e-2
HEAD_BATCH = 32


@torch.no_grad()
def pooled_features(module: torch.nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2, D) features of every readable photo of `loader`: its centre crop and their mirror; (N, L) targets."""
    backbone = module.model.backbone
    was_training = backbone.training
    backbone.eval()
    feats, targets = [], []
    for batch in loader:
        if batch.images is None:
            continue
        x = module.to_input(batch.images)  # (B, 3, H, W)
        feats.append(torch.stack([backbone(x), backbone(x.flip(-1))], dim=1))
        targets.append(batch.targets.float())
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(targets)


@dataclass
class HeadFit:
    """What fit_head did: the pass kept, its validation macro F-beta, the photos it trained on, and the
    kept head's validation probabilities (N, L) as TTA flip predicts them (the two views' mean)."""

    epoch: int
    val_macro_fbeta: float
    photos: int
    val_probs: np.ndarray


def fit_head(module: torch.nn.Module, train_loader: DataLoader, val_loader: DataLoader, epochs: int,
             beta: float = 2.0, seed: int = 0) -> HeadFit:
    """Train `module.model.head` on cached features (the two views averaged) for up to `epochs` passes; keep
    the pass best on validation."""
    train_views, train_y = pooled_features(module, train_loader)
    val_views, val_y = pooled_features(module, val_loader)
    train_x = train_views.mean(dim=1)
    head = module.model.head
    optimiser = torch.optim.AdamW(head.parameters(), lr=HEAD_LR, weight_decay=HEAD_WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed)
    best = HeadFit(0, -1.0, len(train_x), np.zeros(0)), copy.deepcopy(head.state_dict())
    for epoch in range(1, epochs + 1):
        head.train()
        for rows in torch.randperm(len(train_x), generator=generator).split(HEAD_BATCH):
            optimiser.zero_grad()
            module.loss(head(train_x[rows]), train_y[rows]).backward()
            optimiser.step()
        probs = _view_probs(head, val_views)
        score = _val_score(probs, val_y, beta)
        if score > best[0].val_macro_fbeta:
            best = HeadFit(epoch, score, len(train_x), probs), copy.deepcopy(head.state_dict())
    head.load_state_dict(best[1])
    head.train()  # as Lightning expects the model at the start of training
    return best[0]


@torch.no_grad()
def _view_probs(head: torch.nn.Module, views: torch.Tensor) -> np.ndarray:
    """(N, L) the head's probabilities of (N, V, D) views, averaged over the views."""
    head.eval()
    return torch.sigmoid(head(views)).mean(dim=1).numpy()


def _val_score(probs: np.ndarray, y: torch.Tensor, beta: float) -> float:
    """Validation macro F-beta of `probs` at thresholds tuned on validation."""
    targets = y.numpy().astype(np.uint8)
    tuner = ThresholdTuner(beta=beta).fit(probs, targets)
    return float(macro_fbeta(targets, tuner.predict(probs), beta))


def fit_head_first(module: torch.nn.Module, config: TrainConfig, train_table: LabelTable,
                   val_loader: DataLoader) -> HeadFit:
    """LP-FT's probe stage: the head fitted on cached features of the training photos (head_fit.py)."""
    train_views = DataLoader(eval_dataset(train_table, config.image_size, config.cache), batch_size=config.batch_size,
                             num_workers=config.num_workers, collate_fn=collate_skipping)
    done = fit_head(module, train_views, val_loader, config.head_fit_epochs, config.beta, config.seed)
    if not is_secondary_process():
        print(f"head fitted on the frozen backbone's features of {done.photos} photos: pass {done.epoch} of "
              f"{config.head_fit_epochs} kept (validation macro F{config.beta:g} {done.val_macro_fbeta:.3f})",
              flush=True)
    return done


def finish_head_only(run: RunDir, config: TrainConfig, model: StyleNet, val_table: LabelTable,
                     fitted: HeadFit) -> RunSummary:
    """The probe's run: model.pt, its validation probabilities as it predicts (TTA flip), thresholds tuned on
    them, the summary; then the run marked complete."""
    targets = val_table.require_targets()
    if len(fitted.val_probs) != len(targets):
        raise FashionStyleError(f"{len(targets) - len(fitted.val_probs)} validation photos could not be read")
    save_model(run / "model.pt", model_record(model, config.backbone, run.label_names(),
                                               config.image_size, config.hidden, config.dropout))
    run.write_tta("flip")  # the head was chosen on the mean of the two views' probabilities
    run.write_val_probs(val_table.ids, fitted.val_probs, targets)
    tuner = ThresholdTuner(beta=config.beta, rule=config.threshold_rule).fit(fitted.val_probs, targets)
    run.write_thresholds(tuner)
    summary = summarize(run.label_names(), tuner, fitted.val_probs, targets)
    write_summary(run, summary)
    run.write_manifest("model", complete=True, best_epoch=None, epochs=0, select=config.select,
                       data=run.manifest().get("data"))
    return summary
