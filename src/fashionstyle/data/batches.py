"""Collated batches without their unreadable images, pinned for the copy to the device.

    loader = DataLoader(dataset, collate_fn=collate_skipping, pin_memory=True)   # Batch.pin_memory runs
    batch.images, batch.targets, batch.index, batch.bad, batch.flip

torch's pin hook returns an object it does not know unchanged unless the object has a `pin_memory`
method: Batch has one, so a loader with pin_memory=True hands over pinned tensors and the
`non_blocking` copies to the device really overlap.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import default_collate

from fashionstyle.data.transforms import Augmented

Item = tuple[Any, torch.Tensor, int, str]  # ImageDataset's: (image or None, target, row, why unreadable)


def pinned(value: Any) -> Any:
    """`value` with its tensors in page-locked memory: a tensor, or tuples and lists of them (nested);
    anything else (encoded JPEGs travel to the device's decoder, not by copy) as it is."""
    if isinstance(value, torch.Tensor):
        return value.pin_memory()
    if isinstance(value, tuple) and not hasattr(value, "_fields"):  # a named tuple keeps its fields
        return tuple(pinned(v) for v in value)
    if isinstance(value, Augmented):
        return Augmented(*(pinned(v) for v in value))
    if isinstance(value, list):
        return [pinned(v) for v in value]
    return value


@dataclass
class Batch:
    """A collated batch without its unreadable images."""

    images: Any  # (B, 3, H, W) uint8, or a tuple of (B, T, 3, H, W) (one per preprocessing); None if all bad
    targets: torch.Tensor | None  # (B, L)
    index: torch.Tensor  # (B,) dataset rows
    bad: list[tuple[int, str]]  # (row, reason) of the images left out
    flip: torch.Tensor | None = None  # (B,) bool: training images the device flips

    def pin_memory(self) -> "Batch":
        """The same batch with its tensors pinned (what DataLoader's pin_memory=True calls)."""
        return dataclasses.replace(self, images=pinned(self.images), targets=pinned(self.targets),
                                   index=pinned(self.index), flip=pinned(self.flip))


def _readable(items: list[Item]) -> tuple[list[tuple], list[tuple[int, str]]]:
    """The (image, target, index) of the readable items, and the (index, reason) of the others."""
    return ([item[:3] for item in items if item[0] is not None],
            [(item[2], item[3]) for item in items if item[0] is None])


def collate_skipping(items: list[Item]) -> Batch:
    """The readable items stacked (uint8 images or view stacks, targets, rows); the others in `bad`."""
    good, bad = _readable(items)
    if not good:
        return Batch(None, None, torch.zeros(0, dtype=torch.long), bad)
    images, targets, index = default_collate(good)
    if isinstance(images, Augmented):
        return Batch(images.image, targets, index, bad, images.flip)
    return Batch(images, targets, index, bad)


def collate_unstacked(items: list[Item]) -> Batch:
    """As collate_skipping, with the images left as a list (encoded JPEGs and view stacks, for the device)."""
    good, bad = _readable(items)
    index = torch.tensor([item[2] for item in good], dtype=torch.long)
    targets = torch.stack([item[1] for item in good]) if good else None  # (B, L)
    return Batch([item[0] for item in good] or None, targets, index, bad)
