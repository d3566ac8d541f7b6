"""The demo trains the default recipe the README describes, at the synthetic outfits' size."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from fashionstyle.core.config import TrainConfig
from fashionstyle.demo import demo_config


def test_demo_differs_from_the_default_recipe_only_in_size_and_budget():
    demo, default = demo_config(Path("outfits.csv"), epochs=8, seed=0), TrainConfig()
    changed = {f.name for f in dataclasses.fields(TrainConfig) if getattr(demo, f.name) != getattr(default, f.name)}
    if demo.pretrained:  # the EfficientNet-Lite0 wheel is installed
        assert changed <= {"labels", "image_size", "epochs", "batch_size", "num_workers"}
        assert (demo.hidden, demo.weight_power, demo.lr_schedule) == (1024, 0.5, "onecycle")
