"""Distillation and self-training: a student learns a teacher's probabilities, on labelled and
unlabelled images (`fashionstyle distill TEACHER_RUN`, or `train --teacher`).

    run = train_distilled(TrainConfig(labels="labels.csv", teacher="runs/fused3", unlabelled="catalogue/"),
                          "runs/student")

1. The teacher (any run: one model, a fusion, a selection, a cv run; with the TTA its thresholds
   were tuned with) predicts the labelled training images and the unlabelled ones, once, streamed
   and resumable, into OUT.teacher/probs.npy (inference.jobs.stored_probs). Labelled images the
   teacher holds stored validation probabilities for are not predicted: those (of images its models
   did not train on) are taken. A `cv` teacher run on the train split thus gives out-of-fold
   probabilities for every labelled image, where predicting them would give back their labels.
2. Each image's target: for a labelled one, hard_weight x its labels + (1 - hard_weight) x the
   teacher's probabilities; for an unlabelled one, the teacher's probabilities. Written to
   OUT.teacher/targets.npy and read through a memory map.
3. The student trains on those targets like any run (its own backbone, augmentation and dropout
   that the teacher did not see: a noisy student), validates and tunes its thresholds on the
   labelled validation split, and is an ordinary run directory (predict, serve, export, report).
With `rounds` K > 1, each student teaches the next (OUT.round1, ..., the last is OUT).
With `teaching` "online" steps 1-2 give way to online_teacher.py: the targets file holds the labels
(NaN for the unlabelled images) and the teacher predicts each step's own crops and mixes.

Unlabelled images that the label file names (any split: train, validation or test) are left out,
so that validation and test stay unseen. RUN/distillation.json records the teacher, its TTA and the counts.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.model_card import DATA_COUNTS, write_data_counts, write_model_card
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunDir
from fashionstyle.data.images.source import ImageSource
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.inference.jobs import Placement, model_files, stored_probs
from fashionstyle.inference.outputs import write_npy_rows
from fashionstyle.inference.streaming import LoaderSettings
from fashionstyle.training.loop import prepare_tables, read_label_file, train_multi
from fashionstyle.training.online_teacher import OnlineTeacher

RECORD = "distillation.json"  # the teacher and the counts, in OUT.teacher/ and then in the run
UNLABELLED_ID = "unlabelled/"  # prefix of an unlabelled image's id in the student's table
CHUNK = 65536  # rows of targets written at a time


def train_distilled(config: TrainConfig, out: str | Path, resume: bool = False) -> RunDir:
    """`config.rounds` rounds of teacher -> student; the last student is `out`."""
    if config.mode != "multi":
        raise FashionStyleError("distillation trains one multi-label student; drop --mode single")
    teacher, out = Path(config.teacher), Path(out)
    run = None
    for k in range(1, config.rounds + 1):
        target = round_folder(out, k, config.rounds)
        done = resume and (target / "manifest.json").is_file() and RunDir(target).manifest().get("complete")
        run = RunDir(target) if done else distill_round(config, teacher, target, resume, k)
        if done and not (target / RECORD).is_file():  # stopped between the student's end and its record
            finish(run)
        teacher = run.path
    return run


# -- the folder layout: OUT.round1 .. OUT.round{K-1}, then OUT; each student's teacher pass in STUDENT.teacher
def round_folder(out: str | Path, k: int, rounds: int) -> Path:
    """Where round `k` of `rounds` puts its student: OUT.roundK, the last round OUT itself."""
    return Path(out) if k == rounds else Path(f"{out}.round{k}")


def teacher_folder(student: str | Path) -> Path:
    """A student's teacher pass (probs.npy, targets.npy, the record): STUDENT.teacher."""
    return Path(f"{student}.teacher")


def saved_student_config(out: str | Path) -> Path | None:
    """The config.yaml a `distill --resume` into `out` continues with: OUT's, else a round's (OUT.roundK);
    None for a distill stopped in its first teacher pass; refuses in one line when nothing was started."""
    out = Path(out)
    runs = (out, *sorted(p for p in out.parent.glob(f"{out.name}.round*") if p.suffix != ".teacher"))
    found = [run / "config.yaml" for run in runs if (run / "config.yaml").is_file()]
    if found:
        return found[0]
    if not any(out.parent.glob(f"{out.name}*.teacher")):
        RunDir(out).require_resumable()
    return None


