"""Datasets of image files and the shuffle that makes a resumed run see the same batches.

    dataset = ImageDataset(paths, targets, TrainCrop(224), on_bad="skip", seed=0)
    image, target, row, problem = dataset[i]        # problem: why the image was left out, or ""
    sampler = EpochShuffle(len(dataset), seed=0)    # depends on (seed, epoch) alone
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.decode import decode_image
from fashionstyle.data.images.files import check_policy
from fashionstyle.data.labels.table import LabelTable


class ImageDataset(Dataset):
    """(transform's output, target (L,), row index, problem) for each image path; `opener` decodes
    (decode_image, or an ImageCache's) and `transform` makes uint8 views or crops of it.

    With on_bad="skip" an unreadable image gives (None, target, index, reason)
    instead of raising; batches.collate_skipping drops it from the batch.
    """

    def __init__(self, images: Sequence[str | Path], targets: np.ndarray | None, transform: Callable,
                 on_bad: str = "fail", seed: int | None = None,
                 opener: Callable[[str | Path], Image.Image | torch.Tensor] = decode_image):
        check_policy(on_bad)
        self.images = [str(p) for p in images]
        self.opener = opener
        self.targets = targets  # numpy (a memory map for distillation's soft targets): read row by row
        self.transform = transform
        self.on_bad = on_bad
        self.seed = seed  # set: random transforms depend on (seed, epoch, row) alone

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor, int, str]:
        epoch, index = divmod(index, len(self.images))  # EpochShuffle encodes the epoch
        target = torch.zeros(0) if self.targets is None else torch.tensor(self.targets[index], dtype=torch.float32)
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


def eval_dataset(table: LabelTable, image_size: int, cache: str | None = None) -> ImageDataset:
    """`table`'s photos as validation reads them: the centre crop, decoded on the host (or from the cache)."""
    from fashionstyle.data.images.cache import image_opener
    from fashionstyle.data.images.files import resize_size
    from fashionstyle.data.transforms import EvalViews

    opener = image_opener(cache, image_size) if cache else None
    return ImageDataset(table.images, table.targets, EvalViews(image_size).centre,
                        opener=opener or partial(decode_image, min_side=resize_size(image_size)))
