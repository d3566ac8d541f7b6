"""The parts folder of a streamed prediction: one file per chunk of images, written atomically.

    OUT.parts/manifest.json     the settings the parts were made with (a resume must match them)
    OUT.parts/part-000042       chunk 42's rows in the output format
    OUT.parts/part-000042.skipped   `id,path,why` of its unreadable images, written before the part
    OUT.parts/part-000042.sum   its row counts and checksums, written last (its existence = chunk done)

Global rank 0 prepares the folder before the ranks start (`prepare`) and merges it
after every part exists (`wait_for`) and is sound (`verify`); the other ranks only
add parts. Each part has its own record rather than an entry in manifest.json:
ranks on several nodes write parts at once, and one shared file would need a lock.
A resume recomputes a part that fails its record (truncated, changed, or a record
missing after a kill), with one warning line naming it.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError


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

    def record(self, chunk: int) -> Path:
        return self.path / f"part-{chunk:06d}.sum"

    def done(self, chunk: int) -> bool:
        return self.record(chunk).is_file()

    def commit(self, chunk: int, rows: int, skipped: int) -> None:
        """Mark the chunk done, after its part and skipped list: their row counts and checksums."""
        atomic.write_json(self.record(chunk), {"rows": rows, "skipped": skipped, **self._checksums(chunk)})

    def damage(self, chunk: int, images: int) -> str | None:
        """Why the chunk of `images` images cannot be merged, or None when its part matches its record."""
        if not self.part(chunk).is_file():
            return "missing"
        try:
            record = json.loads(self.record(chunk).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "no checksum record (the run was killed while writing it)"
        except (OSError, ValueError):
            return "its checksum record is unreadable"
        counts = [record.get(k) for k in ("rows", "skipped")] if isinstance(record, dict) else [None]
        if not all(isinstance(c, int) for c in counts) or sum(counts) != images:
            return f"its record does not count the chunk's {images} images"
        if {k: record.get(k) for k in ("sha256", "skipped_sha256")} != self._checksums(chunk):
            return "its checksum differs from its record (truncated or changed)"
        return None

    def verify(self, sizes: Sequence[int]) -> None:
        """Refuse to merge a damaged part (sizes[k]: chunk k's images)."""
        for k, images in enumerate(sizes):
            why = self.damage(k, images)
            if why:
                raise FashionStyleError(f"{self.part(k)}: {why}; pass --resume to compute it again")

    def prepare(self, settings: dict[str, Any], resume: bool, sizes: Sequence[int] = ()) -> int:
        """Create the folder for `settings`, or check a resumed one has them and drop its damaged parts
        (sizes[k]: chunk k's images); chunks already done."""
        manifest = self.path / "manifest.json"
        if self.path.exists() and not resume:
            raise FashionStyleError(f"{self.path}: parts of an unfinished prediction; pass --resume to continue "
                                    f"it, or delete the folder to start again")
        if resume and manifest.is_file():
            _check_same(manifest, settings)
            for marker in self.path.glob("rank-*.failed"):  # the ranks that failed last time try again
                marker.unlink()
            self._drop_damaged(sizes)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                atomic.write_json(manifest, settings)
            except OSError:  # a full disk: no empty parts folder left to refuse the next try
                with contextlib.suppress(OSError):
                    self.path.rmdir()
                raise
        return sum(self.done(k) for k in range(len(sizes)))

    def _drop_damaged(self, sizes: Sequence[int]) -> None:
        """Remove every chunk's files that fail `damage`: with a warning unless only a skipped list was there
        (the run was killed before the part)."""
        for k, images in enumerate(sizes):
            files = (self.part(k), self.skipped(k), self.record(k))
            if not any(f.exists() for f in files):
                continue
            why = self.damage(k, images)
            if why is None:
                continue
            if self.part(k).exists() or self.record(k).exists():
                print(f"warning: {self.part(k)}: {why}; computing it again", file=sys.stderr, flush=True)
            for f in files:
                f.unlink(missing_ok=True)

    def _checksums(self, chunk: int) -> dict[str, str | None]:
        skipped = self.skipped(chunk)
        return {"sha256": _sha256(self.part(chunk)), "skipped_sha256": _sha256(skipped) if skipped.is_file() else None}

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
        atomic.write_text(self.path / f"rank-{rank}.failed", f"{type(error).__name__}: {error}"[:2000])

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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_same(manifest: Path, settings: dict[str, Any]) -> None:
    stored = atomic.read_json(manifest, "the parts folder")
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as stored
    changed = [k for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
    if changed:
        k = changed[0]
        raise FashionStyleError(f"{manifest.parent}: started with other settings ({k}: {stored.get(k)!r}, now "
                                f"{settings.get(k)!r}); resume with the same ones, or delete the folder to start again")
