"""Distillation and self-training (`fashionstyle distill`), and the augmentation levers (mixup, cutmix,
TrivialAugment, RandAugment)."""
from __future__ import annotations

import json
import shlex
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, make_image_set
from fashionstyle.cli import main
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.read import read_labels
from fashionstyle.data.transforms import TrainCrop
from fashionstyle.training.distill import labelled_teacher_probs, soft_targets
from fashionstyle.training.loop import labelled_rows
from fashionstyle.training.mixing import mix_batch
from fashionstyle.training.online_teacher import OnlineTeacher, TeacherModel, unnormalise, with_known_mass
from fashionstyle.data.images.files import Preprocessing


def test_soft_targets_mix_labels_and_teacher_and_keep_labels_where_the_teacher_could_not_read(tmp_path) -> None:
    hard = np.array([[1, 0], [0, 1], [1, 1]], np.uint8)
    probs = np.array([[0.2, 0.9, 0.5], [0.6, 0.1, 0.5], [np.nan] * 3, [0.3, 0.7, 0.5], [np.nan] * 3], np.float32)
    targets = soft_targets(tmp_path / "t.npy", hard, probs[:3], probs[3:], columns=[1, 0], hard_weight=0.25)
    expected = np.array([[0.25 + 0.75 * 0.9, 0.75 * 0.2],        # labelled: mixed, columns reordered
                         [0.75 * 0.1, 0.25 + 0.75 * 0.6],
                         [1.0, 1.0],                              # labelled, teacher NaN: the labels
                         [0.7, 0.3],                              # unlabelled: the teacher's alone
                         [0.0, 0.0]], np.float32)                 # unlabelled and unreadable
    np.testing.assert_allclose(targets, expected, rtol=1e-6)
    assert isinstance(targets, np.memmap) and not targets.flags.writeable
    decided = soft_targets(tmp_path / "h.npy", hard, probs[:3], probs[3:], columns=[1, 0], hard_weight=0.25,
                           thresholds=np.array([0.5, 0.25]))
    np.testing.assert_allclose(decided[3:], [[1.0, 1.0], [0.0, 0.0]])  # 0.7 >= 0.5, 0.3 >= 0.25; NaN: 0
    np.testing.assert_allclose(decided[0], [0.25 + 0.75 * 1.0, 0.75 * 0.0])  # 0.9 >= 0.5; 0.2 < 0.25


def test_labelled_images_take_the_held_out_row_where_there_is_one_and_the_predicted_rows_in_order() -> None:
    held_out = {"b": np.array([0.5, 0.5], np.float32)}
    predicted = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)
    rows = labelled_teacher_probs(["a", "b", "c"], held_out, predicted)
    np.testing.assert_allclose(rows, [[0.1, 0.2], [0.5, 0.5], [0.3, 0.4]])
    assert labelled_teacher_probs(["b"], held_out, predicted[:0]).shape == (1, 2)


class _MeanOfInput(torch.nn.Module):
    """Logits: each label's logit is the mean of the normalised input, plus a per-label offset; it
    records the input's side."""

    def __init__(self, offsets: list[float]):
        super().__init__()
        self.offsets, self.sides = torch.tensor(offsets), []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sides.append(x.shape[-1])
        return x.mean(dim=(1, 2, 3))[:, None] + self.offsets


