"""The JSON the service answers, as pydantic models: /docs shows their schema and an example.

A POST /predict answer holds the run's label names and thresholds once, and one prediction record
per uploaded file, in upload order: the record every surface shares (core/prediction.py: image,
labels, scores, error), plus `maps` when heat maps were asked for.
"""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from fashionstyle.core.prediction import HELP, KINDS

EXAMPLE = {
    "run": "lite0",
    "label_names": ["Casual", "Office", "Street"],
    "thresholds": {"Casual": 0.41, "Office": 0.55, "Street": 0.3},
    "predictions": [
        {"image": "shop/0001.jpg", "labels": ["Street", "Casual"],
         "scores": {"Casual": 0.81, "Office": 0.02, "Street": 0.93}, "error": None},
        {"image": "notes.txt", "labels": [], "scores": {},
         "error": "notes.txt: not a readable image (unknown or unsupported format)"},
    ],
    "inference_ms": 12.5,
}


TYPES = {"text": str, "optional text": Optional[str], "names": list[str], "per label": dict[str, float]}
UPLOADED = {"image": "the file name as uploaded (an RFC 5987 filename* decoded)"}  # what `image` is here

# One uploaded file's prediction: the fields of core.prediction.Prediction, as its KINDS and HELP say,
# and `maps` when heat maps were asked for.
PredictionRecord = create_model(
    "PredictionRecord",
    __doc__="One uploaded file's prediction (core.prediction.Prediction), or why it has none.",
    **{name: (TYPES[kind], Field(description=UPLOADED.get(name, HELP[name]))) for name, kind in KINDS.items()},
    maps=(Optional[dict[str, str]], Field(None, description="with ?maps=true: a heat-map overlay per decided "
                                                            "style, a data:image/png;base64 URL")))


class PredictResponse(BaseModel):
    """POST /predict: the run, its labels and thresholds once, a record per file in upload order."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    run: str = Field(description="the run directory's name")
    label_names: list[str] = Field(description="the run's labels, in its order")
    operating_point: str | None = Field(None, description="the operating point the labels were decided at")
    thresholds: dict[str, float | None] = Field(description="label -> the threshold of the operating point a "
                                                            "score is compared with (score >= threshold: "
                                                            "decided, before its per-photo rules); null: the "
                                                            "point never predicts the label")
    predictions: list[PredictionRecord] = Field(description="one record per uploaded file, in upload order")
    inference_ms: float = Field(description="time the model took for the readable files, in milliseconds")


class ErrorResponse(BaseModel):
    """A refused request: one line saying what and the limit; when every file failed, also their records."""

    detail: str
