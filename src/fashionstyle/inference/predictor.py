"""The predictor interface every runtime implements (PyTorch, ONNX Runtime fp32 and int8).

    predictor = load_predictor("runs/x", "onnx")             # runtimes.py: any BasePredictor
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])       # (N, L) float32, NaN rows for skipped images
    probs = predictor.predict_proba_images([pil_image])       # (N, L) for decoded images
    labels = predictor.predict(["a.jpg"])                     # (N, L) 0/1 at predictor.thresholds
    labels = predictor.decide(probs)                          # the one place probabilities become labels
    records = predictor.records(["a.jpg", "b.jpg"], probs)   # core.prediction.Prediction per image

A subclass sets `label_names`, `tuner`, `tta` and `transforms` (one test-time
view stack (T, 3, H, W) per distinct preprocessing of its members) and
implements `_predict_views`; reading files, skipping bad images, empty input
and thresholds are done here, once, so every runtime behaves the same. Files
are decoded on a thread pool and views stacked with numpy; the PyTorch
Predictor overrides `_batches` and `_stack` (DataLoader, torch.stack).

Torch-free: the ONNX runtime serves without PyTorch installed.
"""
from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import Prediction, make_predictions, ranked_names
from fashionstyle.core.run import RunContents
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.files import check_policy, open_rgb, to_rgb, why_unreadable


@dataclass(frozen=True)
class PredictSettings:
    """What a prediction is made with besides the run: the engine and the test-time views (and how
    labels are decided, in `BasePredictor.decide`). One record from the command line to every rank;
    a streamed job records it, so that a resume cannot mix settings."""

    runtime: str = "torch"    # choices.RUNTIMES
    tta: str | None = None    # None: the one the run's thresholds were tuned with
    operating_point: str | None = None  # None: the run's own point (its tuned thresholds)

    def identity(self, contents: RunContents) -> dict[str, Any]:
        """The settings as a streamed job's parts record them: the TTA resolved against the run, and a
        setting left at its default left out (so that a new setting keeps older parts resumable)."""
        defaults = asdict(PredictSettings())
        given = {k: v for k, v in asdict(self).items() if k in ("runtime", "tta") or v != defaults[k]}
        return {**given, "tta": check_tta(contents, self.tta)}


