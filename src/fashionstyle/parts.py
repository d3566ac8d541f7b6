"""The parts folder of a streamed prediction: one file per chunk of images, written atomically.

    OUT.parts/manifest.json     the settings the parts were made with (a resume must match them)
    OUT.parts/part-000042       chunk 42's rows in the output format (its existence = chunk done)
    OUT.parts/part-000042.skipped   `id,path` of its unreadable images, written before the part

Global rank 0 prepares the folder before the ranks start (`prepare`) and merges it
after every part exists (`wait_for`); the other ranks only add parts.
"""
from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _atomic
from .errors import FashionStyleError


@dataclass
class PartsFolder:
    path: Path

    @classmethod
    def beside(cls, out: str | Path) -> "PartsFolder":
        out = Path(out)
        return cls(out.parent / f"{out.name}.parts")

    def part(self, chunk: int) -> Path:
        return self.path / f"part-{chunk:06d}"

    def skipped(self, chunk: int) -> Path:
        return self.path / f"part-{chunk:06d}.skipped"

    def done(self, chunk: int) -> bool:
        return self.part(chunk).is_file()

    def prepare(self, settings: dict[str, Any], resume: bool) -> int:
        """Create the folder for `settings`, or check a resumed one has them; chunks already done."""
        manifest = self.path / "manifest.json"
        if self.path.exists() and not resume:
            raise FashionStyleError(f"{self.path}: parts of an unfinished prediction; pass --resume to continue "
                                    f"it, or delete the folder to start again")
        if resume and manifest.is_file():
            _check_same(manifest, settings)
            for marker in self.path.glob("rank-*.failed"):  # the ranks that failed last time try again
                marker.unlink()
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            _atomic.write_json(manifest, settings)
        return len(list(self.path.glob("part-??????")))

    def wait_ready(self, settings: dict[str, Any], timeout_s: float = 600) -> None:
        """A secondary rank: wait for rank 0's manifest, then check it describes this job."""
        manifest = self.path / "manifest.json"
        deadline = time.monotonic() + timeout_s
        while not manifest.is_file():
            if time.monotonic() > deadline:
                raise FashionStyleError(f"{manifest}: rank 0 did not prepare it within {timeout_s:.0f} s")
            time.sleep(0.2)
        _check_same(manifest, settings)

    def mark_failed(self, rank: int, error: BaseException) -> None:
        """A rank's last word: rank 0, waiting for its parts, stops with this message."""
        _atomic.write_text(self.path / f"rank-{rank}.failed", f"{type(error).__name__}: {error}"[:2000])

    def wait_for(self, chunks: int, poll_s: float = 0.5) -> None:
        """Block until parts 0..chunks-1 all exist (the other ranks' too), or another rank has failed."""
        while not all(self.done(k) for k in range(chunks)):
            for marker in sorted(self.path.glob("rank-*.failed")):
                rank = marker.name.split("-")[1].split(".")[0]
                raise FashionStyleError(f"rank {rank} failed: {marker.read_text(encoding='utf-8')}; the parts "
                                        f"done so far are kept in {self.path}: fix the cause and pass --resume")
            time.sleep(poll_s)

    def parts(self, chunks: int) -> list[Path]:
        return [self.part(k) for k in range(chunks)]

    def skipped_rows(self, chunks: int) -> list[list[str]]:
        """The `id,path` rows of every chunk's unreadable images, in order."""
        rows: list[list[str]] = []
        for k in range(chunks):
            if self.skipped(k).is_file():
                with self.skipped(k).open(encoding="utf-8", newline="") as f:
                    rows += csv.reader(f)
        return rows

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _check_same(manifest: Path, settings: dict[str, Any]) -> None:
    stored = _atomic.read_json(manifest, "the parts folder")
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as stored
    changed = [k for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
    if changed:
        k = changed[0]
        raise FashionStyleError(f"{manifest.parent}: started with other settings ({k}: {stored.get(k)!r}, now "
                                f"{settings.get(k)!r}); resume with the same ones, or delete the folder to start again")
