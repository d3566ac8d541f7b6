"""Grad-CAM heat maps: where in a photo each style's evidence lies, for any kind of run.

    explainer = Explainer.from_run("runs/densenet201")
    shown = explainer.explain(image, name="a.jpg")   # Explanation: probs (L,), labels shown, maps, prediction
    overlay(shown.photo, shown.maps["OL"])    # PIL image, the map blended in a jet colour map

Grad-CAM (Selvaraju et al., 2017) weights the backbone's last feature map
(B, C, h, w) by the gradient of one label's logit averaged over (h, w), sums
over C and keeps the positive part: one backward pass per label shown. The
target layer is found generically (`target_layer`): the last module whose
output is the 4-D map before timm's global pooling (ResNet's layer4,
DenseNet's features, EfficientNet's bn2, ...), unless that map is under
4 x 4 (a 64 px input gives 2 x 2): then the last map at least 4 x 4 (on the
synthetic outfits, bench/heatmap_mass.py, the 2 x 2 maps put less of their
mass on the styles' regions than a uniform map would). Maps are computed on the
centre view of each member's own preprocessing (no TTA), upsampled to the
displayed crop (D x D, what the model sees) and scaled to a maximum of 1.

Runs with several members per label (fused, selected, cv): the label's map is
the weighted mean, with the member weights its probability is averaged with,
of the members' maps, each first scaled to sum 1 (so no member dominates by
the scale of its gradients).

Library: captum's LayerGradCam. Of pytorch-grad-cam (needs opencv, scipy,
scikit-learn, ttach), torchcam 0.5 (Python >= 3.11 only) and captum (torch,
numpy, matplotlib, packaging, tqdm: nothing beyond the `train` extra), captum
is the lightest that runs on every Python the project supports and takes any
module as its target layer. Install with `pip install 'fashionstyle[explain]'`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import Prediction
from fashionstyle.core.run import RunDir
from fashionstyle.data.labels.names import unknown_label_message
from fashionstyle.data.transforms import EvalViews
from fashionstyle.inference.torch_predictor import Predictor

DISPLAY = 224  # side of the displayed crop and its maps, in pixels
MIN_SIDE = 4  # smallest feature map explained (h and w); see target_layer and the module docstring
OVERLAY_ALPHA = 0.6  # the overlay's opacity where a map peaks (1); 0 where it is 0


@dataclass
class Explanation:
    """One image: its probabilities (L,), the labels shown, a map (D, D) in 0..1 per label shown, and
    its prediction record (core.prediction: the same as `predict` and the service give)."""

    photo: Image.Image          # the centre crop the model sees, D x D
    probs: np.ndarray
    labels: list[str]
    maps: dict[str, np.ndarray]
    prediction: Prediction


def target_layer(backbone: nn.Module, image_size: int, min_side: int = MIN_SIDE) -> nn.Module:
    """The last module to output a 4-D feature map (B, C, h, w) of at least `min_side` x `min_side`
    before global pooling: the final map, unless a small input makes it smaller (the last map that large
    then; the final one when none is)."""
    seen: list[tuple[nn.Module, int] | None] = []  # (module, min(h, w)) as they finish; None: the pooling
    hooks = [m.register_forward_hook(lambda mod, _, out: seen.append((mod, min(out.shape[-2:])))
                                     if _is_map(out) else None)
             for m in backbone.modules() if m is not backbone]
    pool = getattr(backbone, "global_pool", None)
    if isinstance(pool, nn.Module):
        hooks.append(pool.register_forward_pre_hook(lambda *_: seen.append(None)))
    was_training = backbone.training
    try:
        with torch.no_grad():
            device = next(backbone.parameters()).device
            backbone.eval()(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        backbone.train(was_training)
        for hook in hooks:
            hook.remove()
    before_pool = seen[:seen.index(None)] if None in seen else seen
    if not before_pool:
        raise FashionStyleError(f"{type(backbone).__name__}: no 4-D feature map to explain (not a CNN backbone)")
    large = [module for module, side in before_pool if side >= min_side]
    return (large or [before_pool[-1][0]])[-1]


def _is_map(out: object) -> bool:
    return isinstance(out, torch.Tensor) and out.dim() == 4


def crop_box(size: tuple[int, int], image_size: int) -> tuple[float, float, float, float]:
    """The region of a (w, h) image that the evaluation preprocessing keeps (resize, centre crop)."""
    w, h = size
    scale = min(w, h) / round(image_size / 0.875)  # original pixels per resized pixel
    side = image_size * scale
    left, top = (w - side) / 2, (h - side) / 2
    return left, top, left + side, top + side


class Explainer:
    """Grad-CAM maps of a PyTorch Predictor's member models (shared with it, not copied)."""

    def __init__(self, predictor: Predictor):
        from captum.attr import LayerGradCam

        self.predictor = predictor
        self.cams: dict[int, LayerGradCam] = {}  # one per distinct model
        for member in predictor.members:
            if id(member.model) not in self.cams:
                size = predictor.preprocessing[member.view].image_size
                layer = target_layer(member.model.backbone, size)
                self.cams[id(member.model)] = LayerGradCam(member.model, layer)
        self.views = [EvalViews(p.image_size) for p in predictor.preprocessing]  # the centre crop, no TTA

    @classmethod
    def from_run(cls, run: str | Path | RunDir, device: str = "auto", operating_point: str | None = None) -> "Explainer":
        """The run's explainer, its labels decided at `operating_point` (None: the run's own thresholds)."""
        run = open_torch_run(run)
        point = run.contents().point(operating_point)  # an unknown name: one line, before the model loads
        predictor = Predictor.from_run(run, device=device)
        predictor.point = point
        return cls(predictor)

    @property
    def label_names(self) -> list[str]:
        return self.predictor.label_names

    def choose(self, probs: np.ndarray, requested: Sequence[str] = (), labels_to_show: int = 3) -> list[str]:
        """The requested labels, then the predicted ones by probability, up to `labels_to_show` in all
        (requested ones are always shown); the most probable label when none is predicted."""
        names = self.label_names
        check_labels(requested, names)
        ranked = self.predictor.decided_names(probs[None])[0] or [names[int(np.argmax(probs))]]
        chosen = list(dict.fromkeys(requested))
        chosen += [n for n in ranked if n not in chosen][:max(0, labels_to_show - len(chosen))]
        return chosen

    def explain(self, image: Image.Image, requested: Sequence[str] = (), labels_to_show: int = 3,
                name: str = "<image 0>") -> Explanation:
        """Probabilities of one RGB image (its record named `name`) and maps of the labels `choose` picks."""
        probs = self.predictor.predict_proba_images([image])[0]
        shown = self.choose(probs, requested, labels_to_show)
        [record] = self.predictor.records([name], probs[None])
        return Explanation(self.photo(image), probs, shown, self.maps(image, shown), record)

    def photo(self, image: Image.Image) -> Image.Image:
        """The centre crop of `image` that the (first) member model sees, D x D."""
        box = crop_box(image.size, self.predictor.preprocessing[0].image_size)
        return image.resize((DISPLAY, DISPLAY), Image.BILINEAR, box=box)

    def crops(self, image: Image.Image) -> list[torch.Tensor]:
        """The centre crop (1, 3, S, S) uint8 of `image` per preprocessing: all that `maps` reads of it
        (the service keeps these, and `photo`, instead of the decoded image)."""
        return [views(image) for views in self.views]

    def maps(self, image: Image.Image | Sequence[torch.Tensor], labels: Sequence[str]) -> dict[str, np.ndarray]:
        """A (D, D) map in 0..1 per label of an image (or its `crops`): the weighted mean of its members'
        maps, each scaled to sum 1."""
        crops = self.crops(image) if isinstance(image, Image.Image) else image
        targets = [self.label_names.index(n) for n in labels]
        total = {t: np.zeros((DISPLAY, DISPLAY), np.float64) for t in targets}
        for member in self.predictor.members:
            wanted = [(t, c) for t, c in zip(member.targets, member.columns) if t in total]
            if not wanted:
                continue
            views = crops[member.view].to(self.predictor.device)  # (1, 3, S, S) uint8
            views = self.predictor.inputs[member.view](views)  # float, normalised
            for (t, _), cam in zip(wanted, self._cams(member, views, [c for _, c in wanted])):
                total[t] += member.weight * cam / max(cam.sum(), 1e-12)
        return {n: _unit_max(total[t]) for n, t in zip(labels, targets)}

    def _cams(self, member, views: torch.Tensor, columns: list[int]) -> np.ndarray:
        """Grad-CAM (K, D, D) of one image for K output columns of a member: one batch, one backward."""
        batch = views.expand(len(columns), -1, -1, -1)  # (K, 3, S, S)
        with torch.enable_grad():
            cam = self.cams[id(member.model)].attribute(batch, target=columns, relu_attributions=True)  # (K, 1, h, w)
            cam = nn.functional.interpolate(cam.detach().float(), (DISPLAY, DISPLAY), mode="bilinear",
                                            align_corners=False)
        return cam[:, 0].clamp_min(0).cpu().numpy()


