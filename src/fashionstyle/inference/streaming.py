"""Streamed prediction: chunks of images in, one part file per chunk out, merged in input order at the end.

    job = StreamJob(ImageSource.open("catalogue.csv"), "preds.parquet", "parquet", label_names, thresholds)
    job.prepare(resume=False)      # global rank 0, before the ranks start
    job.run(predictor, rank, world)  # each rank predicts chunks rank, rank + world, ...
    job.merge()                    # global rank 0: waits for every part, writes preds.parquet

Memory stays that of one chunk whatever the number of images. A killed run
resumes after its last complete chunk (`prepare(resume=True)`; a damaged part is
computed again), and the merged file is byte for byte the one an uninterrupted
run writes: batches never cross a chunk, so every image is predicted in the same
batch either way. OUT.skipped.txt lists, as `id,path,why`, the unreadable images
and the folder entries that are not images (no id); an unreadable image is also a row of the file
(CSV, JSON, Parquet) with no scores and the same `why` as its `error` (images.why_unreadable).

Each row is one prediction record (core/prediction.py) named by the image as the user
gave it (`given_name`); the JD submission keeps the contest's ids. The parts folder's
manifest records the record's schema, so a resume never mixes parts of two layouts.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from tqdm.auto import tqdm

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import SCHEMA, check_label_names
from fashionstyle.data.images.source import ImageSource, ListSource
from fashionstyle.data.images.files import why_unreadable
from fashionstyle.inference.out_lock import lock_path
from fashionstyle.inference.outputs import csv_text, merge_parts, write_part
from fashionstyle.inference.parts import PartsFolder
from fashionstyle.inference.predictor import BasePredictor

DEFAULT_CHUNK = 10_000


@dataclass
class LoaderSettings:
    batch_size: int = 64
    num_workers: int = 0
    on_bad: str = "skip"
    chunk_size: int = DEFAULT_CHUNK
    progress: bool = True
    decode: str = "auto"  # where JPEGs are decoded (config.DECODERS): the torch runtime's choice


class Written(NamedTuple):
    """What a merge wrote: the file, its rows, the unreadable images and the folder entries left out."""

    path: Path
    kept: int
    unreadable: int
    left_out: int


@dataclass
class StreamJob:
    """Predict every image of `source` into `out` (format `fmt`, choices.OUTPUT_FORMATS), chunk by chunk."""

    source: ImageSource | ListSource
    out: Path
    fmt: str
    label_names: list[str]
    thresholds: np.ndarray
    loader: LoaderSettings = field(default_factory=LoaderSettings)
    identity: dict[str, Any] = field(default_factory=dict)  # what else a resume must match (run, runtime, TTA)

    def __post_init__(self) -> None:
        if self.loader.chunk_size < 1 or self.loader.batch_size < 1:
            raise FashionStyleError(f"--chunk-size and --batch-size must be at least 1, got "
                                    f"{self.loader.chunk_size} and {self.loader.batch_size}")
        if self.fmt != "npz":
            check_label_names(self.label_names)
        self.out = Path(self.out)
        self.folder = PartsFolder.beside(self.out)
        self.chunks = -(-len(self.source) // self.loader.chunk_size)

    def settings(self) -> dict[str, Any]:
        layout = {} if self.fmt == "npz" else {"schema": SCHEMA}  # the record's version: no resume across two
        return {**self.identity, **layout, "source": self.source.identity(), "images": len(self.source),
                "format": self.fmt, "chunk_size": self.loader.chunk_size, "batch_size": self.loader.batch_size,
                "on_bad": self.loader.on_bad, "labels": list(self.label_names),
                "thresholds": [round(float(t), 9) for t in self.thresholds]}

    def prepare(self, resume: bool) -> int:
        return self.folder.prepare(self.settings(), resume, self._sizes())

    def wait_ready(self) -> None:
        self.folder.wait_ready(self.settings())

    def run(self, predictor: BasePredictor, rank: int = 0, world: int = 1) -> None:
        """Predict this rank's chunks that are not done yet."""
        mine = [k for k in range(self.chunks) if k % world == rank]
        sizes = self._sizes()
        progress = Progress(sum(sizes[k] for k in mine), self.loader.progress,
                            f"[rank {rank}] " if world > 1 else "")
        for k, chunk in enumerate(self.source.chunks(self.loader.chunk_size)):
            if k % world != rank:
                continue
            if self.folder.done(k):
                progress.skip(len(chunk))
                continue
            self._predict_chunk(predictor, k, chunk, progress)
        progress.close()

    def wait_for_parts(self) -> None:
        """Global rank 0: block until every part exists, then check each against its record."""
        self.folder.wait_for(self.chunks)
        self.folder.verify(self._sizes())

    def merge(self) -> Written:
        """Global rank 0: wait for every part, write `out` (and OUT.skipped.txt)."""
        self.wait_for_parts()
        unreadable = self.folder.skipped_rows(self.chunks)
        if unreadable and len(unreadable) == len(self.source):
            self.folder.remove()
            listed = isinstance(self.source, ImageSource) and self.source.is_list()
            hint = " (a list's relative paths are read from --image-dir)" if listed else ""
            raise FashionStyleError(f"none of the {len(unreadable)} images could be read, e.g. "
                                    f"{unreadable[0][1]}; nothing written to {self.out}{hint}")
        merge_parts(self.folder.parts(self.chunks), self.out, self.fmt, self.label_names, self.thresholds)
        skipped_file = skipped_path(self.out)
        own = [self.out, skipped_file, self.folder.path, lock_path(self.out)]  # outputs in the folder it predicts
        left_out = [("", path, why) for path, why in self.source.left_out() if not _is_inside(path, own)]
        if unreadable or left_out:
            atomic.write_text(skipped_file, csv_text([*left_out, *unreadable]))
        else:
            skipped_file.unlink(missing_ok=True)
        self.folder.remove()
        return Written(self.out, len(self.source) - len(unreadable), len(unreadable), len(left_out))

    def _sizes(self) -> list[int]:
        """The number of images of each chunk."""
        return [min(self.loader.chunk_size, len(self.source) - k * self.loader.chunk_size) for k in range(self.chunks)]

    def _predict_chunk(self, predictor: BasePredictor, k: int, chunk: Sequence[tuple[str, Path]],
                       progress: "Progress") -> None:
        ids = [i for i, _ in chunk]
        start = progress.done
        probs = predictor.predict_proba([p for _, p in chunk], batch_size=self.loader.batch_size,
                                        num_workers=self.loader.num_workers, on_bad=self.loader.on_bad,
                                        on_batch=lambda read: progress.step(start + read - progress.done, False))
        progress.step(start + len(chunk) - progress.done)
        ok = ~np.isnan(probs).any(axis=1)
        if self.fmt == "npz":  # evaluation keeps every row (NaN: unreadable)
            ok[:] = True
        why = [None if good else why_unreadable(p) for (_, p), good in zip(chunk, ok)]  # the records' error
        skipped = self.folder.skipped(k)
        if not ok.all():  # before the part and its record, which mark the chunk done
            atomic.write_text(skipped, csv_text((i, str(p), w) for (i, p), w in zip(chunk, why) if w))
        else:
            skipped.unlink(missing_ok=True)
        rows = ok if self.fmt == "jd" else np.ones_like(ok)  # a record per image, but a submission's readable only
        images = [given_name(self.source, i, p) for (i, p), row in zip(chunk, rows) if row]
        write_part(self.folder.part(k), self.fmt, [i for i, row in zip(ids, rows) if row], probs[rows],
                   predictor.decide(probs[rows]), self.label_names, self.thresholds, images,
                   [w for w, row in zip(why, rows) if row])
        self.folder.commit(k, int(ok.sum()), len(chunk) - int(ok.sum()))