def test_an_online_teacher_mixes_labels_with_its_probabilities_by_the_labelled_share() -> None:
    own = Preprocessing(16, (0.2, 0.3, 0.4), (0.5, 0.25, 0.1))  # 0.8 pixels -> (1.2, 2, 4): mean 2.4
    a, b = _MeanOfInput([0.0, 1.0, -1.0]), _MeanOfInput([2.0, 0.0, 0.0])
    models = [TeacherModel(a, own, [([0, 1, 2], [0, 1, 2], 1.0)]),
              TeacherModel(b, Preprocessing(8, (0.5,) * 3, (0.5,) * 3), [([0], [0], 3.0)])]  # 0.8 -> 0.6, side 8
    teacher = OnlineTeacher(models, 3, columns=[2, 0], hard_weight=0.25)  # the student's labels: teacher's 2 and 0
    pixels = torch.full((3, 3, 16, 16), 0.8)
    probs = teacher.probs(pixels)
    sig = torch.sigmoid
    expected = torch.tensor([sig(torch.tensor(2.4 - 1.0)), (sig(torch.tensor(2.4)) + 3 * sig(torch.tensor(2.6))) / 4])
    torch.testing.assert_close(probs, expected.expand(3, 2))  # each member normalised its own way, weighted per label
    assert a.sides == [16] and b.sides == [8]  # each member at its own size
    labels = torch.tensor([[1.0, 0.0], [float("nan"), float("nan")], [0.0, 1.0]])
    labelled = with_known_mass(labels)
    torch.testing.assert_close(labelled, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    targets = teacher.targets(pixels, labelled)
    torch.testing.assert_close(targets[0], 0.25 * labels[0] + 0.75 * expected)
    torch.testing.assert_close(targets[1], expected)  # unlabelled: the teacher's alone
    blend = 0.7 * labelled[0] + 0.3 * labelled[1]  # 70% a labelled image, 30% an unlabelled one
    torch.testing.assert_close(teacher.targets(pixels[:1], blend[None])[0],
                               0.25 * 0.7 * labels[0] + (1 - 0.25 * 0.7) * expected)
    hard = OnlineTeacher(models, 3, columns=[2, 0], hard_weight=0.0, thresholds=np.array([0.9, 0.5], np.float32))
    torch.testing.assert_close(hard.probs(pixels), torch.tensor([[0.0, 1.0]] * 3))  # pseudo hard: decisions


def test_the_students_input_goes_back_to_its_pixels_for_the_teacher() -> None:
    from fashionstyle.data.transforms import DeviceInput
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    flip = torch.tensor([True, False])
    stats = [torch.tensor(v).view(1, 3, 1, 1) for v in (mean, std)]
    back = unnormalise(DeviceInput(mean, std, channels_last=True)(images, flip), *stats)
    torch.testing.assert_close(back, torch.stack([images[0].flip(-1), images[1]]).float() / 255, atol=1e-5, rtol=0)


def test_the_loss_statistics_come_from_the_rows_with_known_labels() -> None:
    targets = np.array([[1, 0], [np.nan, np.nan], [0, 1]], np.float32)
    np.testing.assert_array_equal(labelled_rows(targets), [[1, 0], [0, 1]])
    np.testing.assert_array_equal(labelled_rows(targets, chunk=2), [[1, 0], [0, 1]])  # across chunks
    ints = np.array([[1, 0]], np.uint8)
    assert labelled_rows(ints) is ints


def test_mixup_blends_images_and_targets_by_one_weight() -> None:
    torch.manual_seed(0)
    images, targets = torch.rand(6, 3, 8, 8), (torch.rand(6, 4) < 0.5).float()
    mixed, soft = mix_batch(images, targets, mixup=0.4)
    torch.manual_seed(0)
    torch.rand(6, 3, 8, 8), torch.rand(6, 4)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    order = torch.randperm(6)
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images[order])
    torch.testing.assert_close(soft, lam * targets + (1 - lam) * targets[order])
    assert mix_batch(images, targets)[0] is images  # off by default


def test_cutmix_blends_targets_by_the_area_actually_pasted() -> None:
    torch.manual_seed(3)
    images = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 3, 10, 10).clone()  # image 0 all 0, image 1 all 1
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for _ in range(20):
        mixed, soft = mix_batch(images, targets, cutmix=1.0)
        own = (mixed[0, 0] == 0).float().mean()  # image 0's share left after the paste
        if not torch.equal(mixed, images):  # the shuffle may pair an image with itself
            torch.testing.assert_close(soft[0], own * targets[0] + (1 - own) * targets[1])


@pytest.mark.parametrize("augment", ["trivialaugment", "randaugment"])
def test_augmentations_keep_a_uint8_crop_of_the_size(augment: str) -> None:
    crop = TrainCrop(24, augment=augment)(torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8))
    assert crop.image.dtype == torch.uint8 and crop.image.shape == (3, 24, 24)


