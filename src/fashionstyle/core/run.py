"""The run directory: everything needed to predict again, written atomically.

    RUN/
      manifest.json      format version, kind, complete flag
      config.yaml        the resolved TrainConfig
      labels.json        label names, in output order
      model.pt           weights + preprocessing (network.save_model)
      members.json       composite runs only: which model files give which labels, with weights
      thresholds.json    per-label decision thresholds (ThresholdTuner.to_dict): the run's own operating point
      operating_points.json  further named operating points (`tune --operating-point`; core/decision.py)
      tta.json           the test-time augmentation they were tuned with (absent: none)
      val_probs.npz      ids, probs (N, L), targets (N, L) of the validation split
      history.csv        per-epoch losses, learning rate, validation F2 (overall and per label; past 1,000
                         labels, the 1,000 with the most validation positives)
      epochs/            validation probabilities of every epoch (e001.npy, ...; past 1,000 labels, the best and
                         the latest only)
      checkpoints/       Lightning checkpoints (best.ckpt, last.ckpt) for --resume
      logs/              CSV and TensorBoard logs
      eval_<split>.json  scores written by `fashionstyle evaluate`
      eval_<split>.npz   its ids, probs (N, L) and targets (N, L)
"""
from __future__ import annotations

import copy
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from fashionstyle.core import atomic, run_sources
from fashionstyle.core.choices import DEFAULT_RULE
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.operating_points import labelling_point
from fashionstyle.core.run_checks import check_run_files, checked_label_names, checked_members
from fashionstyle.core.thresholds import ThresholdTuner

RUN_FORMAT = 1
LOCK_FILE = ".lock"  # held (flock) by the process writing the run
_HELD_LOCKS: dict[str, ExitStack] = {}  # resolved run path -> its held lock (closed: released)
T = TypeVar("T")


@dataclass
class Member:
    """One model file of a run and the labels (columns) it contributes, with a weight."""

    model: Path
    labels: list[str]
    weight: float = 1.0


@dataclass(frozen=True)
class RunContents:
    """What a run predicts with, read once (RunDir.contents): the label names, the member models, the
    tuned thresholds and the TTA they were tuned with. A job records and decides with this one copy,
    so a `tune` writing the run meanwhile cannot give a file whose header and decisions disagree."""

    path: Path
    label_names: list[str]
    members: list[Member]
    tuner: ThresholdTuner
    tta: str
    points: dict[str, OperatingPoint] = field(default_factory=dict)  # named in operating_points.json
    default_point: str | None = None  # the point used when none is named (an export's; None: the run's own)

    def point(self, name: str | None = None) -> OperatingPoint:
        """The operating point `name` (None: the default, the run's own tuned thresholds unless an export
        named another); unknown: one line."""
        own = OperatingPoint.of_tuner(self.tuner)
        name = self.default_point if name is None else name
        if name is None or name == own.name:
            return own
        if name not in self.points:
            raise FashionStyleError(f"{self.path}: no operating point {name!r}; this run's: "
                                    f"{', '.join(self.point_names())} (make one: fashionstyle tune RUN "
                                    "--operating-point NAME --min-precision 0.9 ...)")
        return self.points[name]

    def point_names(self) -> list[str]:
        return [OperatingPoint.of_tuner(self.tuner).name, *self.points]

    def labelling_point(self) -> OperatingPoint:
        """The point pre-annotations are decided at unless one is named (operating_points.labelling_point)."""
        stored = self.path / "val_probs.npz"
        val = RunDir(self.path).val_probs()[1:] if stored.is_file() else None
        return labelling_point(self.points, OperatingPoint.of_tuner(self.tuner), self.label_names, val)


def _stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is replaced or rewritten: its inode, size and modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def run_contents(run: "str | Path | RunDir | RunContents") -> RunContents:
    """The contents of `run`: as given, or read from the run opened (and checked) once."""
    return run if isinstance(run, RunContents) else RunDir.open(run).contents()