def check_labels(requested: Sequence[str], names: Sequence[str]) -> None:
    """Every requested label is one of the run's, or a FashionStyleError naming the valid ones."""
    for name in requested:
        if name not in names:
            raise FashionStyleError(unknown_label_message(name, names))


def _unit_max(cam: np.ndarray) -> np.ndarray:
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def open_torch_run(path: str | Path | RunDir) -> RunDir:
    """A run whose member models are PyTorch files, or a FashionStyleError saying what to pass instead."""
    folder = Path(path)
    if not (folder / "manifest.json").is_file() and any(folder.glob("*.onnx")):
        raise FashionStyleError(f"{folder}: an ONNX export has no PyTorch weights for heat maps; "
                                "pass the run directory it was exported from")
    run = RunDir.open(folder)
    missing = list(dict.fromkeys(str(m.model) for m in run.members() if not m.model.is_file()))
    if missing:
        raise FashionStyleError(f"{run.path}: no PyTorch weights ({', '.join(missing)} missing); heat maps "
                                "need the run's model files, not only its ONNX export")
    return run


def jet(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map: (H, W) in 0..1 -> (H, W, 3) uint8, blue (0) to red (1)."""
    v = np.clip(values, 0, 1)[..., None] * 4
    rgb = np.clip(1.5 - np.abs(v - np.array([3.0, 2.0, 1.0])), 0, 1)
    return (rgb * 255).astype(np.uint8)


def overlay(photo: Image.Image, cam: np.ndarray, alpha: float = OVERLAY_ALPHA) -> Image.Image:
    """`photo` with `cam` (0..1) blended in as a jet colour map, translucent by intensity: a pixel's
    opacity is `alpha` x its value, so the photo shows where the map is low and through its peak."""
    heat = Image.fromarray(jet(cam)).resize(photo.size, Image.BILINEAR)
    opacity = np.round(np.clip(cam, 0, 1) * alpha * 255).astype(np.uint8)
    mask = Image.fromarray(opacity).resize(photo.size, Image.BILINEAR)
    return Image.composite(heat, photo.convert("RGB"), mask)
