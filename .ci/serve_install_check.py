"""CI: the serving install without PyTorch (`pip install 'fashionstyle[serve]'`) serves an exported run.

    .venv/bin/python .ci/serve_install_check.py [--venv FOLDER] [--keep]

With this (full) environment: trains a tiny run and exports it (`fashionstyle export`).
Then: a fresh venv (a new temporary folder unless --venv names one) gets `pip install '.[serve]'` at the
versions of locks/serve.txt (and holds nothing else), torch must not import there, and its
`fashionstyle serve RUN --runtime onnx` on 127.0.0.1 answers GET /, GET /labels and a
POST /predict of one image as this environment's ONNX predictor does. Bounded in time.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "locks" / "serve.txt"
sys.path.insert(0, str(ROOT / "tests"))  # conftest's tiny image set and training options


def step(message: str) -> None:
    print(f"[serve-install] {message}", flush=True)


def make_exported_run(work: Path) -> tuple[Path, Path]:
    """A tiny trained run with RUN/onnx/, and one of its images."""
    from conftest import TINY_TRAIN, make_image_set
    from fashionstyle.cli import main

    labels = make_image_set(work / "data", n=16)
    run = work / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    assert main(["export", str(run)]) == 0
    assert (run / "onnx" / "members.json").is_file()
    return run, labels.parent / "img" / "000.jpg"


def light_venv(venv: Path) -> Path:
    """A fresh venv with `.[serve]` installed at the locked versions (no PyTorch); its bin folder."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "-c", str(LOCK)]
    subprocess.run([*pip, "pip", "setuptools", "wheel"], check=True, timeout=300)
    subprocess.run([*pip, f"{ROOT}[serve]"], check=True, timeout=900)
    subprocess.run([python, str(ROOT / ".ci" / "check_locked.py"), str(LOCK)], check=True, timeout=60)
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0, "torch is importable in the serving install"
    return venv / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read()


def post_image(url: str, image: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{image.name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def check_server(bin_dir: Path, run: Path, image: Path, log: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen([str(bin_dir / "fashionstyle"), "serve", str(run), "--runtime", "onnx",
                                   "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"the server exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            try:
                if get(f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer in 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        status, page = get(f"{base}/")
        assert status == 200 and b"<html" in page.lower(), "GET / gave no page"
        labels = [item["name"] for item in json.loads(get(f"{base}/labels")[1])["labels"]]
        result = post_image(f"{base}/predict", image)["predictions"][0]
        assert result["image"] == image.name and result["error"] is None and set(result["labels"]) <= set(labels)
        assert list(result["scores"]) == labels and all(0 <= p <= 1 for p in result["scores"].values())
        from fashionstyle.inference.onnx_predictor import OnnxPredictor  # the same image here, with torch installed

        expected = OnnxPredictor.from_run(run).predict_proba([image])[0]
        got = [result["scores"][name] for name in labels]
        assert max(abs(g - e) for g, e in zip(got, expected)) < 1e-5, (got, expected)
        step(f"serve --runtime onnx: page, labels and /predict OK ({result['labels']})")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def check_torch_command_fails_clearly(bin_dir: Path, run: Path) -> None:
    result = subprocess.run([str(bin_dir / "fashionstyle"), "export", str(run)], capture_output=True, text=True,
                            timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "fashionstyle[train]" in lines[0], result.stderr
    step(f"a PyTorch command says what to install: {lines[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="the fresh venv (replaced; default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the venv and the run")
    args = parser.parse_args()
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="serve-install-"))
    venv = args.venv or work / "serve-venv"
    try:
        step("training and exporting a tiny run (full install)")
        run, image = make_exported_run(work)
        step(f"pip install '.[serve]' -c {LOCK.relative_to(ROOT)} into a fresh venv at {venv}")
        bin_dir = light_venv(venv)
        check_torch_command_fails_clearly(bin_dir, run)
        check_server(bin_dir, run, image, work / "serve.log")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(venv, ignore_errors=True)
    step(f"passed in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