class RunDir:
    """Paths and typed readers/writers of one run directory."""

    def __init__(self, path: "str | Path | RunDir"):
        self.path = Path(path)
        self.checked = False  # opened by RunDir.open: complete, its files checked
        self._reads: dict[str, tuple[tuple[int, int, int], Any]] = {}  # file name -> (its stamp, checked value)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    # -- creation and checks -------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, resume: bool = False, resumable: bool = True) -> "RunDir":
        """A new run directory; an existing one is kept unless resuming it (for a command that can)."""
        run = cls(path)
        if resume:
            run.require_resumable()
        else:
            run.refuse_taken(resumable)
        run.path.mkdir(parents=True, exist_ok=True)
        run.lock()  # until it is complete: a second writer of the same run is refused, not interleaved
        if resume:
            atomic.remove_leftovers(run.path)  # a kill during a checkpoint write leaves one
        return run

    def refuse_taken(self, resumable: bool = True) -> None:
        """Refuse a new run here: a file, or a folder with something in it (checked again by create)."""
        if self.path.exists() and not self.path.is_dir():
            raise FashionStyleError(f"{self.path}: is a file; --out names the folder of a new run")
        if self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            raise FashionStyleError(f"{self.path}: already exists and is not empty; choose another --out"
                                    + (" or pass --resume to continue it" if resumable else ""))

    def require_resumable(self) -> "RunDir":
        """This run, or a refusal: a folder without a manifest holds nothing to resume."""
        if not (self / "manifest.json").is_file():
            raise FashionStyleError(f"{self.path}: nothing to resume (not a run directory); "
                                    "drop --resume to start a new run there")
        return self

    @classmethod
    def open(cls, path: "str | Path | RunDir") -> "RunDir":
        """An existing, complete run of this format whose files agree, or a one-line refusal; a hub
        folder or a Hugging Face id (`user/repo`) opens as the run rebuilt from it (core/run_sources.py).
        A RunDir that was opened already is returned as it is: a command checks its run once."""
        if isinstance(path, RunDir) and path.checked:
            return path
        run = cls(run_sources.resolve(path))
        if not run.path.is_dir():
            raise FashionStyleError(f"{run.path}: run directory not found")
        manifest = run.manifest()
        if manifest.get("format") != RUN_FORMAT:
            raise FashionStyleError(f"{run.path}: run format {manifest.get('format')!r} is not "
                                    f"supported (this version reads format {RUN_FORMAT})")
        if not manifest.get("complete"):
            raise FashionStyleError(f"{run.path}: incomplete run (training did not finish); "
                                    "resume it with `fashionstyle train ... --resume`")
        run.check_files()  # before any command reads or writes: its files agree and hold usable values
        run.checked = True
        return run

    def check_files(self) -> None:
        """Refuse a run whose files disagree or hold values it cannot use (run_checks.check_run_files)."""
        names = self.label_names()
        tuner = self.thresholds() if (self / "thresholds.json").is_file() else None
        check_run_files(self.path, names, tuner, [m.labels for m in self.members(names)])

    def is_complete(self) -> bool:
        """A finished run of this format (False for a missing or unfinished one)."""
        try:
            return bool(self.manifest().get("complete"))
        except FashionStyleError:
            return False

    def manifest(self) -> dict[str, Any]:
        if not (self / "manifest.json").is_file():
            raise FashionStyleError(f"{self.path}: not a fashionstyle run (no manifest.json)")
        return self.read_once("manifest.json", lambda manifest, _: manifest)

    def read_once(self, name: str, checked: Callable[[Any, Path], T],
                  read: Callable[[Path], Any] = atomic.read_json) -> T:
        """`checked(read(path), path)` of RUN/name, read and checked once while the file is unchanged (the same
        inode, size and modification time: every write of a run file replaces it); a copy each time, so no
        caller changes another's."""
        path = self / name
        try:
            stamp = _stamp(path)
        except OSError:
            return checked(read(path), path)  # the reader's own one line for a missing file
        held = self._reads.get(name)
        if held is None or held[0] != stamp:
            held = self._reads[name] = (stamp, checked(read(path), path))
        return copy.deepcopy(held[1])

    def _written(self, name: str, value: Any) -> None:
        """RUN/name was just written with `value`: known without reading it back."""
        self._reads[name] = (_stamp(self / name), copy.deepcopy(value))

    def out_of_fold(self) -> bool:
        """Whether the validation probabilities are out-of-fold ones (a cv run, or runs combined from one;
        for a fusion or selection written before the manifest said so, its source runs where they exist)."""
        manifest = self.manifest()
        if manifest.get("kind") == "cv" or manifest.get("out_of_fold"):
            return True
        sources = next((self / name for name in ("fusion.json", "selection.json") if (self / name).is_file()), None)
        if "out_of_fold" in manifest or sources is None:
            return False
        return any((Path(run) / "manifest.json").is_file() and RunDir(run).out_of_fold()
                   for run in atomic.read_json(sources).get("runs", []))

    def write_manifest(self, kind: str, complete: bool, **extra: Any) -> None:
        manifest = {"format": RUN_FORMAT, "kind": kind, "complete": complete,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        atomic.write_json(self / "manifest.json", manifest)
        self._written("manifest.json", manifest)
        if complete:
            self.unlock()

    def lock(self) -> None:
        """Hold RUN/.lock (core/locks.py) for this process until unlock, the run's completion or the
        process's end: another process writing the same run is refused in one line. Re-entrant."""
        key = str(self.path.resolve())
        if key in _HELD_LOCKS:
            return
        from fashionstyle.core.locks import file_lock

        held = ExitStack()
        held.enter_context(file_lock(self / LOCK_FILE, what=f"{self.path}: the run"))
        _HELD_LOCKS[key] = held

    def unlock(self) -> None:
        """Let other processes write this run again (a no-op when this process holds no lock on it)."""
        held = _HELD_LOCKS.pop(str(self.path.resolve()), None)
        if held is not None:
            held.close()

    # -- contents --------------------------------------------------------------
    def contents(self) -> RunContents:
        """Label names, members, thresholds and TTA, each file read once."""
        names = self.label_names()
        points, default = self.points_file(names)
        return RunContents(self.path, names, self.members(names), self.thresholds(), self.tta(), points, default)

    def label_names(self) -> list[str]:
        return self.read_once("labels.json", checked_label_names)

    def write_label_names(self, names: list[str]) -> None:
        atomic.write_json(self / "labels.json", {"label_names": list(names)})

    def members(self, label_names: list[str] | None = None) -> list[Member]:
        """The models that predict this run's labels (`label_names`, when read already); a plain run
        has one, model.pt."""
        names = label_names if label_names is not None else self.label_names()
        path = self / "members.json"
        if not path.is_file():
            return [Member(self / "model.pt", names)]
        return [Member(self / model, labels, weight)
                for model, labels, weight in checked_members(atomic.read_json(path), path, names)]

    def write_members(self, members: list[Member]) -> None:
        records = [{"model": str(m.model.relative_to(self.path)), "labels": m.labels, "weight": m.weight}
                   for m in members]
        atomic.write_json(self / "members.json", {"members": records})

    def tta(self) -> str:
        """The test-time augmentation the thresholds were tuned with ('none' by default)."""
        path = self / "tta.json"
        return atomic.read_json(path)["tta"] if path.is_file() else "none"

    def write_tta(self, tta: str) -> None:
        atomic.write_json(self / "tta.json", {"tta": tta})

    def thresholds(self) -> ThresholdTuner:
        return self.read_once("thresholds.json", lambda record, path: ThresholdTuner.from_dict(record, str(path)))

    def operating_points(self, label_names: list[str] | None = None) -> dict[str, OperatingPoint]:
        """The named points of operating_points.json, checked (none when the file is absent)."""
        return self.points_file(label_names)[0]

    def points_file(self, label_names: list[str] | None = None) -> tuple[dict[str, OperatingPoint], str | None]:
        """operating_points.json, checked: its points by name, and the default point's name (an export's)."""
        path = self / "operating_points.json"
        if not path.is_file():
            return {}, None
        return read_points_file(path, label_names if label_names is not None else self.label_names())

    def write_operating_point(self, point: OperatingPoint, overwrite: bool = False) -> None:
        """Add `point` to operating_points.json; a name already taken is refused unless `overwrite`."""
        names = self.label_names()
        points, default = self.points_file(names)
        own = OperatingPoint.of_tuner(self.thresholds()).name
        if point.name == own or (point.name in points and not overwrite):
            why = "the run's own point (its tuned thresholds)" if point.name == own else "taken"
            raise FashionStyleError(f"{self.path}: operating point {point.name!r} is {why}; choose another name"
                                    + ("" if point.name == own else " or pass --overwrite"))
        points[point.name] = point
        write_points_file(self / "operating_points.json", points, names, default)

    def threshold_rule(self) -> str:
        """The rule its thresholds were tuned by (the default before they are)."""
        return self.thresholds().rule if (self / "thresholds.json").is_file() else DEFAULT_RULE

    def write_thresholds(self, tuner: ThresholdTuner) -> None:
        atomic.write_json(self / "thresholds.json", tuner.to_dict())

    def val_probs(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(ids, probs (N, L), targets (N, L)) of the validation split."""
        path = self / "val_probs.npz"
        if not path.is_file():
            raise FashionStyleError(f"{self.path}: no val_probs.npz (training did not finish)")
        with np.load(path) as data:
            return [str(i) for i in data["ids"]], data["probs"], data["targets"]

    def write_val_probs(self, ids: list[str], probs: np.ndarray, targets: np.ndarray) -> None:
        atomic.write_npz(self / "val_probs.npz", ids=np.array(ids), probs=probs.astype(np.float32),
                          targets=targets.astype(np.uint8))

    def write_epoch_probs(self, epoch: int, probs: np.ndarray) -> None:
        atomic.write_atomic(self / "epochs" / f"e{epoch:03d}.npy",
                             lambda f: np.save(f, probs.astype(np.float32)))

    def epoch_probs(self) -> dict[int, np.ndarray]:
        """Validation probabilities of every finished epoch (1-based)."""
        files = sorted((self / "epochs").glob("e*.npy"))
        return {int(p.stem[1:]): np.load(p) for p in files}


class RunInterrupted(KeyboardInterrupt):
    """Training stopped by a signal (SIGTERM from a scheduler, SIGINT from Ctrl-C) after its last
    checkpoint: the run is incomplete and resumes exactly with `train --resume`."""

    def __init__(self, signum: int, path: Path):
        super().__init__(f"{path}: training stopped by signal {signum}; resume it with --resume")
        self.signum, self.path = signum, path


def read_points_file(path: Path, label_names: list[str]) -> tuple[dict[str, OperatingPoint], str | None]:
    """An operating_points.json (a run's or an export's), checked: its points by name, and the name of the
    one decided at when none is named (None: the run's own thresholds)."""
    stored = atomic.read_json(path)
    if not isinstance(stored, dict) or not isinstance(stored.get("points"), list):
        raise FashionStyleError(f"{path}: expected {{\"points\": [...]}}")
    points = {p.name: p for p in (OperatingPoint.from_dict(d, label_names, str(path)) for d in stored["points"])}
    default = stored.get("default")
    if default is not None and default not in points:
        raise FashionStyleError(f"{path}: default point {default!r} is not one of its points "
                                f"({', '.join(points) or 'none'})")
    return points, default


def write_points_file(path: str | Path, points: dict[str, OperatingPoint], label_names: list[str],
                      default: str | None = None) -> None:
    """operating_points.json: the points, and (an export's) the one decided at when none is named."""
    record: dict[str, Any] = {"points": [p.to_dict(label_names) for p in points.values()]}
    if default is not None:
        record["default"] = default
    atomic.write_json(path, record)


def write_exported_points(contents: RunContents, folder: str | Path, default: str | None) -> None:
    """An export's operating_points.json (ONNX or hub folder): the run's named points, `default` the one the
    folder decides at when loaded on its own (None or the run's own name: its thresholds); no file when the
    run has no named points."""
    path = Path(folder) / "operating_points.json"
    if not contents.points:
        path.unlink(missing_ok=True)
        return
    own = OperatingPoint.of_tuner(contents.tuner).name
    write_points_file(path, contents.points, contents.label_names, None if default in (None, own) else default)
