"""Predictor: a run directory -> probabilities and labels for images, on PyTorch.

    predictor = Predictor.from_run("runs/densenet201")
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])   # (N, L)
    labels = predictor.predict(["a.jpg", "b.jpg"])        # (N, L) 0/1 at the tuned thresholds

Every kind of run predicts through this one class: a multi-label run has one
member model; single-label, label-wise-epoch and fused runs have several, and
each label's probability is the weighted mean of the members that give it.
The interface (predictor.BasePredictor) is shared with onnx_predictor.OnnxPredictor.

Input (data/images/decode.py, data/transforms.py): DataLoader workers decode and crop to uint8 view
stacks, pinned on CUDA (data/batches.py); the device normalises them; on CUDA the models run in
bf16 autocast and channels-last (fp32 on the CPU). With decode="gpu" the workers only read plain
JPEGs and the GPU decodes them in one batched nvJPEG call per batch (data/images/device_decode.py: files it
refuses are decoded on the host, counted in `device_decoder`, the first said in a warning).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import Member, RunContents, RunDir, run_contents
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.images.files import Preprocessing
from fashionstyle.data.batches import collate_skipping, collate_unstacked
from fashionstyle.data.dataset import ImageDataset
from fashionstyle.data.images.decode import EncodedJpeg, decode_image, read_for_device
from fashionstyle.data.images.device_decode import DeviceDecoder, decodes_on_gpu
from fashionstyle.data.images.files import resize_size
from fashionstyle.data.transforms import DeviceInput, EvalViews
from fashionstyle.inference.predictor import BasePredictor, check_coverage, check_tta, combine_probs
from fashionstyle.model.network import StyleNet, load_model

PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast: the default on CUDA; fp32 on the CPU unless asked."""
    if precision not in PRECISIONS:
        raise FashionStyleError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


class _Views:
    """A decoded image -> one uint8 view stack per preprocessing; encoded JPEGs pass (for the device).
    Picklable, so DataLoader workers get the transforms and not the models."""

    def __init__(self, transforms: Sequence[EvalViews]):
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> Any:
        if isinstance(image, EncodedJpeg):
            return image
        return tuple(t(image) for t in self.transforms)


@dataclass
class LoadedMember:
    model: StyleNet
    columns: list[int]   # which of the model's outputs are used
    targets: list[int]   # ... and which of the run's labels they give
    weight: float
    view: int            # index of this member's preprocessing in Predictor.transforms


