"""Load test of the HTTP service: throughput, latency and memory of POST /predict on the loopback.

Run from the repository root:

    PYTHONPATH=src python bench/serve_load.py [--run RUN] [--requests 500] [--concurrency 8]
        [--images-per-request 1] [--runtime torch|onnx]
        [--hostile-requests 8] [--hostile-concurrency 4] [--hostile-images 16]
        [--max-pixels N] [--max-request-pixels N] [--decoders N]   # passed to the service

Without --run it builds a tiny random-init run (no training) in a temporary
folder: --backbone resnet18 at --model-size 112 px with the 13 JD style labels.
The service starts in a subprocess (`fashionstyle serve`, as python -m fashionstyle.cli) on a free
port of 127.0.0.1; once /health answers, a pool of --concurrency threads sends
--requests multipart POST /predict requests (the same generated --photo-size
JPEG each time), after a few warm-up requests that are not counted.

Prints throughput (requests/s, images/s), latency p50 / p90 / p99 / max and
the error count (non-200 answers, wrong result counts, failed connections).

Then the service's memory (Linux: /proc/PID/status): its resident set when
idle after the warm-up, its peak (VmHWM, reset before each phase) under the
load above, and its peak under a hostile mix: --hostile-requests requests of
--hostile-images PNGs each, at --hostile-concurrency, every image as large as
the service accepts (its /health limits; Pillow's ~89M pixels for a service
that reports none) and cycling through 1-bit, palette and RGBA, a few hundred
KB for hundreds of MB decoded. The goal: that peak within --rss-budget MB of
the idle service. A service whose resident set passes --rss-kill MB is killed
(the rest of its requests then fail) to keep the machine alive.

Exits 1 if any normal request failed, the service did not start or died, or
the hostile peak is over the budget.
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
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

from fashionstyle.data.labels.names import JD_STYLES  # noqa: E402
from fashionstyle.model.network import create_model, model_record, save_model  # noqa: E402
from fashionstyle.core.run import RunDir  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402

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


def png_bytes(width: int, height: int, mode: str) -> bytes:
    """An all-zero PNG ("1": 1-bit grey, "P": 8-bit palette, "RGB", "RGBA"), written row block by row block:
    a few hundred KB at most for ~89M pixels, without holding the pixels in memory."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    depth, colour, row_bytes = {"1": (1, 0, (width + 7) // 8), "P": (8, 3, width), "RGB": (8, 2, 3 * width),
                                "RGBA": (8, 6, 4 * width)}[mode]
    row = bytes(1 + row_bytes)  # filter byte + pixels
    packer = zlib.compressobj(9)
    rows_a_block = max(1, 4_000_000 // len(row))
    block = row * rows_a_block
    parts = [packer.compress(block) for _ in range(height // rows_a_block)]
    parts += [packer.compress(row * (height % rows_a_block)), packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    palette = chunk(b"PLTE", bytes(range(256)) * 3) if mode == "P" else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + palette + chunk(b"IDAT", b"".join(parts))
            + chunk(b"IEND", b""))


class Memory:
    """The resident set of a process (Linux /proc): now, its peak since `reset`, and a watchdog that
    kills it past `kill_mb`."""

    def __init__(self, pid: int, kill_mb: float, interval: float = 0.02):
        self.pid, self.kill_mb, self.interval = pid, kill_mb, interval
        self.killed_at: float | None = None
        self.sampled = 0.0  # the largest resident set sampled since reset: when VmHWM cannot be reset
        self.hwm_resettable = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _status(self, key: str) -> float:
        """A /proc/PID/status field in MB (0 once the process is gone)."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def rss(self) -> float:
        return self._status("VmRSS")

    def reset(self) -> None:
        """Start a new peak: reset the kernel's high-water mark (clear_refs 5) and the sampled one."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.hwm_resettable = False
        self.sampled = self.rss()

    def peak(self) -> float:
        hwm = self._status("VmHWM") if self.hwm_resettable else 0.0
        return max(hwm, self.sampled, self.killed_at or 0.0)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.rss()
            self.sampled = max(self.sampled, rss)
            if rss > self.kill_mb and self.killed_at is None:
                self.killed_at = rss
                try:
                    os.kill(self.pid, 9)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def hostile_files(health: dict, n_images: int, modes: list[str]) -> tuple[list, int]:
    """`n_images` all-zero PNGs cycling through `modes`, each as large as the service's limits allow;
    (files, pixels each)."""
    per_image = int(health.get("max_pixels") or Image.MAX_IMAGE_PIXELS)
    if health.get("max_request_pixels"):
        per_image = min(per_image, int(health["max_request_pixels"]) // n_images)
    side = int(per_image**0.5)
    payloads = {mode: png_bytes(side, side, mode) for mode in modes}
    files = [("files", (f"hostile{i}.png", payloads[modes[i % len(modes)]], "image/png")) for i in range(n_images)]
    return files, side * side


def run_hostile(url: str, files: list, requests: int, concurrency: int) -> Counter:
    """Send the hostile requests; count the answers by status (or exception name)."""
    with httpx.Client(base_url=url, timeout=600) as client:
        def one(_: int) -> str:
            try:
                return str(client.post("/predict", files=files).status_code)
            except httpx.HTTPError as err:
                return type(err).__name__

        with ThreadPoolExecutor(concurrency) as pool:
            return Counter(pool.map(one, range(requests)))


def start_service(run: Path, port: int, runtime: str, timeout: float, log: Path,
                  limits: list[str] = ()) -> subprocess.Popen:
    """`fashionstyle serve` (python -m fashionstyle.cli) in a subprocess, its output in `log`, once /health
    answers."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "fashionstyle.cli", "serve", str(run), "--host", HOST, "--port", str(port),
               "--runtime", runtime, *limits]
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
            records = response.json().get("predictions", [])
            if len(records) != n_images or any(r["error"] for r in records):
                return elapsed, "wrong number of records, or a record with an error"
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
    parser.add_argument("--hostile-requests", type=int, default=8, help="0: no hostile phase")
    parser.add_argument("--hostile-concurrency", type=int, default=4)
    parser.add_argument("--hostile-images", type=int, default=16, help="images per hostile request")
    parser.add_argument("--hostile-modes", default="1,P,RGBA", help="PNG kinds to cycle through: 1, P, RGB, RGBA")
    parser.add_argument("--rss-budget", type=float, default=1024.0, help="MB the hostile peak may pass idle by")
    parser.add_argument("--rss-kill", type=float, default=8000.0, help="MB at which the service is killed")
    for flag in ("--max-pixels", "--max-request-pixels", "--decoders"):
        parser.add_argument(flag, type=int, default=None, help="passed to the service (default: its own)")
    args = parser.parse_args(argv)
    limits = [item for flag in ("max_pixels", "max_request_pixels", "decoders") if getattr(args, flag) is not None
              for item in (f"--{flag.replace('_', '-')}", str(getattr(args, flag)))]

    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        if args.run:
            run = Path(args.run)
            what = str(run)
        else:
            run = make_random_run(Path(tmp) / "run", args.backbone, args.model_size)
            what = f"random-init {args.backbone} at {args.model_size} px (13 labels)"
        port = free_port()
        url = f"http://{HOST}:{port}"
        try:
            process = start_service(run, port, args.runtime, args.start_timeout, Path(tmp) / "service.log", limits)
        except RuntimeError as err:
            print(f"serve_load: {err}", file=sys.stderr)
            return 1
        memory = Memory(process.pid, args.rss_kill)
        hostile: Counter = Counter()
        try:
            health = httpx.get(f"{url}/health", timeout=10).json()
            payload = photo_bytes(*args.photo_size)
            run_load(url, payload, args.images_per_request, 0, args.concurrency)  # warm-up only
            idle = memory.rss()
            memory.reset()
            latencies, errors, wall = run_load(url, payload, args.images_per_request,
                                               args.requests, args.concurrency)
            normal_peak = memory.peak()
            if args.hostile_requests:
                files, pixels = hostile_files(health, args.hostile_images, args.hostile_modes.split(","))
                memory.reset()
                hostile = run_hostile(url, files, args.hostile_requests, args.hostile_concurrency)
                hostile_peak, after = memory.peak(), memory.rss()
        finally:
            memory.close()
            died = process.poll() is not None
            stop_service(process)

    done = len(latencies)
    print(f"run: {what}; runtime {args.runtime}; {os.cpu_count()} CPU cores")
    print("service limits: " + ", ".join(f"{k} {health[k]:,}" for k in
                                          ("max_bytes", "max_images", "max_pixels", "max_request_pixels",
                                           "decoders") if k in health))
    print(f"{args.requests} requests x {args.images_per_request} image(s) of {args.photo_size[0]}x"
          f"{args.photo_size[1]} ({len(payload):,} bytes), concurrency {args.concurrency}, {wall:.2f} s")
    print(f"throughput: {done / wall:.1f} requests/s, {done * args.images_per_request / wall:.1f} images/s")
    if done:
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99]) * 1000
        print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {latencies.max() * 1000:.1f}")
    print(f"errors: {len(errors)}")
    for message in sorted(set(errors))[:5]:
        print(f"  {message}")

    rows = [("idle, after warm-up", idle, "")]
    rows.append(("normal load (above)", normal_peak, f"{done} x 200"))
    over = False
    if args.hostile_requests:
        side = int(pixels**0.5)
        answers = ", ".join(f"{n} x {status}" for status, n in sorted(hostile.items()))
        rows.append((f"hostile: {args.hostile_requests} x {args.hostile_images} PNGs ({args.hostile_modes}) of "
                     f"{side}x{side}, c{args.hostile_concurrency}", hostile_peak, answers))
        if not memory.killed_at:
            rows.append(("resident after the hostile phase", after, ""))
        over = hostile_peak - idle > args.rss_budget
    print(f"\n{'service memory':<62} {'peak RSS MB':>11} {'above idle':>10} {'x idle':>6}  answers")
    for name, mb, answers in rows:
        print(f"{name:<62} {mb:>11,.0f} {mb - idle:>+10,.0f} {mb / idle:>6.2f}  {answers}")
    if memory.killed_at:
        print(f"the service was killed at {memory.killed_at:,.0f} MB resident (--rss-kill {args.rss_kill:,.0f}); "
              "its true peak is higher")
    if args.hostile_requests:
        print(f"hostile peak - idle: {hostile_peak - idle:,.0f} MB; goal: within {args.rss_budget:,.0f} MB: "
              f"{'OVER' if over else 'ok'}")
    return 1 if errors or not done or died or over else 0


if __name__ == "__main__":
    sys.exit(main())
