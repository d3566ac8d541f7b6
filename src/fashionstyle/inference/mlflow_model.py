"""A run as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(frame)` gives the prediction
records (core/prediction.py) of the images a DataFrame names.

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    model.predict(pandas.DataFrame({"image": ["shop/0001.jpg"]}))
    # [{"image": "shop/0001.jpg", "labels": ["Street"], "scores": {"Casual": 0.2, ...}, "error": None}]

The run folder travels inside the model as its artefact `run`; the class is found by import
(`fashionstyle.inference.mlflow_model:RunModel`), so loading needs fashionstyle installed.
"""
from __future__ import annotations

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
        """Prediction records (dicts) of the images `model_input` (a DataFrame of paths) names, in its order."""
        images = image_paths(model_input)
        probs = self.predictor.predict_proba(images, on_bad="skip")  # NaN rows: unreadable
        decided = self.predictor.tuner.predict(probs)
        records = make_predictions(images, probs, decided, self.predictor.label_names)
        return [record.as_dict() for record in records]


def image_paths(frame: Any) -> list[str]:
    """The image paths of a DataFrame (its `image` column, else its first), a list or one string."""
    if isinstance(frame, str):
        return [frame]
    if hasattr(frame, "columns"):
        if len(frame.columns) == 0:
            raise FashionStyleError("the model's input frame has no column: give one of image paths")
        column = IMAGE_COLUMN if IMAGE_COLUMN in frame.columns else frame.columns[0]
        return [str(p) for p in frame[column]]
    return [str(p) for p in frame]
