"""JPEGs decoded on the device the model runs on: where that happens, the decoder and its refusals.

    if decodes_on_gpu(decode, uses_cuda(accelerator)): ...      # --decode gpu, refused without CUDA
    decoder = DeviceDecoder("cuda")
    images = decoder.images(jpegs)    # tensors on the device, or the FashionStyleError of an unreadable file
    decoder.summary()                 # "" or one line: the files the device decoder refused, and why
    batch = DeviceCrops(224, "cuda")(batch)   # train --decode gpu: PlannedCrops -> (B, 3, S, S) uint8 crops

Training, prediction and the benchmarks all decode through DeviceDecoder, which decodes through
decode.decode_jpegs (the caller's CUDA stream drained first). A file the device decoder refuses is
decoded on the host instead: counted, the first one said at once in a warning (which file, why), all
of them in `summary()`. A decoder that cannot start ends the GPU path with one FashionStyleError line;
out-of-memory and CUDA errors are raised as they are (never a silent host fallback).
"""
from __future__ import annotations

import functools
import re
import warnings
from typing import Sequence

import torch

from fashionstyle.core.config import DECODERS
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.batches import Batch
from fashionstyle.data.images.decode import EncodedJpeg, decode_image, decode_jpegs
from fashionstyle.data.images.files import check_policy
from fashionstyle.data.transforms import PlannedCrop, crop_resized

START_UP_FAILURE = re.compile(r"Failed to (initialize|create)|not compiled with nvJPEG|nvjpeg.*(not found|cannot open)",
                              re.IGNORECASE)  # torchvision's messages when nvJPEG itself cannot start
NOT_TO_SWALLOW = re.compile(r"out of memory|CUDA error", re.IGNORECASE)  # the device is in trouble, not the file
SHOWN_IN_SUMMARY = 5  # files named in summary(); the count covers all


def uses_cuda(accelerator: str) -> bool:
    """Whether a run on Lightning's `accelerator` (auto, cpu, gpu, cuda, ...) runs on CUDA here: what
    pinned memory, precision and the decode placement follow (`--accelerator cpu` on a GPU machine: no)."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def decodes_on_gpu(decode: str, cuda: bool) -> bool:
    """Whether JPEGs are decoded on the GPU (nvJPEG), for training and prediction alike: only when asked
    for ("gpu"; "auto" decodes on the host until bench/infer_speed.py and bench/train_speed.py show the
    GPU decoder ahead), and refused in one line when `cuda` (a CUDA device will run the model) is False."""
    if DECODERS.check(decode).name == "gpu" and not cuda:
        raise FashionStyleError("--decode gpu needs a CUDA device (none here, --accelerator cpu or --device cpu); "
                                "use --decode cpu or auto")
    return decode == "gpu"


SOURCE_PLACE = re.compile(r"^\w+, \S+:\d+, ")  # "decode_jpeg, /path/decode_jpeg.cpp:171, " before the reason


def first_line(err: BaseException) -> str:
    """The error's first line, without the C++ source place torchvision puts before the reason."""
    return SOURCE_PLACE.sub("", (str(err).strip().splitlines() or [type(err).__name__])[0])