class Predictor(BasePredictor):
    """Member models, their preprocessing, and the run's per-label thresholds."""

    def __init__(self, members: Sequence[tuple[StyleNet, dict, Member]], label_names: list[str],
                 tuner: ThresholdTuner, device: str = "auto", tta: str = "none", decode: str = "auto",
                 precision: str = "auto"):
        self.device = pick_device(device)
        cuda = self.device.type == "cuda"
        self.pin_memory = cuda
        self.decode_on_device = decodes_on_gpu(decode, self.device.type == "cuda")
        self.device_decoder = DeviceDecoder(self.device)  # used with decode_on_device: its refusals counted
        self.bf16 = uses_bf16(precision, self.device)
        self.channels_last = True  # CUDA and CPU alike: 1.5-1.75x on 2 CPU cores (bench/cpu_infer.py)
        self.tta = tta
        self.label_names = list(label_names)
        self.tuner = tuner
        keys: list[Preprocessing] = []
        self.members: list[LoadedMember] = []
        for model, record, member in members:
            key = Preprocessing.of(record)
            if key not in keys:
                keys.append(key)
            self.members.append(self._load(model, record, member, keys.index(key)))
        self.preprocessing = keys  # of each view stack
        self.transforms = [EvalViews(p.image_size, tta) for p in keys]  # image -> (T, 3, S, S) uint8
        self.inputs = [DeviceInput(p.mean, p.std, self.channels_last) for p in keys]  # on the device
        self.min_side = max(resize_size(p.image_size) for p in keys)  # JPEGs twice that decode reduced

    def _load(self, model: StyleNet, record: dict, member: Member, view: int) -> LoadedMember:
        outputs = {name: i for i, name in enumerate(record["label_names"])}  # look-ups, linear in labels
        mine = {name: i for i, name in enumerate(self.label_names)}
        unknown = [n for n in member.labels if n not in outputs or n not in mine]
        if unknown:
            raise FashionStyleError(f"{member.model}: does not predict {', '.join(unknown)}")
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return LoadedMember(model.eval(), [outputs[n] for n in member.labels], [mine[n] for n in member.labels],
                            member.weight, view)

    @classmethod
    def from_run(cls, run: str | Path | RunDir | RunContents, device: str = "auto", tta: str | None = None,
                 retune: bool = False, decode: str = "auto", precision: str = "auto") -> "Predictor":
        """The run's models; `tta` must be the one its thresholds were tuned with (the default),
        unless `retune` (the predictor then serves to tune new thresholds)."""
        contents = run_contents(run)
        tta = tta if retune and tta else check_tta(contents, tta)
        models: dict[Path, tuple[StyleNet, dict]] = {}  # each file loaded once, however many members use it
        for member in contents.members:
            models.setdefault(member.model, load_model(member.model))
        loaded = [(*models[m.model], m) for m in contents.members]
        predictor = cls(loaded, contents.label_names, contents.tuner, device, tta, decode, precision)
        predictor.check_coverage()
        return predictor

    def _batches(self, images: Sequence[str | Path], batch_size: int, num_workers: int,
                 on_bad: str) -> Iterator[tuple[np.ndarray, list[torch.Tensor]]]:
        """As BasePredictor's, on a DataLoader (worker processes, pinned memory on CUDA): uint8 views,
        or with decode_on_device the plain JPEGs' bytes, decoded here on the device."""
        read = read_for_device if self.decode_on_device else decode_image
        dataset = ImageDataset(images, None, _Views(self.transforms), on_bad,
                               opener=partial(read, min_side=self.min_side))
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                            collate_fn=collate_unstacked if self.decode_on_device else collate_skipping,
                            pin_memory=self.pin_memory,  # view stacks pinned, encoded JPEGs left as they are
                            prefetch_factor=4 if num_workers else None)
        for batch in loader:
            if batch.images is None:
                continue
            if self.decode_on_device:
                rows, views = self._decode_on_device(batch.images, batch.index.numpy(), on_bad)
                if len(rows):
                    yield rows, views
            else:
                yield batch.index.numpy(), batch.images

    def _decode_on_device(self, samples: list[Any], rows: np.ndarray,
                          on_bad: str) -> tuple[np.ndarray, list[torch.Tensor]]:
        """Rows kept and their view stacks (B, T, 3, S, S) uint8 on the device, per preprocessing:
        encoded JPEGs decoded in one batched call (a file the device decoder refuses goes through
        decode_image instead), the others' host views copied over."""
        at = [i for i, s in enumerate(samples) if isinstance(s, EncodedJpeg)]
        decoded: dict[int, torch.Tensor] = {}
        for i, image in zip(at, self.device_decoder.images([samples[i] for i in at])):
            if not isinstance(image, FashionStyleError):
                decoded[i] = image
            elif on_bad == "fail":
                raise image
        views = self._views_of(decoded)
        kept = [i for i, s in enumerate(samples) if i in views or not isinstance(s, EncodedJpeg)]
        stacks = [views[i] if i in views else [v.to(self.device, non_blocking=True) for v in samples[i]]
                  for i in kept]
        return rows[kept], [torch.stack(v) for v in zip(*stacks)] if stacks else []

    def _views_of(self, images: dict[int, torch.Tensor]) -> dict[int, list[torch.Tensor]]:
        """Each image's view stacks (T, 3, S, S), made for all images of one size at once."""
        by_size: dict[tuple, list[int]] = {}
        for i, image in images.items():
            by_size.setdefault(tuple(image.shape), []).append(i)
        views: dict[int, list[torch.Tensor]] = {}
        for same in by_size.values():
            batch = torch.stack([images[i] for i in same])  # (n, 3, H, W)
            made = [t.of_batch(batch) for t in self.transforms]  # each (n, T, 3, S, S)
            views.update({i: [m[k] for m in made] for k, i in enumerate(same)})
        return views

    def _stack(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(views))

    def check_coverage(self) -> None:
        check_coverage(self.label_names, [m.targets for m in self.members])

    @torch.inference_mode()
    def _predict_views(self, views: Sequence[torch.Tensor]) -> np.ndarray:
        """Weighted mean, per label, of the members that predict it."""
        outputs: dict[int, np.ndarray] = {}  # each model runs once per batch
        for member in self.members:
            if id(member.model) not in outputs:
                outputs[id(member.model)] = self._forward(member.model, views[member.view],
                                                          self.inputs[member.view])  # (B, outputs)
        parts = [(outputs[id(m.model)], m.columns, m.targets, m.weight) for m in self.members]
        return combine_probs(len(views[0]), len(self.label_names), parts)

    def _forward(self, model: StyleNet, batch: torch.Tensor, to_input: DeviceInput) -> np.ndarray:
        """Probabilities (B, outputs), averaged over the T test-time views of each image."""
        b, t = batch.shape[:2]  # (B, T, 3, H, W) uint8
        images = to_input(batch.flatten(0, 1).to(self.device, non_blocking=True))  # (B*T, 3, H, W) float
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            logits = model(images)  # (B*T, outputs)
        return torch.sigmoid(logits.float()).view(b, t, -1).mean(dim=1).cpu().numpy()
