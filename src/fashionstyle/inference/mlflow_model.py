"""A run as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(frame)` gives the table
`fashionstyle.load(run).table(images)` gives (core/prediction.py's flat columns) for the images a frame names.

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")      # or "models:/NAME@ALIAS" after --register
    model.predict(pandas.DataFrame({"image": ["shop/0001.jpg"]}))
    #            image         labels  Casual  ...  Street  error
    # 0  shop/0001.jpg  Street;Casual    0.81  ...    0.93    NaN
    model.predict({"image": ["a.jpg", "b.jpg"]})   # a JSON object's shape: one row per image

Its signature (`signature(label_names)`) is the contract `mlflow models serve` and `spark_udf` type it by:
in, a string column `image`; out, `image`, `labels` (the decided names joined by ";", as predict's CSV),
one double per label (NaN for an unreadable image) and `error`. MLflow checks an input against it (a
frame or a dict with `image`); `RunModel.predict` itself also takes a list of paths or one path. The run
folder travels inside the model as its artefact `run`; the class is found by import
(`fashionstyle.inference.mlflow_model:RunModel`), so loading needs fashionstyle installed.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import column_kinds, flat_columns, records_table
from fashionstyle.data.labels.names import LABEL_SEPARATOR

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

IMAGE_COLUMN = "image"  # the frame's column of image paths (else its first column)
INPUT_EXAMPLE = {IMAGE_COLUMN: ["shop/0001.jpg"]}  # what the logged model shows as its input


class RunModel(mlflow.pyfunc.PythonModel):
    """The run's predictor behind MLflow's pyfunc interface."""

    # predict has no type hints on purpose (the signature types it): MLflow would warn of that in colour at
    # this class's definition, under its own "once" filter no caller's filter can reach; this flag skips it
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from fashionstyle.inference.torch_predictor import Predictor

        self.predictor = Predictor.from_run(context.artifacts["run"], device="cpu")

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        """`fashionstyle.load(run).table(...)` of the images `model_input` names (see image_paths), in its order,
        with `labels` joined by ";" (as predict's CSV): one string a cell, the type the signature names."""
        images = image_paths(model_input)
        records = self.predictor.records(images, self.predictor.predict_proba(images, on_bad="skip"))
        frame = records_table(records, self.predictor.label_names)
        frame["labels"] = [LABEL_SEPARATOR.join(names) for names in frame["labels"]]
        return frame


def signature(label_names: Sequence[str]) -> "ModelSignature":
    """The model's contract: a string column `image` in; predict's columns out (the scores double; `error` and
    the scores optional: absent for a readable and an unreadable image respectively)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    kinds = dict(zip(flat_columns(label_names), column_kinds(label_names)))
    optional = ("score", "optional text")
    outputs = [ColSpec("double" if kind == "score" else "string", name, required=kind not in optional)
               for name, kind in kinds.items()]
    return ModelSignature(inputs=Schema([ColSpec("string", IMAGE_COLUMN)]), outputs=Schema(outputs))


def image_paths(model_input: Any) -> list[str]:
    """The image paths of the model's input: a DataFrame or a dict by its `image` column or key (else its
    first), a list of paths, or one path. A cell may hold a list of paths: MLflow makes {"image": [a, b]}
    one row whose cell is [a, b]."""
    if isinstance(model_input, (str, os.PathLike)):
        return [str(os.fspath(model_input))]
    if hasattr(model_input, "columns") or isinstance(model_input, Mapping):
        keys = list(model_input.columns if hasattr(model_input, "columns") else model_input)
        if not keys:
            raise FashionStyleError("the model's input has no column: give an `image` column (or key) of image paths")
        return image_paths(model_input[IMAGE_COLUMN if IMAGE_COLUMN in keys else keys[0]])
    if not isinstance(model_input, Iterable):
        raise FashionStyleError(f"the model's input is {type(model_input).__name__} {str(model_input)[:40]!r}: "
                                "give image paths (a list, an `image` column or key, or one path)")
    paths = []
    for item in model_input:  # a record {"image": path}, a path, or a cell holding a list of paths
        item = item[IMAGE_COLUMN] if isinstance(item, Mapping) and IMAGE_COLUMN in item else item
        paths += list(item) if isinstance(item, (list, tuple, np.ndarray)) else [item]
    for k, path in enumerate(paths):
        if not isinstance(path, (str, os.PathLike)):
            raise FashionStyleError(f"the model's input holds {type(path).__name__} {str(path)[:40]!r} at {k}, "
                                    "not an image path; give paths (text)")
    return [str(os.fspath(p)) for p in paths]
