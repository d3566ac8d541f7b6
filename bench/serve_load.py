"""Load test of the HTTP service: throughput and latency of POST /predict on the loopback.

Run from the repository root:

    PYTHONPATH=src python bench/serve_load.py [--run RUN] [--requests 500] [--concurrency 8]
        [--images-per-request 1] [--runtime torch|onnx]

Without --run it builds a tiny random-init run (no training) in a temporary
folder: --backbone resnet18 at --model-size 112 px with the 13 JD style labels.
The service starts in a subprocess (`python -m fashionstyle.serve`) on a free
port of 127.0.0.1; once /health answers, a pool of --concurrency threads sends
--requests multipart POST /predict requests (the same generated --photo-size
JPEG each time), after a few warm-up requests that are not counted.

Prints throughput (requests/s, images/s), latency p50 / p90 / p99 / max and
the error count (non-200 answers, wrong result counts, failed connections).
Exits 1 if any request failed or the service did not start.
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"
try:
    import fashionstyle  # noqa: F401
except ImportError:  # run without PYTHONPATH=src or an install
    sys.path.insert(0, str(SRC))

import httpx  # noqa: E402

from fashionstyle.labels import JD_STYLES  # noqa: E402
from fashionstyle.models import create_model, model_record, save_model  # noqa: E402
from fashionstyle.run import RunDir  # noqa: E402
from fashionstyle.thresholds import ThresholdTuner  # noqa: E402

HOST = "127.0.0.1"


def make_random_run(path: str | Path, backbone: str = "resnet18", image_size: int = 112,
                    labels: list[str] | None = None, hidden: int = 256, seed: int = 0) -> Path:
    """A complete run directory with a random-init model and thresholds fitted on random data."""
    import torch

    labels = list(labels or JD_STYLES)
    torch.manual_seed(seed)
    model = create_model(backbone, len(labels), pretrained=False, hidden=hidden)
    run = RunDir.create(path)
    run.write_manifest("model", complete=False)
    save_model(run / "model.pt", model_record(model, backbone, labels, image_size, hidden, 0.5))
    run.write_label_names(labels)
    rng = np.random.default_rng(seed)
    probs = rng.random((200, len(labels)))
    targets = (rng.random((200, len(labels))) < 0.3 + 0.4 * probs).astype(np.uint8)
    run.write_thresholds(ThresholdTuner(beta=2.0).fit(probs, targets))
    run.write_manifest("model", complete=True, epochs=0)
    return run.path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def photo_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A photo-like JPEG: smooth colour gradients plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def start_service(run: Path, port: int, runtime: str, timeout: float, log: Path) -> subprocess.Popen:
    """`python -m fashionstyle.serve` in a subprocess, its output in `log`, once /health answers."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "fashionstyle.serve", str(run), "--host", HOST, "--port", str(port),
               "--runtime", runtime, "--log-level", "warning"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the service exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_service(process)
    raise RuntimeError(f"the service did not answer /health within {timeout:g} s")


def stop_service(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_load(url: str, payload: bytes, n_images: int, requests: int, concurrency: int,
             warmup: int = 4) -> tuple[np.ndarray, list[str], float]:
    """(latencies in s of the successful requests, error messages, wall time in s)."""
    files = [("files", (f"photo{i}.jpg", payload, "image/jpeg")) for i in range(n_images)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=120, limits=limits) as client:
        def one(_: int) -> tuple[float, str | None]:
            start = time.perf_counter()
            try:
                response = client.post("/predict", files=files)
            except httpx.HTTPError as err:
                return time.perf_counter() - start, f"{type(err).__name__}: {err}"
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                return elapsed, f"HTTP {response.status_code}: {response.text[:200]}"
            if len(response.json().get("results", [])) != n_images:
                return elapsed, "wrong number of results"
            return elapsed, None

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(warmup)))
            start = time.perf_counter()
            outcomes = list(pool.map(one, range(requests)))
            wall = time.perf_counter() - start
    latencies = np.array([t for t, err in outcomes if err is None])
    return latencies, [err for _, err in outcomes if err is not None], wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="run directory (default: a tiny random-init run)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument("--photo-size", type=int, nargs=2, default=(240, 320), metavar=("W", "H"))
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--backbone", default="resnet18", help="for the random-init run")
    parser.add_argument("--model-size", type=int, default=112, help="input size of the random-init run")
    parser.add_argument("--start-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        if args.run:
            run = Path(args.run)
            what = str(run)
        else:
            run = make_random_run(Path(tmp) / "run", args.backbone, args.model_size)
            what = f"random-init {args.backbone} at {args.model_size} px (13 labels)"
        port = free_port()
        try:
            process = start_service(run, port, args.runtime, args.start_timeout, Path(tmp) / "service.log")
        except RuntimeError as err:
            print(f"serve_load: {err}", file=sys.stderr)
            return 1
        try:
            payload = photo_bytes(*args.photo_size)
            latencies, errors, wall = run_load(f"http://{HOST}:{port}", payload, args.images_per_request,
                                               args.requests, args.concurrency)
        finally:
            stop_service(process)

    done = len(latencies)
    print(f"run: {what}; runtime {args.runtime}; {os.cpu_count()} CPU cores")
    print(f"{args.requests} requests x {args.images_per_request} image(s) of {args.photo_size[0]}x"
          f"{args.photo_size[1]} ({len(payload):,} bytes), concurrency {args.concurrency}, {wall:.2f} s")
    print(f"throughput: {done / wall:.1f} requests/s, {done * args.images_per_request / wall:.1f} images/s")
    if done:
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99]) * 1000
        print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {latencies.max() * 1000:.1f}")
    print(f"errors: {len(errors)}")
    for message in sorted(set(errors))[:5]:
        print(f"  {message}")
    return 1 if errors or not done else 0


if __name__ == "__main__":
    sys.exit(main())