class DeviceDecoder:
    """Plain JPEGs -> (3, H, W) uint8 upright images on `device`, one batched call per batch (nvJPEG
    on CUDA; torchvision's libjpeg-turbo for device="cpu", what the tests use), with its refusals
    counted: `refused` holds (path, why), `decoded` the images it decoded."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self.name = "nvJPEG" if self.device.type == "cuda" else "the batched CPU decoder"
        self.reset()

    def reset(self) -> None:
        self.refused: list[tuple[str, str]] = []
        self.decoded, self.host_decoded = 0, 0

    def __call__(self, jpegs: Sequence[EncodedJpeg]) -> list[torch.Tensor | None]:
        """Each JPEG on the device, or None where the decoder refuses it (one by one after a failed batch)."""
        if not jpegs:
            return []
        try:
            images: list[torch.Tensor | None] = list(decode_jpegs(jpegs, self.device))
        except RuntimeError as err:
            self._check_device(err)
            images = [self._one(jpeg) for jpeg in jpegs]
            self._check_started(jpegs, images)
        self.decoded += sum(image is not None for image in images)
        return images

    def images(self, jpegs: Sequence[EncodedJpeg]) -> list[torch.Tensor | FashionStyleError]:
        """Each JPEG on the device; one the device decoder refuses decoded by decode_image on the host and
        copied over, or, when no decoder can read it, the FashionStyleError saying why."""
        out: list[torch.Tensor | FashionStyleError] = []
        for jpeg, image in zip(jpegs, self(jpegs)):
            if image is None:
                try:
                    image = decode_image(jpeg.path).to(self.device)
                    self.host_decoded += 1
                except FashionStyleError as err:
                    image = err
            out.append(image)
        return out

    def summary(self) -> str:
        """One line: how many files the decoder refused, which (the first few) and why; "" when none."""
        if not self.refused:
            return ""
        named = "; ".join(f"{path} ({why})" for path, why in self.refused[:SHOWN_IN_SUMMARY])
        more = f"; and {len(self.refused) - SHOWN_IN_SUMMARY} more" if len(self.refused) > SHOWN_IN_SUMMARY else ""
        return (f"{self.name} on {self.device} refused {len(self.refused)} of "
                f"{len(self.refused) + self.decoded} JPEGs ({self.host_decoded} decoded on the host instead, "
                f"the others unreadable): {named}{more}")

    def _one(self, jpeg: EncodedJpeg) -> torch.Tensor | None:
        try:
            return decode_jpegs([jpeg], self.device)[0]
        except RuntimeError as err:
            self._check_device(err)
            self.refused.append((jpeg.path, first_line(err)))
            if len(self.refused) == 1:
                warnings.warn(f"{self.name} on {self.device} refused {jpeg.path} ({first_line(err)}): it goes to the "
                              "host's decoder; further refusals are counted", stacklevel=3)
            return None

    def _check_device(self, err: RuntimeError) -> None:
        """Raise what no host fallback may hide: out of memory and CUDA errors as they are, a decoder that
        cannot start as one FashionStyleError line."""
        if isinstance(err, torch.cuda.OutOfMemoryError) or NOT_TO_SWALLOW.search(str(err)):
            raise err
        if START_UP_FAILURE.search(str(err)):
            raise FashionStyleError(f"--decode gpu: {self.name} could not start on {self.device} "
                                    f"({first_line(err)}); use --decode cpu") from err

    def _check_started(self, jpegs: Sequence[EncodedJpeg], images: list[torch.Tensor | None]) -> None:
        """A CUDA decoder that has decoded nothing yet and refuses every file of a batch does not work."""
        if self.device.type == "cuda" and self.decoded == 0 and len(jpegs) > 1 and all(i is None for i in images):
            why = self.refused[-1][1]
            raise FashionStyleError(f"--decode gpu: {self.name} on {self.device} decoded none of its first "
                                    f"{len(jpegs)} JPEGs (e.g. {why}); use --decode cpu")


@functools.lru_cache(maxsize=None)
def shared_decoder(device: torch.device) -> DeviceDecoder:
    """One decoder per device for a process's training batches (a DeviceCrops is made per batch), so its
    count covers the run; training.decode_report.DecodeReport resets it and says its summary."""
    return DeviceDecoder(device)


class DeviceCrops:
    """A training batch of PlannedCrops (and host-made Augmented crops, for the files the device
    decoder cannot take) -> the Batch of (B, 3, S, S) uint8 crops on `device` and their flips.

    The JPEGs are decoded in one batched call by `decoder` (default: shared_decoder(device)); an image
    that cannot be read at all is left out (on_bad="skip", listed in Batch.bad) or raises.
    """

    def __init__(self, image_size: int, device: str | torch.device, on_bad: str = "skip",
                 decoder: DeviceDecoder | None = None):
        self.image_size, self.device, self.on_bad = image_size, torch.device(device), check_policy(on_bad)
        self.decoder = decoder or shared_decoder(self.device)

    def __call__(self, batch: Batch) -> Batch:
        samples = batch.images or []
        planned = [i for i, s in enumerate(samples) if isinstance(s, PlannedCrop)]
        decoded = dict(zip(planned, self.decoder.images([samples[i].jpeg for i in planned])))
        crops, flips, kept, bad = [], [], [], list(batch.bad)
        for i, sample in enumerate(samples):
            if isinstance(sample, PlannedCrop):
                image = decoded[i]
                if isinstance(image, FashionStyleError):
                    if self.on_bad == "fail":
                        raise image
                    bad.append((int(batch.index[i]), str(image)))
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
