"""A run as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(frame)` gives the prediction
records (core/prediction.py) of the images a DataFrame names.

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    model.predict(pandas.DataFrame({"image": ["shop/0001.jpg"]}))
    # [{"image": "shop/0001.jpg", "labels": ["Street"], "scores": {"Casual": 0.2, ...}, "error": None}]
    model.predict({"image": ["a.jpg", "b.jpg"]})   # also: ["a.jpg", "b.jpg"], "a.jpg": one record per image

The run folder travels inside the model as its artefact `run`; the class is found by import
(`fashionstyle.inference.mlflow_model:RunModel`), so loading needs fashionstyle installed.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import mlflow.pyfunc

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.prediction import make_predictions

IMAGE_COLUMN = "image"  # the frame's column of image paths (else its first column)


class RunModel(mlflow.pyfunc.PythonModel):
    """The run's predictor behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        from fashionstyle.inference.torch_predictor import Predictor

        self.predictor = Predictor.from_run(context.artifacts["run"], device="cpu")

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        """Prediction records (dicts) of the images `model_input` names (see image_paths), in its order."""
        images = image_paths(model_input)
        if not images:
            return []
        probs = self.predictor.predict_proba(images, on_bad="skip")  # NaN rows: unreadable
        decided = self.predictor.decide(probs)
        records = make_predictions(images, probs, decided, self.predictor.label_names)
        return [record.as_dict() for record in records]


def image_paths(model_input: Any) -> list[str]:
    """The image paths of the model's input: a DataFrame or a dict (what MLflow passes for a JSON object)
    by its `image` column or key (else its first), a list of paths, or one path."""
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
    paths = [p[IMAGE_COLUMN] if isinstance(p, Mapping) and IMAGE_COLUMN in p else p for p in model_input]
    for k, path in enumerate(paths):
        if not isinstance(path, (str, os.PathLike)):
            raise FashionStyleError(f"the model's input holds {type(path).__name__} {str(path)[:40]!r} at {k}, "
                                    "not an image path; give paths (text)")
    return [str(os.fspath(p)) for p in paths]
