"""images.py: torch-free decoding, and numpy preprocessing equal to torchvision's (data.tta_transform)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashionstyle import FashionStyleError
from fashionstyle.data import tta_transform
from fashionstyle.images import TTA_MODES, resize_shorter, tta_views

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZES = [(37, 53), (64, 41), (99, 99), (37, 37), (20, 300), (301, 45), (73, 38)]  # (W, H), odd on purpose


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed + width * 1000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("tta", TTA_MODES)
@pytest.mark.parametrize("image_size", [32, 33])
def test_tta_views_equal_torchvision(tta: str, image_size: int) -> None:
    reference, ours = tta_transform(image_size, MEAN, STD, tta), tta_views(image_size, MEAN, STD, tta)
    for width, height in SIZES:
        image = noise(width, height)
        expected = reference(image).numpy()
        got = ours(image)
        assert got.dtype == np.float32 and got.shape == expected.shape, (width, height)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"{tta} {width}x{height}")


def test_resize_keeps_an_image_already_at_size() -> None:
    image = noise(37, 80)
    assert resize_shorter(image, 37) is image
    assert resize_shorter(noise(80, 50), 37).size == (int(37 * 80 / 50), 37)


def test_unknown_tta_is_refused() -> None:
    with pytest.raises(FashionStyleError, match="valid: none, flip"):
        tta_views(32, MEAN, STD, "rotate")
