"""Hub folders and Hugging Face ids (issues 33 and 34): what export writes and its card's metadata; the
card's examples run as written; a hub folder or `user/repo` (offline, from huggingface_hub's cache) is
accepted wherever a run is; an edited config.json is checked against itself and the weights."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import fashionstyle
from conftest import LABELS
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import run_summary
from fashionstyle.inference.hub import export_hub


@pytest.fixture(autouse=True)
def own_hub_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FASHIONSTYLE_HUB_CACHE", str(tmp_path / "fashionstyle-hub-runs"))


@pytest.fixture(scope="module")
def hub_folder(shared_run, tmp_path_factory) -> Path:
    """The shared run exported as a hub folder (read-only: copy it to edit)."""
    return export_hub(RunDir.open(shared_run.run), tmp_path_factory.mktemp("hub") / "mine")


def edited(hub_folder: Path, tmp_path: Path, change) -> Path:
    folder = Path(shutil.copytree(hub_folder, tmp_path / "edited"))
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


# -- what export writes ----------------------------------------------------------------------
def test_the_card_metadata_is_what_the_hub_reads(hub_folder, shared_run) -> None:
    meta = front_matter((hub_folder / "README.md").read_text())
    assert meta["library_name"] == "fashionstyle" and meta["pipeline_tag"] == "image-classification"
    assert meta["license"] and "test_resnet" in meta["tags"] and "fashion" in meta["tags"]
    assert "base_model" not in meta  # trained from scratch (--no-pretrained): no base model to name
    (result,) = meta["model-index"][0]["results"]  # validation only: never evaluated on test
    summary = run_summary(RunDir(shared_run.run))
    values = {m["name"]: m["value"] for m in result["metrics"]}
    assert result["dataset"]["split"] == "validation" and result["task"]["type"] == "image-classification"
    assert meta["model-index"][0]["name"] == "mine" and result["dataset"]["name"] == "labels.csv"
    assert values["validation macro F2"] == pytest.approx(summary.val.macro_fbeta, abs=1e-4)
    for label, f2 in zip(LABELS, summary.val.fbeta):
        assert values[f"validation F2 {label}"] == pytest.approx(f2, abs=1e-4)


def test_a_pretrained_run_names_its_timm_base_model_and_test_scores(run_copy, tmp_path) -> None:
    config = yaml.safe_load((run_copy.run / "config.yaml").read_text())
    (run_copy.run / "config.yaml").write_text(yaml.safe_dump({**config, "pretrained": True}))
    assert main(["evaluate", str(run_copy.run), "--labels", str(run_copy.labels), "--split", "test", "--quiet"]) == 0
    meta = front_matter(export_hub(RunDir.open(run_copy.run), tmp_path / "hub").joinpath("README.md").read_text())
    assert meta["base_model"] == "timm/test_resnet.r160_in1k" and meta["license"] == "apache-2.0"
    splits = [r["dataset"]["split"] for r in meta["model-index"][0]["results"]]
    assert splits == ["validation", "test"]


def test_every_file_is_explained_and_hf_upload_is_the_publishing_command(hub_folder) -> None:
    card = (hub_folder / "README.md").read_text()
    files = card.split("## Files")[1].split("\n## ")[0]
    for path in hub_folder.iterdir():
        assert f"`{path.name}`" in files, path.name
    names = {p.name for p in hub_folder.iterdir()}
    assert {"config.yaml", "val_probs.npz", "modeling_fashionstyle.py", "preprocessor_config.json"} <= names
    assert [p.name for p in hub_folder.glob("*.safetensors")] == ["model.safetensors"]  # the weights once
    assert "hf upload USER/mine mine" in card and "huggingface-cli" not in card


def test_the_card_names_no_config_yaml_the_folder_lacks(run_copy, tmp_path) -> None:
    (run_copy.run / "config.yaml").unlink()
    out = export_hub(RunDir.open(run_copy.run), tmp_path / "hub")
    assert not (out / "config.yaml").exists() and "config.yaml" not in (out / "README.md").read_text()


def test_thresholds_are_written_once_in_config_json(hub_folder, shared_run) -> None:
    config = json.loads((hub_folder / "config.json").read_text())
    assert "thresholds" not in config["threshold_tuner"]  # no hidden second copy
    expected = RunDir(shared_run.run).thresholds().thresholds_
    assert [config["thresholds"][n] for n in LABELS] == pytest.approx(list(expected))


# -- the card's examples, as written -------------------------------------------------------
def code_blocks(card: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", card, re.S)


def test_the_cards_examples_run_as_written_on_the_exported_folder(hub_folder, shared_run, tmp_path,
                                                                  monkeypatch, capsys) -> None:
    card = (hub_folder / "README.md").read_text()
    work = tmp_path / "work"
    shutil.copytree(hub_folder, work / hub_folder.name)
    (work / "photos").mkdir()
    for image in shared_run.images[:3]:
        shutil.copy(image, work / "photos")
    shutil.copy(shared_run.images[3], work / "photo.jpg")
    monkeypatch.chdir(work)
    commands = [line.split("#")[0].strip() for block in code_blocks(card, "bash") for line in block.splitlines()
                if line.startswith(f"fashionstyle predict {hub_folder.name} ")]
    assert commands
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    assert len((work / "tags.csv").read_text().splitlines()) >= 3
    capsys.readouterr()
    for python in code_blocks(card, "python"):  # fashionstyle's, then transformers' pipeline
        exec(python, {})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[0].startswith("Prediction(image='photo.jpg', labels=[")
    assert all(f"'{label}': " in printed[1] for label in LABELS)  # every label's score, then the decided ones


# -- a hub folder or id wherever a run goes ------------------------------------------------
def test_a_hub_folder_predicts_as_its_run_does(hub_folder, shared_run) -> None:
    from_hub = fashionstyle.load(hub_folder).predictor.predict_proba(shared_run.images[:6])
    from_run = fashionstyle.load(shared_run.run).predictor.predict_proba(shared_run.images[:6])
    np.testing.assert_allclose(from_hub, from_run, atol=1e-6)
    opened = RunDir.open(hub_folder)
    assert opened.label_names() == list(LABELS) and opened.val_probs()[1].shape[1] == 3  # tune and report work


def hub_cache(folder: Path, root: Path, repo: str = "user/mine") -> Path:
    """`folder` laid out as huggingface_hub lays a downloaded model: models--user--mine/snapshots/REV, refs/main."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    model = root / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, model / "snapshots" / revision)
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text(revision)
    return root


