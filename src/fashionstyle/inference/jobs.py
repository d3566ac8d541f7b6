"""`predict` and `evaluate` as jobs: streamed in chunks, resumable, on one process or many ranks.

    out, kept, unreadable, left_out = predict_job(run, ImageSource.open("list.csv"), "preds.csv", "csv",
                                                  PredictSettings(runtime="onnx"), overwrite=False)
    probs = evaluate_probs(run, table, "test", placement=Placement("cpu", devices=2))  # None off rank 0
    probs = stored_probs(teacher, ids, images, Path("OUT.teacher/probs.npy"), resume=True)  # a memory map

Global rank 0 prepares the parts folder before the other ranks exist (Fabric starts
them in `launch_ranks`, or torchrun/SLURM did), every rank predicts its chunks, and
rank 0 merges them in input order.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunContents, RunDir
from fashionstyle.data.images.source import ImageSource, ListSource
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.inference.launch import launch_ranks
from fashionstyle.inference.out_lock import out_lock
from fashionstyle.inference.outputs import output_format, read_npz_rows, write_npy_rows
from fashionstyle.inference.prediction_files import check_out
from fashionstyle.inference.predictor import PredictSettings
from fashionstyle.inference.runtimes import ensure_export, predictor_for
from fashionstyle.inference.streaming import DEFAULT_CHUNK, LoaderSettings, StreamJob, Written


@dataclass
class Placement:
    """Where the ranks run: as `fashionstyle train`'s --accelerator/--devices/--num-nodes/--strategy."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "ddp"


def predict_job(run: RunDir, source: ImageSource, out: str | Path, fmt: str | None = None,
                settings: PredictSettings = PredictSettings(), loader: LoaderSettings | None = None,
                resume: bool = False, placement: Placement | None = None,
                overwrite: bool = False) -> Written | None:
    """Predict `source` into `out` (format `fmt`, default: from its name); on global rank 0 what was
    written (streaming.Written), else None. An existing `out` that predict did not write is refused
    unless `overwrite`; a second predict on the same `out` is refused while this one runs."""
    contents, placement = run.contents(), placement or Placement()
    job = stream_job(contents, source, Path(out), output_format(out, fmt), settings, loader or LoaderSettings())
    if is_secondary_process():
        return run_job(job, contents, settings, placement)
    check_out(out, overwrite)
    with out_lock(out):
        ensure_export(contents, settings.runtime, settings.tta)  # an export that fails leaves no output folder
        done = job.prepare(resume)
        if done:
            print(f"resuming {out}: {done} of {job.chunks} chunks already done", flush=True)
        return run_job(job, contents, settings, placement)


def evaluate_probs(run: RunDir, table: LabelTable, split: str, settings: PredictSettings = PredictSettings(),
                   loader: LoaderSettings | None = None, placement: Placement | None = None) -> np.ndarray | None:
    """Probabilities (N, L) of the table's images (NaN rows: unreadable) on global rank 0, else None."""
    source = ListSource(table.ids, list(table.images), {"labels": table.source, "split": split})
    placement = placement or Placement()
    loader = replace(loader or LoaderSettings(), chunk_size=_even_chunk(len(table), placement))
    contents = run.contents()
    job = stream_job(contents, source, run / f".eval_{split}_{settings.runtime}", "npz", settings, loader)
    if not is_secondary_process():
        job.folder.remove()  # an evaluation always starts afresh
        job.prepare(resume=False)
    if run_job(job, contents, settings, placement) is None:
        return None
    empty = np.zeros((0, len(job.label_names)), np.float32)
    probs = np.concatenate([empty, *read_npz_rows(job.folder.parts(job.chunks))])
    job.folder.remove()
    return probs


