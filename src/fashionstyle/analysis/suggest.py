"""`fashionstyle suggest`: the catalogue photos worth labelling next, as a label file to fill in.

    result = suggest(RunDir.open("runs/lite0"), ImageSource.open("catalogue.csv"), SuggestSettings(n=200))
    write_skeleton(result, "to_label.csv")   # image, the run's labels (empty), hint, suggest_score

Two passes. (1) Every catalogue photo not already in a label file is predicted as `predict` predicts
(streaming.StreamJob: chunks, resumable parts beside the output, several ranks) and scored
(acquisition.py); only the best `pool_factor x n` are kept (CandidatePool), so memory does not grow
with the catalogue, and identical files (the same bytes) enter it once. (2) For `uncertainty`, the pool's
pooled backbone features are computed and `weighted_k_center` picks n of them that are uncertain and
unlike each other. check_outputs refuses, before anything is read, an --out that is an input or a
file suggest may not replace.
"""
from __future__ import annotations

import csv
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from fashionstyle.analysis import acquisition
from fashionstyle.analysis.already_labelled import content_key, labelled_images, learnt_from, path_key
from fashionstyle.core import atomic
from fashionstyle.core.choices import ACQUISITION_STRATEGIES, DEFAULT_STRATEGY
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import ranked_names
from fashionstyle.core.overwrite import Paths, refuse_overwriting_inputs, run_inputs
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunContents, RunDir
from fashionstyle.data.images.source import ImageSource
from fashionstyle.data.images.files import IMAGE_SUFFIXES
from fashionstyle.inference.jobs import Placement, run_job, stream_job
from fashionstyle.inference.outputs import csv_text
from fashionstyle.inference.predictor import BasePredictor, PredictSettings
from fashionstyle.inference.runtimes import ensure_export, predictor_for
from fashionstyle.inference.streaming import LoaderSettings, StreamJob

HINT_COLUMN = "hint"    # the model's guess, most probable first: "Dress 0.91;Kids 0.55"
SCORE_COLUMN = "suggest_score"  # what suggest ranked by (higher: more worth labelling)
SKELETON_EXTRAS = (HINT_COLUMN, SCORE_COLUMN)


@dataclass(frozen=True)
class SuggestSettings:
    n: int = 200
    strategy: str = DEFAULT_STRATEGY  # core.choices.ACQUISITION_STRATEGIES
    pool_factor: int = 4        # candidates kept for the diversity step: pool_factor x n
    rare_power: float = 0.5     # rare-label weight ∝ (1 / prevalence) ** rare_power; 0: all alike
    seed: int = 0               # of `random`

    def check(self) -> "SuggestSettings":
        ACQUISITION_STRATEGIES.check(self.strategy)
        if self.n < 1 or self.pool_factor < 1 or self.rare_power < 0:
            raise FashionStyleError(f"--n and --pool-factor must be at least 1 and --rare-power at least 0, "
                                    f"got {self.n}, {self.pool_factor} and {self.rare_power}")
        return self


@dataclass
class Suggestion:
    """The photos chosen, best first, with the run's probabilities for each."""

    label_names: list[str]
    point: OperatingPoint       # the hints' (and Label Studio pre-annotations') operating point
    ids: list[str]
    paths: list[str]
    scores: np.ndarray          # (n,) acquisition scores
    probs: np.ndarray           # (n, L)
    counts: dict[str, int] = field(default_factory=dict)  # catalogue, already labelled, unreadable, scored

    def hints(self) -> list[str]:
        """Each photo's guessed labels (decided at `point`), most probable first, with probabilities."""
        rows, index = [], {name: j for j, name in enumerate(self.label_names)}
        for p, decided in zip(self.probs, self.point.decide(self.probs)):
            names = ranked_names(p, decided, self.label_names)
            rows.append(";".join(f"{name} {p[index[name]]:.2f}" for name in names))
        return rows