def test_a_hub_id_loads_offline_from_huggingface_hubs_cache(hub_folder, shared_run, tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache(hub_folder, tmp_path / "hf")))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    tagger = fashionstyle.load("user/mine")
    assert tagger.label_names == list(LABELS)
    expected = fashionstyle.load(hub_folder).predictor.predict_proba(shared_run.images[:4])
    np.testing.assert_allclose(tagger.predictor.predict_proba(shared_run.images[:4]), expected, atol=1e-6)
    with pytest.raises(FashionStyleError, match="user/other: run directory not found"):
        RunDir.open("user/other")


def hub_error(kind: str) -> Exception:
    """huggingface_hub's error of that kind, without the HTTP response it is made from."""
    from huggingface_hub import errors

    err = getattr(errors, kind).__new__(getattr(errors, kind))
    Exception.__init__(err, "401 Client Error. (Request ID: Root=1-abc)\n\nCannot access gated repo for url ...")
    return err


@pytest.mark.parametrize(("kind", "ending"), [
    ("GatedRepoError", "the Hugging Face model is gated: accept its terms on its Hub page, then `hf auth login`"),
    ("RepositoryNotFoundError", "nor a Hugging Face model you can read (a private one needs `hf auth login`)"),
    ("HfHubHTTPError",
     "HfHubHTTPError: 401 Client Error. (Request ID: Root=1-abc) Cannot access gated repo for url ...)"),
])
def test_a_hub_id_that_cannot_be_had_says_why_whole_in_one_line(kind, ending, monkeypatch) -> None:
    import huggingface_hub

    def refuse(repo_id: str) -> str:
        raise hub_error(kind)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(FashionStyleError) as raised:
        RunDir.open("user/other")
    message = str(raised.value)
    assert message.startswith("user/other: run directory not found") and message.endswith(ending)
    assert "\n" not in message


def test_a_hub_id_missing_from_the_offline_cache_says_where_and_how_to_get_it(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FashionStyleError) as raised:
        RunDir.open("user/other")
    assert str(raised.value) == (
        f"user/other: run directory not found, nor a hub folder, nor in the Hugging Face cache (no snapshot under "
        f"{tmp_path / 'hf' / 'models--user--other'}); HF_HUB_OFFLINE=1 downloads nothing: run "
        "`hf download user/other` once online, or unset HF_HUB_OFFLINE")