def _is_inside(path: str | Path, places: list[Path]) -> bool:
    """`path` is one of `places` or inside one of them."""
    resolved = Path(path).resolve()
    return any(resolved == p.resolve() or p.resolve() in resolved.parents for p in places)


def given_name(source: ImageSource | ListSource, image_id: str, path: Path) -> str:
    """The image as the user gave it: a list's entry as written (relative to its --image-dir), else the
    path (a folder's `FOLDER/name`, one image's path)."""
    if isinstance(source, ImageSource) and source.is_list():
        try:
            return str(Path(path).relative_to(source.image_dir))
        except ValueError:  # an absolute path in the list
            return str(path)
    return str(path) if isinstance(source, ImageSource) else image_id


def skipped_path(out: Path) -> Path:
    return Path(f"{out}.skipped.txt")


class Progress:
    """Images per second and an ETA: a bar on a terminal, moved per batch; else one line per chunk,
    and one per batch when LINE_EVERY_S have passed since the last."""

    LINE_EVERY_S = 30.0

    def __init__(self, total: int, enabled: bool, prefix: str = "", out: Callable[[str], None] | None = None):
        self.total, self.enabled, self.prefix = total, enabled, prefix
        self.out = out or (lambda line: print(line, flush=True))
        self.done = self.new = 0
        self.start = self.last_line = time.monotonic()
        self.bar = tqdm(total=total, unit="img", desc=f"{prefix}predict", smoothing=0.1) \
            if enabled and sys.stderr.isatty() else None

    def skip(self, n: int) -> None:
        """Images of chunks done before a resume."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def step(self, n: int, chunk_end: bool = True) -> None:
        """`n` more images predicted (or found unreadable): at the end of a chunk, or of a batch within one."""
        self.done += n
        self.new += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (chunk_end or time.monotonic() - self.last_line >= self.LINE_EVERY_S):
            self.last_line = time.monotonic()
            self.out(self.line())

    def line(self) -> str:
        rate = self.new / max(time.monotonic() - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (f"{self.prefix}predict: {self.done:,}/{self.total:,} images, {rate:,.1f} img/s, "
                f"ETA {_duration(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
