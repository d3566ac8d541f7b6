"""Synthetic multi-label fashion-style images for the built-in demo.

Each image is a procedurally drawn figure (head, top, bottom, shoes) on a
noisy background.  Every style that is switched on adds its own visual cue,
and the cues compose when several styles are on:

* colour   - Nature: greens/browns; Japanese: pastels; Street: near-black
  garments with a neon accent (chest patch, hem band, shoes).  With no colour
  style the garments use medium "default" colours.
* stripes  - Sport: bold horizontal stripes on the top; England: tartan
  check on the bottom garment.
* patterns - Korean: polka dots on the top; Nation: ornamental bands of
  diamonds and dots across the top hem and the bottom garment.
* shape    - OL: boxy straight jacket with a light collar, dark lapels and
  buttons; Lady: flared A-line skirt (trousers otherwise); Relax: wide loose
  top, wide sleeves and wide trousers.
* Simple   - monochrome outfit (top and bottom in the same colour, never
  two-tone) and, through the label sampler, hardly ever a pattern.
* Miden    - a bow/ribbon at the neck, waist or in the hair.
* European - a belt with a gold buckle or a bold colour-block half on the top.

Nuisances that carry no label information: background colour, gradient and
faint blobs, skin and hair colour, hair style, sleeve length, an optional
handbag, figure position/scale/rotation, global gain and pixel noise.  Images
are drawn at 2x and box-downsampled, so thin cues survive at 64 px.
"""

from __future__ import annotations

import colorsys
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