def test_distillation_settings_are_checked_in_one_line() -> None:
    with pytest.raises(FashionStyleError, match="unlabelled, rounds and teaching need a teacher"):
        TrainConfig(unlabelled="photos/").validate()
    with pytest.raises(FashionStyleError, match="teaching need a teacher"):
        TrainConfig(teaching="online").validate()
    with pytest.raises(FashionStyleError, match="unknown value 'live'; valid: stored, online"):
        TrainConfig(teacher="runs/x", teaching="live").validate()
    with pytest.raises(FashionStyleError, match="--hard-weight must be a finite number in"):
        TrainConfig(teacher="runs/x", hard_weight=1.5).validate()
    with pytest.raises(FashionStyleError, match="unknown value 'autoaugment'; valid: none, trivialaugment"):
        TrainConfig(augment="autoaugment").validate()


def test_a_teacher_without_the_students_labels_is_refused_before_anything_is_written(shared_run, tmp_path,
                                                                                      capsys) -> None:
    other = tmp_path / "other.csv"
    other.write_text("image,split,Red,Plaid\n" + "".join(
        f"{p},{s},1,0\n" for p, s in zip(shared_run.images[:8], ["train", "val"] * 4)))
    out = tmp_path / "student"
    assert main(["distill", str(shared_run.run), "--labels", str(other), "--out", str(out), *TINY_TRAIN]) == 2
    assert "the teacher does not predict Plaid" in capsys.readouterr().err
    assert not Path(f"{out}.teacher").exists() and [p.name for p in out.iterdir()] in ([], [".lock"])


@pytest.mark.slow
def test_distill_trains_a_student_on_the_teachers_probabilities_with_unlabelled_images(shared_run, tmp_path) -> None:
    extra = make_image_set(tmp_path / "extra", n=12, seed=5).parent / "img"
    for labelled in shared_run.images:  # the label file's images (train, val and test) are left out
        (extra / f"labelled_{labelled.name}").symlink_to(labelled)
    out = tmp_path / "student"
    args = ["distill", str(shared_run.run), "--labels", str(shared_run.labels), "--out", str(out),
            "--unlabelled", str(extra), "--hard-weight", "0.5", *TINY_TRAIN, "--epochs", "1",
            "--mixup", "0.2", "--cutmix", "1.0", "--augment", "trivialaugment"]
    assert main(args) == 0
    record = json.loads((out / "distillation.json").read_text())
    train = read_labels(shared_run.labels).split("train")
    assert record["labelled_images"] == len(train) == 16 and record["unlabelled_images"] == 12
    probs = np.load(Path(f"{out}.teacher") / "probs.npy")
    targets = np.load(Path(f"{out}.teacher") / "targets.npy")
    assert probs.shape == targets.shape == (16 + 12, 3)
    np.testing.assert_allclose(targets[:len(train)], 0.5 * train.targets + 0.5 * probs[:len(train)], rtol=1e-6)
    np.testing.assert_allclose(targets[len(train):], probs[len(train):], rtol=1e-6)
    assert "Distilled (round 1)" in (out / "MODEL_CARD.md").read_text()
    assert main(["predict", str(out), "--images", str(extra), "--out", str(tmp_path / "tags.csv")]) == 0
    # the teacher's probabilities are computed once: another student, at another batch size, reuses them
    other = tmp_path / "other"
    shutil.copytree(Path(f"{out}.teacher"), Path(f"{other}.teacher"))
    before = (Path(f"{other}.teacher") / "probs.npy").stat().st_mtime_ns
    assert main([*args[:5], str(other), *args[6:], "--batch-size", "4"]) == 0
    assert (Path(f"{other}.teacher") / "probs.npy").stat().st_mtime_ns == before