class BasePredictor(ABC):
    """Image files or decoded images -> probabilities (N, L) -> 0/1 labels at tuned thresholds."""

    label_names: list[str]
    tuner: ThresholdTuner
    tta: str                      # the test-time augmentation applied ("none", "flip", ...)
    transforms: list[Callable]    # PIL image -> (T, 3, H, W) views, one per distinct preprocessing
    pin_memory: bool = False
    min_side: int | None = None   # JPEG files at least twice this decode reduced (images.open_rgb), as in training
    settings: PredictSettings = PredictSettings()
    point: OperatingPoint | None = None  # None: the run's own (its tuner's thresholds, no rule)

    @property
    def decision(self) -> OperatingPoint:
        """The operating point labels are decided at."""
        return self.point if self.point is not None else OperatingPoint.of_tuner(self.tuner)

    @property
    def thresholds(self) -> np.ndarray:
        """(L,) the thresholds of the operating point (inf: a label it never predicts)."""
        return self.decision.thresholds

    @abstractmethod
    def _predict_views(self, views: Sequence[Any]) -> np.ndarray:
        """Probabilities (B, L) for one batch: `views[k]` is the (B, T, 3, H, W) stack of transforms[k]."""

    def _views(self, image: Image.Image) -> tuple[Any, ...]:
        return tuple(t(image) for t in self.transforms)

    def _stack(self, views: Sequence[Any]) -> Any:
        """One batch (B, T, 3, H, W) from B images' view stacks."""
        return np.stack(views)

    def _batches(self, images: Sequence[str | Path], batch_size: int, num_workers: int,
                 on_bad: str) -> Iterator[tuple[np.ndarray, list[Any]]]:
        """(rows, views) per batch of readable images, in input order; decoded on `num_workers` threads."""
        check_policy(on_bad)

        def load(path: str | Path) -> tuple[Any, ...] | None:
            try:
                return self._views(open_rgb(path, self.min_side))
            except FashionStyleError:
                if on_bad == "fail":
                    raise
                return None

        with ThreadPoolExecutor(max(1, num_workers)) as pool:
            for start in range(0, len(images), batch_size):
                loaded = list(pool.map(load, images[start:start + batch_size]))
                rows = [i for i, views in enumerate(loaded) if views is not None]
                if rows:
                    yield start + np.array(rows), [self._stack(v) for v in zip(*(loaded[i] for i in rows))]

    def predict_proba(self, images: Sequence[str | Path], batch_size: int = 64, num_workers: int = 0,
                      progress: bool = False, on_bad: str = "fail",
                      on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Probabilities (N, L) for image files, in input order.

        With on_bad="skip" an unreadable image gets a row of NaN instead of an error.
        `on_batch(n)`: called after each batch, with the images read so far. `progress`: at a terminal a
        bar counted in images; in a pipe or log one line at the start and one at the end.
        """
        images = list(images)
        out = np.full((len(images), len(self.label_names)), np.nan, np.float32)
        batches = self._batches(images, batch_size, num_workers, on_bad)
        plain = progress and not sys.stderr.isatty()
        if plain:
            print(f"predicting {len(images)} images ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        with tqdm(total=len(images), desc="predict", unit="img", disable=not progress or plain) as bar:
            for rows, views in batches:
                out[rows] = self._predict_views(views)
                bar.update(len(rows))
                if on_batch is not None:
                    on_batch(int(rows[-1]) + 1)
        if plain:
            seconds = time.perf_counter() - start
            print(f"predicted {len(images)} images in {seconds:.1f} s ({len(images) / max(seconds, 1e-9):.1f} img/s)",
                  file=sys.stderr, flush=True)
        return out

    def predict_proba_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities (N, L) for decoded PIL images."""
        return self.predict_proba_views([self.views_of(image) for image in images])

    def views_of(self, image: Image.Image) -> tuple[Any, ...]:
        """A decoded image's test-time view stacks (T, 3, H, W), one per preprocessing: small, so that a
        caller (the service) can let the image go before predict_proba_views runs the model."""
        return self._views(to_rgb(image))  # as open_rgb gives files

    def predict_proba_views(self, views: Sequence[tuple[Any, ...]]) -> np.ndarray:
        """Probabilities (N, L) for N images' views_of."""
        if not views:
            return np.zeros((0, len(self.label_names)), np.float32)
        return self._predict_views([self._stack(v) for v in zip(*views)])

    def predict(self, images: Sequence[str | Path], **kwargs: Any) -> np.ndarray:
        """0/1 labels (N, L) at the run's tuned thresholds; `kwargs` as predict_proba's."""
        return self.decide(self.predict_proba(images, **kwargs))

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """0/1 labels (N, L) for probabilities (N, L) at the operating point (core/decision.py). A row of
        NaN (an image left out) decides nothing. Every caller turns probabilities into labels here."""
        return self.decision.decide(probs)

    def decided_names(self, probs: np.ndarray) -> list[list[str]]:
        """The names decide() gives each row, most probable first (ties in label order)."""
        return [ranked_names(p, on, self.label_names) for p, on in zip(probs, self.decide(probs))]

    def records(self, images: Sequence[str], probs: np.ndarray) -> list[Prediction]:
        """The prediction record of each row of `probs` (N, L), named `images` (the files read); a NaN row
        (an image left out) is a record whose `error` says why (images.why_unreadable)."""
        records = make_predictions(images, probs, self.decide(probs), self.label_names)
        return [replace(r, error=why_unreadable(r.image)) if r.error else r for r in records]


def combine_probs(n_images: int, n_labels: int,
                  parts: Sequence[tuple[np.ndarray, Sequence[int], Sequence[int], float]]) -> np.ndarray:
    """Weighted mean, per label, of the members that predict it.

    `parts`: one (probs (N, outputs), columns, targets, weight) per member.
    """
    total = np.zeros((n_images, n_labels), np.float64)
    weight = np.zeros(n_labels, np.float64)
    for probs, columns, targets, w in parts:
        total[:, list(targets)] += w * probs[:, list(columns)]
        weight[list(targets)] += w
    return (total / weight).astype(np.float32)


def check_coverage(label_names: Sequence[str], targets: Sequence[Sequence[int]]) -> None:
    """Every label is given by at least one member (`targets`: each member's label indices)."""
    covered = {t for member in targets for t in member}
    missing = [n for i, n in enumerate(label_names) if i not in covered]
    if missing:
        raise FashionStyleError(f"no member model predicts {', '.join(missing)}")


def check_tta(contents: RunContents, tta: str | None) -> str:
    """The run's TTA, or a clear error when another one is asked for."""
    tuned = contents.tta
    if tta is not None and tta != tuned:
        raise FashionStyleError(f"{contents.path}: thresholds were tuned with TTA {tuned!r}, not {tta!r}; "
                                f"run `fashionstyle tune {contents.path} --tta {tta}` first")
    return tuned
