"""The HTTP service on a tiny trained run: endpoints, the prediction record, agreement with `predict`,
limits, time limits, concurrency."""
from __future__ import annotations

import io
import platform
import re
import struct
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import LABELS, TinyRun, load_bench  # noqa: E402
from fashionstyle import FashionStyleError, Predictor  # noqa: E402
import fashionstyle.serving.app as serve_module  # noqa: E402
import fashionstyle.serving.predict as predict_module  # noqa: E402
from fashionstyle.core.prediction import FIELDS  # noqa: E402
from fashionstyle.data.images.files import open_rgb  # noqa: E402
from fashionstyle.serving.app import create_app  # noqa: E402
from fashionstyle.serving.limits import LIMIT_SPECS, ServiceLimits  # noqa: E402
from fashionstyle.serving.protocol import timed_protocol  # noqa: E402



@pytest.fixture(scope="module")
def trained_run(shared_run: TinyRun) -> tuple[Path, Path]:
    """The session's tiny run (read-only: a test that exports into it takes run_copy) and its image folder."""
    return shared_run.run, shared_run.images[0].parent


@pytest.fixture(scope="module")
def client(trained_run) -> TestClient:
    run, _ = trained_run
    with TestClient(create_app(run)) as c:
        yield c


def upload(paths, field: str = "files") -> list:
    return [(field, (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in paths]


def scores(record: dict) -> list[float]:
    return [record["scores"][n] for n in LABELS]


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


def png(width: int, height: int, mode: str = "RGB", color=0) -> bytes:
    image = Image.new(mode, (width, height), color)
    if mode == "P":  # palette entry i is (i, 2i, 3i) % 256
        image.putpalette([(c * i) % 256 for i in range(256) for c in (1, 2, 3)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo_jpeg(width: int, height: int) -> bytes:
    """Smooth colour gradients with a few large shapes: what a reduced decode should keep."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([x * 255, y * 255, 127 + 100 * np.sin(8 * x) * np.cos(6 * y)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.mark.slow
def test_health_and_labels(client, trained_run) -> None:
    run, _ = trained_run
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["labels"] == 3 and health["run"] == run.name
    body = client.get("/labels").json()
    assert [entry["name"] for entry in body["labels"]] == list(LABELS)
    expected = Predictor.from_run(run).thresholds
    np.testing.assert_allclose([entry["threshold"] for entry in body["labels"]], expected)


@pytest.mark.slow
def test_page_and_docs_are_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="files"' in page.text and 'fetch("predict"' in page.text
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.slow
def test_head_on_the_page_and_health_answers_200_without_a_body(client) -> None:
    for path in ("/", "/health"):
        response = client.head(path)
        assert response.status_code == 200, (path, response.status_code)
        assert response.content == b""
    assert "text/html" in client.head("/").headers["content-type"]


@pytest.mark.slow
def test_docs_show_the_predict_answer_schema_with_the_record_fields_and_an_example(client) -> None:
    spec = client.get("/openapi.json").json()
    answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]
    body = schemas[answer["$ref"].rsplit("/", 1)[-1]]
    assert {"run", "label_names", "thresholds", "predictions", "inference_ms"} <= set(body["properties"])
    record = schemas[body["properties"]["predictions"]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(FIELDS) <= set(record["properties"]) and set(FIELDS) <= set(record["required"])
    (example,) = body["examples"]
    assert [set(r) for r in example["predictions"]] == [set(FIELDS) - {"error"}, set(FIELDS)]  # null left out
    for code in ("413", "415"):
        assert code in spec["paths"]["/predict"]["post"]["responses"]


@pytest.mark.slow
def test_docs_load_nothing_from_outside_the_service(client) -> None:
    """/docs (Swagger UI) comes with its script, style and icon from the installed package, no CDN."""
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls), urls
    for url in urls:
        assert url.startswith("/"), f"/docs loads {url} from outside the service"
        assert client.get(url).status_code == 200, url
    assert "SwaggerUIBundle" in client.get("/docs-static/swagger-ui-bundle.js").text
    assert client.get("/redoc").status_code == 404  # ReDoc would fetch its logo from its CDN


def test_page_colour_bar_is_the_overlays_colour_scale() -> None:
    from importlib import resources

    from fashionstyle.analysis.explain_page import colour_bar_css

    page = resources.files("fashionstyle.serving").joinpath("static", "index.html").read_text(encoding="utf-8")
    assert colour_bar_css() in page


@pytest.mark.slow
def test_label_info_descriptions_come_with_the_labels(trained_run, tmp_path) -> None:
    run, _ = trained_run
    info = tmp_path / "info.csv"
    info.write_text('label,description\nred,"warm colours, mostly red"\n', encoding="utf-8")
    with TestClient(create_app(run, label_info=info)) as c:
        labels = c.get("/labels").json()["labels"]
    assert {e["name"]: e["description"] for e in labels} == {"Red": "warm colours, mostly red", "Striped": None,
                                                             "Dotted": None}


@pytest.mark.slow
def test_label_info_with_unknown_labels_is_one_line_naming_them(trained_run, tmp_path, capsys, monkeypatch) -> None:
    from fashionstyle.cli import main

    run, _ = trained_run
    info = tmp_path / "info.csv"
    info.write_text("label,description\nRed,r\nBlue,b\nGreen,g\n", encoding="utf-8")
    with pytest.raises(FashionStyleError, match="unknown labels 'Blue', 'Green'; valid: Red, Striped, Dotted"):
        create_app(run, label_info=info)
    assert main(["serve", str(run), "--label-info", str(info)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'Blue', 'Green'" in err and "valid: Red, Striped, Dotted" in err
    info.write_text("style,text\nRed,r\n", encoding="utf-8")  # malformed: refused before the model loads
    monkeypatch.setattr(serve_module, "load_predictor", lambda *a: pytest.fail("the model loaded"))
    with pytest.raises(FashionStyleError, match="header must be label,description"):
        create_app(run, label_info=info)


@pytest.mark.slow
def test_predict_answers_a_record_per_file_and_the_thresholds_once(client, trained_run) -> None:
    run, images = trained_run
    paths = sorted(images.glob("*.jpg"))[:2]
    response = client.post("/predict", files=upload(paths))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["run", "label_names", "operating_point", "thresholds", "predictions", "inference_ms"]
    assert body["run"] == run.name and body["label_names"] == list(LABELS)
    predictor = Predictor.from_run(run)
    assert list(body["thresholds"]) == list(LABELS)
    np.testing.assert_allclose([body["thresholds"][n] for n in LABELS], predictor.thresholds)
    records = body["predictions"]
    assert [list(r) for r in records] == [list(FIELDS)] * 2  # image, labels, scores, error: nothing else
    assert [r["image"] for r in records] == [p.name for p in paths] and all(r["error"] is None for r in records)
    expected = predictor.predict_proba(paths)
    np.testing.assert_allclose([scores(r) for r in records], expected, atol=1e-6)
    for record, probs in zip(records, expected):
        assert list(record["scores"]) == list(LABELS)
        decided = [n for n, p, t in zip(LABELS, probs, predictor.thresholds) if p >= t]
        assert record["labels"] == sorted(decided, key=lambda n: -record["scores"][n])  # most probable first


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["large_jpeg", "small_jpeg", "png", "rotated_jpeg"])
def test_an_uploaded_file_gets_the_probabilities_predict_gives_that_file(client, trained_run, tmp_path,
                                                                         kind) -> None:
    """The upload is decoded as `predict` decodes the file on disk (a large JPEG at reduced size by the
    same rule), so both give the same probabilities."""
    run, _ = trained_run
    path = tmp_path / ("a.png" if kind == "png" else "a.jpg")
    if kind == "rotated_jpeg":
        image = Image.open(io.BytesIO(photo_jpeg(900, 500)))
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(path, quality=90, exif=exif.tobytes())
    else:
        data = photo_jpeg(1600, 1200) if kind == "large_jpeg" else photo_jpeg(120, 90)
        Image.open(io.BytesIO(data)).save(path) if kind == "png" else path.write_bytes(data)
    response = client.post("/predict", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
    assert response.status_code == 200, response.text
    expected = Predictor.from_run(run).predict_proba([path])[0]
    np.testing.assert_allclose(scores(response.json()["predictions"][0]), expected, atol=1e-6)


@pytest.mark.slow
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


@pytest.mark.slow
def test_text_file_is_415_naming_it(client) -> None:
    response = client.post("/predict", files=[("files", ("notes.txt", b"not an image at all", "text/plain"))])
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "notes.txt" in detail and "not a readable image" in detail and "BytesIO" not in detail


@pytest.mark.slow
def test_too_many_images_is_refused(trained_run) -> None:
    run, images = trained_run
    with TestClient(create_app(run, max_images=2)) as limited:
        response = limited.post("/predict", files=upload(sorted(images.glob("*.jpg"))[:3]))
        assert response.status_code in (400, 413)
        assert "too many images" in response.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("side", [12_000, 20_000])  # over the limit, and over twice it (Pillow's error)
def test_decompression_bomb_is_refused(client, side) -> None:
    bomb = png_bomb(side, side)
    assert len(bomb) < 100_000
    response = client.post("/predict", files=[("files", ("bomb.png", bomb, "image/png"))])
    assert response.status_code in (400, 413)
    detail = response.json()["detail"]
    assert "bomb.png" in detail and "too large" in detail


@pytest.mark.slow
def test_no_files_is_400(client) -> None:
    response = client.post("/predict")
    assert response.status_code == 400 and "no images" in response.json()["detail"]
    response = client.post("/predict", data={"other": "field"})
    assert response.status_code == 400 and isinstance(response.json()["detail"], str)


@pytest.mark.slow
def test_concurrent_requests_all_succeed(client, trained_run) -> None:
    _, images = trained_run
    paths = sorted(images.glob("*.jpg"))[:8]
    first = scores(client.post("/predict", files=upload(paths[:1])).json()["predictions"][0])

    def post(k: int) -> dict:
        response = client.post("/predict", files=upload([paths[k % len(paths)], paths[0]]))
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(post, range(16)))
    for body in bodies:
        assert len(body["predictions"]) == 2
        np.testing.assert_allclose(scores(body["predictions"][1]), first, atol=1e-6)


def test_missing_run_is_a_user_error(tmp_path) -> None:
    with pytest.raises(FashionStyleError, match="run directory not found"):
        create_app(tmp_path / "none")


@pytest.mark.slow
@pytest.mark.usefixtures("no_int8_bar")
def test_onnx_runtime_serves_the_same_probabilities(client, trained_run, run_copy) -> None:
    pytest.importorskip("onnxruntime")
    _, images = trained_run
    run = run_copy.run  # the runtimes export into the run
    paths = sorted(images.glob("*.jpg"))[:2]
    expected = client.post("/predict", files=upload(paths)).json()["predictions"]
    with TestClient(create_app(run, runtime="onnx")) as onnx_client:
        assert onnx_client.get("/health").json()["runtime"] == "onnx"
        got = onnx_client.post("/predict", files=upload(paths)).json()["predictions"]
    for a, b in zip(expected, got):
        np.testing.assert_allclose(scores(a), scores(b), atol=1e-4)
    with TestClient(create_app(run, runtime="onnx-int8")) as int8_client:  # quantised on first use
        assert int8_client.get("/health").json()["runtime"] == "onnx-int8"
        got = int8_client.post("/predict", files=upload(paths)).json()["predictions"]
    assert (run / "onnx-int8" / "fidelity.json").is_file()
    for a, b in zip(expected, got):
        np.testing.assert_allclose(scores(a), scores(b), atol=0.1)


@pytest.mark.slow
def test_load_bench_small(trained_run) -> None:
    run, _ = trained_run
    assert load_bench("serve_load").main(["--run", str(run), "--requests", "20", "--concurrency", "4",
                                          "--hostile-requests", "2", "--hostile-concurrency", "2",
                                          "--hostile-images", "4", "--max-pixels", "1000000"]) == 0


@pytest.mark.slow
def test_png_upload_matches_the_decoded_image(client) -> None:
    """A lossless upload is preprocessed exactly like the same image given to the predictor."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    response = client.post("/predict", files=[("files", ("x.png", buffer.getvalue(), "image/png"))])
    assert response.status_code == 200
    probs = client.app.state.predictor.predict_proba_images([image])[0]
    np.testing.assert_allclose(scores(response.json()["predictions"][0]), probs, atol=1e-6)


@pytest.mark.slow
def test_image_over_max_pixels_is_413_naming_the_limit(trained_run) -> None:
    run, _ = trained_run
    with TestClient(create_app(run, max_pixels=40_000)) as limited:
        response = limited.post("/predict", files=[("files", ("big.png", png(300, 200), "image/png"))])
        assert response.status_code == 413
        detail = response.json()["detail"]
        assert "big.png" in detail and "300x200 = 60,000 pixels" in detail
        assert "the limit is 40,000 pixels per image" in detail
        assert limited.post("/predict", files=[("files", ("ok.png", png(200, 200), "image/png"))]).status_code == 200
        assert limited.get("/health").json()["max_pixels"] == 40_000


@pytest.mark.slow
def test_request_over_max_request_pixels_is_413_naming_the_limit(trained_run) -> None:
    run, _ = trained_run
    with TestClient(create_app(run, max_request_pixels=100_000)) as limited:
        files = [("files", (f"{i}.png", png(200, 200), "image/png")) for i in range(3)]  # 40,000 pixels each
        response = limited.post("/predict", files=files)
        assert response.status_code == 413
        detail = response.json()["detail"]
        assert "120,000 pixels in 3 images" in detail and "the limit is 100,000 pixels per request" in detail
        assert limited.post("/predict", files=files[:2]).status_code == 200
    with TestClient(create_app(run, max_request_pixels=30_000)) as limited:  # one image: "image", not "images"
        detail = limited.post("/predict", files=files[:1]).json()["detail"]
        assert "40,000 pixels in 1 image (" in detail


@pytest.mark.slow
def test_elongated_image_is_413(client) -> None:
    """Resizing the shorter side of a thin strip to the model's size would take GBs: refused from the header."""
    response = client.post("/predict", files=[("files", ("strip.png", png(4200, 20), "image/png"))])
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "strip.png" in detail and "4200x20" in detail and "20:1" in detail


@pytest.mark.slow
def test_limits_beyond_pillows_are_refused(trained_run) -> None:
    run, _ = trained_run
    with pytest.raises(FashionStyleError, match=r"--max-pixels .* decompression-bomb limit"):
        create_app(run, max_pixels=Image.MAX_IMAGE_PIXELS + 1)
    with pytest.raises(FashionStyleError, match="--decoders 0 is out of range: a whole number from 1 to 64"):
        create_app(run, decoders=0)


def test_the_limits_table_names_each_flag_default_and_range() -> None:
    assert [s.name for s in LIMIT_SPECS] == list(ServiceLimits().as_dict())
    assert ServiceLimits().as_dict() == {s.name: s.default for s in LIMIT_SPECS}
    assert {s.flag for s in LIMIT_SPECS} >= {"--max-bytes", "--header-timeout", "--body-timeout", "--body-deadline"}
    for bad in (dict(body_timeout=float("nan")), dict(header_timeout=0), dict(max_images=2.5),
                dict(body_deadline=float("inf")), dict(max_bytes=-1)):
        (name,) = bad
        with pytest.raises(FashionStyleError, match=f"--{name.replace('_', '-')} .* is out of range"):
            ServiceLimits(**bad)
    assert ServiceLimits.from_mapping({"max_images": 3, "port": 80, "decoders": None}) == ServiceLimits(max_images=3)


def test_serve_flags_are_the_limits_table_and_out_of_range_is_one_line(tmp_path, capsys) -> None:
    from fashionstyle.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    usage = capsys.readouterr().out
    assert all(spec.flag in usage for spec in LIMIT_SPECS)
    assert main(["serve", str(tmp_path), "--body-timeout", "nan"]) == 2  # refused before the run is read
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--body-timeout nan is out of range: a number from 0.001 to 3,600" in err


def test_a_run_with_a_nan_threshold_is_refused_at_start(run_copy) -> None:
    import json

    path = run_copy.run / "thresholds.json"
    record = json.loads(path.read_text())
    record["thresholds"][1] = float("nan")
    path.write_text(json.dumps(record))  # NaN, as Python's json writes it
    with pytest.raises(FashionStyleError, match="thresholds"):
        create_app(run_copy.run)


def test_uploaded_bytes_decode_as_the_file_does_upright_and_reduced_by_the_same_rule(tmp_path) -> None:
    image = Image.new("RGB", (400, 200), (10, 20, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "r.jpg", exif=exif.tobytes())
    image.convert("RGBA").save(tmp_path / "r.png", exif=exif.tobytes())
    for name, min_side, size in [("r.jpg", None, (200, 400)), ("r.jpg", 50, (50, 100)), ("r.png", 50, (200, 400))]:
        data = (tmp_path / name).read_bytes()
        decoded = open_rgb(data, min_side, name)
        assert decoded.size == size  # a JPEG by DCT scaling, other formats whole
        assert decoded.tobytes() == open_rgb(tmp_path / name, min_side).tobytes()
    with pytest.raises(FashionStyleError, match=r"^notes\.txt: not a readable image \(unknown or unsupported"):
        open_rgb(b"not an image", name="notes.txt")


@pytest.mark.slow
def test_hostile_request_keeps_only_small_views_and_decodes_one_request_at_a_time(trained_run,
                                                                                   monkeypatch) -> None:
    """16 images at the pixel limit per request, 4 requests at once: each decoded image is let go for its
    small views at once, and with decoders=1 no two requests decode at the same time, and all decode on
    one thread (whose malloc arena then holds one full-size image, not one per server thread)."""
    run, _ = trained_run
    active, most, kept, threads = [0], [0], [], set()
    guard = threading.Lock()
    real = predict_module.prepare

    def tracked(*args, **kwargs):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.01)
            threads.add(threading.get_ident())
            prepared = real(*args, **kwargs)
            kept.append(sum(v.numel() * v.element_size() for v in prepared.views))
            return prepared
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(predict_module, "prepare", tracked)
    bomb = png_bomb(1000, 1000)  # 1-bit, a million pixels, a few hundred bytes
    with TestClient(create_app(run, max_pixels=1_000_000, max_request_pixels=16_000_000, decoders=1)) as c:
        def post(_: int) -> int:
            files = [("files", (f"{i}.png", bomb, "image/png")) for i in range(16)]
            return c.post("/predict", files=files).status_code

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(post, range(4))) == [200] * 4
    assert most[0] == 1 and len(kept) == 64 and len(threads) == 1
    assert max(kept) == 3 * 32 * 32  # one 32 px uint8 view kept per image, not the million decoded pixels


@pytest.mark.slow
def test_a_request_of_large_images_gives_the_freed_memory_back_after_decoding(trained_run, monkeypatch) -> None:
    """After decoding, each request reports its pixels to release_after, which trims only above
    TRIM_ABOVE (a walk of glibc's arenas is not worth it for a phone photo)."""
    run, images = trained_run
    reported = []
    monkeypatch.setattr(predict_module, "release_after", reported.append)
    bomb = png_bomb(1000, 1000)
    with TestClient(create_app(run, max_pixels=1_000_000, max_request_pixels=16_000_000)) as c:
        assert c.post("/predict", files=[("files", (f"{i}.png", bomb, "image/png")) for i in range(6)]).status_code == 200
        assert c.post("/predict", files=upload(sorted(images.glob("*.jpg"))[:1])).status_code == 200
    assert reported[0] == 6_000_000 and 0 < reported[1] < 10_000


def test_release_after_trims_only_above_its_threshold(monkeypatch) -> None:
    from fashionstyle.serving import predict as memory

    calls = []
    monkeypatch.setattr(memory, "_TRIM", calls.append)
    assert memory.release_after(memory.TRIM_ABOVE) is False and calls == []
    assert memory.release_after(memory.TRIM_ABOVE + 1) is True and calls == [0]
    monkeypatch.setattr(memory, "_TRIM", None)  # no glibc: nothing to call
    assert memory.release_after(10 ** 9) is False
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert memory._malloc_trim() is not None  # found in the running process's C library


@pytest.mark.slow
def test_maps_on_request_give_an_overlay_per_predicted_style(client, trained_run) -> None:
    pytest.importorskip("captum")
    import base64

    _, images = trained_run
    paths = sorted(images.glob("*.jpg"))[:4]
    assert client.get("/health").json()["maps"] is True
    plain = client.post("/predict", files=upload(paths)).json()["predictions"]
    assert all("maps" not in r for r in plain)
    response = client.post("/predict?maps=true", files=upload(paths))
    assert response.status_code == 200, response.text
    records = response.json()["predictions"]
    assert sum(len(r["maps"]) for r in records) > 0
    for with_maps, without in zip(records, plain):
        assert with_maps["labels"] == without["labels"] and list(with_maps["maps"]) == with_maps["labels"]
        for url in with_maps["maps"].values():
            assert url.startswith("data:image/png;base64,")
            overlay = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            assert overlay.format == "PNG" and overlay.size == (224, 224)


@pytest.mark.slow
def test_maps_keep_the_limits_and_need_the_torch_runtime(trained_run, run_copy) -> None:
    pytest.importorskip("onnxruntime")
    _, images = trained_run
    run = run_copy.run  # the onnx runtime exports into the run
    with TestClient(create_app(run, max_pixels=40_000)) as limited:
        response = limited.post("/predict?maps=true", files=[("files", ("big.png", png(300, 200), "image/png"))])
        assert response.status_code == 413 and "40,000 pixels per image" in response.json()["detail"]
    with TestClient(create_app(run, runtime="onnx")) as onnx_client:
        assert onnx_client.get("/health").json()["maps"] is False
        response = onnx_client.post("/predict?maps=true", files=upload(sorted(images.glob("*.jpg"))[:1]))
        assert response.status_code == 400 and "need the PyTorch runtime" in response.json()["detail"]
        assert onnx_client.post("/predict", files=upload(sorted(images.glob("*.jpg"))[:1])).status_code == 200


@pytest.mark.slow
def test_maps_without_captum_installed_are_501_naming_the_extra(trained_run, monkeypatch) -> None:
    run, images = trained_run
    for name in [m for m in sys.modules if m == "captum" or m.startswith("captum.")] + ["captum"]:
        monkeypatch.setitem(sys.modules, name, None)  # import captum now fails as if not installed
    with TestClient(create_app(run)) as no_captum:
        response = no_captum.post("/predict?maps=true", files=upload(sorted(images.glob("*.jpg"))[:1]))
        assert response.status_code == 501 and "fashionstyle[explain]" in response.json()["detail"]
        assert no_captum.post("/predict", files=upload(sorted(images.glob("*.jpg"))[:1])).status_code == 200


@pytest.mark.slow
def test_one_bad_file_is_a_record_with_its_error_beside_the_good_ones(trained_run) -> None:
    run, images = trained_run
    good = sorted(images.glob("*.jpg"))[:2]
    truncated = photo_jpeg(200, 150)[:1500]  # its header reads, its pixels do not
    files = [upload(good[:1])[0], ("files", ("notes.txt", b"not an image", "text/plain")),
             ("files", ("big.png", png(300, 200), "image/png")), ("files", ("cut.jpg", truncated, "image/jpeg")),
             upload(good[1:])[0]]
    with TestClient(create_app(run, max_pixels=40_000)) as limited:
        response = limited.post("/predict", files=files)
        alone = limited.post("/predict", files=upload(good)).json()["predictions"]
    assert response.status_code == 200, response.text
    records = response.json()["predictions"]
    assert [r["image"] for r in records] == [good[0].name, "notes.txt", "big.png", "cut.jpg", good[1].name]
    assert [list(r) for r in records] == [list(FIELDS)] * 5
    for got, expected in zip([records[0], records[4]], alone):  # the same as without the bad files
        assert got["error"] is None
        np.testing.assert_allclose(scores(got), scores(expected), atol=1e-6)
    for failed in records[1:4]:
        assert failed["labels"] == [] and failed["scores"] == {}
    assert records[1]["error"] == "not a readable image (unknown or unsupported format)"  # `image` names the file
    assert "the limit is 40,000 pixels per image" in records[2]["error"]
    assert records[3]["error"].startswith("not a readable image (")


@pytest.mark.slow
def test_all_bad_files_answer_the_first_files_status_and_every_record(client) -> None:
    files = [("files", ("a.txt", b"text", "text/plain")), ("files", ("strip.png", png(4200, 20), "image/png"))]
    response = client.post("/predict", files=files)
    assert response.status_code == 415
    body = response.json()
    assert body["detail"].startswith("a.txt: not a readable image") and "; strip.png: image too elongated" in body["detail"]
    assert [(r["image"], r["error"].split(" (")[0]) for r in body["predictions"]] == [
        ("a.txt", "not a readable image"), ("strip.png", "image too elongated")]
    assert body["label_names"] == list(LABELS)
    assert client.post("/predict", files=files[::-1]).status_code == 413  # the first file's status
    assert "data.predictions" in client.get("/").text  # the page shows them


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0und4ry") -> tuple[bytes, dict]:
    """A multipart/form-data body of (Content-Disposition parameters, content) parts, as some clients write it."""
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; {head}\r\nContent-Type: image/jpeg\r\n\r\n"
                    .encode("latin-1") + data + b"\r\n" for head, data in parts) + f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.slow
def test_an_rfc_5987_file_name_is_accepted_and_decoded_into_the_record(client, trained_run) -> None:
    _, images = trained_run
    data = sorted(images.glob("*.jpg"))[0].read_bytes()
    body, headers = multipart([("name=\"files\"; filename*=UTF-8''caf%C3%A9%20%221%22.jpg", data),
                               ("name=\"files\"; filename=\"plain.jpg\"; filename*=utf-8''%E2%98%85.jpg", data),
                               ("name=\"files\"; filename=\"only-plain.jpg\"", data)])
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == 200, response.text
    records = response.json()["predictions"]
    assert [r["image"] for r in records] == ['café "1".jpg', "★.jpg", "only-plain.jpg"]  # filename* wins
    assert records[0]["scores"] == records[2]["scores"]


def test_plain_filenames_leaves_other_bodies_and_parameters_alone() -> None:
    from fashionstyle.serving.body import decode_extended, plain_filenames

    body, headers = multipart([('name="files"; filename="a.jpg"', b"filename*=x'' in the content")])
    assert plain_filenames(body, headers["content-type"].encode()) == body
    body, headers = multipart([("name=\"files\"; filename*=UTF-8''%0D%0Aevil.jpg", b"\r\n\r\ndata")])
    fixed = plain_filenames(body, headers["content-type"].encode())
    assert b'name="files"; filename="evil.jpg"\r\n' in fixed and fixed.endswith(b"\r\n\r\ndata\r\n--b0und4ry--\r\n")
    assert decode_extended("iso-8859-1'en'%A3%20rates") == "£ rates"
    assert decode_extended("no-quotes.jpg") is None and decode_extended("klingon''x") is None


async def _tiny_app(scope, receive, send) -> None:
    """An ASGI app answering 200 'ok' once it has read the request's body (the time limits live in the
    protocol, not the app)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def timed_server():
    """uvicorn with a 1 s header timeout, 1 s body timeout and 3 s body deadline on 127.0.0.1, in a
    thread: yields its address."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    limits = ServiceLimits(header_timeout=1.0, body_timeout=1.0, body_deadline=3.0)
    config = uvicorn.Config(_tiny_app, log_level="warning", http=timed_protocol(limits), lifespan="off",
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield sock.getsockname()
    server.should_exit = True
    thread.join(10)
    sock.close()


def _closed_within(conn, seconds: float, trickle: bytes = b"", every: float = 0.1) -> bool:
    """Whether the server closes `conn` within `seconds` while the client sends `trickle` a byte per `every` s."""
    end = time.monotonic() + seconds
    conn.settimeout(every)
    sent = 0
    while time.monotonic() < end:
        try:
            if sent < len(trickle):
                conn.send(trickle[sent:sent + 1])
                sent += 1
            if conn.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset by the server
            return True
    return False


@pytest.mark.slow
def test_header_timeout_closes_slow_and_idle_connections(timed_server) -> None:
    import socket

    trickled = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100  # 10 s at a byte per 0.1 s
    slow = [socket.create_connection(timed_server) for _ in range(20)]
    idle = socket.create_connection(timed_server)
    assert all(_closed_within(conn, 5.0, trickled) for conn in slow)  # each within 1 s of its start
    assert _closed_within(idle, 3.0)
    with socket.create_connection(timed_server) as ok:  # headers in time: answered, kept alive
        for _ in range(2):
            for piece in (b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
                ok.sendall(piece)
                time.sleep(0.05)
            ok.settimeout(5)
            assert ok.recv(1024).startswith(b"HTTP/1.1 200")
        assert _closed_within(ok, 3.0)  # then idle: closed after the header timeout, not keep-alive's 30 s
    for conn in [*slow, idle]:
        conn.close()


@pytest.mark.slow
def test_a_body_shorter_than_its_content_length_or_trickled_is_cut_off(timed_server) -> None:
    import socket

    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
    with socket.create_connection(timed_server) as lying:  # 10 of the 1000 bytes declared, then silence
        lying.sendall(head + b"x" * 10)
        start = time.monotonic()
        assert _closed_within(lying, 4.0)
        assert time.monotonic() - start < 2.5  # the 1 s body timeout, not the 3 s deadline
    with socket.create_connection(timed_server) as trickling:  # never pausing 1 s, but over the 3 s deadline
        trickling.sendall(head)
        start = time.monotonic()
        assert _closed_within(trickling, 6.0, b"y" * 1000, every=0.3)
        assert 2.5 < time.monotonic() - start < 4.5
    with socket.create_connection(timed_server) as ok:  # a body in two pieces, in time: answered, kept alive
        ok.sendall(head + b"z" * 500)
        time.sleep(0.5)
        ok.sendall(b"z" * 500)
        assert _response(ok).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
        ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(ok).startswith(b"HTTP/1.1 200")


def _response(conn) -> bytes:
    """One whole response of _tiny_app (its body is "ok")."""
    conn.settimeout(5)
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = conn.recv(1024)
        assert chunk, data
        data += chunk
    return data