STYLE_NAMES: tuple[str, ...] = (
    "Sport", "Relax", "OL", "Japanese", "Korean", "European", "England",
    "Miden", "Lady", "Simple", "Nature", "Street", "Nation",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Marginal positive rates, from common to rare (ratios as in the real data).
BASE_RATES: dict[str, float] = {
    "OL": 10 / 11, "Lady": 9 / 10, "Korean": 1 / 3, "European": 1 / 6,
    "Simple": 1 / 8, "Relax": 1 / 13, "Nature": 1 / 15, "Miden": 1 / 36,
    "Street": 1 / 44, "Sport": 1 / 55, "Japanese": 1 / 65, "England": 1 / 75,
    "Nation": 1 / 90,
}

RGB = tuple[int, int, int]
_SS = 2  # supersampling factor

_PALETTES: dict[str, list[RGB]] = {
    "default": [(40, 55, 120), (175, 40, 50), (115, 30, 60), (120, 120, 130),
                (30, 115, 135), (100, 55, 140), (55, 95, 190), (190, 75, 125),
                (205, 95, 40)],
    "Nature": [(60, 110, 50), (100, 125, 55), (40, 85, 45), (125, 150, 75),
               (120, 80, 45), (150, 105, 60), (95, 65, 40), (165, 140, 90)],
    "Japanese": [(250, 205, 215), (215, 205, 245), (200, 235, 215),
                 (200, 225, 245), (250, 235, 200), (245, 215, 235)],
    "Street": [(25, 25, 30), (45, 45, 50), (30, 38, 70), (55, 40, 40)],
}
_NEON: list[RGB] = [(60, 255, 80), (255, 40, 200), (0, 235, 255), (250, 245, 20)]
_SKIN: list[RGB] = [(240, 200, 170), (225, 180, 140), (190, 140, 100),
                    (140, 95, 65), (95, 65, 45)]
_HAIR: list[RGB] = [(20, 15, 10), (70, 45, 25), (140, 100, 50), (220, 190, 120),
                    (150, 60, 30), (90, 90, 90)]
_BOLD: list[RGB] = [(230, 30, 30), (20, 60, 200), (250, 200, 0),
                    (240, 240, 240), (20, 20, 20)]
_BOW: list[RGB] = [(220, 30, 60), (255, 130, 180), (25, 25, 25), (250, 250, 250)]
_ORNAMENT: list[RGB] = [(200, 30, 40), (230, 180, 40), (20, 60, 140), (20, 20, 20),
                        (240, 240, 230)]


# --------------------------------------------------------------------- labels
def _cond(rng: np.random.Generator, given: np.ndarray, p_all: float,
          p_given: float, p_cond: float) -> np.ndarray:
    """Bernoulli draws with P(y|given) = p_given and marginal rate ~p_all."""
    p_else = max(0.0, (p_all - p_cond * p_given) / (1.0 - p_cond))
    return rng.random(given.shape[0]) < np.where(given, p_given, p_else)


def sample_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sample ``(n, 13)`` uint8 multi-hot labels with realistic co-occurrence.

    Marginals follow ``BASE_RATES``; Street lifts Sport, Lady lifts Miden,
    OL lifts Simple, Simple suppresses patterned styles; every row has a label.
    """
    r = BASE_RATES

    def bern(name: str, scale: float = 1.0) -> np.ndarray:
        return rng.random(n) < r[name] * scale

    no_pat = 1.0 / (1.0 - r["Simple"])  # keeps marginals of styles masked by ~Simple
    col: dict[str, np.ndarray] = {}
    for name in ("OL", "Lady", "Street", "Relax", "European", "Nature", "Japanese"):
        col[name] = bern(name)
    col["Simple"] = _cond(rng, col["OL"], r["Simple"], 0.13, r["OL"])
    col["Korean"] = _cond(rng, col["Simple"], r["Korean"], 0.08, r["Simple"])
    col["Miden"] = _cond(rng, col["Lady"], r["Miden"], 0.03, r["Lady"])
    col["Sport"] = _cond(rng, col["Street"], r["Sport"] * no_pat, 0.3, r["Street"])
    col["England"] = bern("England", no_pat)
    col["Nation"] = bern("Nation", no_pat)
    for name in ("Sport", "England", "Nation"):
        col[name] &= ~col["Simple"]
    labels = np.stack([col[s] for s in STYLE_NAMES], axis=1).astype(np.uint8)
    empty = np.flatnonzero(labels.sum(1) == 0)
    if empty.size:
        p = np.array([r[s] for s in STYLE_NAMES])
        labels[empty, rng.choice(len(STYLE_NAMES), empty.size, p=p / p.sum())] = 1
    return labels


def assign_splits(labels: np.ndarray, fractions: Sequence[float],
                  rng: np.random.Generator) -> np.ndarray:
    """Iterative stratification: split index per row (0=train, 1=val, 2=test).

    Rows are visited rarest-label first and sent to the split that most lacks
    that label, so even rare labels get positives in every split.
    """
    n = labels.shape[0]
    frac = np.asarray(fractions, dtype=float)
    frac = frac / frac.sum()
    rates = labels.mean(0) + 1e-9
    rarest = np.where(labels > 0, rates, np.inf).argmin(1)
    order = rng.permutation(n)
    order = order[np.argsort(rates[rarest[order]], kind="stable")]
    need_lab = frac[:, None] * labels.sum(0)[None, :].astype(float)
    need_n = frac * n
    out = np.zeros(n, dtype=np.int64)
    for i in order:
        score = np.where(need_n > 1e-9, need_lab[:, rarest[i]] + 1e-3 * need_n, -np.inf)
        s = int(score.argmax()) if np.isfinite(score).any() else int(need_n.argmax())
        out[i] = s
        need_lab[s] -= labels[i]
        need_n[s] -= 1
    return out


# ------------------------------------------------------------------- drawing
class _Frame:
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


def _pick(rng: np.random.Generator, colors: Sequence[RGB]) -> RGB:
    return colors[int(rng.integers(len(colors)))]


def _jitter(rng: np.random.Generator, c: RGB, amt: int = 12) -> RGB:
    return tuple(int(np.clip(v + rng.integers(-amt, amt + 1), 0, 255)) for v in c)


def _lum(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _contrast(c: RGB) -> RGB:
    return (245, 245, 240) if _lum(c) < 150 else (30, 30, 45)


def _farthest(c: RGB, options: Sequence[RGB]) -> RGB:
    return max(options, key=lambda o: sum((a - b) ** 2 for a, b in zip(o, c)))


def _shade(c: RGB, f: float) -> RGB:
    return tuple(int(v * f) for v in c)


def _new_mask(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    m = Image.new("L", (size, size), 0)
    return m, ImageDraw.Draw(m)


def _paint(canvas: Image.Image, mask: Image.Image, color: RGB) -> None:
    canvas.paste((*color, 255), (0, 0, *canvas.size), mask)


def _clip(pattern: Image.Image, piece: Image.Image) -> Image.Image:
    return ImageChops.multiply(pattern, piece)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
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


def _outfit_colors(rng: np.random.Generator, on: dict[str, bool]) -> tuple[RGB, RGB]:
    """Top and bottom colours: colour styles first, Simple makes them equal."""
    keys = [k for k in ("Street", "Nature", "Japanese") if on[k]] or ["default"]
    top_pal = _PALETTES[keys[0]]
    top = _pick(rng, top_pal)
    if on["Simple"]:
        c = _jitter(rng, top, 8)
        return c, c
    if len(keys) > 1:
        bot_pal = _PALETTES[keys[1]]
    else:  # the farther half of the palette, so that monochrome stays specific to Simple
        rest = sorted((c for c in top_pal if c != top),
                      key=lambda c: -sum((a - b) ** 2 for a, b in zip(c, top)))
        bot_pal = rest[: max(1, len(rest) // 2)]
    return _jitter(rng, top, 8), _jitter(rng, _pick(rng, bot_pal), 8)


def _stripes(size: int, fr: _Frame, piece: Image.Image, period: float,
             thick: float, horizontal: bool = True, phase: float = 0.0) -> Image.Image:
    """Parallel bands every ``period`` (figure units), clipped to ``piece``."""
    m, d = _new_mask(size)
    step = period * fr.h
    if horizontal:
        for y in np.arange(fr.y0 + phase * step, size, step):
            d.rectangle([0, y, size, y + thick * fr.h], fill=255)
    else:
        for x in np.arange((fr.cx + phase * step) % step - step, size, step):
            d.rectangle([x, 0, x + thick * fr.h, size], fill=255)
    return _clip(m, piece)


def _band(size: int, fr: _Frame, piece: Image.Image, y: float, hgt: float) -> Image.Image:
    """One horizontal band from ``y`` to ``y + hgt`` clipped to ``piece``."""
    m, d = _new_mask(size)
    d.rectangle(fr.box(-0.5, y, 0.5, y + hgt), fill=255)
    return _clip(m, piece)


def _dots(size: int, fr: _Frame, piece: Image.Image, period: float,
          r: float) -> Image.Image:
    """Hexagonal grid of polka dots clipped to ``piece``."""
    m, d = _new_mask(size)
    bbox = piece.getbbox()
    if bbox is None:
        return m
    step, rad = period * fr.h, r * fr.h
    for j, y in enumerate(np.arange(bbox[1] - step, bbox[3] + step, step)):
        off = (j % 2) * step / 2
        for x in np.arange(bbox[0] - step + off, bbox[2] + step, step):
            d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=255)
    return _clip(m, piece)


def _ornament_band(canvas: Image.Image, fr: _Frame, piece: Image.Image, y: float,
                   hgt: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Nation cue: a band of alternating diamonds and dots at height ``y``; returns its mask."""
    size = canvas.size[0]
    band_col = _jitter(rng, _farthest(base, _ORNAMENT), 10)
    orn_col = _farthest(band_col, _ORNAMENT)
    band = _band(size, fr, piece, y, hgt)
    _paint(canvas, band, band_col)
    orn, d = _new_mask(size)
    step, cy = hgt * 1.2, y + hgt / 2
    for k, x in enumerate(np.arange(-0.4, 0.4, step / 2)):
        if k % 2 == 0:
            d.polygon(fr.pts([(x, cy - hgt * 0.42), (x + step * 0.3, cy),
                              (x, cy + hgt * 0.42), (x - step * 0.3, cy)]), fill=255)
        else:
            d.ellipse(fr.circle(x, cy, hgt * 0.16), fill=255)
    _paint(canvas, _clip(orn, band), orn_col)
    return band


def _bow(draw: ImageDraw.ImageDraw, fr: _Frame, x: float, y: float, col: RGB) -> None:
    """Miden cue: two triangles with a knot and short tails."""
    w, h = 0.07, 0.045
    draw.polygon(fr.pts([(x, y), (x - w, y - h), (x - w, y + h)]), fill=col)
    draw.polygon(fr.pts([(x, y), (x + w, y - h), (x + w, y + h)]), fill=col)
    draw.polygon(fr.pts([(x - 0.005, y), (x - 0.03, y + 0.06), (x - 0.015, y + 0.06)]), fill=col)
    draw.polygon(fr.pts([(x + 0.005, y), (x + 0.03, y + 0.06), (x + 0.015, y + 0.06)]), fill=col)
    draw.ellipse(fr.circle(x, y, 0.017), fill=_shade(col, 0.7))


@dataclass
class _Outfit:
    """Drawing context shared by the body-part helpers (figure units)."""

    rng: np.random.Generator
    on: dict[str, bool]
    fig: Image.Image
    fr: _Frame
    top_c: RGB
    bot_c: RGB
    skin: RGB
    hair: RGB
    neon: RGB
    sw: float  # shoulder half-width
    hem: float  # hem height of the top
    hw: float  # hem half-width of the top
    marks: dict[str, Image.Image] | None = None  # style -> region carrying its cue (draw_outfit_regions)

    def mark(self, style: str, mask: Image.Image | None = None, box: Sequence[float] | None = None) -> None:
        """Add ``mask`` or the figure-unit ``box`` (x0, y0, x1, y1) to the region of ``style``."""
        if self.marks is None:
            return
        if box is not None:
            mask, d = _new_mask(self.size)
            d.rectangle(self.fr.box(*box), fill=255)
        old = self.marks.get(style)
        self.marks[style] = mask if old is None else ImageChops.lighter(old, mask)

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        return ImageDraw.Draw(self.fig)

    @property
    def size(self) -> int:
        return self.fig.size[0]


def _new_outfit(rng: np.random.Generator, on: dict[str, bool], fig: Image.Image,
                fr: _Frame) -> _Outfit:
    """Pick colours and the silhouette (OL boxy, Relax wide) for one figure."""
    top_c, bot_c = _outfit_colors(rng, on)
    skin, hair = _jitter(rng, _pick(rng, _SKIN), 8), _jitter(rng, _pick(rng, _HAIR), 8)
    ol, relax = on["OL"], on["Relax"]
    sw = 0.13 + 0.065 * relax + rng.uniform(-0.01, 0.01)
    hem = min(0.46 + 0.06 * ol + 0.05 * relax + rng.uniform(-0.015, 0.015), 0.58)
    hw = sw if ol else 0.11 + 0.08 * relax
    return _Outfit(rng, on, fig, fr, top_c, bot_c, skin, hair, _pick(rng, _NEON), sw, hem, hw)


def _draw_bottom(o: _Outfit) -> Image.Image:
    """Flared skirt (Lady) or trousers (wide for Relax) plus England/Nation/Street cues."""
    fr, draw, relax, rng = o.fr, o.draw, o.on["Relax"], o.rng
    bottom, bd = _new_mask(o.size)
    if o.on["Lady"]:
        fl, end = rng.uniform(0.22, 0.28) + 0.04 * relax, rng.uniform(0.72, 0.8)
        for s in (-1, 1):
            draw.rectangle(fr.box(s * 0.02, end - 0.02, s * 0.06, 0.93), fill=o.skin)
        bd.polygon(fr.pts([(-0.1, 0.41), (0.1, 0.41), (fl, end), (-fl, end)]), fill=255)
        band_y = end - 0.08
    else:
        lw, ww = 0.11 + 0.08 * relax, 0.11 + 0.02 * relax
        bd.polygon(fr.pts([(-ww, 0.41), (ww, 0.41), (lw, 0.92), (0.015, 0.92), (0.0, 0.6),
                           (-0.015, 0.92), (-lw, 0.92)]), fill=255)
        band_y = 0.7
    _paint(o.fig, bottom, o.bot_c)
    if o.on["England"]:  # tartan: dark and light checks in both directions
        per = rng.uniform(0.07, 0.09)
        dark = (150, 30, 40) if _lum(o.bot_c) < 80 else _shade(o.bot_c, 0.35)
        for horiz in (True, False):
            _paint(o.fig, _stripes(o.size, fr, bottom, per, 0.022, horiz), dark)
            _paint(o.fig, _stripes(o.size, fr, bottom, per, 0.01, horiz, 0.5), (240, 220, 90))
    if o.on["Nation"]:
        o.mark("Nation", _ornament_band(o.fig, fr, bottom, band_y, 0.06, o.bot_c, rng))
    if o.on["Street"]:
        _paint(o.fig, _band(o.size, fr, bottom, band_y + 0.03, 0.025), o.neon)
    shoes = [(30, 25, 25), (90, 50, 30), (235, 235, 235)]
    shoe = o.neon if o.on["Street"] else _jitter(rng, _pick(rng, shoes))
    for s in (-1, 1):
        draw.ellipse(fr.box(s * 0.005, 0.915, s * 0.085, 0.955), fill=shoe)
    if o.on["Street"]:
        o.mark("Street", box=(-0.085, 0.915, 0.085, 0.955))
    return bottom


def _draw_top(o: _Outfit) -> Image.Image:
    """Arms, neck and the top with sleeves: boxy (OL), fitted (Lady) or loose."""
    fr, draw, sw, hem, hw = o.fr, o.draw, o.sw, o.hem, o.hw
    sleeve_end = 0.44 if o.on["OL"] or o.rng.random() < 0.6 else 0.28
    sl_w = 0.06 + 0.05 * o.on["Relax"]
    for s in (-1, 1):
        draw.polygon(fr.pts([(s * sw, 0.17), (s * (sw + 0.035), 0.17),
                             (s * (sw + 0.055), 0.46), (s * (sw + 0.015), 0.46)]), fill=o.skin)
        draw.ellipse(fr.circle(s * (sw + 0.035), 0.475, 0.025), fill=o.skin)
    draw.rectangle(fr.box(-0.025, 0.11, 0.025, 0.18), fill=o.skin)
    top, td = _new_mask(o.size)
    if o.on["OL"]:
        body = [(-sw, 0.155), (sw, 0.155), (hw, hem), (-hw, hem)]
    elif o.on["Lady"] and not o.on["Relax"]:
        body = [(-sw + 0.03, 0.15), (sw - 0.03, 0.15), (sw, 0.19), (0.085, 0.38),
                (0.11, hem), (-0.11, hem), (-0.085, 0.38), (-sw, 0.19)]
    else:
        body = [(-sw + 0.03, 0.15), (sw - 0.03, 0.15), (sw, 0.19), (hw, hem), (-hw, hem),
                (-sw, 0.19)]
    td.polygon(fr.pts(body), fill=255)
    for s in (-1, 1):
        td.polygon(fr.pts([(s * (sw - 0.02), 0.155), (s * (sw + 0.02), 0.16),
                           (s * (sw + 0.02 + sl_w), sleeve_end),
                           (s * (sw - 0.005), sleeve_end)]), fill=255)
    _paint(o.fig, top, o.top_c)
    return top


def _top_cues(o: _Outfit, top: Image.Image, bottom: Image.Image) -> None:
    """Sport stripes, Korean dots, European belt/block, Nation band, Street patch."""
    fr, rng, size = o.fr, o.rng, o.size
    if o.on["Sport"]:
        per = rng.uniform(0.085, 0.1)
        _paint(o.fig, _stripes(size, fr, top, per, 0.42 * per, True, rng.random()),
               _contrast(o.top_c))
    if o.on["Korean"]:
        dot_c = _farthest(o.top_c, _BOW) if o.on["Sport"] else _contrast(o.top_c)
        _paint(o.fig, _dots(size, fr, top, rng.uniform(0.08, 0.095), 0.021), dot_c)
    if o.on["European"]:
        if rng.random() < 0.5:  # bold colour block on one half of the top
            blk, kd = _new_mask(size)
            kd.rectangle(fr.box(0, 0.1, (1 if rng.random() < 0.5 else -1) * 0.5, 0.7), fill=255)
            _paint(o.fig, _clip(blk, top), _farthest(o.top_c, _BOLD))
            o.mark("European", _clip(blk, top))
        else:  # belt with a gold buckle
            belt = _band(size, fr, ImageChops.lighter(top, bottom), 0.395, 0.04)
            _paint(o.fig, belt, _pick(rng, [(35, 25, 20), (95, 55, 25), (15, 15, 15)]))
            o.draw.rectangle(fr.box(-0.02, 0.39, 0.02, 0.44), fill=(225, 185, 60))
            o.mark("European", belt)
            o.mark("European", box=(-0.02, 0.39, 0.02, 0.44))
    if o.on["Nation"]:
        o.mark("Nation", _ornament_band(o.fig, fr, top, o.hem - 0.075, 0.055, o.top_c, rng))
    if o.on["Street"]:
        o.draw.rectangle(fr.box(0.015, 0.22, 0.085, 0.29), fill=o.neon)


def _ol_collar(o: _Outfit) -> None:
    """OL cue: light shirt collar, dark lapels, front opening and buttons."""
    fr, draw = o.fr, o.draw
    lapel = _shade(o.top_c, 0.5) if _lum(o.top_c) > 60 else (110, 110, 120)
    shirt = _pick(o.rng, [(245, 245, 245), (215, 230, 250), (250, 250, 235)])
    draw.polygon(fr.pts([(-0.065, 0.155), (0.065, 0.155), (0.0, 0.31)]), fill=shirt)
    w = max(1, round(0.018 * fr.h))
    draw.line(fr.pts([(-0.08, 0.155), (0.0, 0.32), (0.08, 0.155)]), fill=lapel, width=w)
    draw.line(fr.pts([(0.0, 0.32), (0.0, o.hem)]), fill=lapel, width=max(1, w // 2))
    for by in (0.36, 0.43):
        draw.ellipse(fr.circle(0.02, by, 0.012), fill=lapel)


def _head_and_extras(o: _Outfit) -> None:
    """Optional handbag (nuisance), head with hair, and the Miden bow."""
    fr, draw, rng = o.fr, o.draw, o.rng
    if rng.random() < 0.25:
        x = (1 if rng.random() < 0.5 else -1) * (o.sw + 0.035)
        bag = _jitter(rng, _pick(rng, _PALETTES["default"] + _PALETTES["Nature"][4:]))
        draw.rectangle(fr.box(x - 0.045, 0.48, x + 0.045, 0.56), fill=bag)
    draw.ellipse(fr.circle(0.0, 0.075, 0.06), fill=o.skin)
    draw.chord(fr.circle(0.0, 0.07, 0.065), 180, 360, fill=o.hair)
    if o.on["Miden"]:
        neck = (240, 240, 240) if o.on["OL"] else o.top_c  # OL: bow sits on the collar
        spots = [(0.0, 0.165, neck), (0.045, 0.02, o.hair), (0.0, 0.415, o.top_c)]
        x, y, under = spots[int(rng.integers(3))]
        _bow(draw, fr, x, y, _farthest(under, _BOW))
        o.mark("Miden", box=(x - 0.07, y - 0.045, x + 0.07, y + 0.06))


def _figure(rng: np.random.Generator, on: dict[str, bool], fig: Image.Image,
            fr: _Frame, marks: dict[str, Image.Image] | None = None) -> None:
    """Draw the whole outfit onto the transparent RGBA ``fig`` layer (regions into ``marks``)."""
    o = _new_outfit(rng, on, fig, fr)
    o.marks = marks
    if rng.random() < 0.4:  # long hair behind the body
        o.draw.rectangle(fr.box(-0.07, 0.05, 0.07, 0.22), fill=o.hair)
    bottom = _draw_bottom(o)
    top = _draw_top(o)
    _top_cues(o, top, bottom)
    if on["OL"]:
        _ol_collar(o)
    _head_and_extras(o)
    _garment_regions(o, top, bottom)


def _garment_regions(o: _Outfit, top: Image.Image, bottom: Image.Image) -> None:
    """Regions of the styles carried by whole garments (patterns, shapes, colours)."""
    skirt = ImageChops.subtract(bottom, top)  # the visible part of the bottom garment
    garments = ImageChops.lighter(top, bottom)
    for style, piece in (("Sport", top), ("Korean", top), ("OL", top), ("England", skirt),
                         ("Lady", skirt), ("Relax", garments), ("Simple", garments),
                         ("Nature", garments), ("Japanese", garments), ("Street", garments)):
        if o.on[style]:
            o.mark(style, piece)


def draw_outfit(rng: np.random.Generator, labels: np.ndarray, size: int = 64) -> Image.Image:
    """Draw one ``size`` x ``size`` RGB outfit showing the cues of ``labels`` (13,)."""
    return _draw(rng, labels, size, None)


def draw_outfit_regions(rng: np.random.Generator, labels: np.ndarray,
                        size: int = 64) -> tuple[Image.Image, dict[str, np.ndarray]]:
    """``draw_outfit``'s image (the same, for the same ``rng``) and, per style shown, the
    region carrying its cue: (size, size) float32 coverage in 0..1.

    Regions: the top for Sport, Korean and OL; the visible bottom garment for England
    and Lady; both garments for Relax, Simple and the colour styles (Street adds its
    shoes); the ornament bands for Nation; the bow for Miden; the colour block, or the
    belt and buckle, for European.
    """
    marks: dict[str, Image.Image] = {}
    image = _draw(rng, labels, size, marks)
    return image, {s: np.asarray(marks[s], np.float32) / 255 for s in STYLE_NAMES if s in marks}


def _draw(rng: np.random.Generator, labels: np.ndarray, size: int,
          marks: dict[str, Image.Image] | None) -> Image.Image:
    """The outfit; with ``marks``, fills it with each style's region at ``size``."""
    on = {name: bool(v) for name, v in zip(STYLE_NAMES, np.asarray(labels).ravel())}
    big = size * _SS
    canvas = _background(rng, big)
    fig = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    h = big * rng.uniform(0.74, 0.92)
    fr = _Frame(big / 2 + rng.uniform(-0.1, 0.1) * big,
                (big - h) / 2 + rng.uniform(-0.05, 0.05) * big, h)
    _figure(rng, on, fig, fr, marks)
    angle, centre = rng.uniform(-8, 8), fr.pts([(0.0, 0.5)])[0]
    fig = fig.convert("RGBa").rotate(angle, Image.Resampling.BILINEAR, center=centre).convert("RGBA")
    for style, mask in (marks or {}).items():
        marks[style] = mask.rotate(angle, Image.Resampling.BILINEAR, center=centre).resize(
            (size, size), Image.Resampling.BOX)
    canvas.alpha_composite(fig)
    small = canvas.convert("RGB").resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)
    arr += rng.normal(0.0, rng.uniform(2.0, 8.0), arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


# ------------------------------------------------------------------- dataset
def make_dataset(out_dir: Path, n_images: int = 1200, image_size: int = 64, seed: int = 0,
                 split_fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Path:
    """Write ``images/NNNNNN.jpg`` and ``labels.csv`` under ``out_dir``; return the CSV path.

    CSV columns: ``image,split,<13 style names>``; deterministic for a seed.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    labels = sample_labels(np.random.default_rng([seed, 0]), n_images)
    splits = assign_splits(labels, split_fractions, np.random.default_rng([seed, 1]))
    csv_path = out_dir / "labels.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "split", *STYLE_NAMES])
        for i in range(n_images):
            rel = f"images/{i:06d}.jpg"
            img = draw_outfit(np.random.default_rng([seed, 2, i]), labels[i], image_size)
            img.save(out_dir / rel, format="JPEG", quality=90)
            writer.writerow([rel, SPLITS[splits[i]], *labels[i].tolist()])
    return csv_path