@pytest.mark.slow
def test_online_teaching_predicts_each_step_of_the_students_crops_with_unlabelled_images(shared_run, tmp_path,
                                                                                      monkeypatch) -> None:
    extra = make_image_set(tmp_path / "extra", n=6, seed=5).parent / "img"
    seen: list[tuple[float, float, bool]] = []  # each step's pixel range, and whether a row was part unlabelled
    original = OnlineTeacher.targets

    def spy(self, pixels, labelled):
        seen.append((float(pixels.min()), float(pixels.max()), bool((labelled[:, -1] < 1).any())))
        made = original(self, pixels, labelled)
        assert not torch.isnan(made).any()
        return made

    monkeypatch.setattr(OnlineTeacher, "targets", spy)
    out = tmp_path / "student"
    assert main(["distill", str(shared_run.run), "--labels", str(shared_run.labels), "--out", str(out),
                 "--unlabelled", str(extra), "--teaching", "online", "--mixup", "0.2", *TINY_TRAIN, "--epochs", "1"]) == 0
    assert seen and all(-1e-4 <= low and high <= 1 + 1e-4 for low, high, _ in seen)  # the student's input as 0..1
    assert any(unknown for _, _, unknown in seen)
    train = read_labels(shared_run.labels).split("train")
    targets = np.load(Path(f"{out}.teacher") / "targets.npy")
    np.testing.assert_array_equal(targets[:len(train)], train.targets)
    assert targets.shape == (len(train) + 6, 3) and np.isnan(targets[len(train):]).all()
    assert not (Path(f"{out}.teacher") / "probs.npy").exists()  # no pass before training
    record = json.loads((out / "distillation.json").read_text())
    assert record["teaching"] == "online" and record["teacher_tta"] == "none (online)"
    assert [f["path"] for f in record["teacher_files"]] == [str((shared_run.run / "model.pt").resolve())]
    assert "online teaching" in (out / "MODEL_CARD.md").read_text()
    counts = json.loads((out / "data_counts.json").read_text())
    assert counts["train"]["positives"] == train.targets.sum(0).tolist()  # the labelled images' own labels
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["state_dict"] and all(k.startswith(("model.", "loss.")) for k in checkpoint["state_dict"])


def test_an_online_student_resumes_only_with_the_teacher_it_started_with(shared_run, tmp_path) -> None:
    from fashionstyle.core.run import RunDir
    from fashionstyle.training.distill import check_same_teacher, teacher_files

    files = teacher_files(RunDir(shared_run.run), with_thresholds=True)
    assert [Path(f["path"]).name for f in files] == ["model.pt", "thresholds.json"]
    folder = tmp_path / "student.teacher"
    folder.mkdir()
    (folder / "distillation.json").write_text(json.dumps({"teacher_files": files}))
    check_same_teacher(folder, files)  # unchanged: resumes
    retuned = [files[0], dict(files[1], mtime_ns=files[1]["mtime_ns"] + 1)]
    with pytest.raises(FashionStyleError, match="the teacher's models changed since this student started"):
        check_same_teacher(folder, retuned)


@pytest.mark.slow
def test_a_distill_stopped_after_the_teacher_pass_resumes_from_the_stored_probabilities(shared_run, tmp_path,
                                                                                        monkeypatch, capsys) -> None:
    from fashionstyle.core.run import RunInterrupted
    from fashionstyle.training import distill

    def stopped(config, out, resume, tables, teacher=None):
        raise RunInterrupted(signal.SIGTERM, Path(out))

    out = tmp_path / "student"
    args = ["distill", str(shared_run.run), "--labels", str(shared_run.labels), "--out", str(out), *TINY_TRAIN,
            "--epochs", "1"]
    with monkeypatch.context() as patched:
        patched.setattr(distill, "train_multi", stopped)
        assert main(args) == 143
    again = shlex.split(capsys.readouterr().err.strip().splitlines()[-1].split("resume it with: ")[1])
    assert again == ["fashionstyle", "distill", str(shared_run.run), "--out", str(out), "--resume"]
    before = (Path(f"{out}.teacher") / "probs.npy").stat().st_mtime_ns
    assert main([*again[1:], "--labels", str(shared_run.labels), *TINY_TRAIN, "--epochs", "1"]) == 0
    assert (Path(f"{out}.teacher") / "probs.npy").stat().st_mtime_ns == before
    assert json.loads((out / "distillation.json").read_text())["round"] == 1


@pytest.mark.slow
def test_self_training_rounds_make_each_student_the_next_teacher(shared_run, tmp_path) -> None:
    out = tmp_path / "noisy"
    assert main(["distill", str(shared_run.run), "--labels", str(shared_run.labels), "--out", str(out),
                 "--rounds", "2", *TINY_TRAIN, "--epochs", "1"]) == 0
    first = json.loads((Path(f"{out}.round1") / "distillation.json").read_text())
    second = json.loads((out / "distillation.json").read_text())
    assert first["teacher"] == str(shared_run.run.resolve()) and first["round"] == 1
    assert second["teacher"] == str(Path(f"{out}.round1").resolve()) and second["round"] == 2