def distill_round(config: TrainConfig, teacher_path: Path, out: Path, resume: bool, round_number: int = 1) -> RunDir:
    """One student trained on `teacher_path`'s probabilities (see the module docstring). `resume`
    keeps the teacher's finished parts, and continues the student's training when it had started;
    with stored teaching it needs no teacher run once every target is stored (`kept_targets`)."""
    train_resume = resume and (out / "manifest.json").is_file()
    if not train_resume and not is_secondary_process():
        RunDir.create(out)  # refuses a non-empty --out before the teacher's long pass
    folder = teacher_folder(out)
    kept = resume and config.teaching == "stored" and not teacher_path.exists()
    teacher = None if kept else RunDir.open(teacher_path)
    table = read_label_file(config)
    train_table, val_table, bad = prepare_tables(config, table)
    unlabelled_ids, unlabelled_paths = unlabelled_images(config.unlabelled, table.images)  # less every split's images
    online, files = None, []
    if teacher is None:
        targets = kept_targets(folder, teacher_path, len(train_table) + len(unlabelled_ids),
                               len(train_table.label_names))
    else:
        columns = teacher_columns(teacher, train_table.label_names)
        decide_at = teacher.thresholds().thresholds_[columns] if config.pseudo == "hard" else None
        if config.teaching == "online":
            files = teacher_files(teacher, with_thresholds=decide_at is not None)
            if train_resume:
                check_same_teacher(folder, files)
            online = online_teacher(teacher, columns, config.hard_weight, decide_at)
            held_out: dict[str, np.ndarray] = {}
            targets = unknown_targets(folder / "targets.npy", train_table.require_targets(), len(unlabelled_ids))
        else:
            targets, held_out = stored_targets(config, teacher, (train_table, val_table),
                                               (unlabelled_ids, unlabelled_paths), columns, folder, resume, decide_at)
    student = LabelTable(train_table.label_names, [*train_table.ids, *unlabelled_ids],
                         [*train_table.images, *unlabelled_paths], targets, source=train_table.source)
    if not is_secondary_process():
        if teacher is not None:  # without it, the record of the pass that made the targets stays
            atomic.write_json(folder / RECORD, {
                "teacher": str(teacher.path.resolve()), "round": round_number,
                "teacher_tta": teacher.tta() if online is None else "none (online)",
                "labelled_images": len(train_table), "unlabelled_images": len(unlabelled_ids),
                "held_out_images": len(held_out), "hard_weight": config.hard_weight, "pseudo": config.pseudo,
                "teaching": config.teaching, **({"teacher_files": files} if files else {})})
        write_data_counts(RunDir(folder), {"train": train_table.require_targets(), "val": val_table.require_targets()})
    run = train_multi(config, out, train_resume, tables=(student, val_table, bad), teacher=online)
    if not is_secondary_process() and run.manifest().get("complete"):
        finish(run)
    return run


def kept_targets(folder: Path, teacher_path: Path, rows: int, labels: int) -> np.ndarray:
    """The targets an earlier teacher pass stored in `folder` (a memory map), for a resume whose
    teacher run is gone; complete once the record beside them was written, else a one-line refusal."""
    path = folder / "targets.npy"
    if not (folder / RECORD).is_file() or not path.is_file():
        raise FashionStyleError(f"{teacher_path}: the teacher run is gone and {folder} does not hold every target "
                                "of its pass; restore the teacher run, or train a new student into another --out")
    targets = np.load(path, mmap_mode="r")
    if targets.shape != (rows, labels):
        raise FashionStyleError(f"{path}: holds {targets.shape[0]} x {targets.shape[1]} targets, the student needs "
                                f"{rows} x {labels}, and the teacher run {teacher_path} that made them is gone; "
                                "train a new student into another --out")
    if not is_secondary_process():
        print(f"note: the teacher run {teacher_path} is gone: resuming on the targets its pass stored in {folder}",
              file=sys.stderr)
    return targets


