"""The input pipeline: images stay uint8 until the device; datasets and train/val splits.

    decoded = decode_image("a.jpg", min_side=256)       # (3, H, W) uint8, upright RGB
    views = EvalViews(224, "flip")(decoded)             # (T, 3, 224, 224) uint8, on the host
    x = DeviceInput(mean, std)(views.to(device))        # (T, 3, 224, 224) float, normalised

Host side (DataLoader workers): decode (libjpeg-turbo through torchvision.io for
plain JPEGs; Pillow for every other file, and with its DCT scaling for a JPEG at
least twice the size needed), resize with antialiasing and crop on uint8, collate
uint8. Device side (after a pinned copy): to float, normalise, flip the training
images drawn for it, channels-last when asked. Training (TrainCrop), validation,
prediction, evaluate, explain and the service all go this way; eval_transform and
tta_transform give the same views normalised on the host, for CPU-only users.
Decoding and listing files are in images.py (torch-free).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate
from torchvision import transforms as T
from torchvision.transforms.v2 import functional as F2
from tqdm.auto import tqdm

from fashionstyle.core.config import AUGMENTATIONS, DECODERS
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import (
    check_policy,
    check_tta_mode,
    draft_scale,
    open_checked,
    open_rgb,
    resize_size,
    tta_crops,
)
from fashionstyle.data.labels import LabelTable, stratified_split

try:  # torchvision.io's image decoders are deprecated from 0.29 (for TorchCodec): Pillow when gone
    from torchvision.io import ImageReadMode, decode_jpeg
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)
except ImportError:  # pragma: no cover - a future torchvision
    decode_jpeg = None

FAST_JPEG_MODES = ("RGB", "L")  # JPEGs libjpeg-turbo turns into RGB as Pillow does (CMYK goes through Pillow)
ORIENTATIONS = {  # EXIF orientation -> the (3, H, W) tensor made upright, as ImageOps.exif_transpose does
    2: lambda x: x.flip(-1), 3: lambda x: x.flip(-2, -1), 4: lambda x: x.flip(-2),
    5: lambda x: x.transpose(-2, -1), 6: lambda x: x.transpose(-2, -1).flip(-1),
    7: lambda x: x.transpose(-2, -1).flip(-2, -1), 8: lambda x: x.transpose(-2, -1).flip(-2)}


# -- decoding ------------------------------------------------------------------------------------------------
class EncodedJpeg(NamedTuple):
    """A plain JPEG file's bytes (1-D uint8 tensor), its EXIF orientation (1-8), its path and the
    (height, width) of the image made upright."""

    data: torch.Tensor
    orientation: int
    path: str = ""
    size: tuple[int, int] = (0, 0)


def read_plain_jpeg(path: str | Path, min_side: int | None = None) -> EncodedJpeg | None:
    """The file's bytes when libjpeg-turbo decodes it as Pillow would (a JPEG in RGB or grey, under
    the bomb limit, not big enough for DCT scaling to `min_side`); None for everything else."""
    if decode_jpeg is None:
        return None
    try:
        with open_checked(path) as image:
            if (image.format != "JPEG" or image.mode not in FAST_JPEG_MODES
                    or draft_scale(image.size, min_side) > 1):
                return None
            orientation = image.getexif().get(0x0112, 1)
            width, height = image.size
        data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    except Exception:  # noqa: BLE001 - open_rgb tells the user what is wrong with the file
        return None
    orientation = orientation if orientation in ORIENTATIONS else 1
    return EncodedJpeg(data, orientation, str(path), (width, height) if orientation >= 5 else (height, width))


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """A (3, H, W) image as stored with EXIF `orientation`, made upright."""
    return ORIENTATIONS[orientation](image) if orientation in ORIENTATIONS else image


def decode_jpegs(jpegs: Sequence[EncodedJpeg], device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """(3, H, W) uint8 upright images on `device`: one batched call of torchvision's decoder (nvJPEG on
    CUDA, libjpeg-turbo on the CPU); raises RuntimeError for a file it cannot decode."""
    decoded = decode_jpeg([j.data for j in jpegs], mode=ImageReadMode.RGB, device=device)
    return [upright(image, j.orientation) for image, j in zip(decoded, jpegs)]


def decode_jpegs_or_none(jpegs: Sequence[EncodedJpeg], device: str | torch.device) -> list[torch.Tensor | None]:
    """decode_jpegs, one batched call; when that fails, one by one, with None for those that fail."""
    try:
        return list(decode_jpegs(jpegs, device))
    except RuntimeError:
        pass
    out: list[torch.Tensor | None] = []
    for jpeg in jpegs:
        try:
            out.append(decode_jpegs([jpeg], device)[0])
        except RuntimeError:
            out.append(None)
    return out


def decodes_on_gpu(decode: str, cuda: bool) -> bool:
    """Whether JPEGs are decoded on the GPU (nvJPEG), for training and prediction alike: only when asked
    for ("gpu"; "auto" decodes on the host until bench/infer_speed.py and bench/train_speed.py show the
    GPU decoder ahead), and refused in one line when `cuda` (a CUDA device will run the model) is False."""
    if DECODERS.check(decode).name == "gpu" and not cuda:
        raise FashionStyleError("--decode gpu needs a CUDA device (none here, --accelerator cpu or --device cpu); "
                                "use --decode cpu or auto")
    return decode == "gpu"


def read_for_device(path: str | Path, min_side: int | None = None) -> EncodedJpeg | torch.Tensor:
    """A plain JPEG's bytes, for decoding on the device (decode_jpegs); any other file decoded here."""
    return read_plain_jpeg(path, min_side) or decode_image(path, min_side)


