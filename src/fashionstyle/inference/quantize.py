"""Static int8 quantisation of an ONNX export, with its fidelity measured.

    fidelity = quantize_export("runs/x/onnx", "runs/x/onnx-int8", validation_images)
    OnnxPredictor.from_export("runs/x/onnx-int8")      # same interface, ~2-3x faster on VNNI CPUs

Each member's weights become int8 (per output channel) and its activations
uint8, with ranges calibrated on real images (QDQ format, ONNX Runtime's
recommended CPU path); shape arithmetic (TF-"same" padding), the first layer
and the output layer stay in float.
Probabilities move a little, so the export measures what it cost: on images
kept apart from the calibration set, the largest probability change and how
often the predicted labels stay the same. Below MIN_LABEL_AGREEMENT of the
label decisions kept, the export is refused unless forced.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterator, Sequence

import numpy as np
import torch

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.files import Preprocessing, open_rgb, tta_views
from fashionstyle.inference.onnx_predictor import OnnxPredictor, with_file_fingerprints

if TYPE_CHECKING:
    import onnx

PRECISION = "int8"
CALIBRATION_BATCH = 16
CALIBRATION_IMAGES = 256  # at most half the images given; 64 left the 64 px demo at 98.7% of decisions kept
MIN_LABEL_AGREEMENT = 0.99  # the bar: share of (image, label) decisions the int8 model must keep
LAYER_TYPES = ("Conv", "Gemm", "MatMul")  # the layers with weights, where the int8 speed comes from


@dataclass
class Fidelity:
    """How far the int8 export is from its fp32 source on held-out images."""
    calibration_images: int
    check_images: int
    max_prob_diff: float        # largest |p_int8 - p_fp32| over images and labels
    mean_prob_diff: float
    label_agreement: float      # fraction of (image, label) decisions that stay the same
    images_identical: float     # fraction of images whose whole label set stays the same
    int8_layers: int = 0        # weight layers (Conv, Gemm, MatMul) computed in int8 ...
    layers: int = 0             # ... of all of them (0: not recorded, an export made before)


def split_images(images: Sequence[str | Path], calibration: int, check: int,
                 seed: int = 0) -> tuple[list[Path], list[Path]]:
    """A seeded random calibration set (at most half the images, so others are left to check on)
    and a disjoint check set."""
    if calibration < 1:
        raise FashionStyleError(f"calibration needs at least 1 image, got {calibration}")
    if not images:
        raise FashionStyleError("no images to calibrate the int8 quantisation on")
    order = np.random.default_rng(seed).permutation(len(images))
    chosen = [Path(images[i]) for i in order]
    calibration = min(calibration, max(1, len(chosen) // 2))
    return chosen[:calibration], chosen[calibration:calibration + check]


class _CalibrationReader:
    """onnxruntime CalibrationDataReader: preprocessed batches of readable images."""

    def __init__(self, images: Sequence[Path], record: dict[str, Any], input_name: str):
        views = tta_views(*Preprocessing.of(record))  # the ONNX runtime's own
        self.batches = self._batches(images, lambda image: torch.from_numpy(views(image)[0]))
        self.input_name = input_name

    @staticmethod
    def _batches(images: Sequence[Path], transform) -> Iterator[np.ndarray]:
        tensors: list[torch.Tensor] = []
        for path in images:
            try:
                tensors.append(transform(open_rgb(path)))
            except FashionStyleError:
                continue  # an unreadable image just does not calibrate
            if len(tensors) == CALIBRATION_BATCH:
                yield torch.stack(tensors).numpy()
                tensors = []
        if tensors:
            yield torch.stack(tensors).numpy()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def shape_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that do not depend on the pixels: shape arithmetic (e.g. the padding
    of TF-"same" convolutions, Shape -> Div -> Ceil -> Pad) and constants.

    Their float values are sizes, not activations: quantised to uint8 they come out wrong (a pad
    of 1 comes back as 0.996 and is cast to 0), and the image is shifted a pixel at each strided layer.
    """
    data = {i.name for i in model.graph.input}  # tensors computed from the pixels
    static = []
    for node in model.graph.node:  # in topological order
        if node.op_type not in ("Shape", "Size") and any(i in data for i in node.input):
            data.update(node.output)
        else:
            static.append(node.name)
    return static


