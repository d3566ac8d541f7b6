"""data.py: the uint8 input pipeline: decoding as Pillow does, crops on uint8, normalising on the device."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from fashionstyle import FashionStyleError
from fashionstyle.data.batches import Batch, collate_skipping, collate_unstacked
from fashionstyle.data.dataset import ImageDataset
from fashionstyle.data.images.decode import EncodedJpeg, decode_image, pil_to_uint8, read_for_device, read_plain_jpeg
from fashionstyle.data.images.device_decode import DeviceCrops, DeviceDecoder
from fashionstyle.data.transforms import DeviceInput, EvalViews, PlannedCrop, TrainCrop
from fashionstyle.data.images.files import open_rgb

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colours and noise: JPEG-friendly, unlike pure noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 100 * np.sin(x[..., None] / 7 + y[..., None] / 11 + rng.random(3) * 6)
    return Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8))


def oriented(path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo(40, 24).save(path, exif=exif, quality=90)
    return path


def same_as_open_rgb(path: Path, min_side: int | None = None) -> None:
    got = decode_image(path, min_side)
    assert got.dtype == torch.uint8 and got.shape[0] == 3
    np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), np.asarray(open_rgb(path, min_side)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpegs_decode_through_torchvision_as_pillow_does(tmp_path: Path, orientation: int) -> None:
    path = oriented(tmp_path / "o.jpg", orientation)
    jpeg = read_plain_jpeg(path)
    assert isinstance(jpeg, EncodedJpeg) and jpeg.orientation == orientation  # the fast path is taken
    same_as_open_rgb(path)


def test_other_files_go_through_pillow_with_the_same_pixels(tmp_path: Path) -> None:
    photo(30, 20).convert("L").save(tmp_path / "grey.jpg")
    photo(30, 20).convert("CMYK").save(tmp_path / "cmyk.jpg")
    photo(30, 20).convert("P").save(tmp_path / "palette.png")
    Image.fromarray((np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)).save(tmp_path / "g16.png")
    photo(900, 640).save(tmp_path / "big.jpg", quality=90)
    assert read_plain_jpeg(tmp_path / "grey.jpg") is not None
    for name in ("cmyk.jpg", "palette.png", "g16.png"):
        assert read_plain_jpeg(tmp_path / name) is None, name
    assert read_plain_jpeg(tmp_path / "big.jpg", min_side=300) is None  # decoded reduced, by Pillow
    for name in ("grey.jpg", "cmyk.jpg", "palette.png", "g16.png", "big.jpg"):
        same_as_open_rgb(tmp_path / name)
    same_as_open_rgb(tmp_path / "big.jpg", min_side=300)
    assert decode_image(tmp_path / "big.jpg", min_side=300).shape == (3, 320, 450)  # 1/2 scale


@pytest.mark.parametrize("band_pixels", [1, 37 * 5, 37 * 7 + 3, 37 * 23, 1 << 18])
def test_pil_to_uint8_copies_by_bands_of_rows_to_the_same_pixels(band_pixels: int) -> None:
    """A band of one row, bands that do or do not divide the height, and one band for the whole image."""
    image = photo(37, 23)
    got = pil_to_uint8(image, band_pixels)
    assert got.shape == (3, 23, 37) and got.dtype == torch.uint8
    assert torch.equal(got, torch.from_numpy(np.array(image)).permute(2, 0, 1))


def test_bad_files_fail_with_open_rgbs_message(tmp_path: Path) -> None:
    photo(40, 30).save(tmp_path / "good.jpg", quality=90)
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "html.jpg").write_text("<html>not found</html>")
    for name in ("truncated.jpg", "empty.jpg", "html.jpg", "missing.jpg"):
        with pytest.raises(FashionStyleError) as ours:
            decode_image(tmp_path / name)
        with pytest.raises(FashionStyleError) as pillow:
            open_rgb(tmp_path / name)
        assert str(ours.value) == str(pillow.value), name


def test_a_batch_of_jpegs_decodes_at_once_and_a_bad_one_alone_gives_none(tmp_path: Path) -> None:
    paths = [oriented(tmp_path / f"{o}.jpg", o) for o in (1, 6, 3)]
    jpegs = [read_plain_jpeg(p) for p in paths]
    broken = EncodedJpeg(jpegs[0].data[:200].clone(), 1, "broken.jpg")
    decoded = DeviceDecoder("cpu")([jpegs[0], broken, jpegs[1], jpegs[2]])
    assert decoded[1] is None
    for image, path in zip([decoded[0], *decoded[2:]], paths):
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), np.asarray(open_rgb(path)))
    assert isinstance(read_for_device(paths[0]), EncodedJpeg)
    photo(20, 20).save(tmp_path / "x.png")
    assert read_for_device(tmp_path / "x.png").dtype == torch.uint8  # decoded on the host


@pytest.mark.parametrize("tta, views", [("none", 1), ("flip", 2), ("five-crop", 5), ("ten-crop", 10)])
def test_eval_views_are_uint8_and_batches_give_each_images_views(tta: str, views: int) -> None:
    images = [pil_to_uint8(photo(50, 70, seed)) for seed in range(3)]
    transform = EvalViews(32, tta)
    one = transform(images[0])
    assert one.dtype == torch.uint8 and one.shape == (views, 3, 32, 32) and one.is_contiguous()
    batched = transform.of_batch(torch.stack(images))
    assert batched.shape == (3, views, 3, 32, 32)
    for image, stack in zip(images, batched):
        assert torch.equal(transform(image), stack)
    assert torch.equal(transform(photo(50, 70, 0)), one)  # a PIL image gives the same views


def test_train_crop_draws_as_torchvision_and_leaves_the_flip_to_the_device() -> None:
    image = photo(64, 80)
    crop = TrainCrop(32, crop_scale=0.35)
    for seed in range(8):
        torch.manual_seed(seed)
        augmented = crop(image)
        torch.manual_seed(seed)
        reference = T.Compose([T.RandomResizedCrop(32, scale=(0.35, 1.0), antialias=True),
                               T.RandomHorizontalFlip(), T.PILToTensor()])(image)  # (3, 32, 32) uint8
        assert augmented.image.dtype == torch.uint8 and augmented.image.shape == (3, 32, 32)
        flipped = augmented.image.flip(-1) if augmented.flip else augmented.image
        assert (flipped.int() - reference.int()).abs().max() <= 1  # the same crop and flip, up to rounding
    assert not TrainCrop(32, hflip=False)(image).flip


def test_device_input_normalises_flips_marked_rows_and_sets_the_memory_format() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    expected = (images.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    out = DeviceInput(MEAN, STD, channels_last=True)(images, torch.tensor([False, True]))
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out[0], expected[0])
    torch.testing.assert_close(out[1], expected[1].flip(-1))
    torch.testing.assert_close(DeviceInput(MEAN, STD)(images), expected)


def test_training_items_collate_to_uint8_images_and_flip_flags(tmp_path: Path) -> None:
    for i in range(3):
        photo(40, 50, i).save(tmp_path / f"{i}.jpg", quality=90)
    dataset = ImageDataset([tmp_path / f"{i}.jpg" for i in range(3)], np.eye(3), TrainCrop(16), seed=0)
    batch = collate_skipping([dataset[i] for i in range(3)])
    assert isinstance(batch, Batch) and batch.images.dtype == torch.uint8 and batch.images.shape == (3, 3, 16, 16)
    assert batch.flip.dtype == torch.bool and batch.flip.shape == (3,)
    assert torch.equal(collate_skipping([dataset[i] for i in range(3)]).images, batch.images)  # seeded per row


def training_files(folder: Path) -> list[Path]:
    """Plain JPEGs (some rotated by EXIF, one grey) and the files decode="gpu" leaves to the host or to the
    bad-image policy: a PNG, a CMYK JPEG, a truncated JPEG (header fine, data cut) and junk."""
    files = []
    for i, (orientation, size) in enumerate([(1, (60, 80)), (6, (70, 50)), (1, (90, 64)), (3, (64, 64))]):
        exif = Image.Exif()
        exif[0x0112] = orientation
        files.append(folder / f"{i}.jpg")
        photo(*size, seed=i).save(files[-1], exif=exif, quality=90)
    photo(50, 60, 7).convert("L").save(folder / "grey.jpg", quality=90)
    photo(60, 50, 8).save(folder / "photo.png")
    photo(60, 60, 9).convert("CMYK").save(folder / "cmyk.jpg", quality=90)
    data = files[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (folder / "junk.jpg").write_bytes(b"not a jpeg")
    names = ["grey.jpg", "photo.png", "truncated.jpg", "cmyk.jpg", "junk.jpg"]
    return [files[0], *[folder / n for n in names[:3]], files[1], files[2], *[folder / n for n in names[3:]], files[3]]


def test_training_crops_decoded_on_the_device_equal_the_hosts_and_bad_files_are_left_out_alike(
        tmp_path: Path) -> None:
    """decode="gpu"'s training path (workers read the JPEG bytes and draw the crop; one batched decode,
    then crop, resize and flip where the images are) run on the CPU with torchvision's batched CPU
    decoder: the host path's seeded crops and flips, the same rows left out for the same reasons."""
    files = training_files(tmp_path)
    targets = np.eye(len(files))
    crop = TrainCrop(24, crop_scale=0.35)
    host = ImageDataset(files, targets, crop, "skip", seed=3, opener=functools.partial(decode_image,
                                                                                         min_side=crop.min_side()))
    device = ImageDataset(files, targets, crop, "skip", seed=3, opener=functools.partial(read_for_device,
                                                                                           min_side=crop.min_side()))
    rows = [len(files) + i for i in range(len(files))]  # epoch 1: EpochShuffle's encoding
    expected = collate_skipping([host[i] for i in rows])
    read = collate_unstacked([device[i] for i in rows])
    assert sum(isinstance(s, PlannedCrop) for s in read.images) == 6  # 4 JPEGs, grey, truncated
    got = DeviceCrops(24, "cpu", "skip")(read)
    assert got.images.dtype == torch.uint8 and got.images.shape == expected.images.shape
    assert torch.equal(got.index, expected.index) and torch.equal(got.flip, expected.flip)
    assert torch.equal(got.targets, expected.targets)
    assert sorted(got.bad) == sorted(expected.bad) and {r for r, _ in got.bad} == {3, 7}  # truncated, junk
    to_input, std, mean = DeviceInput(MEAN, STD), torch.tensor(STD).view(3, 1, 1), torch.tensor(MEAN).view(3, 1, 1)
    undone = [to_input(b.images, b.flip) * std + mean for b in (got, expected)]  # 0..1 again
    assert (undone[0] - undone[1]).abs().mean() < 2 / 255  # decoder rounding at most (none on the CPU)
    with pytest.raises(FashionStyleError, match="truncated.jpg"):
        strict = ImageDataset(files[2:4], targets[2:4], crop, "fail", seed=3,
                              opener=functools.partial(read_for_device, min_side=crop.min_side()))
        DeviceCrops(24, "cpu", "fail")(collate_unstacked([strict[0], strict[1]]))


def test_a_batch_left_with_no_readable_image_gives_no_images() -> None:
    junk = EncodedJpeg(torch.frombuffer(bytearray(b"not a jpeg"), dtype=torch.uint8), 1, "missing.jpg", (8, 8))
    batch = collate_unstacked([(PlannedCrop(junk, (0, 0, 8, 8), False), torch.ones(2), 5, "")])
    got = DeviceCrops(4, "cpu")(batch)
    assert got.images is None and len(got.index) == 0
    assert [row for row, _ in got.bad] == [5] and "missing.jpg" in got.bad[0][1]
