"""The synthetic outfits' drawing kit: colour palettes, figure-unit geometry, masks, and the cue patterns
(stripes, bands, polka dots, ornament bands, bows) that synthetic/outfit.py puts on garments.

Shapes are drawn at SUPERSAMPLING x the output size into "L" masks and painted through them.
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw

STYLE_NAMES: tuple[str, ...] = (
    "Sport", "Relax", "OL", "Japanese", "Korean", "European", "England",
    "Miden", "Lady", "Simple", "Nature", "Street", "Nation",
)
RGB = tuple[int, int, int]
SUPERSAMPLING = 2  # shapes are drawn at this multiple of the output size

PALETTES: dict[str, list[RGB]] = {
    "default": [(40, 55, 120), (175, 40, 50), (115, 30, 60), (120, 120, 130),
                (30, 115, 135), (100, 55, 140), (55, 95, 190), (190, 75, 125),
                (205, 95, 40)],
    "Nature": [(60, 110, 50), (100, 125, 55), (40, 85, 45), (125, 150, 75),
               (120, 80, 45), (150, 105, 60), (95, 65, 40), (165, 140, 90)],
    "Japanese": [(250, 205, 215), (215, 205, 245), (200, 235, 215),
                 (200, 225, 245), (250, 235, 200), (245, 215, 235)],
    "Street": [(25, 25, 30), (45, 45, 50), (30, 38, 70), (55, 40, 40)],
}
NEON: list[RGB] = [(60, 255, 80), (255, 40, 200), (0, 235, 255), (250, 245, 20)]
SKIN: list[RGB] = [(240, 200, 170), (225, 180, 140), (190, 140, 100),
                   (140, 95, 65), (95, 65, 45)]
HAIR: list[RGB] = [(20, 15, 10), (70, 45, 25), (140, 100, 50), (220, 190, 120),
                   (150, 60, 30), (90, 90, 90)]
BOLD: list[RGB] = [(230, 30, 30), (20, 60, 200), (250, 200, 0),
                   (240, 240, 240), (20, 20, 20)]
BOW_COLOURS: list[RGB] = [(220, 30, 60), (255, 130, 180), (25, 25, 25), (250, 250, 250)]
ORNAMENT: list[RGB] = [(200, 30, 40), (230, 180, 40), (20, 60, 140), (20, 20, 20),
                       (240, 240, 230)]


class Frame:
    """Maps figure units (x from centre, y from head top, in figure heights)."""

    def __init__(self, cx: float, y0: float, h: float) -> None:
        self.cx, self.y0, self.h = cx, y0, h

    def pts(self, xy: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(self.cx + x * self.h, self.y0 + y * self.h) for x, y in xy]

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        (a, b), (c, d) = self.pts([(x0, y0), (x1, y1)])
        return [min(a, c), min(b, d), max(a, c), max(b, d)]

    def circle(self, x: float, y: float, r: float) -> list[float]:
        return self.box(x - r, y - r, x + r, y + r)


def pick(rng: np.random.Generator, colors: Sequence[RGB]) -> RGB:
    return colors[int(rng.integers(len(colors)))]


def jitter(rng: np.random.Generator, c: RGB, amt: int = 12) -> RGB:
    return tuple(int(np.clip(v + rng.integers(-amt, amt + 1), 0, 255)) for v in c)


def lum(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def contrast(c: RGB) -> RGB:
    return (245, 245, 240) if lum(c) < 150 else (30, 30, 45)


def farthest(c: RGB, options: Sequence[RGB]) -> RGB:
    return max(options, key=lambda o: sum((a - b) ** 2 for a, b in zip(o, c)))


def shade(c: RGB, f: float) -> RGB:
    return tuple(int(v * f) for v in c)


def new_mask(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    m = Image.new("L", (size, size), 0)
    return m, ImageDraw.Draw(m)


def paint(canvas: Image.Image, mask: Image.Image, color: RGB) -> None:
    canvas.paste((*color, 255), (0, 0, *canvas.size), mask)


def clip(pattern: Image.Image, piece: Image.Image) -> Image.Image:
    return ImageChops.multiply(pattern, piece)


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """Random-hue background with a linear gradient and faint blobs."""
    h, s, v = rng.random(), rng.uniform(0.0, 0.55), rng.uniform(0.35, 0.95)
    c0 = np.array(colorsys.hsv_to_rgb(h, s, v)) * 255
    c1 = np.clip(c0 + rng.normal(0, 35, 3), 0, 255)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5) + 0.5).clip(0, 1)
    arr = c0 * (1 - t[..., None]) + c1 * t[..., None]
    img = Image.fromarray(arr.astype(np.uint8), "RGB").convert("RGBA")
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * size
        w, hgt = rng.uniform(0.15, 0.5, 2) * size
        col = (*(int(v) for v in np.clip(c0 + rng.normal(0, 45, 3), 0, 255)),
               int(rng.integers(30, 90)))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + w, y0 + hgt], fill=col)
    return img



def stripes(size: int, fr: Frame, piece: Image.Image, period: float,
            thick: float, horizontal: bool = True, phase: float = 0.0) -> Image.Image:
    """Parallel bands every ``period`` (figure units), clipped to ``piece``."""
    m, d = new_mask(size)
    step = period * fr.h
    if horizontal:
        for y in np.arange(fr.y0 + phase * step, size, step):
            d.rectangle([0, y, size, y + thick * fr.h], fill=255)
    else:
        for x in np.arange((fr.cx + phase * step) % step - step, size, step):
            d.rectangle([x, 0, x + thick * fr.h, size], fill=255)
    return clip(m, piece)


def band(size: int, fr: Frame, piece: Image.Image, y: float, hgt: float) -> Image.Image:
    """One horizontal band from ``y`` to ``y + hgt`` clipped to ``piece``."""
    m, d = new_mask(size)
    d.rectangle(fr.box(-0.5, y, 0.5, y + hgt), fill=255)
    return clip(m, piece)


def dots(size: int, fr: Frame, piece: Image.Image, period: float,
         r: float) -> Image.Image:
    """Hexagonal grid of polka dots clipped to ``piece``."""
    m, d = new_mask(size)
    bbox = piece.getbbox()
    if bbox is None:
        return m
    step, rad = period * fr.h, r * fr.h
    for j, y in enumerate(np.arange(bbox[1] - step, bbox[3] + step, step)):
        off = (j % 2) * step / 2
        for x in np.arange(bbox[0] - step + off, bbox[2] + step, step):
            d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=255)
    return clip(m, piece)


def ornament_band(canvas: Image.Image, fr: Frame, piece: Image.Image, y: float,
                  hgt: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Nation cue: a band of alternating diamonds and dots at height ``y``; returns its mask."""
    size = canvas.size[0]
    band_col = jitter(rng, farthest(base, ORNAMENT), 10)
    orn_col = farthest(band_col, ORNAMENT)
    strip = band(size, fr, piece, y, hgt)
    paint(canvas, strip, band_col)
    orn, d = new_mask(size)
    step, cy = hgt * 1.2, y + hgt / 2
    for k, x in enumerate(np.arange(-0.4, 0.4, step / 2)):
        if k % 2 == 0:
            d.polygon(fr.pts([(x, cy - hgt * 0.42), (x + step * 0.3, cy),
                              (x, cy + hgt * 0.42), (x - step * 0.3, cy)]), fill=255)
        else:
            d.ellipse(fr.circle(x, cy, hgt * 0.16), fill=255)
    paint(canvas, clip(orn, strip), orn_col)
    return strip


def bow(draw: ImageDraw.ImageDraw, fr: Frame, x: float, y: float, col: RGB) -> None:
    """Miden cue: two triangles with a knot and short tails."""
    w, h = 0.07, 0.045
    draw.polygon(fr.pts([(x, y), (x - w, y - h), (x - w, y + h)]), fill=col)
    draw.polygon(fr.pts([(x, y), (x + w, y - h), (x + w, y + h)]), fill=col)
    draw.polygon(fr.pts([(x - 0.005, y), (x - 0.03, y + 0.06), (x - 0.015, y + 0.06)]), fill=col)
    draw.polygon(fr.pts([(x + 0.005, y), (x + 0.03, y + 0.06), (x + 0.015, y + 0.06)]), fill=col)
    draw.ellipse(fr.circle(x, y, 0.017), fill=shade(col, 0.7))

