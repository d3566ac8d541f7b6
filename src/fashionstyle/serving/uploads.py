"""Uploaded files -> what the model needs of them, or why a file cannot be used (an HTTP status and the
reason, without the file's name: its record's `error`, as images.why_unreadable words it for files).

    total, refused = header_pixels(data, names, max_pixels)    # from the headers: nothing decoded yet
    ready = prepare(data[0], names[0], predictor, explainer)   # Prepared, or Refusal

A file is decoded exactly as `predict` decodes the same file on disk (images.open_rgb with the
predictor's `min_side`: a large JPEG by libjpeg's DCT scaling, other formats whole), so the service
and `predict` give the same probabilities. It is then reduced at once to its test-time views (and
the heat maps' inputs), and the decoded photo let go: a request holds small views, not photos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from fashionstyle.analysis.heat_maps import MapInput
from fashionstyle.data.images.files import ImageTooLarge, UnreadableImage, image_size, open_rgb
from fashionstyle.serving.limits import MAX_ASPECT


@dataclass(frozen=True)
class Refusal:
    """One file's problem: 413 (too large or elongated) or 415 (not a readable image), and why (no name)."""

    status: int
    message: str

    @classmethod
    def of(cls, err: UnreadableImage) -> "Refusal":
        return cls(413 if isinstance(err, ImageTooLarge) else 415, err.reason)


@dataclass
class Prepared:
    """One readable file: the predictor's views_of it, and with maps the heat maps' input."""

    views: tuple[Any, ...]
    maps: MapInput | None = None


def header_size(data: bytes, name: str, max_pixels: int) -> tuple[int, int] | Refusal:
    """(width, height) from the header, or the Refusal: over `max_pixels` or MAX_ASPECT, or no image."""
    try:
        width, height = image_size(data, name)
    except UnreadableImage as err:
        return Refusal.of(err)
    if width * height > max_pixels:
        return Refusal(413, f"image too large ({width}x{height} = {width * height:,} pixels; "
                            f"the limit is {max_pixels:,} pixels per image)")
    if max(width, height) > MAX_ASPECT * max(1, min(width, height)):
        return Refusal(413, f"image too elongated ({width}x{height}; the limit is an aspect ratio "
                            f"of {MAX_ASPECT}:1)")
    return width, height


def header_pixels(data: Sequence[bytes], names: Sequence[str],
                  max_pixels: int) -> tuple[int, dict[int, Refusal]]:
    """The pixels of the usable images in all (from their headers), and each other file's Refusal by index."""
    total, refused = 0, {}
    for i, (d, name) in enumerate(zip(data, names)):
        size = header_size(d, name, max_pixels)
        if isinstance(size, Refusal):
            refused[i] = size
        else:
            total += size[0] * size[1]
    return total, refused


def prepare(data: bytes, name: str, predictor: Any, explainer: Any = None) -> Prepared | Refusal:
    """The file decoded as `predict` decodes it, reduced to what inference (and the maps) need."""
    try:
        image = open_rgb(data, predictor.min_side, name)
    except UnreadableImage as err:
        return Refusal.of(err)
    return Prepared(predictor.views_of(image), MapInput.of(explainer, image) if explainer is not None else None)
