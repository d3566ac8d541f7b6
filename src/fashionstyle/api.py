"""From a run to prediction records in one line: `fashionstyle.load`.

    tagger = fashionstyle.load("runs/lite0")             # runtime "torch" | "onnx" | "onnx-int8", device "auto"
    tagger("photo.jpg")      # Prediction(image="photo.jpg", labels=["Korean", "Simple"], scores={"Sport": 0.01, ...})
    tagger(["a.jpg", pil_image, array])                  # a list of Prediction records, in input order
    tagger("photos/")                                    # every image in the folder, as a list
    tagger.table("photos/")                              # pandas.DataFrame: image, labels, one column per label, error

An input is an image file, a folder, a PIL image or a uint8 array (H, W) / (H, W, 3|4), or a list
of those. A record (core/prediction.py) is what files and the service give too: `labels` are the
ones at or above the run's tuned thresholds, most probable first; `record.as_dict()` is the service's
JSON. An unreadable file gives a record with `error` (as `predict` skips and lists it); with
`on_bad="fail"` it raises FashionStyleError naming the file instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np
from PIL import Image

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import Prediction, records_table, thresholds_by_label
from fashionstyle.data.images.files import check_policy, list_images
from fashionstyle.inference.hub import is_hub_folder
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.inference.runtimes import load_predictor, require_torch

if TYPE_CHECKING:
    import pandas

    from fashionstyle.core.config import TrainConfig
    from fashionstyle.core.run import RunDir

ImageInput = Union[str, Path, Image.Image, np.ndarray]


def train(config: "TrainConfig", out: str | Path, resume: bool = False, folds: int | None = None) -> "RunDir":
    """Train a run as `fashionstyle train` does (`folds`: as `fashionstyle cv --folds K`, the out-of-fold
    run): the run directory; on its MLflow / W&B runs (when it logs to any) training logged the final scores,
    the folder and the model, and the report's figures are added here."""
    from fashionstyle.analysis.tracking import update_trackers
    from fashionstyle.core.ranks import is_secondary_process

    if folds is not None:
        from fashionstyle.training.cv import train_cv

        run = train_cv(config, out, folds=folds, resume=resume)
    else:
        from fashionstyle.training.train import train as train_run

        run = train_run(config, out, resume=resume)
    if not is_secondary_process():
        update_trackers(run, metrics=False)  # the final scores are logged once, by training
    return run


def load(run: str | Path, runtime: str = "torch", device: str = "auto", tta: str | None = None,
         on_bad: str = "skip", operating_point: str | None = None) -> "StyleTagger":
    """A `StyleTagger` for a run directory (plain, fused or cross-validated) or a hub folder
    (`fashionstyle export RUN --format hub`); `on_bad` as StyleTagger's; labels decided at
    `operating_point` (None: the run's own thresholds)."""
    check_policy(on_bad)
    check_device(device, runtime)
    if runtime == "onnx-int8" and is_hub_folder(run):  # its calibration needs the run's validation images
        raise FashionStyleError(f"{run}: a hub folder loads with runtime 'torch' or 'onnx'; for int8, "
                                "`fashionstyle export RUN --quantize int8` on the run it came from")
    return StyleTagger(load_predictor(run, runtime, tta=tta, device=device, operating_point=operating_point),
                       on_bad=on_bad)


