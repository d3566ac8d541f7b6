"""Torch-free image handling: decoding files as upright RGB, and the evaluation preprocessing in numpy.

    image = open_rgb("a.jpg")                                  # PIL RGB, EXIF orientation applied
    views = tta_views(224, mean, std, "flip")(image)           # (T, 3, 224, 224) float32

`tta_views` gives exactly what torchvision's transforms give for a PIL image, and
PyTorch's uint8 pipeline (pipeline.EvalViews, resized by torch) to within one grey
level, so the ONNX runtime predicts without PyTorch installed.
"""
from __future__ import annotations

import errno
import io
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
from PIL import ExifTags, Image, ImageOps

from fashionstyle.core.choices import BAD_IMAGE_POLICIES, TTA_MODES
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import BOMB_PIXELS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")  # what Pillow decodes
Image.MAX_IMAGE_PIXELS = BOMB_PIXELS
UNREADABLE = "unreadable image"  # why_unreadable's words for a file that decodes here but a predictor could not use


class UnreadableImage(FashionStyleError):
    """An image that cannot be decoded: "NAME: REASON"; `reason` alone is a prediction record's `error`."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.reason = reason


class ImageTooLarge(UnreadableImage):
    """An image over Image.MAX_IMAGE_PIXELS pixels: refused as a possible decompression bomb."""


def open_rgb(source: str | Path | bytes, min_side: int | None = None, name: str | None = None) -> Image.Image:
    """Decode an image file, or a file's bytes (an upload), as upright 8-bit RGB (see `to_rgb`), or raise
    FashionStyleError saying why not, naming `name` (default: the path; "image" for bytes).

    With `min_side`, a JPEG whose shorter side is at least twice `min_side` is decoded
    at reduced size by libjpeg's DCT scaling (1/2, 1/4 or 1/8; see `draft_scale`): its
    shorter side stays at least `min_side`. Missing, empty, truncated and non-image
    files fail, and so do images of more than Image.MAX_IMAGE_PIXELS pixels
    (decompression bombs: ImageTooLarge). A file and its bytes decode to the same pixels:
    `predict` and the service read them here, with the predictor's `min_side`.
    """
    with _reading(source, name), open_checked(_file(source)) as image:
        scale = draft_scale(image.size, min_side) if image.format == "JPEG" else 1
        if scale > 1:
            image.draft(image.mode, (image.width // scale, image.height // scale))
        rgb = to_rgb(image)
        rgb.load()  # leaving the block closes the file only: the pixels stay, with no full-size copy
        return rgb


def why_unreadable(source: str | Path | bytes) -> str:
    """Why a file (or a file's bytes) gives no prediction, without its name: the `error` of its record
    and its line in OUT.skipped.txt, the same words at every door (files, load(), the service, MLflow)."""
    try:
        open_rgb(source)
    except UnreadableImage as error:
        return error.reason
    return UNREADABLE


def image_size(source: str | Path | bytes, name: str | None = None) -> tuple[int, int]:
    """(width, height) of an image file or bytes, from the header alone (no bomb check: any size),
    or FashionStyleError as open_rgb's."""
    with _reading(source, name), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(_file(source)) as image:
            return image.size


def _file(source: str | Path | bytes) -> str | Path | BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


@contextmanager
def _reading(source: str | Path | bytes, name: str | None) -> Iterator[None]:
    """Whatever Pillow raises while reading `source` as one line naming it (`name`, or the path)."""
    name = name or ("image" if isinstance(source, bytes) else str(source))
    try:
        yield
    except FileNotFoundError:
        raise UnreadableImage(name, "image not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(name, f"image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels), "
                                  "refused as a possible decompression bomb") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage(name, "not a readable image (unknown or unsupported format)") from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever Pillow cannot decode (struct.error, IndexError, ...)
        raise UnreadableImage(name, f"not a readable image ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    """Pillow's or the system's words for `err`, without the file's name (an OSError's strerror)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__


