"""One synthetic outfit drawn for a set of styles: `draw_outfit`, and `draw_outfit_regions` with where each cue is.

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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from fashionstyle.data.synthetic.cues import (
    BOLD, BOW_COLOURS, HAIR, NEON, PALETTES, SKIN, STYLE_NAMES, SUPERSAMPLING, RGB, Frame, background, band, bow,
    clip, contrast, dots, farthest, jitter, lum, new_mask, ornament_band, paint, pick, shade, stripes,
)


def _outfit_colors(rng: np.random.Generator, on: dict[str, bool]) -> tuple[RGB, RGB]:
    """Top and bottom colours: colour styles first, Simple makes them equal."""
    keys = [k for k in ("Street", "Nature", "Japanese") if on[k]] or ["default"]
    top_pal = PALETTES[keys[0]]
    top = pick(rng, top_pal)
    if on["Simple"]:
        c = jitter(rng, top, 8)
        return c, c
    if len(keys) > 1:
        bot_pal = PALETTES[keys[1]]
    else:  # the farther half of the palette, so that monochrome stays specific to Simple
        rest = sorted((c for c in top_pal if c != top),
                      key=lambda c: -sum((a - b) ** 2 for a, b in zip(c, top)))
        bot_pal = rest[: max(1, len(rest) // 2)]
    return jitter(rng, top, 8), jitter(rng, pick(rng, bot_pal), 8)



@dataclass
class _Outfit:
    """Drawing context shared by the body-part helpers (figure units)."""

    rng: np.random.Generator
    on: dict[str, bool]
    fig: Image.Image
    fr: Frame
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
            mask, d = new_mask(self.size)
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
                fr: Frame) -> _Outfit:
    """Pick colours and the silhouette (OL boxy, Relax wide) for one figure."""
    top_c, bot_c = _outfit_colors(rng, on)
    skin, hair = jitter(rng, pick(rng, SKIN), 8), jitter(rng, pick(rng, HAIR), 8)
    ol, relax = on["OL"], on["Relax"]
    sw = 0.13 + 0.065 * relax + rng.uniform(-0.01, 0.01)
    hem = min(0.46 + 0.06 * ol + 0.05 * relax + rng.uniform(-0.015, 0.015), 0.58)
    hw = sw if ol else 0.11 + 0.08 * relax
    return _Outfit(rng, on, fig, fr, top_c, bot_c, skin, hair, pick(rng, NEON), sw, hem, hw)


def _draw_bottom(o: _Outfit) -> Image.Image:
    """Flared skirt (Lady) or trousers (wide for Relax) plus England/Nation/Street cues."""
    fr, draw, relax, rng = o.fr, o.draw, o.on["Relax"], o.rng
    bottom, bd = new_mask(o.size)
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
    paint(o.fig, bottom, o.bot_c)
    if o.on["England"]:  # tartan: dark and light checks in both directions
        per = rng.uniform(0.07, 0.09)
        dark = (150, 30, 40) if lum(o.bot_c) < 80 else shade(o.bot_c, 0.35)
        for horiz in (True, False):
            paint(o.fig, stripes(o.size, fr, bottom, per, 0.022, horiz), dark)
            paint(o.fig, stripes(o.size, fr, bottom, per, 0.01, horiz, 0.5), (240, 220, 90))
    if o.on["Nation"]:
        o.mark("Nation", ornament_band(o.fig, fr, bottom, band_y, 0.06, o.bot_c, rng))
    if o.on["Street"]:
        paint(o.fig, band(o.size, fr, bottom, band_y + 0.03, 0.025), o.neon)
    shoes = [(30, 25, 25), (90, 50, 30), (235, 235, 235)]
    shoe = o.neon if o.on["Street"] else jitter(rng, pick(rng, shoes))
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
    top, td = new_mask(o.size)
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
    paint(o.fig, top, o.top_c)
    return top


def _top_cues(o: _Outfit, top: Image.Image, bottom: Image.Image) -> None:
    """Sport stripes, Korean dots, European belt/block, Nation band, Street patch."""
    fr, rng, size = o.fr, o.rng, o.size
    if o.on["Sport"]:
        per = rng.uniform(0.085, 0.1)
        paint(o.fig, stripes(size, fr, top, per, 0.42 * per, True, rng.random()),
               contrast(o.top_c))
    if o.on["Korean"]:
        dot_c = farthest(o.top_c, BOW_COLOURS) if o.on["Sport"] else contrast(o.top_c)
        paint(o.fig, dots(size, fr, top, rng.uniform(0.08, 0.095), 0.021), dot_c)
    if o.on["European"]:
        if rng.random() < 0.5:  # bold colour block on one half of the top
            blk, kd = new_mask(size)
            kd.rectangle(fr.box(0, 0.1, (1 if rng.random() < 0.5 else -1) * 0.5, 0.7), fill=255)
            paint(o.fig, clip(blk, top), farthest(o.top_c, BOLD))
            o.mark("European", clip(blk, top))
        else:  # belt with a gold buckle
            belt = band(size, fr, ImageChops.lighter(top, bottom), 0.395, 0.04)
            paint(o.fig, belt, pick(rng, [(35, 25, 20), (95, 55, 25), (15, 15, 15)]))
            o.draw.rectangle(fr.box(-0.02, 0.39, 0.02, 0.44), fill=(225, 185, 60))
            o.mark("European", belt)
            o.mark("European", box=(-0.02, 0.39, 0.02, 0.44))
    if o.on["Nation"]:
        o.mark("Nation", ornament_band(o.fig, fr, top, o.hem - 0.075, 0.055, o.top_c, rng))
    if o.on["Street"]:
        o.draw.rectangle(fr.box(0.015, 0.22, 0.085, 0.29), fill=o.neon)


def _ol_collar(o: _Outfit) -> None:
    """OL cue: light shirt collar, dark lapels, front opening and buttons."""
    fr, draw = o.fr, o.draw
    lapel = shade(o.top_c, 0.5) if lum(o.top_c) > 60 else (110, 110, 120)
    shirt = pick(o.rng, [(245, 245, 245), (215, 230, 250), (250, 250, 235)])
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
        bag = jitter(rng, pick(rng, PALETTES["default"] + PALETTES["Nature"][4:]))
        draw.rectangle(fr.box(x - 0.045, 0.48, x + 0.045, 0.56), fill=bag)
    draw.ellipse(fr.circle(0.0, 0.075, 0.06), fill=o.skin)
    draw.chord(fr.circle(0.0, 0.07, 0.065), 180, 360, fill=o.hair)
    if o.on["Miden"]:
        neck = (240, 240, 240) if o.on["OL"] else o.top_c  # OL: bow sits on the collar
        spots = [(0.0, 0.165, neck), (0.045, 0.02, o.hair), (0.0, 0.415, o.top_c)]
        x, y, under = spots[int(rng.integers(3))]
        bow(draw, fr, x, y, farthest(under, BOW_COLOURS))
        o.mark("Miden", box=(x - 0.07, y - 0.045, x + 0.07, y + 0.06))


def _figure(rng: np.random.Generator, on: dict[str, bool], fig: Image.Image,
            fr: Frame, marks: dict[str, Image.Image] | None = None) -> None:
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
    big = size * SUPERSAMPLING
    canvas = background(rng, big)
    fig = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    h = big * rng.uniform(0.74, 0.92)
    fr = Frame(big / 2 + rng.uniform(-0.1, 0.1) * big,
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