class StyleTagger:
    """Images in, prediction records out; `predictor` does the work (any runtime). `on_bad`: "skip"
    (an unreadable file gives a record with `error`) or "fail" (FashionStyleError naming it)."""

    def __init__(self, predictor: BasePredictor, batch_size: int = 32, on_bad: str = "skip"):
        self.predictor = predictor
        self.batch_size = batch_size
        self.on_bad = check_policy(on_bad)

    @property
    def label_names(self) -> list[str]:
        return list(self.predictor.label_names)

    @property
    def thresholds(self) -> dict[str, float | None]:
        return thresholds_by_label(self.label_names, self.predictor.thresholds)

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> Prediction | list[Prediction]:
        """One record for one image; a list of them for a folder or a list."""
        records = self._records(_as_list(images))
        return records[0] if _is_single(images) else records

    def table(self, images: ImageInput | Sequence[ImageInput]) -> "pandas.DataFrame":
        """The records as a DataFrame of the files' columns: image, labels, one score column per label
        (NaN for an unreadable image), error."""
        return records_table(self._records(_as_list(images)), self.label_names)

    def __repr__(self) -> str:
        return f"StyleTagger({len(self.label_names)} styles: {', '.join(self.label_names)})"

    def _records(self, items: list[ImageInput]) -> list[Prediction]:
        names = [_name(item, i) for i, item in enumerate(items)]
        return self.predictor.records(names, self._probabilities(items))  # a file's error: images.why_unreadable

    def _probabilities(self, items: list[ImageInput]) -> np.ndarray:
        """(N, L) in input order: files through the predictor's reader, decoded images directly."""
        probs = np.full((len(items), len(self.label_names)), np.nan, np.float32)
        files = [i for i, item in enumerate(items) if isinstance(item, (str, Path))]
        decoded = [i for i, item in enumerate(items) if not isinstance(item, (str, Path))]
        for i in decoded:  # every array checked before any work
            _check_image(items[i], i)
        if files:
            try:
                probs[files] = self.predictor.predict_proba([items[i] for i in files], batch_size=self.batch_size,
                                                            on_bad=self.on_bad)
            except FashionStyleError as error:  # on_bad="fail": the file's one line, not the loader's frames
                raise FashionStyleError(str(error)) from None
        for start in range(0, len(decoded), self.batch_size):
            rows = decoded[start:start + self.batch_size]
            probs[rows] = self.predictor.predict_proba_images([_to_image(items[i], i) for i in rows])
        return probs


def check_device(device: str, runtime: str) -> None:
    """Refuse, in one line, a PyTorch device this machine does not have (ONNX Runtime predicts on the CPU)."""
    if device == "auto" or runtime != "torch":
        return
    require_torch("runtime 'torch' needs PyTorch; use runtime='onnx' on an exported run")
    import torch

    try:
        found = torch.device(device)
    except (RuntimeError, ValueError):
        raise FashionStyleError(f"device {device!r}: not a PyTorch device; valid: auto, cpu, cuda, cuda:N, "
                                "mps") from None
    count = torch.cuda.device_count() if found.type == "cuda" and torch.cuda.is_available() else 0
    if found.type == "cuda" and (found.index or 0) >= count:
        have = f"CUDA devices 0..{count - 1}" if count else "no CUDA device"
        raise FashionStyleError(f"device {device!r}: this machine has {have}; use device='auto' or 'cpu'")
    if found.type == "mps" and not torch.backends.mps.is_available():
        raise FashionStyleError(f"device {device!r}: MPS is not available here; use device='auto' or 'cpu'")




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


def _check_image(item: ImageInput, index: int) -> None:
    """Refuse, in one line, an array that is not a uint8 image, or an image without pixels."""
    if isinstance(item, Image.Image):
        if 0 in item.size:
            raise FashionStyleError(f"image {index}: an empty image ({item.width}x{item.height}); an image needs "
                                    "at least one pixel")
        return
    array = np.asarray(item)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise FashionStyleError(f"image {index}: an array must be uint8 of shape (H, W) or (H, W, 3|4), "
                                f"got {array.dtype} {array.shape}")
    if 0 in array.shape[:2]:
        raise FashionStyleError(f"image {index}: an empty array {array.shape}; an image needs at least one pixel")


def _to_image(item: ImageInput, index: int) -> Image.Image:
    _check_image(item, index)
    if isinstance(item, Image.Image):
        return item
    array = np.asarray(item)
    return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1 else array)


def _name(item: ImageInput, index: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"<image {index}>"