@dataclass
class UnlabelledSource:
    """A catalogue without the photos already labelled: a source for StreamJob, streamed like it."""

    source: ImageSource
    labelled: set[str]

    def __post_init__(self) -> None:
        self.count = sum(1 for _ in self)

    def __iter__(self) -> Iterator[tuple[str, Path]]:
        return ((i, p) for i, p in self.source if path_key(p) not in self.labelled)

    def __len__(self) -> int:
        return self.count

    def chunks(self, size: int) -> Iterator[list[tuple[str, Path]]]:
        rows = iter(self)
        while chunk := list(itertools.islice(rows, size)):
            yield chunk

    def identity(self) -> dict[str, Any]:
        return {**self.source.identity(), "unlabelled": self.count}

    def left_out(self) -> list[tuple[str, str]]:
        return self.source.left_out()

    def is_list(self) -> bool:
        return self.source.is_list()


def check_out(out: str | Path) -> Path:
    """The skeleton's path: a .csv (refused before anything is predicted or written)."""
    out = Path(out)
    if out.suffix.lower() in IMAGE_SUFFIXES or out.suffix.lower() != ".csv":
        raise FashionStyleError(f"--out {out}: the photos to label are written as a label CSV; name a .csv file")
    if out.is_dir():
        raise FashionStyleError(f"--out {out}: is a folder; name a .csv file")
    return out


def check_outputs(run: RunDir, out: str | Path, tasks: str | Path | None, inputs: Mapping[str, Paths],
                  overwrite: bool = False, resume: bool = False, config: str | Path | None = None) -> None:
    """Refuse, before anything is read or written, an output that is an input (`inputs`, the run's files
    or the label file it trained on; even with `overwrite`) or an existing file suggest may not replace:
    without `overwrite`, none, except on `resume` its own unfilled skeleton and tasks. `config`: the
    labelling config written beside `tasks` (labelstudio.tasks.check_config_out checks its own rule)."""
    own = {"run's label file": [f.labels for f in learnt_from(run)], "run": run_inputs(run)}
    refuse_overwriting_inputs({"--out": out, "--tasks": [tasks, config]}, {**inputs, **own})
    if overwrite:
        return
    for path in (Path(out), Path(tasks) if tasks else None):
        if path is not None and path.exists() and not (resume and _is_own_output(path, run.label_names())):
            mine = " and is not an unfilled skeleton suggest wrote" if resume else ""
            raise FashionStyleError(f"{path}: exists{mine} (perhaps filled in already); choose another name, "
                                    "or --overwrite")


def _is_own_output(path: Path, label_names: Sequence[str]) -> bool:
    """Whether `path` is what suggest writes and nobody changed since: a skeleton of these labels with every
    label cell empty, or Label Studio tasks carrying fashionstyle's predictions."""
    try:
        if path.suffix.lower() == ".json":
            tasks = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(tasks, list) and all(_is_own_task(t) for t in tasks)
        with path.open(encoding="utf-8", newline="") as f:
            header, *rows = list(csv.reader(f))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON, empty
        return False
    labels = len(label_names)
    return header == ["image", *label_names, *SKELETON_EXTRAS] and all(
        len(r) == len(header) and not any(r[1:1 + labels]) for r in rows)


def _is_own_task(task: Any) -> bool:
    predictions = task.get("predictions") if isinstance(task, dict) else None
    return isinstance(predictions, list) and len(predictions) == 1 and isinstance(predictions[0], dict) \
        and str(predictions[0].get("model_version", "")).startswith("fashionstyle")


