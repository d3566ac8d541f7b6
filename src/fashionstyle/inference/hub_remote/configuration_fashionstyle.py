"""config.json of a fashionstyle hub folder as a transformers config (trust_remote_code=True).

    config = AutoConfig.from_pretrained("hub/lite0", trust_remote_code=True)
    config.backbone, config.hidden, config.id2label, config.thresholds   # "tf_efficientnet_lite0", 1024, ...

Written by `fashionstyle export RUN --format hub`; the network is modeling_fashionstyle.py's.
"""
from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class FashionStyleConfig(PretrainedConfig):
    """The network (a timm backbone, the head's hidden width and dropout), the labels, and the run's
    decision thresholds (`thresholds`: label -> threshold, applied to the sigmoid scores)."""

    model_type = "fashionstyle"

    def __init__(self, backbone: str = "resnet18", hidden: int = 1024, dropout: float = 0.5,
                 thresholds: dict[str, float] | None = None, tta: str = "none", **kwargs: Any) -> None:
        self.backbone = backbone
        self.hidden = hidden
        self.dropout = dropout
        self.thresholds = dict(thresholds or {})
        self.tta = tta
        kwargs.setdefault("problem_type", "multi_label_classification")
        super().__init__(**kwargs)
