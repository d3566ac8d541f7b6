"""images.py: torch-free decoding, and numpy preprocessing equal to torchvision's on PIL images and to
the uint8 input pipeline (data.tta_transform) up to one grey level."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms as T

from fashionstyle import FashionStyleError
from fashionstyle.data.transforms import tta_transform
from fashionstyle.core.choices import TTA_MODES
from fashionstyle.data.images.files import draft_scale, open_rgb, resize_shorter, tta_views
from fashionstyle.data.images.files import gather_images, list_images, scan_folder  # the listing rule

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZES = [(37, 53), (64, 41), (99, 99), (37, 37), (20, 300), (301, 45), (73, 38)]  # (W, H), odd on purpose


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed + width * 1000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def pillow_views(image_size: int, tta: str):
    """torchvision's transforms on PIL images (the project's preprocessing before the uint8 pipeline)."""
    resize = T.Resize(int(round(image_size / 0.875)), antialias=True)
    to_tensor = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    crops = {"none": lambda im: [T.CenterCrop(image_size)(im)],
             "flip": lambda im: [c := T.CenterCrop(image_size)(im), T.functional.hflip(c)],
             "five-crop": lambda im: list(T.FiveCrop(image_size)(im)),
             "ten-crop": lambda im: list(T.TenCrop(image_size)(im))}[tta]
    return lambda image: np.stack([to_tensor(c).numpy() for c in crops(resize(image))])


@pytest.mark.parametrize("tta", TTA_MODES)
@pytest.mark.parametrize("image_size", [32, 33])
def test_tta_views_equal_torchvision_on_pil_images(tta: str, image_size: int) -> None:
    reference, ours = pillow_views(image_size, tta), tta_views(image_size, MEAN, STD, tta)
    for width, height in SIZES:
        image = noise(width, height)
        expected = reference(image)
        got = ours(image)
        assert got.dtype == np.float32 and got.shape == expected.shape, (width, height)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"{tta} {width}x{height}")


@pytest.mark.parametrize("tta", TTA_MODES)
@pytest.mark.parametrize("image_size", [32, 33])
def test_tta_views_equal_the_uint8_pipeline_up_to_one_grey_level(tta: str, image_size: int) -> None:
    """The ONNX runtime's numpy views and PyTorch's uint8 views (resized by torch, not Pillow) differ
    by rounding alone: at most one grey level, in a few per cent of the values."""
    ours, torch_views = tta_views(image_size, MEAN, STD, tta), tta_transform(image_size, MEAN, STD, tta)
    one_level = 1 / 255 / np.array(STD, np.float32).reshape(1, 3, 1, 1)
    for width, height in SIZES:
        image = noise(width, height)
        got, expected = ours(image), torch_views(image).numpy()
        assert got.shape == expected.shape, (width, height)
        levels = np.abs(got - expected) / one_level
        assert levels.max() <= 1 + 1e-3 and (levels > 0.5).mean() < 0.05, (tta, width, height)


def test_open_rgb_decodes_a_large_jpeg_reduced_to_min_side(tmp_path) -> None:
    noise(800, 600).save(tmp_path / "big.jpg", quality=90)
    noise(800, 600).save(tmp_path / "big.png")
    assert draft_scale((800, 600), 100) == 4 and draft_scale((800, 600), 301) == 1
    assert open_rgb(tmp_path / "big.jpg", min_side=100).size == (200, 150)  # 1/4: the shorter side >= 100
    assert open_rgb(tmp_path / "big.jpg", min_side=300).size == (400, 300)
    assert open_rgb(tmp_path / "big.jpg", min_side=301).size == (800, 600)  # under twice: decoded whole
    assert open_rgb(tmp_path / "big.jpg").size == (800, 600)
    assert open_rgb(tmp_path / "big.png", min_side=100).size == (800, 600)  # no DCT scaling for PNG


def _open_files_on(path: Path) -> int:
    """How many of this process's file descriptors are open on `path` (Linux /proc)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc/self/fd to count open files")
    target = str(path.resolve())
    return sum(os.path.realpath(f"/proc/self/fd/{fd}") == target for fd in os.listdir("/proc/self/fd"))


