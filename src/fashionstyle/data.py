"""Images as tensors: dataset, transforms and train/val splits (decoding and listing: images.py, re-exported)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate
from tqdm.auto import tqdm
from torchvision import transforms as T

from .errors import FashionStyleError
from .images import (BAD_IMAGE_POLICIES, IMAGE_SUFFIXES, TTA_MODES, check_policy, check_tta_mode,  # noqa: F401
                     list_images, open_rgb, to_rgb)
from .labels import LabelTable, stratified_split


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                    crop_scale: float = 0.35, hflip: bool = True) -> Callable:
    """Random resized crop (+ horizontal flip) for training."""
    steps = [T.RandomResizedCrop(image_size, scale=(crop_scale, 1.0), antialias=True)]
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Resize the shorter side to size/0.875, then centre-crop (timm's default)."""
    return T.Compose([T.Resize(int(round(image_size / 0.875)), antialias=True),
                      T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)])


def tta_transform(image_size: int, mean: Sequence[float], std: Sequence[float], tta: str = "none") -> Callable:
    """Test-time views of one image, stacked: (T, 3, H, W) with T = 1, 2, 5 or 10.

    flip: the centre crop and its mirror; five-crop: the corners and centre of the
    resized image; ten-crop: those five and their mirrors.
    """
    check_tta_mode(tta)
    resize = T.Resize(int(round(image_size / 0.875)), antialias=True)
    to_tensor = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    crops = {"none": lambda im: [T.CenterCrop(image_size)(im)],
             "flip": lambda im: [c := T.CenterCrop(image_size)(im), T.functional.hflip(c)],
             "five-crop": lambda im: list(T.FiveCrop(image_size)(im)),
             "ten-crop": lambda im: list(T.TenCrop(image_size)(im))}[tta]
    return lambda image: torch.stack([to_tensor(c) for c in crops(resize(image))])


class ImageDataset(Dataset):
    """(image tensor (3, H, W), target (L,), row index, problem) for each image path.

    With on_bad="skip" an unreadable image gives (None, target, index, reason)
    instead of raising; `collate_skipping` drops it from the batch.
    """

    def __init__(self, images: Sequence[str | Path], targets: np.ndarray | None, transform: Callable,
                 on_bad: str = "fail", seed: int | None = None,
                 opener: Callable[[str | Path], Image.Image] = open_rgb):
        check_policy(on_bad)
        self.images = [str(p) for p in images]
        self.opener = opener  # open_rgb, or an ImageCache's open
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.transform = transform
        self.on_bad = on_bad
        self.seed = seed  # set: random transforms depend on (seed, epoch, row) alone

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor, int, str]:
        epoch, index = divmod(index, len(self.images))  # EpochShuffle encodes the epoch
        target = self.targets[index] if self.targets is not None else torch.zeros(0)
        try:
            image = self.opener(self.images[index])
            if self.seed is None:
                return self.transform(image), target, index, ""
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF)
                return self.transform(image), target, index, ""
        except FashionStyleError as err:
            if self.on_bad == "fail":
                raise
            return None, target, index, str(err)


class EpochShuffle(Sampler[int]):
    """A shuffle that depends on (seed, epoch) alone, so a resumed run sees the same batches.

    Yields `epoch * n + row`; ImageDataset decodes the epoch to seed its augmentation.
    The epoch comes from `epoch_fn` (the trainer's) or else from `set_epoch`.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0
        self.epoch_fn: Callable[[], int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        epoch = self.epoch_fn() if self.epoch_fn else self.epoch
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return iter((epoch * self.n + torch.randperm(self.n, generator=generator)).tolist())


@dataclass
class Batch:
    """A collated batch without its unreadable images."""

    images: Any  # (B, 3, H, W), or a tuple of them (one per preprocessing); None if all were bad
    targets: torch.Tensor | None  # (B, L)
    index: torch.Tensor  # (B,) dataset rows
    bad: list[tuple[int, str]]  # (row, reason) of the images left out


def collate_skipping(items: list[tuple[Any, torch.Tensor, int, str]]) -> Batch:
    good = [item[:3] for item in items if item[0] is not None]
    bad = [(item[2], item[3]) for item in items if item[0] is None]
    if not good:
        return Batch(None, None, torch.zeros(0, dtype=torch.long), bad)
    images, targets, index = default_collate(good)
    return Batch(images, targets, index, bad)


def drop_bad_images(table: LabelTable, on_bad: str, decode: bool, progress: bool = False,
                    opener: Callable[[str | Path], Image.Image] = open_rgb
                    ) -> tuple[LabelTable, list[tuple[str, str]]]:
    """The rows whose images exist (and, with decode, decode), and the others' (path, reason).

    With on_bad="fail" the first bad image raises instead.
    """
    check_policy(on_bad)
    bad, keep = [], []
    rows = tqdm(range(len(table)), desc="checking images", unit="img", disable=not progress)
    for i in rows:
        path = table.images[i]
        try:
            if decode:
                opener(path)
            elif not Path(path).is_file():
                raise FashionStyleError(f"{path}: image not found")
            keep.append(i)
        except FashionStyleError as err:
            where = f" ({table.source}, line {table.line_numbers[i]})" if table.line_numbers else ""
            if on_bad == "fail":
                raise FashionStyleError(f"{err}{where}; pass --on-bad-image skip to leave it out") from None
            bad.append((str(path), str(err)))
    if bad:
        warnings.warn(f"skipping {len(bad)} of {len(table)} images that cannot be read, e.g. {bad[0][1]}",
                      stacklevel=2)
    return (table if not bad else table.subset(keep)), bad


def train_val_split(table: LabelTable, val_fraction: float, seed: int) -> tuple[LabelTable, LabelTable]:
    """The file's own train/val split, or a seeded, label-stratified one."""
    if table.splits is not None and "val" in table.splits:
        return table.split("train"), table.split("val")
    rows = np.arange(len(table))
    if table.splits is not None:  # a split column without val: split its train rows
        rows = np.array([i for i, s in enumerate(table.splits) if s == "train"])
        if len(rows) == 0:
            raise FashionStyleError(f"{table.source}: no train rows")
    is_val = stratified_split(table.require_targets()[rows], val_fraction, seed)
    return table.subset(rows[~is_val]), table.subset(rows[is_val])
