"""What bench/train_speed.py and bench/infer_speed.py share: devices, photo sets, timing, tables, passes.

    result = attempt("fashionstyle gpu", lambda: end_to_end(...))   # {"steady": ...} or {"failed": "one line"}
    table = StreamTable(["backbone", "model alone"]); table.row(["resnet101", cell(result)])  # printed at once

A pass that raises is recorded as "failed: <one line>" in its cells while the other passes go on.
BENCH_FAIL=<part of a pass name> (environment) forces that pass to fail, to check the rest survive.
Only torch, torchvision, timm, numpy and Pillow here: the device image's packages.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import sys

import numpy as np
import torch
from PIL import Image

try:
    import fashionstyle  # noqa: F401
except ImportError:  # run without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

POLL_S = 0.005  # RunWatcher's interval
FORCE_FAILURE = "BENCH_FAIL"  # environment variable: a pass whose name contains its value fails
JD_STYLE_COUNT = 13


# -- devices -------------------------------------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def default_workers() -> int:
    return os.cpu_count() or 1


def environment(device: torch.device, workers: int) -> str:
    import timm

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return (f"device {device} ({where}), {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
            f"{workers} DataLoader workers; torch {torch.__version__}, timm {timm.__version__}, "
            f"cudnn.benchmark={torch.backends.cudnn.benchmark}")


@contextlib.contextmanager
def configured(threads: int | None, cudnn_benchmark: bool):
    """torch's CPU threads and cudnn.benchmark for the benchmark, restored after it."""
    before = torch.get_num_threads(), torch.backends.cudnn.benchmark
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.backends.cudnn.benchmark = before[1]


# -- photo sets ----------------------------------------------------------------------------------------------
def photo_path(folder: Path, index: int) -> Path:
    return folder / "img" / f"{index:06d}.jpg"


def parse_size(text: str) -> tuple[int, int]:
    """'400x533' -> (width 400, height 533)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"photo size must be at least 8x8, got {text!r}")
    return w, h


def photo(seed: int, index: int, size: tuple[int, int]) -> Image.Image:
    """A smooth, photo-like random image: bicubic-upscaled colour fields, a finer texture, mild noise."""
    rng = np.random.default_rng([seed, index])
    w, h = size
    coarse = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    fine = Image.fromarray(rng.integers(0, 256, (max(h // 24, 2), max(w // 24, 2), 3), dtype=np.uint8))
    blended = Image.blend(coarse, fine.resize((w, h), Image.BILINEAR), 0.25)
    pixels = np.asarray(blended, np.int16) + rng.integers(-7, 8, (h, w, 3), dtype=np.int8)  # noise, std ~4
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_photo_set(folder: Path, n: int, n_val: int, size: tuple[int, int], seed: int = 0,
                    threads: int | None = None) -> Path:
    """`n` JPEG photos in folder/img and folder/labels.csv (image, split, the 13 JD styles).

    The last `n_val` rows are `val`, the others `train`; every label has positives in
    both parts. An existing set made with the same settings is reused.
    """
    spec = {"n": n, "val": n_val, "size": list(size), "seed": seed}
    labels, marker = folder / "labels.csv", folder / "photos.json"
    if labels.is_file() and marker.is_file() and json.loads(marker.read_text()) == spec:
        return labels
    (folder / "img").mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        photo(seed, i, size).save(photo_path(folder, i), quality=90)

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))
    rng = np.random.default_rng(seed)
    targets = rng.random((n, JD_STYLE_COUNT)) < rng.uniform(0.05, 0.4, JD_STYLE_COUNT)
    targets[np.arange(n), np.arange(n) % JD_STYLE_COUNT] = True  # no label without positives
    targets[n - n_val + np.arange(n_val), np.arange(n_val) % JD_STYLE_COUNT] = True
    from fashionstyle.data.labels.names import JD_STYLES

    rows = ["image,split," + ",".join(JD_STYLES)]
    for i in range(n):
        split = "val" if i >= n - n_val else "train"
        rows.append(f"{photo_path(Path(), i).as_posix()},{split}," + ",".join(str(int(v)) for v in targets[i]))
    labels.write_text("\n".join(rows) + "\n")
    marker.write_text(json.dumps(spec))
    return labels


def photo_set_name(n: int, n_val: int, size: tuple[int, int]) -> str:
    return f"photos-{n}-{n_val}-{size[0]}x{size[1]}"


def photos_for(out: Path, n: int, size: tuple[int, int]) -> list[Path]:
    """`n` photos of `size`: the first n of a set already under `out` with at least that many (bench/
    gpu_checks.sh writes one set for both benchmarks), or a new set of n."""
    for marker in sorted(out.glob("photos-*/photos.json")):
        spec = json.loads(marker.read_text())
        if spec["n"] >= n and spec["size"] == list(size) and spec["seed"] == 0 and (marker.parent / "labels.csv").is_file():
            return [photo_path(marker.parent, i) for i in range(n)]
    folder = write_photo_set(out / photo_set_name(n, 0, size), n, 0, size).parent
    return [photo_path(folder, i) for i in range(n)]


# -- timing, passes and tables -------------------------------------------------------------------------------
class Pass:
    """Times one pass: start-up until the first step is done, then the steady rate after `warmup` steps."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.done = warmup, time.perf_counter(), []  # (time, images)

    def batch(self, images: int) -> None:
        self.done.append((time.perf_counter(), images))

    def result(self) -> dict:
        times = [t for t, _ in self.done]
        if not times:
            raise RuntimeError("no batch was timed (no photos read)")
        first = max(0, min(self.warmup, len(times) - 2))  # at least one step timed when there are two
        images = sum(n for _, n in self.done[first + 1:])
        steady = images / (times[-1] - times[first]) if images and times[-1] > times[first] else float("nan")
        return {"startup_s": times[0] - self.start, "steady": steady, "images": sum(n for _, n in self.done),
                "total_s": times[-1] - self.start}


