"""A hub folder loads with Hugging Face transformers (issue 44): `pipeline("image-classification",
trust_remote_code=True)` offline gives every label's sigmoid score, as fashionstyle.load() does for the same
photos (TTA included); the weights are stored once; fashionstyle predicts without importing transformers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fashionstyle
from conftest import LABELS
from fashionstyle.core.run import RunDir
from fashionstyle.inference.hub import export_hub

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def own_hub_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FASHIONSTYLE_HUB_CACHE", str(tmp_path / "fashionstyle-hub-runs"))


def pipeline_scores(folder: Path | str, images: list[Path]) -> np.ndarray:
    """(N, L) scores of transformers' pipeline, in LABELS order."""
    tagger = transformers.pipeline("image-classification", model=str(folder), trust_remote_code=True,
                                   top_k=len(LABELS))
    results = tagger([str(p) for p in images])
    assert all(len(r) == len(LABELS) for r in results)  # every label, not the top 5
    return np.array([[{s["label"]: s["score"] for s in r}[label] for label in LABELS] for r in results])


@pytest.mark.parametrize("tta", ["none", "ten-crop"])
def test_the_pipeline_scores_as_fashionstyle_load_offline(run_copy, tmp_path, tta) -> None:
    run = RunDir(run_copy.run)
    run.write_tta(tta)  # the processor's views and the model's mean over them, as fashionstyle's TTA
    folder = export_hub(RunDir.open(run.path), tmp_path / "hub")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    images = run_copy.images[:6]
    expected = fashionstyle.load(folder).predictor.predict_proba(images)
    np.testing.assert_allclose(pipeline_scores(folder, images), expected, atol=1e-5)


def test_config_json_is_what_transformers_reads_and_the_weights_are_stored_once(shared_run, tmp_path) -> None:
    folder = export_hub(RunDir.open(shared_run.run), tmp_path / "hub")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "fashionstyle" and config["problem_type"] == "multi_label_classification"
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    assert [p.name for p in folder.glob("*.safetensors")] == ["model.safetensors"]
    model = transformers.AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
    assert model.config.thresholds == config["thresholds"] and model.config.id2label == dict(enumerate(LABELS))
    timm_backbone = fashionstyle.load(folder).predictor.members[0].model.backbone
    assert type(model.backbone) is type(timm_backbone)  # the fine-tuned timm backbone, for other heads


@pytest.mark.slow
def test_a_hub_id_loads_offline_in_both_and_fashionstyle_never_imports_transformers(shared_run, tmp_path) -> None:
    from test_hub import hub_cache

    folder = export_hub(RunDir.open(shared_run.run), tmp_path / "hub" / "mine")
    images = [str(p) for p in shared_run.images[:3]]
    script = ("import sys, json, fashionstyle\n"
              f"probs = fashionstyle.load('user/mine').predictor.predict_proba({images!r})\n"
              "assert 'transformers' not in sys.modules, 'fashionstyle imported transformers'\n"
              "from transformers import pipeline\n"
              f"tagger = pipeline('image-classification', model='user/mine', trust_remote_code=True, top_k=3)\n"
              f"scores = [{{s['label']: s['score'] for s in r}} for r in tagger({images!r})]\n"
              f"print(json.dumps({{'ours': probs.tolist(), 'theirs': [[s[n] for n in {list(LABELS)!r}] "
              "for s in scores]}))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache(folder, tmp_path / "hf")),
           "OMP_NUM_THREADS": "1", "FASHIONSTYLE_HUB_CACHE": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    np.testing.assert_allclose(result["theirs"], result["ours"], atol=1e-5)