def stored_probs(run: RunDir, ids: list[str], images: list[Path], out: Path, resume: bool = False,
                 settings: PredictSettings = PredictSettings(), loader: LoaderSettings | None = None,
                 placement: Placement | None = None) -> np.ndarray:
    """Probabilities (N, L) of `images` into `out` (.npy, float32, NaN rows: unreadable), returned as a
    read-only memory map: streamed in resumable parts (OUT.parts/, as `predict`'s, on every rank),
    merged by global rank 0 part by part, so neither the images nor the probabilities are ever held
    whole in memory. An `out` of the same run, models, settings and images is reused (whatever the
    batch size); `resume` keeps the parts a killed run finished."""
    digest = hashlib.sha256(json.dumps([ids, [str(p) for p in images]]).encode("utf-8")).hexdigest()[:16]
    contents = run.contents()
    job = stream_job(contents, ListSource(ids, list(images), {"images_sha256": digest}), out, "npz", settings,
                     loader or LoaderSettings())
    record, key = out.with_suffix(".json"), _probs_key(job)
    if out.is_file() and record.is_file() and atomic.read_json(record) == key:
        return np.load(out, mmap_mode="r")
    if not is_secondary_process():
        record.unlink(missing_ok=True)  # another job's record, or a failed merge's
        if not resume:
            job.folder.remove()
        done = job.prepare(resume)
        if done:
            print(f"resuming {out}: {done} of {job.chunks} chunks already done", flush=True)
    try:
        if run_job(job, contents, settings, placement or Placement()) is None:  # another rank: rank 0 merges
            return await_merge(out, key)
        write_npy_rows(out, (len(ids), len(job.label_names)), read_npz_rows(job.folder.parts(job.chunks)))
    except BaseException as error:  # rank 0's failure: the other ranks, waiting for the merge, stop with it
        if not is_secondary_process():
            with contextlib.suppress(OSError):
                atomic.write_json(record, {"failed": str(error) or type(error).__name__, "key": key})
        raise
    atomic.write_json(record, key)
    job.folder.remove()
    return np.load(out, mmap_mode="r")


def await_merge(out: Path, key: dict[str, Any], poll_s: float = 1.0) -> np.ndarray:
    """On a rank other than 0: `out` once rank 0 has merged it, or rank 0's failure to merge as a refusal."""
    record = out.with_suffix(".json")
    while True:
        found = atomic.read_json(record) if record.is_file() else None
        if found == key:
            return np.load(out, mmap_mode="r")
        if isinstance(found, dict) and found.get("key") == key and "failed" in found:
            raise FashionStyleError(f"{out}: rank 0 could not merge the probabilities: {found['failed']}")
        time.sleep(poll_s)


def _probs_key(job: StreamJob) -> dict[str, Any]:
    """What stored probabilities depend on: the run, its models, runtime and TTA, the images, the labels."""
    return {k: v for k, v in job.settings().items() if k not in ("format", "chunk_size", "batch_size", "thresholds")}


def _even_chunk(images: int, placement: Placement) -> int:
    """Chunks that give every rank work: at most DEFAULT_CHUNK images, at least one chunk per rank."""
    ranks = max(1, placement.devices * placement.num_nodes)
    return max(1, min(DEFAULT_CHUNK, -(-images // ranks)))


def stream_job(contents: RunContents, source: ImageSource | ListSource, out: Path, fmt: str,
               settings: PredictSettings, loader: LoaderSettings) -> StreamJob:
    """The streamed job of the run's models on `source` into `out`: what its parts record and check on resume.
    Give run_job the same `contents` (RunDir.contents): the job records the thresholds its predictor decides at."""
    identity = {"run": str(contents.path.resolve()), "models": model_files(contents), **settings.identity(contents)}
    thresholds = contents.point(settings.operating_point).thresholds
    return StreamJob(source, out, fmt, contents.label_names, thresholds, loader, identity)


def say_device_refusals(predictor: Any) -> None:
    """The GPU decoder's refusals (which files, why), said once at the end of the work."""
    decoder = getattr(predictor, "device_decoder", None)
    said = decoder.summary() if decoder is not None and getattr(predictor, "decode_on_device", False) else ""
    if said:
        print(f"warning: {said}", file=sys.stderr)


def run_job(job: StreamJob, contents: RunContents, settings: PredictSettings, placement: Placement) -> Written | None:
    """Run a prepared job on every rank `placement` asks for; on rank 0 what was written, else None."""
    ranks = launch_ranks(placement.accelerator, placement.devices, placement.num_nodes, placement.strategy)
    try:
        if ranks.rank != 0:
            job.wait_ready()
        predictor = predictor_for(contents, settings, device=ranks.device, decode=job.loader.decode)
        job.run(predictor, ranks.rank, ranks.world)
        say_device_refusals(predictor)
    except BaseException as error:
        if ranks.rank != 0 and job.folder.path.is_dir():
            job.folder.mark_failed(ranks.rank, error)  # so rank 0 stops waiting for this rank's parts
        raise
    if ranks.rank != 0:
        return None
    if job.fmt == "npz":  # evaluate_probs reads the parts itself
        job.wait_for_parts()
        return Written(job.out, len(job.source), 0, 0)
    return job.merge()


def model_files(contents: RunContents) -> list[dict[str, Any]]:
    """The run's model files by path, size and time (what a stored or resumed job must find unchanged)."""
    files = sorted({m.model for m in contents.members})
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FashionStyleError(f"{missing[0]}: model file not found (a model of run {contents.path})")
    stats = [(f, f.stat()) for f in files]
    return [{"path": str(f.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns} for f, st in stats]
