"""From a run to style names in one line: `fashionstyle.load`.

    tagger = fashionstyle.load("runs/lite0")             # runtime "torch" | "onnx" | "onnx-int8", device "auto"
    tagger("photo.jpg")      # {"image": "photo.jpg", "styles": ["Korean", "Simple"], "scores": {"Sport": 0.01, ...}}
    tagger(["a.jpg", pil_image, array])                  # a list of such dicts, in input order
    tagger("photos/")                                    # every image in the folder, as a list
    pandas.DataFrame(tagger.table("photos/"))            # columns image, styles, then one per style's score

An input is an image file, a folder, a PIL image or a uint8 array (H, W) / (H, W, 3|4), or a list
of those. Styles are the ones at or above the run's tuned thresholds, most probable first.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
from PIL import Image

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import check_policy, list_images
from fashionstyle.inference.hub import hub_to_run, is_hub_folder
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.inference.runtimes import load_predictor

ImageInput = Union[str, Path, Image.Image, np.ndarray]


def load(run: str | Path, runtime: str = "torch", device: str = "auto", tta: str | None = None) -> "StyleTagger":
    """A `StyleTagger` for a run directory (plain, fused or cross-validated) or a hub folder
    (`fashionstyle export RUN --format hub`)."""
    if is_hub_folder(run):
        if runtime == "onnx-int8":  # its calibration needs the run's validation images
            raise FashionStyleError(f"{run}: a hub folder loads with runtime 'torch' or 'onnx'; for int8, "
                                    "`fashionstyle export RUN --quantize int8` on the run it came from")
        with tempfile.TemporaryDirectory(prefix="fashionstyle_hub_") as tmp:  # the models load into memory
            return StyleTagger(load_predictor(hub_to_run(run, tmp), runtime, tta=tta, device=device))
    return StyleTagger(load_predictor(run, runtime, tta=tta, device=device))


class StyleTagger:
    """Images in, style names and scores out; `predictor` does the work (any runtime)."""

    def __init__(self, predictor: BasePredictor, batch_size: int = 32, on_bad: str = "fail"):
        self.predictor = predictor
        self.batch_size = batch_size
        self.on_bad = check_policy(on_bad)

    @property
    def label_names(self) -> list[str]:
        return list(self.predictor.label_names)

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(zip(self.label_names, map(float, self.predictor.thresholds)))

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> dict[str, Any] | list[dict[str, Any]]:
        """One result dict for one image; a list of them for a folder or a list."""
        items = _as_list(images)
        results = self._results(items)
        return results[0] if _is_single(images) else results

    def table(self, images: ImageInput | Sequence[ImageInput]) -> dict[str, list]:
        """Column name -> values (image, styles, then each style's score): `pandas.DataFrame(table)`."""
        results = self._results(_as_list(images))
        columns: dict[str, list] = {"image": [r["image"] for r in results], "styles": [r["styles"] for r in results]}
        for name in self.label_names:
            columns[name] = [None if r["scores"] is None else r["scores"][name] for r in results]
        return columns

    def __repr__(self) -> str:
        return f"StyleTagger({len(self.label_names)} styles: {', '.join(self.label_names)})"

    def _results(self, items: list[ImageInput]) -> list[dict[str, Any]]:
        probs = self._probabilities(items)
        styles = self.predictor.decided_names(probs)
        return [self._result(_name(item, i), p, s) for i, (item, p, s) in enumerate(zip(items, probs, styles))]

    def _probabilities(self, items: list[ImageInput]) -> np.ndarray:
        """(N, L) in input order: files through the predictor's reader, decoded images directly."""
        probs = np.full((len(items), len(self.label_names)), np.nan, np.float32)
        files = [i for i, item in enumerate(items) if isinstance(item, (str, Path))]
        decoded = [i for i, item in enumerate(items) if not isinstance(item, (str, Path))]
        if files:
            probs[files] = self.predictor.predict_proba([items[i] for i in files], batch_size=self.batch_size,
                                                        on_bad=self.on_bad)
        for start in range(0, len(decoded), self.batch_size):
            rows = decoded[start:start + self.batch_size]
            probs[rows] = self.predictor.predict_proba_images([_to_image(items[i], i) for i in rows])
        return probs

    def _result(self, name: str, probs: np.ndarray, styles: list[str]) -> dict[str, Any]:
        if np.isnan(probs).any():  # skipped as unreadable (on_bad="skip")
            return {"image": name, "styles": None, "scores": None, "error": "unreadable image"}
        return {"image": name, "styles": styles,
                "scores": {n: float(p) for n, p in zip(self.label_names, probs)}}


def _is_single(images: Any) -> bool:
    if isinstance(images, (str, Path)):
        return not Path(images).is_dir()
    return isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim in (2, 3))


def _as_list(images: Any) -> list[ImageInput]:
    """Every image the input names, in order; a folder becomes its image files."""
    if isinstance(images, (str, Path)):
        return list(list_images(images)) if Path(images).is_dir() else [images]
    if _is_single(images):
        return [images]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)  # (N, H, W, C)
    if isinstance(images, (list, tuple)):
        return [item for image in images for item in _as_list(image)]
    raise FashionStyleError(f"cannot read {type(images).__name__} as images; give a path, a folder, "
                            "a PIL image, a uint8 array (H, W) or (H, W, 3|4), or a list of those")


def _to_image(item: ImageInput, index: int) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    array = np.asarray(item)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise FashionStyleError(f"image {index}: an array must be uint8 of shape (H, W) or (H, W, 3|4), "
                                f"got {array.dtype} {array.shape}")
    return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1 else array)


def _name(item: ImageInput, index: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"<image {index}>"