def float_nodes(model: onnx.ModelProto, static: Sequence[str]) -> list[str]:
    """The nodes kept in float, as is usual: the first weight layer (the stem, which reads the colour
    channels) with what follows it up to the next one, because its few weights per channel (27 for
    a 3x3 convolution) and its input's error move everything after it most (test logits 3-5 dB closer
    on EfficientNet-Lite0); and the last one (the logits) with what follows it, whose uint8 output
    would move every probability by up to ~0.01 (a step of ~0.1 in the logits), enough to flip a
    decision near its threshold. Both are a tiny share of the compute."""
    skipped = set(static)
    nodes = [n for n in model.graph.node if n.name not in skipped]
    layers = [k for k, n in enumerate(nodes) if n.op_type in LAYER_TYPES]
    if len(layers) < 3:
        return []  # nothing would be left to quantise
    return [n.name for n in nodes[:layers[1]] + nodes[layers[-1]:]]


def _fake_int8(weight: np.ndarray, axis: int) -> np.ndarray:
    """`weight` rounded as quantize_static rounds it: symmetric int8 (-127..127), one scale per `axis` slice."""
    moved = np.moveaxis(weight, axis, 0)
    scale = np.abs(moved.reshape(len(moved), -1)).max(axis=1) / 127
    scale = np.where(scale == 0, 1, scale).reshape((-1,) + (1,) * (moved.ndim - 1))
    return np.moveaxis(np.clip(np.round(moved / scale), -127, 127) * scale, 0, axis).astype(weight.dtype)


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _channel_means(model: onnx.ModelProto, tensors: list[str], feeds: list[dict[str, np.ndarray]]) -> dict:
    """Mean of each channel (axis 1) of `tensors` in float over the calibration batches."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                              for t in tensors if t not in known)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    sums: dict[str, np.ndarray] = {}
    images = 0
    for feed in feeds:
        (name, batch), = feed.items()
        for start in range(0, len(batch), 4):  # a few images at a time: every layer's input is kept
            for tensor, value in zip(tensors, session.run(tensors, {name: batch[start:start + 4]})):
                per_image = value.reshape(*value.shape[:2], -1).mean(axis=2)  # (B, C) from (B, C, ...)
                sums[tensor] = sums.get(tensor, 0) + per_image.sum(axis=0)
        images += len(batch)
    return {tensor: total / images for tensor, total in sums.items()}


def correct_biases(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], skip: Collection[str] = ()) -> int:
    """Bias correction (Nagel et al. 2019, "Data-free quantization", 4.2): rounding a layer's weights
    to int8 moves its output by dW @ E[x] on average, an error that adds up through the layers
    rather than cancelling; subtracting it from the bias (E[x] from the calibration images) keeps
    each layer's mean output. Conv and Gemm layers with their own weight and bias, but those named
    in `skip` (left in float); how many."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm") and n.name not in skip
              and len(n.input) > 2 and all(i in inits and uses[i] == 1 for i in n.input[1:3])
              and (n.op_type == "Conv" or (_attribute(n, "transA", 0) == 0 and _attribute(n, "alpha", 1) == 1
                                           and _attribute(n, "beta", 1) == 1))]
    means = _channel_means(model, list(dict.fromkeys(n.input[0] for n in layers)), feeds)
    corrected = 0
    for node in layers:
        weight, bias = (numpy_helper.to_array(inits[name]) for name in node.input[1:3])
        if node.op_type == "Gemm":  # (out, in) when transB, else (in, out)
            axis = 0 if _attribute(node, "transB", 0) else 1
            shift = np.moveaxis(_fake_int8(weight, axis) - weight, axis, 0) @ means[node.input[0]]
        else:  # (out, in / groups, *kernel)
            groups = int(_attribute(node, "group", 1))
            x = means[node.input[0]].reshape(groups, 1, -1)  # (groups, 1, in / groups)
            delta = (_fake_int8(weight, 0) - weight).reshape(*weight.shape[:2], -1).sum(axis=2)
            shift = (delta.reshape(groups, -1, weight.shape[1]) * x).sum(axis=2).reshape(-1)
        if bias.shape != shift.shape:
            continue  # a broadcast bias: leave it
        inits[node.input[2]].CopyFrom(numpy_helper.from_array((bias - shift).astype(bias.dtype), node.input[2]))
        corrected += 1
    return corrected


