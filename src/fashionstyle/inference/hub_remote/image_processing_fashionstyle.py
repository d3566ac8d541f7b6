"""fashionstyle's evaluation preprocessing as a transformers image processor (trust_remote_code=True):
the shorter side resized to `resize_shorter` (bilinear, antialiased, on uint8), the centre crop of
`image_size` (and the run's test-time views: flip, five-crop, ten-crop), scaled to 0..1 and normalised by
the run's mean and std. The same operations as fashionstyle's own predictor, so the scores agree.

    processor = AutoImageProcessor.from_pretrained("hub/lite0", trust_remote_code=True)
    processor(images=pil_image, return_tensors="pt")["pixel_values"]   # (1, 3, S, S); (1, T, 3, S, S) with TTA
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F2
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

TTA_VIEWS = {"none": 1, "flip": 2, "five-crop": 5, "ten-crop": 10}


class FashionStyleImageProcessor(BaseImageProcessor):
    """PIL images (or uint8 arrays (H, W, 3)) -> pixel_values, as fashionstyle predicts."""

    model_input_names = ["pixel_values"]

    def __init__(self, image_size: int = 224, resize_shorter: int = 256,
                 image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), tta: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if tta not in TTA_VIEWS:
            raise ValueError(f"tta {tta!r}: valid: {', '.join(TTA_VIEWS)}")
        self.image_size, self.resize_shorter, self.tta = int(image_size), int(resize_shorter), tta
        self.image_mean, self.image_std = [float(v) for v in image_mean], [float(v) for v in image_std]

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """One image or a list -> {"pixel_values": (B, 3, S, S)}, or (B, T, 3, S, S) with test-time views."""
        images = images if isinstance(images, (list, tuple)) else [images]
        views = torch.stack([self.views(image) for image in images])  # (B, T, 3, S, S)
        pixels = views[:, 0] if views.shape[1] == 1 else views
        return BatchFeature(data={"pixel_values": pixels}, tensor_type=return_tensors)

    def views(self, image: Any) -> torch.Tensor:
        """One image -> its test-time views (T, 3, S, S), normalised."""
        rgb = image.convert("RGB") if isinstance(image, Image.Image) else image
        pixels = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W), (H, W, 3) memory
        resized = self.shorter_side(pixels[None])[0]
        crops = torch.stack(self.crops(resized))  # (T, 3, S, S) uint8
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(3, 1, 1) * 255
        scale = 1 / (torch.tensor(self.image_std, dtype=torch.float32).view(3, 1, 1) * 255)
        return crops.float().sub_(mean).mul_(scale)

    def shorter_side(self, images: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) uint8 -> the shorter side to resize_shorter, the longer in proportion (truncated)."""
        h, w = images.shape[-2:]
        size, new_long = self.resize_shorter, int(self.resize_shorter * max(h, w) / min(h, w))
        return F2.resize(images, [new_long, size] if h >= w else [size, new_long], antialias=True)

    def crops(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """The test-time crops of (3, H, W): the centre; flip, it and its mirror; five-crop (corners, then
        the centre); ten-crop, the five and those of the mirrored image."""
        if self.tta in ("none", "flip"):
            centre = self.crop_at(pixels, *self.centre(pixels))
            return [centre, centre.flip(-1)] if self.tta == "flip" else [centre]
        crops = self.five(pixels)
        return crops + self.five(pixels.flip(-1)) if self.tta == "ten-crop" else crops

    def centre(self, pixels: torch.Tensor) -> tuple[int, int]:
        h, w = pixels.shape[-2:]
        return int(round((h - self.image_size) / 2.0)), int(round((w - self.image_size) / 2.0))

    def five(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        h, w, s = *pixels.shape[-2:], self.image_size
        corners = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), self.centre(pixels)]
        return [self.crop_at(pixels, top, left) for top, left in corners]

    def crop_at(self, pixels: torch.Tensor, top: int, left: int) -> torch.Tensor:
        return pixels[:, top:top + self.image_size, left:left + self.image_size]
