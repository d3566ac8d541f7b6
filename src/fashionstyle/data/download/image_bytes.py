"""Downloaded image bytes: cut after the image's end, and checked to decode fully.

    data = without_trailing_data(body)     # a JPEG to its EOI marker, a PNG to its IEND chunk
    image_problem(data)                    # None, "not an image" or "image too large"
"""
from __future__ import annotations

import io
import threading
import warnings

from PIL import Image

MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb limit
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# warnings.catch_warnings changes process-wide state: one thread at a time.
_OPEN_LOCK = threading.Lock()


def without_trailing_data(data: bytes) -> bytes:
    """A JPEG up to its end-of-image marker, a PNG up to its IEND chunk: what follows (junk that
    decoders ignore, however large) is not kept. Other formats, and files whose end is not found, as given."""
    if data.startswith(b"\xff\xd8"):
        end = _jpeg_end(data)
    elif data.startswith(PNG_SIGNATURE):
        end = _png_end(data)
    else:
        end = None
    return data[:end] if end else data


def _jpeg_end(data: bytes) -> int | None:
    """The offset just after a JPEG's EOI marker, found by walking its segments and scans; None if absent."""
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None  # not at a marker: not a JPEG we can walk
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == 0xD9:  # EOI
            return i + 2
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")  # the segment's length counts its own 2 bytes
            if marker == 0xDA:  # SOS: entropy-coded data up to the next marker
                i = _scan_end(data, i)
    return None


def _scan_end(data: bytes, i: int) -> int:
    """The offset of the marker ending the entropy-coded data that starts at `i` (len(data) if none)."""
    while (j := data.find(b"\xff", i)) >= 0 and j + 1 < len(data):
        following = data[j + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # a stuffed 0xFF byte or a restart marker
            i = j + 2
        elif following == 0xFF:  # fill bytes
            i = j + 1
        else:
            return j
    return len(data)


def _png_end(data: bytes) -> int | None:
    """The offset just after a PNG's IEND chunk; None if absent."""
    i = len(PNG_SIGNATURE)
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        i += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return i if i <= len(data) else None
    return None


def image_problem(data: bytes) -> str | None:
    """None if ``data`` fully decodes as an image, else 'not an image' or
    'image too large' (over MAX_PIXELS: a decompression bomb)."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            if image.width * image.height > MAX_PIXELS:
                return "image too large"
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "image too large"
    except Exception:  # Pillow raises many types on bad data
        return "not an image"
    return None
