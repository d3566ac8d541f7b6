"""CPU inference speed: ONNX Runtime vs PyTorch eager on the same preprocessed batches.

Run from the repository root:

    PYTHONPATH=src python bench/cpu_infer.py [--backbone resnet18] [--image-size 112]
        [--batch-size 32] [--batches 8] [--threads N]

Builds a random-init StyleNet (timm backbone + the project's head), exports it
with fashionstyle.inference.onnx_export.export_model (the same path as `fashionstyle export`),
preprocesses photo-like images once with data.eval_transform, then times the
same batches through

  * PyTorch eager, inference_mode, NCHW (contiguous),
  * PyTorch eager, inference_mode, channels_last (often faster for convolutions on CPU),
  * ONNX Runtime, CPUExecutionProvider, all graph optimisations,
  * ONNX Runtime on the int8 export (fashionstyle.inference.quantize, the path of
    `fashionstyle export --quantize int8`), calibrated on other images,

each with --threads intra-op threads (default: every core), after --warmup
batches. Prints images/s for each and ONNX Runtime's speed ratio over the
faster PyTorch variant and over plain NCHW. Exits 1 if the fp32 outputs differ
by more than 1e-3 or the best ONNX ratio is below --min-ratio (default 0: report only).

On a machine whose cores are busy with other work, PyTorch's OpenMP threads
spin-wait and lose much of their speed while ONNX Runtime's own thread pool
does not; `OMP_WAIT_POLICY=PASSIVE` (set before starting Python) gives the
fairer comparison there. Measured on 2 busy cores (load ~4), resnet18 at 112 px,
batch 32: default 2.0-2.3x; with OMP_WAIT_POLICY=PASSIVE or --threads 1 0.9-1.1x.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

try:
    import fashionstyle  # noqa: F401
except ImportError:  # run without PYTHONPATH=src or an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fashionstyle.data.transforms import eval_transform  # noqa: E402
from fashionstyle.inference.onnx_export import export_model  # noqa: E402
from fashionstyle.model.network import create_model, default_normalisation  # noqa: E402
from fashionstyle.inference.onnx_predictor import session_options, sigmoid  # noqa: E402
from fashionstyle.inference.quantize import quantize_model  # noqa: E402


def photos(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(180, 320)), int(rng.integers(140, 260))
        y, x = np.mgrid[0:h, 0:w]
        colour = rng.random(3) * 255
        base = colour * (0.5 + 0.5 * np.sin(x[..., None] / rng.uniform(5, 30) + y[..., None] / rng.uniform(5, 30)))
        out.append(Image.fromarray(np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)))
    return out


class Calibration:
    """onnxruntime CalibrationDataReader over ready batches."""

    def __init__(self, batches: list[np.ndarray]):
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"images": batch}


def time_batches(run_batch, batches: list, warmup: int, n: int) -> float:
    """Seconds for `n` batches (cycling through `batches`) after `warmup` untimed ones."""
    for i in range(warmup):
        run_batch(batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(n):
        run_batch(batches[i % len(batches)])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per runtime")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--labels", type=int, default=13)
    parser.add_argument("--min-ratio", type=float, default=0.0)
    args = parser.parse_args(argv)

    import onnxruntime as ort

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = create_model(args.backbone, args.labels, pretrained=False, hidden=1024).eval()
    mean, std = default_normalisation(model)
    transform = eval_transform(args.image_size, mean, std)
    n_distinct = min(args.batches, 2)
    batches = [torch.stack([transform(p) for p in photos(args.batch_size, seed=k)]) for k in range(n_distinct)]
    arrays = [b.numpy() for b in batches]
    calibration = [torch.stack([transform(p) for p in photos(args.batch_size, seed=100 + k)]).numpy()
                   for k in range(2)]  # other images than the timed ones
    channels_last = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    model_cl = create_model(args.backbone, args.labels, pretrained=False, hidden=1024).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)

    with tempfile.TemporaryDirectory(prefix="cpu_infer_") as tmp:
        start = time.perf_counter()
        path = export_model(model, Path(tmp) / "model.onnx", args.image_size)
        export_s = time.perf_counter() - start
        session = ort.InferenceSession(str(path), session_options(args.threads),
                                       providers=["CPUExecutionProvider"])
        quantize_model(path, Path(tmp) / "int8.onnx", Calibration(calibration))
        session_int8 = ort.InferenceSession(str(Path(tmp) / "int8.onnx"), session_options(args.threads),
                                            providers=["CPUExecutionProvider"])

        def run_ort(batch: np.ndarray) -> np.ndarray:
            return session.run(["logits"], {"images": batch})[0]

        def run_int8(batch: np.ndarray) -> np.ndarray:
            return session_int8.run(["logits"], {"images": batch})[0]

        with torch.inference_mode():
            reference = model(batches[0]).numpy()
            diff = float(max(np.abs(run_ort(arrays[0]) - reference).max(),
                             np.abs(model_cl(channels_last[0]).numpy() - reference).max()))
            timings = {
                "pytorch eager (NCHW)": time_batches(model, batches, args.warmup, args.batches),
                "pytorch eager (channels_last)": time_batches(model_cl, channels_last, args.warmup, args.batches),
            }
        timings["onnxruntime (CPU, ORT_ENABLE_ALL)"] = time_batches(run_ort, arrays, args.warmup, args.batches)
        timings["onnxruntime int8 (static, QDQ)"] = time_batches(run_int8, arrays, args.warmup, args.batches)
        int8_diff = float(np.abs(sigmoid(run_int8(arrays[0])) - sigmoid(reference)).max())

    n_images = args.batches * args.batch_size
    speed = {name: n_images / seconds for name, seconds in timings.items()}
    print(f"{args.backbone} at {args.image_size} px, batch {args.batch_size}, {args.batches} timed batches "
          f"({n_images} images), {args.threads} threads of {os.cpu_count()} cores; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
          f"export {export_s:.1f} s")
    for name, value in speed.items():
        print(f"  {name:34s} {value:8.1f} images/s")
    best_torch = max(v for k, v in speed.items() if k.startswith("pytorch"))
    nchw = speed["pytorch eager (NCHW)"]
    for name in ("onnxruntime (CPU, ORT_ENABLE_ALL)", "onnxruntime int8 (static, QDQ)"):
        print(f"ratio {name} / best pytorch: {speed[name] / best_torch:.2f}x "
              f"(/ NCHW eager: {speed[name] / nchw:.2f}x; goal >= 1.5x)")
    ratio = max(speed[k] for k in speed if k.startswith("onnxruntime")) / best_torch
    print(f"max abs logit difference fp32: {diff:.2e}; max probability difference int8: {int8_diff:.4f} "
          "(random weights; `fashionstyle export --quantize int8` measures it on a run's images)")
    if diff > 1e-3:
        print("FAIL: ONNX Runtime and PyTorch disagree", file=sys.stderr)
        return 1
    if ratio < args.min_ratio:
        print(f"FAIL: ratio below --min-ratio {args.min_ratio:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
