"""uint8 views and crops of decoded images, and the device's last step to model input.

    views = EvalViews(224, "flip")(decode_image("a.jpg"))   # (T, 3, 224, 224) uint8, on the host
    x = DeviceInput(mean, std)(views.to(device))             # (T, 3, 224, 224) float, normalised

Host side (DataLoader workers): resize with antialiasing and crop on uint8 (EvalViews for
prediction and validation, TrainCrop for training). Device side (after a pinned copy): to float,
normalise, flip the training images drawn for it, channels-last when asked (DeviceInput).
eval_transform and tta_transform give the same views normalised on the host, for CPU-only users.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F2

from fashionstyle.core.config import AUGMENTATIONS
from fashionstyle.data.images.decode import EncodedJpeg, as_uint8
from fashionstyle.data.images.files import check_tta_mode, resize_size, tta_crops


def resize_uint8(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) or (N, 3, H, W) uint8 -> (..., 3, h, w) uint8, bilinear with antialiasing: torchvision's
    resize (on the CPU straight on uint8, fastest in (H, W, 3) memory; on a GPU through float, rounded)."""
    return F2.resize(images, list(size), antialias=True)


def shorter_side_to(image: torch.Tensor, size: int) -> torch.Tensor:
    """The shorter side to `size`, the longer in proportion (truncated), as images.resize_shorter."""
    h, w = image.shape[-2:]
    short, long = min(h, w), max(h, w)
    new_long = int(size * long / short)
    return resize_uint8(image, (new_long, size) if h >= w else (size, new_long))


class EvalViews:
    """Test-time views of one image as (T, 3, S, S) uint8: shorter side to S/0.875, centre crop
    (and flips or corner crops, see images.tta_views). Takes a decoded tensor or a PIL image."""

    def __init__(self, image_size: int, tta: str = "none"):
        self.image_size, self.tta = image_size, check_tta_mode(tta)
        self.resize = resize_size(image_size)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return self.of_batch(as_uint8(image)[None])[0]

    def of_batch(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 images of one size, on any device -> (N, T, 3, S, S) uint8."""
        pixels = shorter_side_to(images, self.resize).permute(2, 3, 0, 1)  # (H, W, N, 3)
        views = torch.stack(tta_crops(pixels, self.image_size, self.tta, lambda p: p.flip(1)))  # (T, S, S, N, 3)
        return views.permute(3, 0, 4, 1, 2).contiguous()

    def centre(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """The first view alone, (3, S, S) uint8 (validation's)."""
        return self(image)[0]


class Augmented(NamedTuple):
    """A training crop (3, S, S) uint8 and whether the device flips it (a bool tensor)."""

    image: torch.Tensor
    flip: torch.Tensor


class PlannedCrop(NamedTuple):
    """A plain JPEG's bytes and the training crop drawn for it, decoded and cropped on the device
    (device_decode.DeviceCrops): the same draws TrainCrop makes for the decoded image."""

    jpeg: EncodedJpeg
    box: tuple[int, int, int, int]  # top, left, height, width in the upright image
    flip: bool


def crop_resized(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """(3, H, W) uint8 on any device -> its `box` (top, left, height, width) resized to (3, size, size)."""
    top, left, h, w = box
    crop = image[None, :, top:top + h, left:left + w].contiguous(memory_format=torch.channels_last)
    return resize_uint8(crop, (size, size))[0]


AUGMENTATIONS.implements("trivialaugment")(v2.TrivialAugmentWide)
AUGMENTATIONS.implements("randaugment")(v2.RandAugment)

class TrainCrop:
    """Random resized crop on uint8 (torchvision's parameters and random draws), and a flip drawn
    here but applied on the device (DeviceInput). An EncodedJpeg (decode="gpu") is not decoded:
    the same draws, from its header's size, travel with it as a PlannedCrop. `augment`
    (config.AUGMENTATIONS: TrivialAugmentWide, RandAugment) then acts on the uint8 crop."""

    def __init__(self, image_size: int, crop_scale: float = 0.35, hflip: bool = True, augment: str = "none"):
        self.image_size, self.scale, self.hflip = image_size, (crop_scale, 1.0), hflip
        self.ratio = (3 / 4, 4 / 3)
        make = AUGMENTATIONS.implementation(augment)  # None: the crop and flip alone
        self.augment = make() if make else None

    def min_side(self) -> int:
        """The shorter side a photo can be reduced to before cropping loses detail (smallest crop)."""
        return int(np.ceil(self.image_size / np.sqrt(self.scale[0] * self.ratio[0])))

    def draw(self, height: int, width: int) -> tuple[tuple[int, int, int, int], bool]:
        """The crop box (top, left, height, width) and the flip for an image of that size."""
        shape_only = torch.empty(1, 1, 1, dtype=torch.uint8).expand(3, height, width)
        box = T.RandomResizedCrop.get_params(shape_only, list(self.scale), list(self.ratio))
        return tuple(box), bool(torch.rand(1) < 0.5) if self.hflip else False

    def __call__(self, image: Image.Image | torch.Tensor | EncodedJpeg) -> Augmented | PlannedCrop:
        if isinstance(image, EncodedJpeg):
            return PlannedCrop(image, *self.draw(*image.size))
        image = as_uint8(image)
        box, flip = self.draw(*image.shape[-2:])
        crop = crop_resized(image, box, self.image_size)  # (3, S, S)
        if self.augment is not None:
            crop = self.augment(crop.contiguous())
        return Augmented(crop, torch.tensor(flip))  # (H, W, 3) memory: collating makes the batch contiguous


class DeviceInput:
    """uint8 images (..., 3, H, W) on the device -> the model's input: float, scaled to 0..1 and
    normalised by mean and std, flipped where `flip` says, channels-last when asked."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool = False):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255
        self.scale = 1 / (torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255)
        self.channels_last = channels_last
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # copied once per device

    def __call__(self, images: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        if images.device not in self._on:  # a copy per batch would wait for the device each time
            self._on[images.device] = self.mean.to(images.device), self.scale.to(images.device)
        mean, scale = self._on[images.device]
        x = images.float().sub_(mean).mul_(scale)
        if flip is not None:  # no .any(): that would wait for the device
            x = torch.where(flip.to(x.device).view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


class HostViews:
    """One image -> (T, 3, S, S) float views normalised on the host: EvalViews, then DeviceInput."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], tta: str = "none"):
        self.views, self.to_input = EvalViews(image_size, tta), DeviceInput(mean, std)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return self.to_input(self.views(image))

    def centre(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return self(image)[0]


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """One image -> (3, S, S) float, normalised on the host: the centre crop (for CPU-only users)."""
    return HostViews(image_size, mean, std).centre


def tta_transform(image_size: int, mean: Sequence[float], std: Sequence[float], tta: str = "none") -> Callable:
    """One image -> (T, 3, S, S) float views, normalised on the host."""
    return HostViews(image_size, mean, std, tta)
