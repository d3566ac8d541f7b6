"""Grad-CAM overlays on demand, for a long-running caller (the service's `?maps=true`): torch-free to import.

    heat = HeatMaps(predictor, runtime, lock)        # nothing built yet; heat.available for /health
    explainer = heat.explainer()                     # built on first use, or HeatMapsUnavailable
    shown = MapInput.of(explainer, image)            # the little of an image the maps need
    heat.overlays(explainer, shown, ["OL"])          # {"OL": "data:image/png;base64,..."}

The maps themselves are explain.Explainer's; this module only builds it lazily (under the
caller's model lock: finding the target layer runs the model) and encodes the overlays.
"""
from __future__ import annotations

import base64
import importlib.util
import io
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from PIL import Image

from fashionstyle.core.errors import FashionStyleError


class HeatMapsUnavailable(FashionStyleError):
    """Heat maps cannot be made here: `missing` names the package to install, or is None (wrong runtime)."""

    def __init__(self, message: str, missing: str | None = None):
        super().__init__(message)
        self.missing = missing


@dataclass
class MapInput:
    """What the maps and overlays need of one image: the displayed crop (D x D) and the model's centre
    crops (explain.Explainer.crops): a few hundred KB, where the decoded photo may be hundreds of MB."""

    photo: Image.Image
    crops: list[Any]

    @classmethod
    def of(cls, explainer: Any, image: Image.Image) -> "MapInput":
        return cls(explainer.photo(image), explainer.crops(image))


class HeatMaps:
    """Builds the explain.Explainer of a predictor on first use, under `lock` (no other inference while
    its target layer is found), and turns its maps into PNG overlays."""

    def __init__(self, predictor: Any, runtime: str, lock: threading.Lock):
        self.predictor, self.runtime, self.lock = predictor, runtime, lock
        self.available = runtime == "torch" and importlib.util.find_spec("captum") is not None
        self._explainer: Any = None

    def explainer(self) -> Any:
        """The Explainer, or HeatMapsUnavailable saying what this process lacks for maps."""
        if self.runtime != "torch":
            raise HeatMapsUnavailable(f"heat maps (maps=true) need the PyTorch runtime; this service runs on "
                                      f"{self.runtime} (serve with --runtime torch, or ask without maps)")
        with self.lock:
            if self._explainer is None:
                try:
                    from fashionstyle.analysis.explain import Explainer

                    self._explainer = Explainer(self.predictor)  # imports captum
                except ModuleNotFoundError as err:
                    raise HeatMapsUnavailable(f"heat maps need {err.name}, which is not installed; "
                                              "pip install 'fashionstyle[explain]'", missing=err.name) from None
        return self._explainer

    @staticmethod
    def overlays(explainer: Any, shown: MapInput, labels: Sequence[str]) -> dict[str, str]:
        """A data-URL PNG per label: the crop the model sees with the label's Grad-CAM map blended in."""
        from fashionstyle.analysis.explain import overlay

        out = {}
        for label, cam in explainer.maps(shown.crops, labels).items():
            buffer = io.BytesIO()
            overlay(shown.photo, cam).save(buffer, format="PNG")
            out[label] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return out