def suggest(run: RunDir, catalogue: ImageSource, settings: SuggestSettings, out: str | Path,
            predict: PredictSettings = PredictSettings(), loader: LoaderSettings | None = None,
            label_files: Sequence[str | Path] = (), resume: bool = False,
            placement: Placement | None = None) -> Suggestion | None:
    """The `settings.n` photos of `catalogue` most worth labelling (None on a rank other than 0).
    `out` names the skeleton to come: the parts folder of pass 1 lies beside it (OUT.parts)."""
    settings.check()
    source = UnlabelledSource(catalogue, labelled_images(run, label_files))
    if not len(source):
        raise FashionStyleError(f"{catalogue.path}: every one of its {len(catalogue)} photos is already labelled")
    loader, contents = loader or LoaderSettings(), run.contents()
    if not acquisition.strategy(settings.strategy).predicts_catalogue:  # only the chosen are predicted
        if is_secondary_process():
            return None
        return _readable(_by_id(contents, catalogue, source, settings, predict, loader), catalogue, out)
    job = stream_job(contents, source, check_out(out), "npz", predict, loader)
    if not is_secondary_process():
        ensure_export(contents, predict.runtime, predict.tta)
        done = job.prepare(resume)
        if done:
            print(f"resuming {out}: {done} of {job.chunks} chunks already done", flush=True)
    if run_job(job, contents, predict, placement or Placement()) is None:
        return None
    pool = _score_parts(run, job, settings)
    job.folder.remove()
    chosen = _choose(contents, pool, settings, predict, loader)
    counts = {"catalogue": len(catalogue), "labelled": len(catalogue) - len(source),
              "unreadable": pool.unreadable, "scored": pool.seen - pool.unreadable}
    return _readable(Suggestion(job.label_names, pre_annotation_point(contents, predict.operating_point), [pool.ids[i] for i in chosen],
                                [pool.paths[i] for i in chosen], pool.scores[chosen], pool.probs[chosen], counts),
                     catalogue, out)


def _readable(result: Suggestion, catalogue: ImageSource, out: str | Path) -> Suggestion:
    """`result`, refused when not one photo it looked at could be read (a skeleton of no photo is no use)."""
    if len(result.ids) and not np.isnan(result.probs).any(axis=1).all():
        return result
    hint = " (a list's relative paths are read from --image-dir)" if catalogue.is_list() else ""
    raise FashionStyleError(f"{catalogue.path}: not one photo could be read ({result.counts['unreadable']} tried); "
                            f"nothing written to {out}{hint}")


def _by_id(contents: RunContents, catalogue: ImageSource, source: UnlabelledSource, settings: SuggestSettings,
           predict: PredictSettings, loader: LoaderSettings) -> Suggestion:
    """A strategy that scores by id alone (`random`: a key per id, so any chunking gives the same); only the
    photos it keeps are predicted."""
    strategy, pool = acquisition.strategy(settings.strategy), _Pool(settings.n)
    for chunk in source.chunks(loader.chunk_size):
        ids, none = [i for i, _ in chunk], np.zeros((len(chunk), 0), np.float32)
        pool.add(ids, [str(p) for _, p in chunk], strategy.scores(ids, none, np.zeros(0), np.zeros(0), settings.seed),
                 none)
    probs = predictor_for(contents, predict, decode=loader.decode).predict_proba(
        pool.paths, batch_size=loader.batch_size, num_workers=loader.num_workers, on_bad="skip")
    counts = {"catalogue": len(catalogue), "labelled": len(catalogue) - len(source),
              "unreadable": int(np.isnan(probs).any(axis=1).sum()), "scored": len(source)}
    return Suggestion(contents.label_names, pre_annotation_point(contents, predict.operating_point), pool.ids, pool.paths,
                      pool.scores, probs, counts)


@dataclass
class _Pool(acquisition.CandidatePool):
    """A CandidatePool holding one of identical photos (the same bytes under several names): the first met."""

    unreadable: int = 0
    digests: dict[str, str] = field(default_factory=dict)  # path -> content_key, of the pool's photos

    def add(self, ids: Sequence[str], paths: Sequence[str], scores: np.ndarray, probs: np.ndarray) -> None:
        """As CandidatePool.add; a photo that would enter with the bytes of one in the pool is left out
        (only those that would enter are hashed, so the cost stays that of the pool)."""
        scores = np.array(scores, np.float64)
        floor = self.scores[-1] if len(self) >= self.capacity else -np.inf
        held = {self.digests[p] for p in self.paths}
        for k, path in enumerate(map(str, paths)):
            if np.isfinite(scores[k]) and scores[k] > floor:
                digest = self.digests[path] = self.digests.get(path) or content_key(path)
                scores[k] = -np.inf if digest in held else scores[k]  # a score of -inf is left out
                held.add(digest)
        super().add(ids, paths, scores, probs)
        self.digests = {p: self.digests[p] for p in self.paths}


