"""fashionstyle's network for transformers (trust_remote_code=True): a timm backbone without classifier,
then FC-hidden, ReLU, dropout, FC-labels, as fashionstyle's StyleNet, under the same names (backbone.*,
head.*), so model.safetensors loads as it is.

    model = AutoModelForImageClassification.from_pretrained("hub/lite0", trust_remote_code=True)
    logits = model(pixel_values).logits          # (B, L); sigmoid(logits): each label's probability
    features = model.backbone(pixel_values)      # (B, C): the fine-tuned timm backbone alone
"""
from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_fashionstyle import FashionStyleConfig


class FashionStyleForImageClassification(PreTrainedModel):
    """Backbone features -> FC hidden -> ReLU -> dropout -> FC num_labels (logits of independent labels)."""

    config_class = FashionStyleConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"

    def __init__(self, config: FashionStyleConfig) -> None:
        super().__init__(config)
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0)  # (B, C) pooled
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.head = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(config.dropout), nn.Linear(config.hidden, config.num_labels))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Nothing: timm initialises the backbone, and model.safetensors holds every weight."""

    def forward(self, pixel_values: torch.Tensor, **kwargs: Any) -> ImageClassifierOutput:
        """(B, 3, S, S), or (B, T, 3, S, S) test-time views -> logits (B, L); for views, the logits of the
        mean probability over the T views (fashionstyle's TTA), so that sigmoid(logits) is that mean."""
        if pixel_values.dim() == 4:
            return ImageClassifierOutput(logits=self.head(self.backbone(pixel_values)))
        b, t = pixel_values.shape[:2]
        logits = self.head(self.backbone(pixel_values.flatten(0, 1)))  # (B*T, L)
        probs = torch.sigmoid(logits.float()).view(b, t, -1).mean(dim=1)  # (B, L)
        return ImageClassifierOutput(logits=torch.logit(probs))
