"""Images as tensors: dataset, transforms, train/val splits, and listing image folders."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from .errors import FashionStyleError
from .labels import LabelTable, stratified_split

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
Image.MAX_IMAGE_PIXELS = 89_478_485  # Pillow's bomb guard, made explicit: larger images are refused


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


def open_rgb(path: str | Path) -> Image.Image:
    """Decode an image file as RGB, or raise FashionStyleError saying why not."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise FashionStyleError(f"{path}: image not found") from None
    except Image.DecompressionBombError:
        raise FashionStyleError(f"{path}: image too large (over {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FashionStyleError(f"{path}: not a readable image ({err})") from None


class ImageDataset(Dataset):
    """(image tensor (3, H, W), target vector (L,), row index) for each image path."""

    def __init__(self, images: Sequence[str | Path], targets: np.ndarray | None, transform: Callable):
        self.images = [str(p) for p in images]
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = self.transform(open_rgb(self.images[index]))  # (3, H, W)
        target = self.targets[index] if self.targets is not None else torch.zeros(0)
        return image, target, index


def check_images_exist(table: LabelTable) -> None:
    """Fail before training when images are missing, naming the first few."""
    missing = [(p, n) for p, n in zip(table.images, table.line_numbers or [0] * len(table)) if not Path(p).is_file()]
    if missing:
        shown = "; ".join(f"{p} (line {n})" for p, n in missing[:3])
        raise FashionStyleError(f"{len(missing)} of {len(table)} images listed in {table.source} "
                                f"are missing: {shown}")


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


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FashionStyleError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FashionStyleError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