def _score_parts(run: RunDir, job: StreamJob, settings: SuggestSettings) -> _Pool:
    """Pass 1's parts, one at a time, into a bounded pool of the best candidates (uncertain about the run's
    tuned thresholds, whatever operating point the hints are decided at)."""
    thresholds = run.thresholds().thresholds_
    _, _, val_targets = run.val_probs()
    weights = acquisition.rare_label_weights(np.asarray(val_targets, np.float64).mean(axis=0), settings.rare_power)
    strategy = acquisition.strategy(settings.strategy)
    pool = _Pool(strategy.pool_size(settings.n, settings.pool_factor))
    for part, chunk in zip(job.folder.parts(job.chunks), job.source.chunks(job.loader.chunk_size)):
        with np.load(part) as data:
            ids, probs = [str(i) for i in data["ids"]], data["probs"]
        if ids != [i for i, _ in chunk]:
            raise FashionStyleError(f"{part}: its ids are not those of the catalogue's chunk; run again without --resume")
        unreadable = np.isnan(probs).any(axis=1)
        pool.unreadable += int(unreadable.sum())
        pool.add(ids, [str(p) for _, p in chunk], strategy.scores(ids, probs, thresholds, weights, settings.seed), probs)
    return pool


def _choose(contents: RunContents, pool: _Pool, settings: SuggestSettings, predict: PredictSettings,
            loader: LoaderSettings) -> list[int]:
    """Pool rows in the order the strategy offers them (the pool is sorted by score; `uncertainty` spreads
    them by weighted k-center on the pooled features)."""
    def features() -> np.ndarray:
        predictor = predictor_for(contents, predict, decode=loader.decode)
        return pooled_features(predictor, pool.paths, pool.probs, loader.batch_size)

    return acquisition.strategy(settings.strategy).picks(settings.n, pool.scores, features)


def pooled_features(predictor: BasePredictor, paths: Sequence[str], probs: np.ndarray,
                    batch_size: int = 64) -> np.ndarray:
    """(N, C) the backbone's pooled features of the first member model, averaged over the test-time views;
    a runtime without them (ONNX) gives the probabilities' logits instead."""
    members = getattr(predictor, "members", None)
    if not members:
        p = np.clip(np.asarray(probs, np.float64), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))
    captured: list[np.ndarray] = []
    hook = members[0].model.backbone.register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().float().cpu().numpy()))
    try:
        again = predictor.predict_proba(list(paths), batch_size=batch_size, on_bad="skip")
    finally:
        hook.remove()
    ok = ~np.isnan(again).any(axis=1)
    if not captured or not ok.any():
        return pooled_features(_NoMembers(), paths, probs)
    stacked = np.concatenate(captured)  # (readable x views, C)
    features = np.zeros((len(paths), stacked.shape[1]), np.float32)
    features[ok] = stacked.reshape(int(ok.sum()), -1, stacked.shape[1]).mean(axis=1)
    return features


class _NoMembers:
    members: list = []


def skeleton_rows(result: Suggestion, out: Path) -> list[list[str]]:
    """The skeleton's header and rows: image (relative to the file's folder where it lies under it),
    the run's labels left empty, the model's hint and the score."""
    base = os.path.abspath(out.parent)
    header = ["image", *result.label_names, *SKELETON_EXTRAS]
    rows = []
    for path, hint, score in zip(result.paths, result.hints(), result.scores):
        key = os.path.abspath(path)
        image = os.path.relpath(key, base) if key.startswith(base + os.sep) else key
        rows.append([image, *[""] * len(result.label_names), hint, f"{score:.6f}"])
    return [header, *rows]


def write_skeleton(result: Suggestion, out: str | Path) -> Path:
    """The label file to fill in (0/1 under each label), whole or not at all."""
    out = check_out(out)
    return atomic.write_text(out, csv_text(skeleton_rows(result, out)))


def pre_annotation_point(contents: RunContents, name: str | None) -> OperatingPoint:
    """The point the hints and Label Studio pre-annotations are decided at: `name`, else the run's labelling
    point (a high-precision point of at most 3 labels, not the recall-leaning F2 thresholds)."""
    return contents.point(name) if name is not None else contents.labelling_point()