class _Feeds:
    """onnxruntime CalibrationDataReader over batches already read."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize_model(source: Path, target: Path, reader: Any) -> tuple[int, int]:
    """QDQ int8 model from an fp32 one: per-channel int8 weights (biases corrected for their rounding),
    uint8 activations; shape arithmetic, the first and the last layer left in float.
    `reader`: an onnxruntime CalibrationDataReader. Returns (weight layers in int8, weight layers)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = list(iter(reader.get_next, None))
    if not feeds:
        raise FashionStyleError(f"{source}: none of the calibration images could be read")
    with tempfile.TemporaryDirectory(prefix="fashionstyle_quant_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared))
        except Exception:  # noqa: BLE001 - pre-processing only helps; quantise the original
            prepared.write_bytes(source.read_bytes())
        model = onnx.load(str(prepared))
        for k, node in enumerate(model.graph.node):
            node.name = node.name or f"{node.op_type}_{k}"  # excluded by name
        static = shape_nodes(model)
        floating = set(float_nodes(model, static))
        try:
            correct_biases(model, feeds, skip=floating)
            onnx.save(model, str(prepared))
            quantize_static(str(prepared), str(Path(tmp) / "int8.onnx"), _Feeds(feeds),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=[*static, *floating])
        except Exception as err:  # noqa: BLE001
            raise FashionStyleError(f"{source}: int8 quantisation failed "
                                    f"({type(err).__name__}: {str(err)[:200]})") from None
        atomic.write_atomic(target, lambda f: f.write((Path(tmp) / "int8.onnx").read_bytes()))
    layers = [n.name for n in model.graph.node if n.op_type in LAYER_TYPES]
    return sum(name not in floating for name in layers), len(layers)


def measure_fidelity(fp32_dir: Path, int8_dir: Path, images: Sequence[Path], calibrated: int) -> Fidelity:
    """Compare the two exports' probabilities and labels on `images`."""
    unmeasured = Fidelity(calibrated, 0, float("nan"), float("nan"), float("nan"), float("nan"))
    if not images:
        return unmeasured
    reference, quantized = OnnxPredictor.from_export(fp32_dir), OnnxPredictor.from_export(int8_dir)
    p32 = reference.predict_proba(images, on_bad="skip")
    p8 = quantized.predict_proba(images, on_bad="skip")
    readable = ~np.isnan(p32).any(axis=1)
    if not readable.any():
        return unmeasured
    p32, p8 = p32[readable], p8[readable]
    diff = np.abs(p8 - p32)
    same = reference.decide(p32) == reference.decide(p8)
    return Fidelity(calibrated, int(readable.sum()), float(diff.max()), float(diff.mean()),
                    float(same.mean()), float(same.all(axis=1).mean()))


def quantize_export(fp32_dir: str | Path, out_dir: str | Path, images: Sequence[str | Path],
                    calibration: int = CALIBRATION_IMAGES, check: int = 128, seed: int = 0,
                    force: bool = False) -> Fidelity:
    """Quantise every member of an fp32 export into `out_dir`; returns the measured fidelity.

    `images` (e.g. the run's validation images) are split into `calibration`
    images for the activation ranges and up to `check` others for the fidelity.
    The export is made and checked in a temporary folder; one that keeps fewer than
    MIN_LABEL_AGREEMENT of the label decisions (or could not be checked) is refused
    with nothing written, unless `force`: a previous export in `out_dir` is then left as it
    was (a stale one is never used: runtimes check the source fingerprint). members.json is
    written last, so a folder with it is a complete export.
    """
    source, out = Path(fp32_dir), Path(out_dir)
    if source.resolve() == out.resolve():
        raise FashionStyleError(f"{out}: the int8 export needs its own folder, not the fp32 one")
    meta = atomic.read_json(source / "members.json", "the fp32 ONNX export folder")
    if meta.get("precision", "fp32") != "fp32":
        raise FashionStyleError(f"{source}: already a {meta['precision']} export; quantise the fp32 one")
    calibrate_on, check_on = split_images(images, calibration, check, seed)
    files = list(dict.fromkeys(r["file"] for r in meta["members"]))  # shared files once
    with tempfile.TemporaryDirectory(prefix="fashionstyle_int8_") as tmp:
        staged = Path(tmp)
        int8_layers, layers = _stage_export(source, staged, meta, calibrate_on)
        fidelity = replace(measure_fidelity(source, staged, check_on, len(calibrate_on)),
                           int8_layers=int8_layers, layers=layers)
        problem = fidelity_problem(fidelity)
        if problem and not force:  # a previous export in `out` stays as it was
            raise FashionStyleError(f"{out}: int8 model not written: {problem} "
                                    "(`fashionstyle export RUN --quantize int8 --force` writes it anyway)")
        _remove_export(out, files)  # incomplete (no members.json) until the new one is whole
        for name in (*files, "labels.json", "thresholds.json"):
            atomic.write_atomic(out / name, lambda f, name=name: f.write((staged / name).read_bytes()))
    atomic.write_json(out / "fidelity.json", {k: None if isinstance(v, float) and np.isnan(v) else v
                                               for k, v in asdict(fidelity).items()})  # JSON has no NaN
    atomic.write_json(out / "members.json", with_file_fingerprints({**meta, "precision": PRECISION}, out))
    return fidelity


def _stage_export(source: Path, staged: Path, meta: dict[str, Any], images: Sequence[Path]) -> tuple[int, int]:
    """A complete int8 export of `source` in `staged`; returns (weight layers in int8, weight layers)."""
    counts = [quantize_model(source / file, staged / file, _CalibrationReader(images, record, meta["input"]))
              for file, record in {r["file"]: r for r in meta["members"]}.items()]  # shared files once
    for name in ("labels.json", "thresholds.json"):
        (staged / name).write_bytes((source / name).read_bytes())
    int8 = with_file_fingerprints({**meta, "precision": PRECISION}, staged)
    (staged / "members.json").write_text(json.dumps(int8, indent=2) + "\n")
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _remove_export(folder: Path, files: Sequence[str]) -> None:
    for name in ("members.json", "fidelity.json", *files, "labels.json", "thresholds.json"):  # incomplete first
        (folder / name).unlink(missing_ok=True)


def fidelity_problem(fidelity: Fidelity, bar: float | None = None) -> str | None:
    """Why the int8 export falls short of `bar` (default MIN_LABEL_AGREEMENT), or None."""
    bar = MIN_LABEL_AGREEMENT if bar is None else bar
    if not fidelity.check_images:
        return (f"no images were left to check its fidelity on (calibrated on {fidelity.calibration_images}); "
                "give more images")
    if fidelity.label_agreement < bar:
        return (f"it kept {100 * fidelity.label_agreement:.2f}% of label decisions on {fidelity.check_images} "
                f"check images, below the {100 * bar:g}% bar "
                f"(max probability change {fidelity.max_prob_diff:.3f})")
    return None


def read_fidelity(export_dir: str | Path) -> Fidelity:
    values = atomic.read_json(Path(export_dir) / "fidelity.json", "the int8 export")
    return Fidelity(**{k: float("nan") if v is None else v for k, v in values.items()})


def format_fidelity(fidelity: Fidelity) -> str:
    layers = f"{fidelity.int8_layers} of {fidelity.layers} weight layers int8, " if fidelity.layers else ""
    if not fidelity.check_images:
        return f"{layers}calibrated on {fidelity.calibration_images} images; no images left to check fidelity on"
    return (f"{layers}calibrated on {fidelity.calibration_images} images; on {fidelity.check_images} others: "
            f"max probability change {fidelity.max_prob_diff:.4f} (mean {fidelity.mean_prob_diff:.5f}), "
            f"{100 * fidelity.label_agreement:.2f}% of label decisions and "
            f"{100 * fidelity.images_identical:.1f}% of images' label sets unchanged")