@pytest.mark.slow
def test_a_cv_teacher_gives_its_out_of_fold_probabilities_for_the_labelled_images(shared_run, tmp_path,
                                                                                  capsys) -> None:
    teacher = tmp_path / "cv"
    assert main(["cv", "--labels", str(shared_run.labels), "--out", str(teacher), "--folds", "2",
                 *TINY_TRAIN, "--epochs", "1"]) == 0
    fused = tmp_path / "fused"
    assert main(["fuse", str(teacher), "--out", str(fused)]) == 0
    old_fusion = Path(shutil.copytree(fused, tmp_path / "old_fusion"))  # written before manifests said so
    manifest = json.loads((old_fusion / "manifest.json").read_text())
    (old_fusion / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "out_of_fold"}))
    for run in (teacher, fused, old_fusion):  # re-predicting out-of-fold images with every fold's models: refused
        before = (run / "thresholds.json").read_bytes()
        assert main(["tune", str(run), "--tta", "flip", "--labels", str(shared_run.labels)]) != 0
        assert "out-of-fold" in capsys.readouterr().err and (run / "thresholds.json").read_bytes() == before
    online = ["distill", str(teacher), "--labels", str(shared_run.labels), "--out", str(tmp_path / "online"),
              "--teaching", "online", *TINY_TRAIN]
    assert main(online) == 2 and "use --teaching stored" in capsys.readouterr().err
    out = tmp_path / "student"
    assert main(["distill", str(teacher), "--labels", str(shared_run.labels), "--out", str(out),
                 *TINY_TRAIN, "--epochs", "1"]) == 0
    assert "trained on 8 of the 8 validation images" in capsys.readouterr().err  # its cv pool took them
    record = json.loads((out / "distillation.json").read_text())
    train = read_labels(shared_run.labels).split("train")
    assert record["held_out_images"] == record["labelled_images"] == len(train)
    assert not (Path(f"{out}.teacher") / "probs.npy").exists()  # nothing predicted: every image held out
    assert "held out" in (out / "MODEL_CARD.md").read_text()
    with np.load(teacher / "val_probs.npz") as stored:
        oof = dict(zip(stored["ids"].tolist(), stored["probs"]))
    targets = np.load(Path(f"{out}.teacher") / "targets.npy")
    expected = 0.5 * train.targets + 0.5 * np.array([oof[i] for i in train.ids])
    np.testing.assert_allclose(targets, expected, rtol=1e-6)


def test_a_failed_merge_of_the_teachers_probabilities_is_recorded_for_the_other_ranks(shared_run, tmp_path,
                                                                                     monkeypatch) -> None:
    from fashionstyle.core.run import RunDir
    from fashionstyle.inference import jobs

    def disk_full(path, shape, rows):
        raise OSError("No space left on device")

    monkeypatch.setattr(jobs, "write_npy_rows", disk_full)
    out = tmp_path / "probs.npy"
    images = shared_run.images[:3]
    with pytest.raises(OSError, match="No space left"):
        jobs.stored_probs(RunDir.open(shared_run.run), [p.stem for p in images], images, out)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["failed"] == "No space left on device" and not out.exists()
    with pytest.raises(FashionStyleError, match="rank 0 could not merge the probabilities: No space left"):
        jobs.await_merge(out, record["key"], poll_s=0.01)

    def prediction_failed(*args):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(jobs, "run_job", prediction_failed)  # rank 0 failing before the merge: recorded too
    with pytest.raises(RuntimeError, match="out of memory"):
        jobs.stored_probs(RunDir.open(shared_run.run), [p.stem for p in images], images, out)
    assert json.loads(out.with_suffix(".json").read_text())["failed"] == "CUDA out of memory"


