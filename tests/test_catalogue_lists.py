"""A plain list of image paths (one a line, no header) as a catalogue: how it is told from a CSV or a JD list,
how its paths are read, and `predict`, `suggest` and `audit` given one."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from conftest import draw
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.source import ImageSource
from fashionstyle.data.labels.read import label_layout, read_labels


def _plain_list(path: Path, images: list[Path], relative_to: Path | None = None) -> Path:
    """`path` listing `images` (relative to `relative_to` where given), with a comment and a blank line."""
    lines = [str(p.relative_to(relative_to)) if relative_to else str(p) for p in images]
    path.write_text("# photos to look at\n\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("text, layout", [
    ("img/a.jpg\nimg/b.jpg\n", "paths"),
    ("# catalogue\n/abs/a.png\n", "paths"),
    ("image,Red\nimg/a.jpg,1\n", "csv"),
    ("image\nimg/a.jpg\n", "csv"),  # a one-column CSV: its header says so
    ("only\n", "jd"),  # no image suffix: not a list of images (the JD reader refuses it)
    ("https://shop.example/a.jpg\n", "paths"),  # refused line by line, pointing to download
    ("id,url\n", "jd"),
    ("a1,https://x/a.jpg,0,1\n", "jd"),
    ("image,tags\na.jpg,Red\n", "tags"),
])
def test_a_headerless_list_of_paths_is_told_from_the_other_formats(tmp_path, text, layout):
    path = tmp_path / "list.txt"
    path.write_text(text)
    assert label_layout(path) == layout


def test_a_plain_lists_paths_are_read_from_image_dir_else_its_folder_and_ids_are_paths_without_suffix(tmp_path):
    (tmp_path / "img" / "men").mkdir(parents=True)
    listed = _plain_list(tmp_path / "list.txt", [Path("img/men/001.jpg"), Path("img/002.png"),
                                                 tmp_path / "elsewhere.jpg"])
    source = ImageSource.open(listed)
    assert source.is_list() and len(source) == 3
    assert list(source) == [("img/men/001", tmp_path / "img/men/001.jpg"), ("img/002", tmp_path / "img/002.png"),
                            (str(tmp_path / "elsewhere"), tmp_path / "elsewhere.jpg")]
    assert next(iter(ImageSource.open(listed, image_dir=tmp_path / "img")))[1] == tmp_path / "img/img/men/001.jpg"
    table = read_labels(listed)
    assert table.targets is None and table.ids == [i for i, _ in source] and table.line_numbers == [3, 4, 5]


def test_a_url_in_a_plain_list_and_a_repeated_path_are_refused_naming_the_line(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("img/a.jpg\nhttps://shop.example/b.jpg\n")
    with pytest.raises(FashionStyleError, match=r"urls.txt:2: 'https://shop.example/b.jpg' is a URL, not an image "
                                                r"path; .*fashionstyle download"):
        ImageSource.open(urls)
    twice = tmp_path / "twice.txt"
    twice.write_text("img/a.jpg\nimg/b.jpg\nimg/a.jpg\n")
    with pytest.raises(FashionStyleError, match=r"twice.txt:3: duplicate id 'img/a' \(first at line 1\)"):
        ImageSource.open(twice)
    with pytest.raises(FashionStyleError, match=r"twice.txt:3: duplicate image 'img/a.jpg' \(first on line 1\)"):
        read_labels(twice)


def test_predict_reads_a_plain_list(shared_run, tmp_path):
    listed = _plain_list(tmp_path / "photos.txt", shared_run.images[:5])
    out = tmp_path / "tags.csv"
    assert main(["predict", str(shared_run.run), "--images", str(listed), "--out", str(out), "--quiet"]) == 0
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 5 and {r[0] for r in rows[1:]} == {str(p) for p in shared_run.images[:5]}


def test_suggest_reads_a_plain_list_relative_to_image_dir(shared_run, tmp_path, capsys):
    rng = np.random.default_rng(3)
    (tmp_path / "shop" / "men").mkdir(parents=True)
    new = [tmp_path / "shop" / f"{name}.jpg" for name in ("men/001", "men/002", "003", "004")]
    for path in new:
        draw(rng, (rng.random(3) < 0.4).astype(int)).save(path, quality=95)
    listed = _plain_list(tmp_path / "catalogue.txt", new, relative_to=tmp_path / "shop")
    labelled = tmp_path / "labelled.txt"  # a plain list says which photos are labelled too
    labelled.write_text(f"{new[0]}\n")
    out = tmp_path / "to_label.csv"
    assert main(["suggest", str(shared_run.run), "--images", str(listed), "--image-dir", str(tmp_path / "shop"),
                 "--labelled", str(labelled), "--n", "2", "--out", str(out), "--quiet"]) == 0
    assert "2 of 3 unlabelled photos chosen" in capsys.readouterr().out
    with out.open(newline="") as f:
        chosen = {(out.parent / row["image"]).resolve() for row in csv.DictReader(f)}
    assert len(chosen) == 2 and chosen <= {p.resolve() for p in new[1:]}


def test_audit_reads_a_plain_list_and_refuses_it_in_one_line_as_it_holds_no_labels(shared_run, tmp_path, capsys):
    listed = _plain_list(tmp_path / "photos.txt", shared_run.images)
    assert main(["audit", str(shared_run.run), "--labels", str(listed), "--out", str(tmp_path / "issues.csv")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "photos.txt" in err and "expected id,url" not in err
    assert not (tmp_path / "issues.csv").exists()