def pil_to_uint8(image: Image.Image) -> torch.Tensor:
    """(3, H, W) uint8 of an RGB PIL image, in (H, W, 3) memory (what the uint8 resize is fastest on)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


def decode_image(path: str | Path, min_side: int | None = None) -> torch.Tensor:
    """An image file as (3, H, W) uint8 upright RGB, or FashionStyleError saying why not (as open_rgb).

    Plain JPEGs go through libjpeg-turbo in torchvision.io (10-20% faster than Pillow, and without
    its two copies); the others, and JPEGs at least twice `min_side` (decoded reduced), through open_rgb.
    """
    jpeg = read_plain_jpeg(path, min_side)
    if jpeg is not None:
        try:
            return decode_jpegs([jpeg])[0]
        except RuntimeError:
            pass  # Pillow decides: it says why, or decodes what libjpeg-turbo refused
    return pil_to_uint8(open_rgb(path, min_side))


def as_uint8(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 from a decoded (upright) PIL image or such a tensor."""
    if isinstance(image, Image.Image):
        return pil_to_uint8(image if image.mode == "RGB" else image.convert("RGB"))
    return image


# -- uint8 geometry (host or device) -------------------------------------------------------------------------
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
    (DeviceCrops): the same draws TrainCrop makes for the decoded image."""

    jpeg: EncodedJpeg
    box: tuple[int, int, int, int]  # top, left, height, width in the upright image
    flip: bool


def crop_resized(image: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """(3, H, W) uint8 on any device -> its `box` (top, left, height, width) resized to (3, size, size)."""
    top, left, h, w = box
    crop = image[None, :, top:top + h, left:left + w].contiguous(memory_format=torch.channels_last)
    return resize_uint8(crop, (size, size))[0]


class TrainCrop:
    """Random resized crop on uint8 (torchvision's parameters and random draws), and a flip drawn
    here but applied on the device (DeviceInput). An EncodedJpeg (decode="gpu") is not decoded:
    the same draws, from its header's size, travel with it as a PlannedCrop. `augment`
    (config.AUGMENTATIONS: TrivialAugmentWide, RandAugment) then acts on the uint8 crop."""

    def __init__(self, image_size: int, crop_scale: float = 0.35, hflip: bool = True, augment: str = "none"):
        self.image_size, self.scale, self.hflip = image_size, (crop_scale, 1.0), hflip
        self.ratio = (3 / 4, 4 / 3)
        choice = AUGMENTATIONS.check(augment)
        self.augment = choice.load()() if choice.target else None

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


class DeviceCrops:
    """A training batch of PlannedCrops (and host-made Augmented crops, for the files the device
    decoder cannot take) -> the Batch of (B, 3, S, S) uint8 crops on `device` and their flips.

    The JPEGs are decoded in one batched call (nvJPEG on CUDA; libjpeg-turbo for device="cpu",
    what the tests use); one the device decoder refuses is decoded by decode_image here, and an
    image that cannot be read at all is left out (on_bad="skip", listed in Batch.bad) or raises.
    """

    def __init__(self, image_size: int, device: str | torch.device, on_bad: str = "skip"):
        self.image_size, self.device, self.on_bad = image_size, torch.device(device), check_policy(on_bad)

    def __call__(self, batch: Batch) -> Batch:
        samples = batch.images or []
        planned = [i for i, s in enumerate(samples) if isinstance(s, PlannedCrop)]
        decoded = dict(zip(planned, decode_jpegs_or_none([samples[i].jpeg for i in planned], self.device)
                               if planned else []))  # sample -> (3, H, W) uint8 on the device, or None
        crops, flips, kept, bad = [], [], [], list(batch.bad)
        for i, sample in enumerate(samples):
            if isinstance(sample, PlannedCrop):
                image = decoded[i]
                try:
                    image = image if image is not None else decode_image(sample.jpeg.path).to(self.device)
                except FashionStyleError as err:
                    if self.on_bad == "fail":
                        raise
                    bad.append((int(batch.index[i]), str(err)))
                    continue
                crops.append(crop_resized(image, sample.box, self.image_size))
                flips.append(sample.flip)
            else:  # decoded and cropped in the worker
                crops.append(sample.image.to(self.device, non_blocking=True))
                flips.append(bool(sample.flip))
            kept.append(i)
        if not kept:
            return Batch(None, None, torch.zeros(0, dtype=torch.long), bad)
        return Batch(torch.stack(crops), batch.targets[kept], batch.index[kept], bad,  # (B, 3, S, S) uint8
                     torch.tensor(flips, device=self.device))


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


class ImageDataset(Dataset):
    """(transform's output, target (L,), row index, problem) for each image path; `opener` decodes
    (decode_image, or an ImageCache's) and `transform` makes uint8 views or crops of it.

    With on_bad="skip" an unreadable image gives (None, target, index, reason)
    instead of raising; `collate_skipping` drops it from the batch.
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


@dataclass
class Batch:
    """A collated batch without its unreadable images."""

    images: Any  # (B, 3, H, W) uint8, or a tuple of (B, T, 3, H, W) (one per preprocessing); None if all bad
    targets: torch.Tensor | None  # (B, L)
    index: torch.Tensor  # (B,) dataset rows
    bad: list[tuple[int, str]]  # (row, reason) of the images left out
    flip: torch.Tensor | None = None  # (B,) bool: training images the device flips


def _readable(items: list[tuple[Any, torch.Tensor, int, str]]) -> tuple[list[tuple], list[tuple[int, str]]]:
    """The (image, target, index) of the readable items, and the (index, reason) of the others."""
    return ([item[:3] for item in items if item[0] is not None],
            [(item[2], item[3]) for item in items if item[0] is None])


def collate_skipping(items: list[tuple[Any, torch.Tensor, int, str]]) -> Batch:
    good, bad = _readable(items)
    if not good:
        return Batch(None, None, torch.zeros(0, dtype=torch.long), bad)
    images, targets, index = default_collate(good)
    if isinstance(images, Augmented):
        return Batch(images.image, targets, index, bad, images.flip)
    return Batch(images, targets, index, bad)


def collate_unstacked(items: list[tuple[Any, torch.Tensor, int, str]]) -> Batch:
    """As collate_skipping, with the images left as a list (encoded JPEGs and view stacks, for the device)."""
    good, bad = _readable(items)
    index = torch.tensor([item[2] for item in good], dtype=torch.long)
    targets = torch.stack([item[1] for item in good]) if good else None  # (B, L)
    return Batch([item[0] for item in good] or None, targets, index, bad)


def drop_bad_images(table: LabelTable, on_bad: str, decode: bool, progress: bool = False,
                    opener: Callable[[str | Path], Any] = decode_image
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
