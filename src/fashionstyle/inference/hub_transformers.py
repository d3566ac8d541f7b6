"""What a hub folder carries for Hugging Face transformers: config.json's keys, the image processor's
config and the code that `trust_remote_code=True` runs (hub_remote/, copied as it is).

    config.update(transformers_keys())                  # model_type, auto_map, problem_type, architectures
    write_transformers_files(folder, preprocessing, "flip")

Then, without fashionstyle installed:

    pipeline("image-classification", model="hub/lite0", trust_remote_code=True, top_k=NUM_LABELS)

gives the sigmoid score of every label, as fashionstyle.load("hub/lite0") does (to within 1e-5 on the same
decoded pixels). fashionstyle never imports transformers: these are files it writes.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fashionstyle.core import atomic
from fashionstyle.data.images.files import Preprocessing, resize_size

REMOTE_CODE = Path(__file__).resolve().parent / "hub_remote"
MODEL_TYPE = "fashionstyle"
CONFIG_CLASS = "configuration_fashionstyle.FashionStyleConfig"
MODEL_CLASS = "modeling_fashionstyle.FashionStyleForImageClassification"
PROCESSOR_CLASS = "image_processing_fashionstyle.FashionStyleImageProcessor"
TRANSFORMERS_FILES = ("configuration_fashionstyle.py", "modeling_fashionstyle.py", "image_processing_fashionstyle.py",
                      "preprocessor_config.json")


def transformers_keys() -> dict[str, Any]:
    """config.json's keys that AutoConfig, AutoModel(ForImageClassification) and the pipeline read."""
    return {"model_type": MODEL_TYPE, "architectures": [MODEL_CLASS.split(".")[1]],
            "auto_map": {"AutoConfig": CONFIG_CLASS, "AutoModel": MODEL_CLASS,
                         "AutoModelForImageClassification": MODEL_CLASS},
            "problem_type": "multi_label_classification"}


def processor_config(preprocessing: Preprocessing, tta: str) -> dict[str, Any]:
    """preprocessor_config.json: the run's evaluation preprocessing (data/transforms.py's EvalViews and
    DeviceInput) for hub_remote/image_processing_fashionstyle.py."""
    return {"image_processor_type": PROCESSOR_CLASS.split(".")[1],
            "auto_map": {"AutoImageProcessor": PROCESSOR_CLASS},
            "image_size": preprocessing.image_size, "resize_shorter": resize_size(preprocessing.image_size),
            "image_mean": list(preprocessing.mean), "image_std": list(preprocessing.std), "tta": tta}


def write_transformers_files(folder: Path, preprocessing: Preprocessing, tta: str) -> None:
    """The remote code and preprocessor_config.json into the hub `folder`."""
    for name in TRANSFORMERS_FILES:
        if name.endswith(".py"):
            shutil.copyfile(REMOTE_CODE / name, folder / name)
    atomic.write_json(folder / "preprocessor_config.json", processor_config(preprocessing, tta))