def stored_targets(config: TrainConfig, teacher: RunDir, tables: tuple[LabelTable, LabelTable],
                   unlabelled: tuple[list[str], list[Path]], columns: list[int], folder: Path, resume: bool,
                   decide_at: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stored teaching: the targets (a memory map in `folder`) from the teacher's held-out rows and
    its predictions of the other images, made once; and the held-out rows taken."""
    train_table, val_table = tables
    stored = stored_validation(teacher)
    held_out = held_out_probs(stored, train_table, columns)
    warn_if_validation_seen(teacher, stored[0], val_table.ids)
    labelled, unlabelled_probs = teacher_probs(config, teacher, train_table, held_out, unlabelled,
                                               folder / "probs.npy", resume)
    return soft_targets(folder / "targets.npy", train_table.require_targets(), labelled, unlabelled_probs, columns,
                        config.hard_weight, decide_at), held_out


def teacher_columns(teacher: RunDir, names: list[str]) -> list[int]:
    """The teacher's output column of each of the student's labels, or a one-line refusal."""
    given = teacher.label_names()
    missing = [n for n in names if n not in given]
    if missing:
        raise FashionStyleError(f"{teacher.path}: the teacher does not predict {', '.join(missing)} "
                                f"(it predicts {', '.join(given)})")
    return [given.index(n) for n in names]


def unlabelled_images(source: str, labelled: list[Path]) -> tuple[list[str], list[Path]]:
    """Ids and paths of the unlabelled images (a folder, list or CSV), less those that are labelled."""
    if not source:
        return [], []
    known = {Path(p).resolve() for p in labelled}
    kept = [(i, p) for i, p in ImageSource.open(source, recursive=True) if Path(p).resolve() not in known]
    if not kept:
        raise FashionStyleError(f"{source}: no unlabelled images left (every one is a labelled image)")
    return [UNLABELLED_ID + i for i, _ in kept], [Path(p) for _, p in kept]


def teacher_probs(config: TrainConfig, teacher: RunDir, train_table: LabelTable, held_out: dict[str, np.ndarray],
                  unlabelled: tuple[list[str], list[Path]], out: Path, resume: bool) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's probabilities of the labelled images (in memory: held-out rows, else predicted)
    and of the unlabelled ones (a memory map). Only the images without a held-out row are predicted,
    into `out`, streamed and resumable."""
    to_predict = [i for i, image_id in enumerate(train_table.ids) if image_id not in held_out]
    ids = [*(train_table.ids[i] for i in to_predict), *unlabelled[0]]
    if not ids:  # every labelled image held out, and no unlabelled ones
        probs = np.empty((0, len(teacher.label_names())), np.float32)
    else:
        loader = LoaderSettings(config.batch_size, config.num_workers, config.on_bad_image, progress=config.progress)
        probs = stored_probs(teacher, ids, [*(train_table.images[i] for i in to_predict), *unlabelled[1]], out,
                             resume, loader=loader, placement=Placement(config.accelerator, config.devices,
                                                                        config.num_nodes))
    return labelled_teacher_probs(train_table.ids, held_out, probs[:len(to_predict)]), probs[len(to_predict):]


def stored_validation(teacher: RunDir) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The teacher's stored validation (ids, probs, targets), read once; empty for a teacher without
    them (one rebuilt from a hub folder)."""
    if not (teacher / "val_probs.npz").is_file():
        return [], np.zeros((0, 0), np.float32), np.zeros((0, 0), np.uint8)
    return teacher.val_probs()


def held_out_probs(stored: tuple[list[str], np.ndarray, np.ndarray], table: LabelTable,
                   columns: list[int]) -> dict[str, np.ndarray]:
    """The teacher's `stored` validation probabilities of the images of `table` it has them for, by id.
    They are of images its models did not train on (a cv run's are out-of-fold for its whole pool), so
    they stand for predicting those images again, which would give back what the models learnt. An id
    counts only where the teacher stored the same labels for it (ids are file names: another data
    set's `0001.jpg` is another photo)."""
    labels = dict(zip(table.ids, table.require_targets()))
    return {image_id: row for image_id, row, targets in zip(*stored)
            if image_id in labels and np.array_equal(targets[columns], labels[image_id])}


def warn_if_validation_seen(teacher: RunDir, stored_ids: list[str], val_ids: list[str]) -> None:
    """A warning when an out-of-fold teacher (its `stored_ids`: its whole pool) trained on some of the
    student's validation images (a cv run over train and validation): the student's validation scores
    then flatter it."""
    seen = set(stored_ids) & set(val_ids)
    if seen and teacher.out_of_fold() and not is_secondary_process():
        print(f"warning: the teacher {teacher.path} trained on {len(seen)} of the {len(val_ids)} validation "
              f"images (a cv run over them): the student's validation scores will flatter it; run the cv "
              f"on the train split alone", file=sys.stderr)


def labelled_teacher_probs(ids: list[str], held_out: dict[str, np.ndarray], predicted: np.ndarray) -> np.ndarray:
    """(N, teacher's L) for the labelled images: the held-out row where there is one, else the next
    predicted row (`predicted` holds the others, in order)."""
    rows, taken = [], iter(range(len(predicted)))
    for image_id in ids:
        rows.append(held_out[image_id] if image_id in held_out else predicted[next(taken)])
    return np.array(rows, np.float32).reshape(len(ids), predicted.shape[1])


def soft_targets(path: Path, hard: np.ndarray, labelled: np.ndarray, unlabelled: np.ndarray, columns: list[int],
                 hard_weight: float, thresholds: np.ndarray | None = None) -> np.ndarray:
    """(N, L) float32 targets into `path` (a memory map back): the labelled rows mix the labels `hard`
    and the teacher's probabilities `labelled` by `hard_weight`; then the `unlabelled` rows, the
    teacher's alone. With `thresholds` (pseudo "hard") the teacher's decisions at them stand for its
    probabilities. A row the teacher could not read (NaN) keeps its labels, or 0 for an unlabelled
    image (it is skipped too)."""
    def teacher_rows(rows: np.ndarray) -> np.ndarray:
        teacher = np.asarray(rows[:, columns], np.float32)
        if thresholds is None:
            return teacher
        decided = OperatingPoint("teacher", np.asarray(thresholds, np.float64)).decide(teacher)
        return np.where(np.isnan(teacher), np.nan, decided.astype(np.float32))

    def blocks():
        for start in range(0, len(hard), CHUNK):
            labels = np.asarray(hard[start:start + CHUNK], np.float32)
            mixed = hard_weight * labels + (1 - hard_weight) * teacher_rows(labelled[start:start + CHUNK])
            yield np.where(np.isnan(mixed), labels, mixed)
        for start in range(0, len(unlabelled), CHUNK):
            yield np.nan_to_num(teacher_rows(unlabelled[start:start + CHUNK]), nan=0.0)

    write_npy_rows(path, (len(hard) + len(unlabelled), len(columns)), blocks())
    return np.load(path, mmap_mode="r")


def online_teacher(teacher: RunDir, columns: list[int], hard_weight: float,
                   decide_at: np.ndarray | None) -> OnlineTeacher:
    """The teacher's models for online teaching, or a refusal for an out-of-fold teacher (its fold
    models trained on most of the student's images: online, every model predicts every crop)."""
    if teacher.out_of_fold():
        raise FashionStyleError(f"{teacher.path}: an out-of-fold teacher (a cv run, or a fusion or selection of "
                                "cv runs) teaches through its stored held-out probabilities; use --teaching stored")
    return OnlineTeacher.from_run(teacher, columns, hard_weight, decide_at)


def teacher_files(teacher: RunDir, with_thresholds: bool) -> list[dict[str, object]]:
    """The teacher's model files (and thresholds, for pseudo "hard") by path, size and time: what an
    online-taught student's resume must find unchanged."""
    files = model_files(teacher.contents())
    if with_thresholds:
        path = (teacher / "thresholds.json").resolve()
        files.append({"path": str(path), "size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns})
    return files


def check_same_teacher(folder: Path, files: list[dict[str, object]]) -> None:
    """Refuse to resume an online-taught student whose teacher's files changed since it started."""
    record = folder / RECORD
    then = atomic.read_json(record).get("teacher_files") if record.is_file() else None
    if then is not None and then != files:
        raise FashionStyleError(f"{folder}: the teacher's models changed since this student started (online "
                                "teaching predicts with them at every step); train a new student into another --out")


def unknown_targets(path: Path, hard: np.ndarray, n_unlabelled: int) -> np.ndarray:
    """(N, L) float32 targets into `path` (a memory map back) for online teaching: the labelled rows'
    labels, then NaN (unknown: the teacher's alone) for each unlabelled image."""
    def blocks():
        for start in range(0, len(hard), CHUNK):
            yield np.asarray(hard[start:start + CHUNK], np.float32)
        for start in range(0, n_unlabelled, CHUNK):
            yield np.full((min(CHUNK, n_unlabelled - start), hard.shape[1]), np.nan, np.float32)

    path.parent.mkdir(parents=True, exist_ok=True)
    write_npy_rows(path, (len(hard) + n_unlabelled, hard.shape[1]), blocks())
    return np.load(path, mmap_mode="r")


def finish(run: RunDir) -> None:
    """RUN/distillation.json and the card's data counts (the labelled images' own labels), from the
    OUT.teacher/ copies written before training, then the model card."""
    folder = teacher_folder(run.path)
    for name in (RECORD, DATA_COUNTS):
        atomic.write_json(run / name, atomic.read_json(folder / name, str(folder)))
    write_model_card(run)
