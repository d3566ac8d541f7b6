"""The HTTP service on a tiny trained run: endpoints, agreement with Predictor, limits, concurrency."""
from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import LABELS, TINY_TRAIN, load_bench, make_image_set  # noqa: E402
from fashionstyle import FashionStyleError, Predictor  # noqa: E402
from fashionstyle.cli import main  # noqa: E402
from fashionstyle.serve import create_app  # noqa: E402



@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("serve")
    labels = make_image_set(root / "data", n=32)
    run = root / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    return run, labels.parent / "img"


@pytest.fixture(scope="module")
def client(trained_run) -> TestClient:
    run, _ = trained_run
    with TestClient(create_app(run)) as c:
        yield c


def upload(paths, field: str = "files") -> list:
    return [(field, (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths]


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of width x height, all black: a few KB for 100M+ pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    block = row * 500
    idat = b"".join(packer.compress(block) for _ in range(height // 500))
    idat += packer.compress(row * (height % 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_health_and_labels(client, trained_run) -> None:
    run, _ = trained_run
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["labels"] == 3 and health["run"] == run.name
    body = client.get("/labels").json()
    assert [entry["name"] for entry in body["labels"]] == list(LABELS)
    expected = Predictor.from_run(run).thresholds
    np.testing.assert_allclose([entry["threshold"] for entry in body["labels"]], expected)


def test_page_and_docs_are_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="files"' in page.text and 'fetch("predict"' in page.text
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_agrees_with_predictor(client, trained_run) -> None:
    run, images = trained_run
    paths = sorted(images.glob("*.jpg"))[:2]
    response = client.post("/predict", files=upload(paths))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [p.name for p in paths]
    predictor = Predictor.from_run(run)
    expected = predictor.predict_proba(paths)
    got = np.array([[r["probs"][n] for n in LABELS] for r in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    thresholds = predictor.thresholds
    for result, probs in zip(results, expected):
        assert set(result["labels"]) == {n for n, p, t in zip(LABELS, probs, thresholds) if p >= t}
        np.testing.assert_allclose([result["thresholds"][n] for n in LABELS], thresholds)


def test_body_over_max_bytes_is_413(trained_run) -> None:
    run, images = trained_run
    path = sorted(images.glob("*.jpg"))[0]
    with TestClient(create_app(run, max_bytes=path.stat().st_size // 2)) as small:
        response = small.post("/predict", files=upload([path]))
        assert response.status_code == 413
        assert "too large" in response.json()["detail"]

        def chunks():  # no Content-Length: the bytes received are counted
            yield b"x" * 1000
            yield b"y" * path.stat().st_size

        response = small.post("/predict", content=chunks(),
                              headers={"content-type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413 and "too large" in response.json()["detail"]
        assert small.get("/health").status_code == 200


def test_text_file_is_415_naming_it(client) -> None:
    response = client.post("/predict", files=[("files", ("notes.txt", b"not an image at all", "text/plain"))])
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "notes.txt" in detail and "not a readable image" in detail and "BytesIO" not in detail


def test_too_many_images_is_refused(trained_run) -> None:
    run, images = trained_run
    with TestClient(create_app(run, max_images=2)) as limited:
        response = limited.post("/predict", files=upload(sorted(images.glob("*.jpg"))[:3]))
        assert response.status_code in (400, 413)
        assert "too many images" in response.json()["detail"]


@pytest.mark.parametrize("side", [12_000, 20_000])  # over the limit, and over twice it (Pillow's error)
def test_decompression_bomb_is_refused(client, side) -> None:
    bomb = png_bomb(side, side)
    assert len(bomb) < 100_000
    response = client.post("/predict", files=[("files", ("bomb.png", bomb, "image/png"))])
    assert response.status_code in (400, 413)
    detail = response.json()["detail"]
    assert "bomb.png" in detail and "too large" in detail


def test_no_files_is_400(client) -> None:
    response = client.post("/predict")
    assert response.status_code == 400 and "no images" in response.json()["detail"]
    response = client.post("/predict", data={"other": "field"})
    assert response.status_code == 400 and isinstance(response.json()["detail"], str)


def test_concurrent_requests_all_succeed(client, trained_run) -> None:
    _, images = trained_run
    paths = sorted(images.glob("*.jpg"))[:8]
    first = client.post("/predict", files=upload(paths[:1])).json()["results"][0]["probs"]

    def post(k: int) -> dict:
        response = client.post("/predict", files=upload([paths[k % len(paths)], paths[0]]))
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(post, range(16)))
    for body in bodies:
        assert len(body["results"]) == 2
        np.testing.assert_allclose([body["results"][1]["probs"][n] for n in LABELS],
                                   [first[n] for n in LABELS], atol=1e-6)


def test_missing_run_is_a_user_error(tmp_path) -> None:
    with pytest.raises(FashionStyleError, match="run directory not found"):
        create_app(tmp_path / "none")


def test_onnx_runtime_serves_the_same_probabilities(client, trained_run, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    run, images = trained_run
    paths = sorted(images.glob("*.jpg"))[:2]
    expected = client.post("/predict", files=upload(paths)).json()["results"]
    with TestClient(create_app(run, runtime="onnx")) as onnx_client:
        assert onnx_client.get("/health").json()["runtime"] == "onnx"
        got = onnx_client.post("/predict", files=upload(paths)).json()["results"]
    for a, b in zip(expected, got):
        np.testing.assert_allclose([a["probs"][n] for n in LABELS], [b["probs"][n] for n in LABELS], atol=1e-4)
    with TestClient(create_app(run, runtime="onnx-int8")) as int8_client:  # quantised on first use
        assert int8_client.get("/health").json()["runtime"] == "onnx-int8"
        got = int8_client.post("/predict", files=upload(paths)).json()["results"]
    assert (run / "onnx-int8" / "fidelity.json").is_file()
    for a, b in zip(expected, got):
        np.testing.assert_allclose([a["probs"][n] for n in LABELS], [b["probs"][n] for n in LABELS], atol=0.1)


def test_load_bench_small(trained_run) -> None:
    run, _ = trained_run
    assert load_bench("serve_load").main(["--run", str(run), "--requests", "20", "--concurrency", "4"]) == 0


def test_png_upload_matches_the_decoded_image(client) -> None:
    """A lossless upload is preprocessed exactly like the same image given to the predictor."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    response = client.post("/predict", files=[("files", ("x.png", buffer.getvalue(), "image/png"))])
    assert response.status_code == 200
    probs = client.app.state.predictor.predict_proba_images([image])[0]
    np.testing.assert_allclose([response.json()["results"][0]["probs"][n] for n in LABELS], probs, atol=1e-6)
