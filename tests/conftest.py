"""Shared fixtures: tiny labelled image sets made in tmp_path, tiny runs trained once per session; no network,
CPU only."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# what tests cache, never in the user's caches: runs rebuilt from hub folders, the code transformers copies from them
for variable, prefix in (("FASHIONSTYLE_HUB_CACHE", "fashionstyle-hub-runs-"),
                         ("HF_MODULES_CACHE", "fashionstyle-hf-modules-")):
    if variable not in os.environ:
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        atexit.register(shutil.rmtree, os.environ[variable], ignore_errors=True)

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

LABELS = ("Red", "Striped", "Dotted")


def draw(rng: np.random.Generator, flags: np.ndarray, size: int = 32) -> Image.Image:
    """A tiny image whose colour, stripes and dots follow the three labels."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    if flags[0]:
        image[..., 0] = 220
    if flags[1]:
        image[::4, :, 1] = 255
    if flags[2]:
        image[2::6, 2::6, 2] = 255
    return Image.fromarray(image)


def make_image_set(folder: Path, n: int = 48, seed: int = 0, with_split: bool = True) -> Path:
    """`n` images and a label CSV (image,split,Red,Striped,Dotted) in `folder`."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = ["image," + ("split," if with_split else "") + ",".join(LABELS)]
    for i in range(n):
        flags = (rng.random(3) < [0.5, 0.3, 0.2]).astype(int)
        draw(rng, flags).save(folder / "img" / f"{i:03d}.jpg", quality=95)
        split = ["train", "train", "val", "test"][i % 4]
        rows.append(f"img/{i:03d}.jpg," + (f"{split}," if with_split else "") + ",".join(map(str, flags)))
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def image_set(tmp_path: Path) -> Path:
    return make_image_set(tmp_path / "data")


TINY_TRAIN = ["--backbone", "test_resnet", "--no-pretrained", "--image-size", "32", "--epochs", "2",
              "--batch-size", "8", "--lr", "1e-3", "--num-workers", "0", "--no-progress",
              "--lr-schedule", "constant", "--hidden", "32"]


class TinyRun(NamedTuple):
    run: Path
    labels: Path
    images: list[Path]


def tiny_run(root: Path, n: int = 32) -> TinyRun:
    """A one-epoch TINY_TRAIN run on `n` made images in `root` (root/data, root/run)."""
    from fashionstyle.cli import main

    labels = make_image_set(root / "data", n=n)
    run = root / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    return TinyRun(run, labels, sorted((labels.parent / "img").glob("*.jpg")))


def label_studio_export(path: Path, choices: dict[str, list[str]]) -> Path:
    """A Label Studio JSON export of `suggest --tasks` tasks: each image (its local-files path under the document
    root) with the choices its annotation ticked."""
    tasks = [{"id": k, "data": {"image": f"/data/local-files/?d={image}", "fashionstyle_labels": ";".join(LABELS)},
              "annotations": [{"id": k, "result": [{"from_name": "style", "to_name": "image", "type": "choices",
                                                    "value": {"choices": chosen}}] if chosen else [],
                               "was_cancelled": False, "created_at": "2026-12-07T00:15:30Z"}]}
             for k, (image, chosen) in enumerate(choices.items(), 1)]
    path.write_text(json.dumps(tasks))
    return path


def fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: relative path -> (size, mtime in ns); lock files (which hold the pid of
    the last process that took them, not the run's content) left out."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


class TinyRuns:
    """tiny_run()s trained once per session, one per image count, shared by every test: read-only.
    A test that writes into a run (tune, evaluate, export, thresholds) takes a copy(); one that writes
    into a shared run fails (see shared_runs_unchanged)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: dict[int, TinyRun] = {}
        self.fingerprints: dict[int, dict[str, tuple[int, int]]] = {}

    def get(self, n: int = 32) -> TinyRun:
        if n not in self.runs:
            self.runs[n] = tiny_run(self.root / f"n{n}", n)
            self.fingerprints[n] = fingerprint(self.root / f"n{n}")
        return self.runs[n]

    def copy(self, folder: Path, n: int = 32, name: str = "run") -> TinyRun:
        """A copy of the run as `folder`/`name`; its label file and images stay the shared ones."""
        shared = self.get(n)
        return shared._replace(run=Path(shutil.copytree(shared.run, folder / name)))

    def changed(self) -> list[str]:
        """The shared runs whose files changed since the last call."""
        changed = []
        for n, before in self.fingerprints.items():
            self.fingerprints[n] = fingerprint(self.root / f"n{n}")
            if self.fingerprints[n] != before:
                changed.append(str(self.root / f"n{n}"))
        return changed


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyRuns]:
    runs = TinyRuns(tmp_path_factory.mktemp("tiny_runs"))
    yield runs
    changed = runs.changed()
    assert not changed, f"a module fixture wrote into the shared run(s) {changed}: take tiny_runs.copy()"


@pytest.fixture(autouse=True)
def shared_runs_unchanged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that wrote into a shared run."""
    yield
    if "tiny_runs" in request.fixturenames:
        changed = request.getfixturevalue("tiny_runs").changed()
        assert not changed, f"this test wrote into the shared run(s) {changed}: take run_copy or tiny_runs.copy()"


@pytest.fixture(scope="session")
def shared_run(tiny_runs: TinyRuns) -> TinyRun:
    """The session's 32-image tiny run; read-only (see run_copy)."""
    return tiny_runs.get(32)


@pytest.fixture
def run_copy(tiny_runs: TinyRuns, tmp_path: Path) -> TinyRun:
    """A fresh copy of shared_run in tmp_path, for a test that writes into its run."""
    return tiny_runs.copy(tmp_path)


@contextlib.contextmanager
def int8_bar_off():
    """The int8 export's fidelity bar off: a 1-epoch tiny model's probabilities sit within 0.001 of its
    thresholds, so its decisions flip on any change; tests of other behaviour must not depend on that."""
    quantize = pytest.importorskip("fashionstyle.inference.quantize")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quantize, "MIN_LABEL_AGREEMENT", 0.0)
        yield


@pytest.fixture
def no_int8_bar():
    with int8_bar_off():
        yield


BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py as a module (the benches are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
