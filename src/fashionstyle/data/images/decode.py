"""Image files -> (3, H, W) uint8 upright RGB tensors; the one call of torchvision's JPEG decoder.

    image = decode_image("a.jpg", min_side=256)      # on the host: libjpeg-turbo, or Pillow
    jpeg = read_plain_jpeg("a.jpg")                   # the bytes, for a batched decode elsewhere
    images = decode_jpegs([jpeg], "cuda")             # nvJPEG, after the caller's stream is drained

Plain JPEGs (RGB or grey, not big enough for DCT scaling) go through libjpeg-turbo in torchvision.io
(10-20% faster than Pillow, without its two copies); every other file through images.open_rgb.
decode_jpegs is the only place that calls torchvision's decode_jpeg, for the host and the device
alike: on CUDA it first drains the caller's stream (see decode_jpegs). Decoding the images torch-free
and listing files are in files.py.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image

from fashionstyle.data.images.files import draft_scale, open_checked, open_rgb

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


def drain_stream(device: torch.device) -> None:
    """Wait until the work queued on the caller's current CUDA stream of `device` is done."""
    torch.cuda.current_stream(device).synchronize()


def decode_jpegs(jpegs: Sequence[EncodedJpeg], device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """(3, H, W) uint8 upright images on `device`: one batched call of torchvision's decoder (nvJPEG on
    CUDA, libjpeg-turbo on the CPU); raises RuntimeError for a file it cannot decode.

    On CUDA the caller's stream is drained first: torchvision allocates the outputs on the caller's
    stream but decodes on a stream of its own that does not wait for the caller's queued kernels, so
    memory they still read could be overwritten (pytorch/vision PR 9606, torchcodec PR 1634)."""
    device = torch.device(device)
    if device.type == "cuda":
        drain_stream(device)
    decoded = decode_jpeg([j.data for j in jpegs], mode=ImageReadMode.RGB, device=device)
    return [upright(image, j.orientation) for image, j in zip(decoded, jpegs)]


BAND_PIXELS = 1 << 18  # pixels pil_to_uint8 copies at a time (~1 MB: faster than one large copy too)


def pil_to_uint8(image: Image.Image, band_pixels: int = BAND_PIXELS) -> torch.Tensor:
    """(3, H, W) uint8 of an RGB PIL image, in (H, W, 3) memory (what the uint8 resize is fastest on).

    A large image is copied a band of rows at a time: numpy's conversion goes through Pillow's bytes,
    built in pieces and then joined, so at its peak it holds two more copies of the pixels beside the image.
    """
    rows = max(1, band_pixels // max(1, image.width))
    if image.height <= rows:
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    pixels = np.empty((image.height, image.width, 3), np.uint8)
    for top in range(0, image.height, rows):
        bottom = min(top + rows, image.height)
        pixels[top:bottom] = np.asarray(image.crop((0, top, image.width, bottom)))
    return torch.from_numpy(pixels).permute(2, 0, 1)


def decode_image(path: str | Path, min_side: int | None = None) -> torch.Tensor:
    """An image file as (3, H, W) uint8 upright RGB, or FashionStyleError saying why not (as open_rgb).

    Plain JPEGs go through libjpeg-turbo in torchvision.io; the others, and JPEGs at least twice
    `min_side` (decoded reduced), through open_rgb.
    """
    jpeg = read_plain_jpeg(path, min_side)
    if jpeg is not None:
        try:
            return decode_jpegs([jpeg])[0]
        except RuntimeError:
            pass  # Pillow decides: it says why, or decodes what libjpeg-turbo refused
    return pil_to_uint8(open_rgb(path, min_side))


def read_for_device(path: str | Path, min_side: int | None = None) -> EncodedJpeg | torch.Tensor:
    """A plain JPEG's bytes, for decoding on the device (decode_jpegs); any other file decoded here."""
    return read_plain_jpeg(path, min_side) or decode_image(path, min_side)


def as_uint8(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 from a decoded (upright) PIL image or such a tensor."""
    if isinstance(image, Image.Image):
        return pil_to_uint8(image if image.mode == "RGB" else image.convert("RGB"))
    return image