def test_open_rgb_keeps_an_rgb_file_decoded_once_without_a_full_size_copy(tmp_path, monkeypatch) -> None:
    """The service's memory per decoder is one decoded image: an RGB file is not copied after decoding,
    and its pixels outlive the closed file (no open file left behind)."""
    image = noise(64, 48)
    image.save(tmp_path / "rgb.png")
    monkeypatch.setattr(Image.Image, "copy", lambda self: pytest.fail("a full-size copy of a decoded image"))
    decoded = open_rgb(tmp_path / "rgb.png")
    from_bytes = open_rgb((tmp_path / "rgb.png").read_bytes())
    assert _open_files_on(tmp_path / "rgb.png") == 0  # the decoded image holds no file open
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(image))
    np.testing.assert_array_equal(np.asarray(from_bytes), np.asarray(image))


def test_resize_keeps_an_image_already_at_size() -> None:
    image = noise(37, 80)
    assert resize_shorter(image, 37) is image
    assert resize_shorter(noise(80, 50), 37).size == (int(37 * 80 / 50), 37)


def test_unknown_tta_is_refused() -> None:
    with pytest.raises(FashionStyleError, match="valid: none, flip"):
        tta_views(32, MEAN, STD, "rotate")


def _odd_folder(root: Path) -> Path:
    """Images in several formats (TIFF too), a sub-folder, a folder named x.jpg, a broken link, a text file."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "x.jpg").mkdir()
    for name in ("a.jpg", "b.TIF", "c.tiff", "sub/d.png", "sub/deeper/e.webp", "x.jpg/f.jpg"):
        noise(8, 8).save(root / name)
    (root / "gone.jpg").symlink_to(root / "missing.jpg")
    (root / "linked").symlink_to(root / "sub")
    (root / "notes.txt").write_text("text")
    return root


def test_scan_folder_gives_every_left_out_entry_a_reason(tmp_path: Path) -> None:
    listing = scan_folder(_odd_folder(tmp_path))
    assert listing.images == ["a.jpg", "b.TIF", "c.tiff"]
    reasons = dict(listing.left_out)
    assert set(reasons) == {"gone.jpg", "linked", "notes.txt", "sub", "x.jpg"}
    assert reasons["gone.jpg"] == "broken symbolic link" and "not an image file name" in reasons["notes.txt"]
    assert all("--recursive" in reasons[n] for n in ("sub", "x.jpg", "linked"))


def test_recursive_scan_reads_sub_folders_but_not_links_to_folders(tmp_path: Path) -> None:
    listing = scan_folder(_odd_folder(tmp_path), recursive=True)
    assert listing.images == ["a.jpg", "b.TIF", "c.tiff", "sub/d.png", "sub/deeper/e.webp", "x.jpg/f.jpg"]
    assert dict(listing.left_out) == {"gone.jpg": "broken symbolic link", "linked": "link to a folder (not followed)",
                                      "notes.txt": listing.left_out[-1][1]}
    assert list_images(tmp_path, recursive=True)[-1] == tmp_path / "x.jpg" / "f.jpg"


def test_gather_images_takes_files_and_folders_and_refuses_a_folder_without_images(tmp_path: Path) -> None:
    folder = _odd_folder(tmp_path / "photos")
    images, left_out = gather_images([folder / "sub" / "d.png", folder])
    assert images == [folder / "sub" / "d.png", folder / "a.jpg", folder / "b.TIF", folder / "c.tiff"]
    assert (str(folder / "notes.txt"), dict(scan_folder(folder).left_out)["notes.txt"]) in left_out
    (tmp_path / "empty" / "inner").mkdir(parents=True)
    with pytest.raises(FashionStyleError, match="empty: no images .*--recursive reads sub-folders"):
        gather_images([tmp_path / "empty"])


def test_a_file_name_that_is_not_utf8_is_left_out_with_a_printable_name(tmp_path: Path) -> None:
    import os

    from fashionstyle.data.images.files import scan_folder

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.jpg")
    (Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jpg"))).write_bytes((tmp_path / "ok.jpg").read_bytes())
    listing = scan_folder(tmp_path)
    assert listing.images == ["ok.jpg"]
    assert listing.left_out == [("caf\\xe9.jpg", "file name is not UTF-8 (rename it)")]
    "\n".join(name for name, _ in listing.left_out).encode("utf-8")  # printable: writes as UTF-8