@pytest.mark.slow
def test_predict_takes_a_hub_id_offline(hub_folder, shared_run, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache(hub_folder, tmp_path / "hf")),
           "OMP_NUM_THREADS": "1", "FASHIONSTYLE_HUB_CACHE": str(tmp_path / "runs")}
    out = tmp_path / "tags.csv"
    done = subprocess.run([sys.executable, "-m", "fashionstyle.cli", "predict", "user/mine", "--images",
                           str(shared_run.images[0].parent), "--out", str(out), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == len(shared_run.images) + 1


# -- an edited config.json -----------------------------------------------------------------------
def test_an_edited_thresholds_map_is_the_one_used(hub_folder, tmp_path) -> None:
    def change(config):
        config["thresholds"]["Red"] = 0.875
        config["threshold_tuner"]["thresholds"] = [0.1, 0.1, 0.1]  # an older export's hidden copy: ignored
    tagger = fashionstyle.load(edited(hub_folder, tmp_path, change))
    assert tagger.thresholds["Red"] == 0.875
    assert tagger.thresholds["Striped"] != 0.1


def set_labels(names: list[str], count: int | None = None):
    def change(config):
        config["id2label"] = {str(i): n for i, n in enumerate(names)}
        config["label2id"] = {n: i for i, n in enumerate(names)}
        config["thresholds"] = {n: 0.5 for n in names}
        config["num_labels"] = len(names) if count is None else count
        config["threshold_tuner"] = {"beta": 2.0, "default": 0.5, "rule": "exact"}
    return change


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["id2label"].update({"3": "Extra"}), r"id2label must have the keys 0, 1, 2 \(num_labels 3\)"),
    (lambda c: c.update(num_labels=4), r"id2label must have the keys 0, 1, 2, 3 \(num_labels 4\)"),
    (lambda c: c["label2id"].update({"Red": 2, "Dotted": 0}), "label2id .* disagrees with id2label"),
    (set_labels([*LABELS, "Extra"]), "the weights give 3 outputs, config.json names 4 labels"),
    (lambda c: c["thresholds"].update(Red=float("nan")), r"thresholds\[0\] must be a number in \[0, 1\], got nan"),
    (lambda c: c["thresholds"].update(Red=1.5), r"thresholds\[0\] must be a number in \[0, 1\], got 1.5"),
    (lambda c: c["thresholds"].pop("Red"), "thresholds must map each label"),
    (lambda c: c.update(hidden=64), "not the weights of a test_resnet with hidden size 64"),
    (lambda c: c.update(backbone="test_efficientnet"), "not the weights of a test_efficientnet"),
])
def test_an_edited_config_json_that_disagrees_is_one_line(hub_folder, tmp_path, capsys, change, message) -> None:
    folder = edited(hub_folder, tmp_path, change)
    out = tmp_path / "tags.csv"
    assert main(["predict", str(folder), "--images", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert "config.json" in err or "model.safetensors" in err
    assert not out.exists()


def test_a_missing_run_under_an_existing_folder_is_not_looked_up_on_the_hub(tmp_path, monkeypatch) -> None:
    from fashionstyle.inference import hub_resolve

    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub_resolve, "download", lambda repo: pytest.fail(f"looked up {repo} on the Hub"))
    with pytest.raises(FashionStyleError, match="runs/typo: run directory not found"):
        RunDir.open("runs/typo")


# -- a failed export (a full disk) -----------------------------------------------------------------
def test_an_export_that_fills_the_disk_keeps_the_previous_one_and_a_retry_succeeds(shared_run, tmp_path, capsys,
                                                                                  monkeypatch) -> None:
    import errno

    from fashionstyle.core import atomic

    write_atomic, written = atomic.write_atomic, []

    def full_disk(path, write):  # the disk fills up on the second file of an export
        written.append(path)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_atomic(path, write)

    out, first = tmp_path / "hub" / "mine", tmp_path / "hub" / "first"
    export_hub(RunDir.open(shared_run.run), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(atomic, "write_atomic", full_disk)
    for folder in (out, first):  # over an earlier export, and a first one
        written.clear()
        assert main(["export", str(shared_run.run), "--format", "hub", "--out", str(folder)]) == 2
        err = capsys.readouterr().err
        assert f"{folder}: no space left on device" in err and len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]  # nothing half-written left beside it
    assert fashionstyle.load(out).label_names == list(LABELS)
    monkeypatch.setattr(atomic, "write_atomic", write_atomic)  # space freed: the retries succeed
    for folder in (out, first):
        assert main(["export", str(shared_run.run), "--format", "hub", "--out", str(folder)]) == 0
        assert fashionstyle.load(folder).label_names == list(LABELS)
    assert sorted(p.name for p in out.parent.iterdir()) == ["first", "mine"]


def test_an_export_killed_mid_swap_is_put_back_and_replaced_on_retry(hub_folder, shared_run, tmp_path) -> None:
    out = tmp_path / "mine"
    shutil.copytree(hub_folder, tmp_path / ".mine.old-dead")  # killed between the two renames
    (tmp_path / ".mine.partial-dead").mkdir()  # and a half-written folder
    (tmp_path / ".mine.partial-dead" / "model.safetensors").write_bytes(b"half")
    export_hub(RunDir.open(shared_run.run), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert fashionstyle.load(out).label_names == list(LABELS)


def test_tune_refuses_a_hub_models_cached_run_and_tunes_a_copy(hub_folder, tmp_path, monkeypatch, capsys) -> None:
    from huggingface_hub import constants

    from conftest import fingerprint
    from fashionstyle.inference.hub_resolve import cache_root, is_hub_cache_entry

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache(hub_folder, tmp_path / "hf")))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cached = RunDir.open("user/mine").path
    assert is_hub_cache_entry(cached) and not is_hub_cache_entry(hub_folder)
    for source in ("user/mine", str(hub_folder), str(cached)):  # an id, a hub folder, the cached run itself
        opened = RunDir.open(source).path
        before = fingerprint(cache_root())
        assert main(["tune", source, "--beta", "1"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "copy that folder" in err and str(opened) in err, err
        assert fingerprint(cache_root()) == before
    copy = shutil.copytree(cached, tmp_path / "runs" / "mine")
    assert main(["tune", str(copy), "--beta", "1"]) == 0
    assert fashionstyle.load("user/mine").thresholds == fashionstyle.load(hub_folder).thresholds
