"""A folder with a symbolic link loop or a sub-folder that cannot be listed: those entries are left out with the
reason (skipped.txt) and every readable image of the rest is used."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.source import ImageSource
from fashionstyle.data.images.files import gather_images, scan_folder


def _images(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / name)


def test_a_symbolic_link_loop_is_left_out_with_its_reason_and_the_folder_used(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg", "b.png")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")  # a link to itself: stat() fails with ELOOP
    (tmp_path / "ping").symlink_to("pong")
    (tmp_path / "pong").symlink_to("ping")
    listing = scan_folder(tmp_path)
    assert listing.images == ["a.jpg", "b.png"]
    assert dict(listing.left_out) == {"loop.jpg": "a symbolic link loop", "ping": "a symbolic link loop",
                                      "pong": "a symbolic link loop"}
    source = ImageSource.open(tmp_path)  # what predict reads; left_out() goes to OUT.skipped.txt
    assert [image_id for image_id, _ in source] == ["a", "b"]
    assert (str(tmp_path / "loop.jpg"), "a symbolic link loop") in source.left_out()


def test_a_loop_inside_a_sub_folder_keeps_that_sub_folders_images(tmp_path: Path) -> None:
    _images(tmp_path, "a.jpg", "men/b.jpg", "men/deeper/c.jpg")
    (tmp_path / "men" / "self.jpg").symlink_to("self.jpg")
    (tmp_path / "men" / "deeper" / "x").symlink_to("x")
    images, left_out = gather_images([tmp_path], recursive=True)
    assert images == [tmp_path / "a.jpg", tmp_path / "men" / "b.jpg", tmp_path / "men" / "deeper" / "c.jpg"]
    assert sorted(left_out) == [(str(tmp_path / "men" / "deeper" / "x"), "a symbolic link loop"),
                                (str(tmp_path / "men" / "self.jpg"), "a symbolic link loop")]


def test_a_sub_folder_that_cannot_be_listed_is_left_out_and_the_rest_used(tmp_path: Path, monkeypatch) -> None:
    _images(tmp_path, "a.jpg", "open/b.jpg", "locked/c.jpg")
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 does not stop root: refuse the folder the way the kernel would
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listing = scan_folder(tmp_path, recursive=True)
    assert listing.images == ["a.jpg", "open/b.jpg"]
    assert listing.left_out == [("locked", "a folder that cannot be listed (Permission denied)")]
    with pytest.raises(FashionStyleError, match="locked: cannot list the folder"):
        scan_folder(tmp_path / "locked")  # the folder itself: nothing to use, refused in one line
