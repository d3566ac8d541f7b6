"""`fashionstyle explain`: heat-map overlays of images, and one HTML page that lists them.

    explain_run("runs/x", ["a.jpg", "b.jpg"], "maps/", labels_to_show=3, requested=["OL"])

    maps/
      index.html                  per image: predicted labels, probabilities, thresholds, overlays
      000_a/photo.png             the centre crop the model sees
      000_a/map-07-<label>.png    the crop with label 7's Grad-CAM map blended in (explain.overlay)
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from fashionstyle.analysis.explain import (
    OVERLAY_ALPHA,
    Explainer,
    Explanation,
    check_labels,
    jet,
    open_torch_run,
    overlay,
)
from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.output_folder import claim_folder
from fashionstyle.core.run import RunDir
from fashionstyle.data.images.files import open_rgb

if TYPE_CHECKING:
    from PIL import Image


def safe_name(name: str) -> str:
    """A file-system-safe file name for a label or an image stem."""
    return re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE) or "x"


def map_file(label_names: Sequence[str], label: str) -> str:
    """The overlay's file name: the label's column number keeps names apart that `safe_name` merges."""
    return f"map-{label_names.index(label):02d}-{safe_name(label)}.png"


def colour_bar_css(stops: int = 9) -> str:
    """The overlays' colour scale as a CSS gradient, low (left) to high (right): each value's jet colour
    at the opacity `overlay` gives it (the service's page, static/index.html, has the same)."""
    values = np.linspace(0, 1, stops)
    colours = jet(values[None])[0]
    parts = [f"rgba({r}, {g}, {b}, {v * OVERLAY_ALPHA:.3g}) {100 * v:.3g}%" for (r, g, b), v in zip(colours, values)]
    return f"linear-gradient(to right, {', '.join(parts)})"


def explain_run(run: str | Path | RunDir, images: Sequence[str | Path], out: str | Path, labels_to_show: int = 3,
                requested: Sequence[str] = (), device: str = "auto", operating_point: str | None = None) -> Path:
    """Write overlays and index.html for `images` under `out`; returns the page's path."""
    if labels_to_show < 1:
        raise FashionStyleError(f"--labels-to-show must be at least 1, got {labels_to_show}")
    if not images:
        raise FashionStyleError("no images to explain: pass --images FILE ...")
    run = open_torch_run(run)
    check_labels(requested, run.label_names())
    out = claim_folder(out, "explain")  # never over a user's files or a report
    explainer = Explainer.from_run(run, device, operating_point)
    # a large JPEG decoded reduced, as `predict` decodes it; every image readable before any map is
    # made, decoded again in the loop so that a folder of photos is never held in memory at once
    min_side = explainer.predictor.min_side
    for path in images:
        open_rgb(path, min_side)
    sections = []
    for i, path in enumerate(images):
        shown = explainer.explain(open_rgb(path, min_side), requested, labels_to_show, name=str(path))
        folder = out / f"{i:03d}_{safe_name(Path(path).stem)}"
        folder.mkdir(parents=True, exist_ok=True)
        _save_png(shown.photo, folder / "photo.png")
        for label in shown.labels:
            _save_png(overlay(shown.photo, shown.maps[label]), folder / map_file(explainer.label_names, label))
        sections.append(_section(folder.name, shown, explainer))
    page = out / "index.html"
    return atomic.write_text(page, _PAGE.format(run=html.escape(str(run.path)), sections="\n".join(sections),
                                                 colour_bar=colour_bar_css()))


def _section(folder: str, shown: Explanation, explainer: Explainer) -> str:
    """One image's part of the page: its prediction record (labels most probable first), scores and maps."""
    names, thresholds = explainer.label_names, explainer.predictor.thresholds
    predicted = shown.prediction.labels
    rows = "".join(f'<tr class="{"on" if n in predicted else ""}"><td>{html.escape(n)}</td><td>{p:.3f}</td>'
                   f"<td>{f'{t:.3f}' if t < 2 else 'never'}</td></tr>" for n, p, t in zip(names, shown.probs, thresholds))
    figures = "".join(f'<figure><img src="{folder}/{map_file(names, n)}" alt="{html.escape(n)}">'
                      f"<figcaption>{html.escape(n)} ({shown.probs[names.index(n)]:.2f})</figcaption></figure>"
                      for n in shown.labels)
    return (f'<section><h2>{html.escape(shown.prediction.image)}</h2><p>predicted: '
            f'{html.escape(", ".join(predicted) or "none")}'
            f'</p><div class="maps"><figure><img src="{folder}/photo.png" alt="photo"><figcaption>photo'
            f"</figcaption></figure>{figures}</div><table><tr><th>label</th><th>probability</th>"
            f"<th>threshold</th></tr>{rows}</table></section>")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fashionstyle heat maps</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1f2328; }}
section {{ border-top: 1px solid #d0d7de; padding: 12px 0; }}
.maps {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; text-align: center; }} img {{ width: 224px; height: 224px; }}
table {{ border-collapse: collapse; margin-top: 8px; }} td, th {{ padding: 1px 10px; text-align: right; }}
tr.on {{ font-weight: 700; color: #d1246b; }}
.scale {{ display: flex; align-items: center; gap: 8px; margin-bottom: 12px; color: #656d76; font-size: 13px;
          white-space: nowrap; }}
.scale .bar {{ flex: 0 1 220px; height: 12px; border: 1px solid #d0d7de; border-radius: 3px; }}
</style></head><body>
<h1>Heat maps of {run}</h1>
<p>Grad-CAM of each shown label, on the centre crop the model sees: the more of the label's evidence a
region holds, the redder and the more opaque its colour; the photo shows through where there is little.</p>
<div class="scale" id="colour-bar">heat map: <span>low</span><span class="bar" style="background: {colour_bar}, #8c959f">
</span><span>high</span></div>
{sections}
</body></html>
"""


def _save_png(image: "Image.Image", path: Path) -> None:
    """Whole or not at all: a page shown again after an interrupted rerun finds no truncated picture."""
    atomic.write_atomic(path, lambda f: image.save(f, format="PNG"))