def one_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[0][:160]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def attempt(name: str, run: Callable[[], dict], log: Callable[[str], None] = print) -> dict:
    """run()'s result, or {"failed": "<one line>"} when it raises (the traceback goes to `log`); a pass whose
    name contains $BENCH_FAIL fails on purpose."""
    forced = os.environ.get(FORCE_FAILURE, "")
    try:
        if forced and forced in name:
            raise RuntimeError(f"forced by {FORCE_FAILURE}={forced}")
        return run()
    except Exception as err:  # noqa: BLE001 - one failed pass must not lose the others' rows
        log(f"{name}: failed: {one_line(err)}\n" + "".join(traceback.format_exception(err)[-6:]).rstrip())
        return {"failed": one_line(err)}
    finally:
        free_memory(torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))


def failed(*results: dict | None) -> bool:
    return any(r is None or "failed" in r for r in results)


def cell(result: dict | None, key: str = "steady", form: str = "{:.1f}") -> str:
    """A table cell: the figure, "failed: <one line>", or n/a (not measured)."""
    if result is None:
        return "n/a"
    if "failed" in result:
        return f"failed: {result['failed']}"
    return form.format(result[key])


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 and a == a else "n/a"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


class StreamTable:
    """A markdown table printed row by row as results come (a run cut off keeps the rows so far)."""

    def __init__(self, title: str, header: list[str]):
        self.title, self.header, self.rows = title, header, []

    def row(self, cells: list[str]) -> None:
        if not self.rows:
            print(f"\n## {self.title}\n| " + " | ".join(self.header) + " |\n|" + "---|" * len(self.header), flush=True)
        self.rows.append(cells)
        print("| " + " | ".join(cells) + " |", flush=True)


class RunWatcher(threading.Thread):
    """Notes (perf_counter time, name) whenever one of `names` under `root` appears or is replaced."""

    def __init__(self, root: Path, names: list[str], interval: float = POLL_S):
        super().__init__(daemon=True)
        self.root, self.names, self.interval = root, names, interval
        self.events: list[tuple[float, str]] = []
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(self.interval)

    def poll(self) -> None:
        now = time.perf_counter()
        for name in self.names:
            try:
                st = os.stat(self.root / name)
            except OSError:
                continue
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._seen.get(name) != sig:
                self._seen[name] = sig
                self.events.append((now, name))

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def first(self, name: str) -> float | None:
        return next((t for t, n in self.events if n == name), None)