def open_checked(source: str | Path | BinaryIO) -> Image.Image:
    """Image.open (the header only), with Pillow's decompression-bomb warning raised as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(source)


def draft_scale(size: tuple[int, int], min_side: int | None) -> int:
    """The largest JPEG DCT scale-down (1, 2, 4 or 8) that keeps the shorter side of `size` >= `min_side`."""
    short = min(size)
    return next((s for s in (8, 4, 2) if min_side and short // s >= min_side), 1)


class Preprocessing(NamedTuple):
    """How a model's input is made: the square side, and the mean and std it is normalised by.
    Saved in every model file, ONNX export and hub folder; read from any of them by `of`."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> "Preprocessing":
        """The preprocessing a model record (model.pt, an ONNX export's member, a hub config) names."""
        return cls(int(record["image_size"]), tuple(float(v) for v in record["mean"]),
                   tuple(float(v) for v in record["std"]))

    def to_record(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}


def resize_size(image_size: int) -> int:
    """The shorter side the evaluation preprocessing resizes to before its centre crop (timm's 0.875)."""
    return int(round(image_size / 0.875))


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` upright (its EXIF orientation applied) as 8-bit RGB: `image` itself when it already is
    (never changed in place), else a new image made with one full-size copy at most at a time.

    16-bit and 32-bit integer greyscale (modes I;16*, I) and float (F) are scaled
    to 8 bits, where `convert("RGB")` would clip them to white.
    """
    if image.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9):
        image = ImageOps.exif_transpose(image)  # a turned copy without the tag
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        image = Image.fromarray(_grey_to_uint8(np.asarray(image)))
    return image.convert("RGB")


def _grey_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 from 16/32-bit integer or float greyscale.

    Integers within 0..65535 are 16-bit data (PNG, PGM and TIFF scale to that range):
    the top 8 bits. Floats within 0..1: times 255. Anything else: min..max stretched to 0..255.
    """
    if pixels.dtype.kind == "f":
        pixels = np.nan_to_num(pixels.astype(np.float64))
        if pixels.min() >= 0 and pixels.max() <= 1:
            return np.round(pixels * 255).astype(np.uint8)
    else:
        pixels = pixels.astype(np.int64)
        if pixels.min() >= 0 and pixels.max() <= 0xFFFF:
            return (pixels >> 8).astype(np.uint8)
    low, span = pixels.min(), pixels.max() - pixels.min()
    return np.round((pixels - low) * (255 / span if span else 0)).astype(np.uint8)


def check_policy(on_bad: str) -> str:
    return BAD_IMAGE_POLICIES.check(on_bad).name


@dataclass
class FolderListing:
    """A folder's images and the entries left out, as paths relative to the folder ("/"-separated)."""

    images: list[str]
    left_out: list[tuple[str, str]]  # (entry, why)


def scan_folder(folder: str | Path, recursive: bool = False) -> FolderListing:
    """The one listing rule: files with an image suffix (IMAGE_SUFFIXES, any case), sorted (strings: light
    for huge folders); sub-folders with `recursive` (links to folders are not followed). Every other
    entry (a sub-folder without `recursive`, a folder named like an image, a broken link, a symbolic link
    loop, a sub-folder that cannot be listed, a file of another kind) is left out with the reason, and
    the rest of the folder is used; only a top folder that cannot be listed is refused."""
    listing = FolderListing([], [])
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            with os.scandir(Path(folder) / prefix) as entries:
                for entry in entries:
                    _list_entry(entry, prefix, recursive, listing, pending)
        except OSError as err:
            if not prefix:
                raise FashionStyleError(f"{folder}: cannot list the folder ({err.strerror})") from None
            listing.left_out.append((prefix.rstrip("/"), f"a folder that cannot be listed ({err.strerror})"))
    return FolderListing(sorted(listing.images), sorted(listing.left_out))


def _list_entry(entry: os.DirEntry, prefix: str, recursive: bool, listing: FolderListing,
                pending: list[str]) -> None:
    """Put one folder entry in `listing` (an image or left out, with why), or a sub-folder in `pending`."""
    name = prefix + entry.name
    if not _is_utf8(entry.name):  # ids and outputs are UTF-8 text
        listing.left_out.append((_printable(name), "file name is not UTF-8 (rename it)"))
        return
    try:
        if entry.is_dir(follow_symlinks=False) and recursive:
            pending.append(name + "/")
        elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
            listing.images.append(name)
        else:
            listing.left_out.append((name, _left_out_reason(entry, recursive)))
    except OSError as err:  # a symbolic link loop, an entry that vanished or cannot be examined
        listing.left_out.append((name, _unusable_reason(err)))


def _is_link_loop(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as err:
        return err.errno == errno.ELOOP
    return False


def _unusable_reason(err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "a symbolic link loop"
    return f"cannot be examined ({err.strerror})"


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # a name os.scandir could not decode holds surrogates
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    """A file name with its undecodable bytes shown as \\xNN (caf\\xe9.jpg)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _left_out_reason(entry: os.DirEntry, recursive: bool) -> str:
    if entry.is_symlink() and not os.path.exists(entry.path):
        return "a symbolic link loop" if _is_link_loop(entry.path) else "broken symbolic link"
    if entry.is_dir():
        return ("link to a folder (not followed)" if recursive
                else "a folder (--recursive reads sub-folders)")
    if not entry.is_file():
        return "not a regular file"
    return f"not an image file name ({', '.join(IMAGE_SUFFIXES)})"


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in `folder` (and its sub-folders with `recursive`), sorted by path; scan_folder's rule."""
    if not Path(folder).is_dir():
        raise FashionStyleError(f"{folder}: not a folder")
    return gather_images([folder], recursive)[0]


def gather_images(paths: Sequence[str | Path], recursive: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files named by `paths` (files as given, folders as scan_folder lists them) and the
    (entry, why) pairs of what the folders left out; a folder with no image is refused."""
    images: list[Path] = []
    left_out: list[tuple[str, str]] = []
    for path in map(Path, paths):
        if not path.is_dir():
            images.append(path)
            continue
        listing = scan_folder(path, recursive)
        if not listing.images:
            raise FashionStyleError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})"
                                    + ("" if recursive else "; --recursive reads sub-folders"))
        images += [path / name for name in listing.images]
        left_out += [(str(path / name), why) for name, why in listing.left_out]
    return images, left_out


def check_tta_mode(tta: str) -> str:
    return TTA_MODES.check(tta).name


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """The shorter side to `size`, the longer one in proportion (truncated), bilinear: torchvision's Resize(size)."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), Image.BILINEAR)


def _crop(pixels: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return pixels[top:top + size, left:left + size]


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """(size, size, C) from the centre of (H, W, C), rounded as torchvision's CenterCrop."""
    h, w = pixels.shape[:2]
    return _crop(pixels, int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size)


def five_crop(pixels: np.ndarray, size: int) -> list[np.ndarray]:
    """Top-left, top-right, bottom-left, bottom-right and centre crops, as torchvision's FiveCrop."""
    h, w = pixels.shape[:2]
    return [_crop(pixels, 0, 0, size), _crop(pixels, 0, w - size, size), _crop(pixels, h - size, 0, size),
            _crop(pixels, h - size, w - size, size), center_crop(pixels, size)]


def tta_crops(pixels: Any, size: int, tta: str, mirror: Callable[[Any], Any] = lambda p: p[:, ::-1]) -> list:
    """The crops of test-time mode `tta` from (H, W, ...) pixels, numpy or torch (`mirror` flips the
    width): none, the centre crop; flip, it and its mirror; five-crop; ten-crop, the five and those of
    the mirrored pixels."""
    if tta in ("none", "flip"):
        centre = center_crop(pixels, size)
        return [centre, mirror(centre)] if tta == "flip" else [centre]
    crops = five_crop(pixels, size)
    return crops + five_crop(mirror(pixels), size) if tta == "ten-crop" else crops


def tta_views(image_size: int, mean: Sequence[float], std: Sequence[float],
              tta: str = "none") -> Callable[[Image.Image], np.ndarray]:
    """Test-time views of one RGB PIL image, stacked: (T, 3, H, W) float32 with T = 1, 2, 5 or 10.

    Resize the shorter side to size/0.875 (Pillow, bilinear), then crop as pipeline.EvalViews does
    (flip: the centre crop and its mirror; five-crop; ten-crop: the five and those
    of the mirrored image), scale to 0..1 and normalise by `mean` and `std`.
    """
    check_tta_mode(tta)
    resize = resize_size(image_size)
    mean32 = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std32 = np.asarray(std, np.float32).reshape(1, 3, 1, 1)

    def views(image: Image.Image) -> np.ndarray:
        pixels = np.asarray(resize_shorter(image, resize))  # (H, W, 3) uint8
        stack = np.stack(tta_crops(pixels, image_size, tta)).transpose(0, 3, 1, 2).astype(np.float32)  # (T, 3, S, S)
        stack /= np.float32(255)
        stack -= mean32
        stack /= std32
        return stack

    return views