def test_held_out_rows_match_by_id_and_labels_and_a_teacher_without_them_has_none(shared_run, tmp_path) -> None:
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels.table import LabelTable
    from fashionstyle.training.distill import held_out_probs, stored_validation

    teacher = tmp_path / "teacher"
    shutil.copytree(shared_run.run, teacher)
    val = read_labels(shared_run.labels).split("val")  # the photos the teacher holds probabilities for
    columns = list(range(len(val.label_names)))
    assert set(held_out_probs(stored_validation(RunDir(teacher)), val, columns)) == set(val.ids)
    other = val.targets.copy()
    other[0] = 1 - other[0]  # the same file name, other labels: another data set's photo
    elsewhere = LabelTable(val.label_names, val.ids, val.images, other)
    assert set(held_out_probs(stored_validation(RunDir(teacher)), elsewhere, columns)) == set(val.ids[1:])
    (teacher / "val_probs.npz").unlink()  # as a run rebuilt from a hub folder
    assert held_out_probs(stored_validation(RunDir(teacher)), val, columns) == {}


@pytest.mark.slow
def test_distill_resumes_on_its_stored_targets_when_the_teacher_run_was_deleted(run_copy, tmp_path, monkeypatch,
                                                                             capsys) -> None:
    from fashionstyle.core.run import RunInterrupted
    from fashionstyle.training import distill

    def stopped(config, out, resume, tables, teacher=None):
        raise RunInterrupted(signal.SIGTERM, Path(out))

    out = tmp_path / "student"
    args = ["distill", str(run_copy.run), "--labels", str(run_copy.labels), "--out", str(out), *TINY_TRAIN,
            "--epochs", "1"]
    with monkeypatch.context() as patched:
        patched.setattr(distill, "train_multi", stopped)
        assert main(args) == 143  # stopped after the teacher pass stored every target
    record = json.loads((Path(f"{out}.teacher") / "distillation.json").read_text())
    targets = np.load(Path(f"{out}.teacher") / "targets.npy")
    shutil.rmtree(run_copy.run)  # the teacher run is gone
    capsys.readouterr()
    assert main([*args[:5], str(out), "--resume", *args[6:]]) == 0
    assert f"the teacher run {run_copy.run} is gone: resuming on the targets" in capsys.readouterr().err
    assert json.loads((out / "distillation.json").read_text()) == record  # the pass's own record kept
    np.testing.assert_array_equal(np.load(Path(f"{out}.teacher") / "targets.npy"), targets)
    assert (out / "model.pt").is_file() and json.loads((out / "manifest.json").read_text())["complete"]


def test_a_resume_without_the_teacher_and_without_its_stored_targets_is_refused_in_one_line(tmp_path) -> None:
    from fashionstyle.training.distill import kept_targets

    folder = tmp_path / "student.teacher"
    folder.mkdir()
    with pytest.raises(FashionStyleError, match="the teacher run is gone and .* does not hold every target"):
        kept_targets(folder, tmp_path / "teacher", rows=4, labels=3)
    np.save(folder / "targets.npy", np.zeros((5, 3), np.float32))
    (folder / "distillation.json").write_text("{}")
    with pytest.raises(FashionStyleError, match="holds 5 x 3 targets, the student needs 4 x 3"):
        kept_targets(folder, tmp_path / "teacher", rows=4, labels=3)
    assert kept_targets(folder, tmp_path / "teacher", rows=5, labels=3).shape == (5, 3)


def test_the_distill_folder_layout_has_one_home(tmp_path) -> None:
    from fashionstyle.core.run import RunDir
    from fashionstyle.training.distill import round_folder, saved_student_config, teacher_folder

    out = tmp_path / "noisy"
    assert [round_folder(out, k, 3) for k in (1, 2, 3)] == [tmp_path / "noisy.round1", tmp_path / "noisy.round2", out]
    assert teacher_folder(tmp_path / "noisy.round1") == tmp_path / "noisy.round1.teacher"
    with pytest.raises(FashionStyleError):  # nothing started: refused as any --resume of nothing
        saved_student_config(out)
    teacher_folder(out).mkdir()  # stopped in the first teacher pass: no config yet
    assert saved_student_config(out) is None
    (tmp_path / "noisy.round1").mkdir()
    (tmp_path / "noisy.round1" / "config.yaml").write_text("epochs: 1\n")
    assert saved_student_config(out) == tmp_path / "noisy.round1" / "config.yaml"
    RunDir.create(out)
    (out / "config.yaml").write_text("epochs: 1\n")
    assert saved_student_config(out) == out / "config.yaml"
